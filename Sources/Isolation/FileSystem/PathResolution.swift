import Glibc
import SystemPackage

extension FileSystem {
    /// Resolves `path` as a process whose root directory is `root` would: symlinks are
    /// followed, but an absolute target starts again at `root`, and `..` never climbs
    /// above it. The result is a host path under `root`, whether or not it exists.
    ///
    /// This is what a runtime must do before it mounts onto a path that a container
    /// image controls (the mount-symlink races that shaped runc, e.g. CVE-2021-30465).
    public static func resolve(_ path: FilePath, inside root: FilePath, maxSymlinks: Int = 40) throws -> FilePath {
        var climbed = false
        return try resolve(path, inside: root, maxSymlinks: maxSymlinks, climbedAboveRoot: &climbed)
    }

    /// The same, and tells whether a `..` tried to climb above `root` (a symlink such as
    /// `../../../../etc`): never needed by a real image, always an attempt to get out.
    public static func resolve(_ path: FilePath, inside root: FilePath, maxSymlinks: Int = 40, climbedAboveRoot: inout Bool) throws -> FilePath {
        var resolved: [String] = []                           // components below root
        var pending = path.components.map { $0.string }.reversed() as [String]
        var hops = 0
        while let component = pending.popLast() {
            switch component {
            case ".", "": continue
            case "..":
                if resolved.isEmpty { climbedAboveRoot = true }
                _ = resolved.popLast()
                continue
            default: break
            }
            let candidate = resolved + [component]
            let hostPath = FilePath(root.string + "/" + candidate.joined(separator: "/"))
            if isSymlink(hostPath) {
                hops += 1
                if hops > maxSymlinks { throw Errno.tooManySymbolicLinkLevels }
                let target = try readLink(hostPath)
                if target.isAbsolute { resolved = [] }
                pending.append(contentsOf: target.components.map { $0.string }.reversed())
            } else {
                resolved = candidate
            }
        }
        return resolved.isEmpty ? root : FilePath(root.string + "/" + resolved.joined(separator: "/"))
    }
}
