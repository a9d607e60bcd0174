import Glibc
import SystemPackage

extension RootFilesystem {
    /// Before a lesson starts: the programs it runs inside, checked in this root
    /// filesystem's PATH (`Exec.containerPath`). A root with only `sh` and `ls` gets one
    /// error that names what the lesson needs and what is missing, instead of a lesson
    /// full of `sh: wc: not found`.
    public func requirePrograms(_ names: [String], for lesson: String) throws {
        let missing = names.filter { Command.find($0, path: Exec.containerPath, root: path) == nil }
        guard missing.isEmpty else {
            throw IsolationError("to run \(lesson), the root filesystem needs: \(names.joined(separator: " ")); \(path) has no \(missing.joined(separator: ", "))",
                                 hint: "give --rootfs a fuller root filesystem (busybox's, a distribution's), leave --rootfs out for the built-in one, or run one command: -- COMMAND")
        }
    }

    /// The root filesystem of one chapter run: `given` (the reader's own `--rootfs`),
    /// validated and used as it is, or else the built-in one under a writable layer of
    /// this run's own (remove it when the run ends). `log` hears what is built, and why
    /// the layer is a copy when overlayfs could not be used.
    public static func forRun(given: String?, log: (String) -> Void) throws -> (RootFilesystem, WritableLayer?) {
        if let given { return (try validate(FilePath(given)), nil) }
        let cache = try builtIn(log: log)
        let layer = try WritableLayer.over(cache)
        if !layer.isOverlay { log("this run writes to \(layer.how), removed at exit; the cache stays as it is") }
        return (layer.root, layer)
    }
}

/// A run's own writable layer over a shared root filesystem, so that what a jail or a
/// container writes (a file in `/tmp`, a mount point made for a bind mount) lands in
/// the layer and the cached root filesystem never changes.
///
/// overlayfs (mount(2) with type "overlay", Linux 3.18; overlayfs.rst): reads fall
/// through to `lowerdir`, the cache; writes go to `upperdir`; `workdir` is the
/// kernel's scratch space, on the same file system as `upperdir`. Both live in a
/// temporary folder `/tmp/isolation-layer-…`, removed by `remove()`. Where overlayfs
/// cannot be mounted (not root on the host, a kernel without it, an upper directory on
/// a file system it refuses) the layer is a copy of the root filesystem instead, and
/// `how` says why.
public struct WritableLayer: Sendable {
    /// The merged view: what the jail or container gets as its root.
    public let root: RootFilesystem
    /// The temporary folder that holds the layer (and, for a copy, the copy).
    public let folder: FilePath
    /// Whether `root` is an overlay mount (else a copy).
    public let isOverlay: Bool
    /// How the layer was made, for the reader: "overlayfs …" or "a copy (why)".
    public let how: String

    /// Makes a layer over `lower`. Nothing is left behind when this throws.
    public static func over(_ lower: RootFilesystem) throws -> WritableLayer {
        let folder = try FileSystem.makeTemporaryDirectory(purpose: "layer")
        do {
            let merged = folder.appending("root")
            try FileSystem.makeDirectory(merged)
            if let refusal = try overlay(lower.path, folder: folder, merged: merged) {
                try copy(lower.path, to: merged)
                return WritableLayer(root: RootFilesystem(path: merged), folder: folder, isOverlay: false,
                                     how: "a copy in \(merged) (overlayfs: \(refusal))")
            }
            return WritableLayer(root: RootFilesystem(path: merged), folder: folder, isOverlay: true,
                                 how: "overlayfs: \(lower.path) read-only below, this run's writes in \(folder.appending("upper"))")
        } catch {
            try? Mount.unmount(folder.appending("root"), detach: true)
            try? FileSystem.removeTree(folder)
            throw error
        }
    }

    /// mount("overlay", merged, "overlay", 0, "lowerdir=…,upperdir=…,workdir=…").
    /// Returns why overlayfs could not be used, or nil once it is mounted.
    static func overlay(_ lower: FilePath, folder: FilePath, merged: FilePath) throws -> String? {
        if geteuid() != 0 { return "mounting needs root on the host" }
        // The option string separates with "," and ":": such paths cannot be given.
        if lower.string.contains(where: { $0 == "," || $0 == ":" }) { return "the path \(lower) holds a ',' or ':'" }
        let upper = folder.appending("upper"), work = folder.appending("work")
        try FileSystem.makeDirectory(upper)
        try FileSystem.makeDirectory(work)
        do {
            try Mount.mount(source: "overlay", target: merged, type: "overlay",
                            data: "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)")
            return nil
        } catch let errno as Errno {
            return "mount failed with \(errnoName(errno))"
        }
    }

    /// `cp -a LOWER/. MERGED`: symlinks, modes and owners kept (owners only as root:
    /// anyone else copies what they can read, as their own).
    static func copy(_ lower: FilePath, to merged: FilePath) throws {
        let cp = Command.find("cp") ?? "/bin/cp"
        let keep = geteuid() == 0 ? ["-a"] : ["-dR", "--preserve=mode,timestamps,links"]
        let result = try Command.run(cp, keep + [lower.string + "/.", merged.string])
        guard result.status == .exited(0) else {
            throw IsolationError("copying the root filesystem \(lower) to \(merged) failed: \(result.standardError)",
                                 hint: "is there room in /tmp? (df -h /tmp)")
        }
    }

    /// Unmounts the layer (detached: a process that still runs in it must not make this
    /// fail) and removes its folder. Safe to call more than once. removeTree never
    /// crosses into a mount: were the overlay still there, the cache below stays whole.
    public func remove() {
        // Mounts made inside the merged view (a jail's /proc) go first, the overlay last.
        let inside = ((try? MountInfo.table()) ?? []).map(\.mountPoint)
            .filter { $0.hasPrefix(folder.string + "/") }
            .sorted { $0.count > $1.count }
        for point in inside { try? Mount.unmount(FilePath(point), detach: true) }
        try? FileSystem.removeTree(folder)
    }
}
