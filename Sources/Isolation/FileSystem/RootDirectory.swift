import CIsolation
import Glibc
import SystemPackage

/// A root filesystem held open by a descriptor, so that a path inside it is resolved by
/// the kernel, in one step, and never above it: openat2(2) with `RESOLVE_IN_ROOT`.
///
/// Why a descriptor and not a path: a runtime that first resolves a mount destination
/// inside the root and then mounts onto the resolved *path* gives a process that shares
/// a volume with the container a window. It swaps a folder of the path for a symlink
/// in between, and mount(2) follows it out of the root (CVE-2021-30465, runc ≤ rc94).
/// Here the destination is opened (`open`), and the mount is made onto that descriptor
/// (`/proc/self/fd/N`): whatever the path says by then, the mount lands on the folder
/// that was opened inside the root.
public final class RootDirectory {
    /// The root as the caller named it.
    public let path: FilePath
    /// The root as the kernel names it (readlink of /proc/self/fd/N): every path this
    /// root opens must start with it.
    public let hostPath: String
    let descriptor: Int32

    /// What `open` makes when a component of the path is missing.
    public enum Creation: Sendable { case nothing, directory, file }

    /// An open O_PATH descriptor of something inside the root, closed when released.
    /// `procPath` (`/proc/self/fd/N`) names exactly what was opened, to system calls that
    /// only take paths (mount(2)).
    public final class Handle {
        public let descriptor: Int32
        init(_ descriptor: Int32) { self.descriptor = descriptor }
        deinit { close(descriptor) }
        public var procPath: FilePath { FilePath("/proc/self/fd/\(descriptor)") }
        /// Where it is, as the kernel names it (readlink(2) of /proc/self/fd/N).
        public func hostPath() throws -> String { try FileSystem.readLink(procPath).string }
        /// The ID of the mount it is on (/proc/self/fdinfo/N, "mnt_id:", Linux 3.15).
        public func mountID() throws -> Int {
            // A few lines ("pos:", "flags:", "mnt_id:", "ino:"): one read(2) into a small buffer.
            let fd = try pathCall(FilePath("/proc/self/fdinfo/\(descriptor)")) { Glibc.open($0, O_RDONLY | O_CLOEXEC) }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 512)
            let count = try valueOrErrno { read(fd, &buffer, buffer.count) }
            let info = String(decoding: buffer[..<count], as: UTF8.self)
            for line in info.split(separator: "\n") where line.hasPrefix("mnt_id:") {
                if let value = Int(line.dropFirst("mnt_id:".count).trimmingCharacters(in: " \t")) { return value }
            }
            throw IsolationError("/proc/self/fdinfo/\(descriptor) has no mnt_id line", hint: "Linux 3.15 or newer shows it")
        }
    }

    /// open(2) of `path` with O_PATH|O_DIRECTORY: a handle on the root that a rename of
    /// its path cannot move.
    public init(_ path: FilePath) throws {
        self.path = path
        let fd = try pathCall(path) { Glibc.open($0, Int32(ISO_O_PATH) | O_DIRECTORY | O_CLOEXEC) }
        descriptor = fd
        do {
            hostPath = try FileSystem.readLink(FilePath("/proc/self/fd/\(fd)")).string
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(descriptor) }

    /// openat2(2) of `path` relative to the root with O_PATH and `RESOLVE_IN_ROOT |
    /// RESOLVE_NO_MAGICLINKS` (and `extra`): absolute symlinks and `..` stop at the root,
    /// /proc/PID/fd links are refused. nil when something along the path is missing.
    func openat2(_ path: String, from directory: Int32? = nil, resolve extra: UInt64 = 0) throws -> Handle? {
        let resolve = UInt64(ISO_RESOLVE_NO_MAGICLINKS) | extra | (directory == nil ? UInt64(ISO_RESOLVE_IN_ROOT) : 0)
        // EAGAIN: a rename somewhere in the filesystem raced a "..": the kernel asks us to try again.
        for _ in 0..<64 {
            let fd = iso_openat2(directory ?? descriptor, path.isEmpty ? "." : path, UInt64(ISO_O_PATH) | UInt64(O_CLOEXEC), 0, resolve)
            if fd >= 0 { return Handle(fd) }
            let error = currentErrno()
            switch error {
            case .resourceTemporarilyUnavailable, .interrupted: continue
            case .noSuchFileOrDirectory: return nil
            case .noFunction:
                throw IsolationError("openat2(2) is missing: Linux 5.6 or newer is needed to open a mount destination inside the root filesystem safely (uname -r says \(kernelRelease()))",
                                     hint: "run on a newer kernel; mounting onto a resolved path instead would reopen CVE-2021-30465")
            default: throw error
            }
        }
        throw Errno.resourceTemporarilyUnavailable
    }

    /// Opens `path` as a process whose root is this directory would see it, with
    /// openat2(2) `RESOLVE_IN_ROOT`. A missing component is made (mkdirat(2), or for the
    /// last one openat(2) O_CREAT|O_EXCL when `creating` is `.file`) relative to the
    /// descriptor of the one before, never by path; a dangling symlink on the way is
    /// followed inside the root, as the container would follow it.
    public func open(_ path: String, creating: Creation = .nothing) throws -> Handle {
        var pending = path
        var hops = 0
        restart: while true {
            let components = pending.split(separator: "/").map(String.init).filter { $0 != "." }
            if let whole = try openat2(components.joined(separator: "/")) { return whole }
            guard creating != .nothing else { throw Errno.noSuchFileOrDirectory }
            guard var parent = try openat2("") else { throw Errno.noSuchFileOrDirectory }
            for index in components.indices {
                let prefix = components[...index].joined(separator: "/")
                if let existing = try openat2(prefix) {
                    parent = existing
                    continue
                }
                let name = components[index]
                guard name != ".." else { throw Errno.noSuchFileOrDirectory }
                let result: Int32
                if index == components.count - 1 && creating == .file {
                    let fd = openat(parent.descriptor, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o644)
                    result = fd < 0 ? -1 : close(fd)
                } else {
                    result = mkdirat(parent.descriptor, name, 0o755)
                }
                if result != 0 {
                    let error = currentErrno()
                    guard error == .fileExists else { throw error }
                    // There already, yet openat2 found nothing: a symlink to something
                    // missing. Follow it inside the root, as the old path walk did.
                    var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
                    let count = readlinkat(parent.descriptor, name, &buffer, buffer.count - 1)
                    hops += 1
                    if hops > 40 { throw Errno.tooManySymbolicLinkLevels }
                    // Not a symlink (any more): something swapped it meanwhile; start again.
                    guard count >= 0 else { continue restart }
                    let target = String(decoding: buffer[..<count], as: UTF8.self)
                    let rest = components[(index + 1)...].joined(separator: "/")
                    let base = target.hasPrefix("/") ? target : components[..<index].joined(separator: "/") + "/" + target
                    pending = rest.isEmpty ? base : base + "/" + rest
                    continue restart
                }
                // What we made, and nothing else: no symlink may stand there now.
                guard let made = try openat2(name, from: parent.descriptor,
                                             resolve: UInt64(ISO_RESOLVE_BENEATH | ISO_RESOLVE_NO_SYMLINKS)) else {
                    throw Errno.noSuchFileOrDirectory
                }
                parent = made
            }
            return parent
        }
    }

    /// Throws unless `handle` is at or below the root (readlink(2) of /proc/self/fd/N).
    @discardableResult
    public func checkInside(_ handle: Handle, _ what: String) throws -> String {
        let host = try handle.hostPath()
        let root = hostPath == "/" ? "" : hostPath
        guard host == hostPath || host.hasPrefix(root + "/") else {
            throw IsolationError("\(what) is at \(host), outside the root filesystem \(hostPath)",
                                 hint: "something swapped a folder of the path for a symlink; nothing was mounted there")
        }
        return host
    }

    /// mount(2) of `source` onto `destination` inside the root, in one step: the
    /// destination is opened (`open`, openat2(2) `RESOLVE_IN_ROOT`) and checked, then
    /// mounted onto through `/proc/self/fd/N`, so that no symlink swapped into the path
    /// meanwhile can send the mount elsewhere. Returns the new mount, opened again and
    /// checked: it is on top of the opened folder, inside the root.
    /// `beforeMount` runs between the open and the mount (tests use it to swap the path).
    @discardableResult
    public func mount(source: String, at destination: String, type: String? = nil, flags: MountFlags = [], data: String? = nil,
                      creating: Creation = .directory, beforeMount: (Handle) throws -> Void = { _ in }) throws -> Handle {
        let target = try open(destination, creating: creating)
        try checkInside(target, destination)
        try beforeMount(target)
        try Mount.mount(source: source, target: target.procPath, type: type, flags: flags, data: data)
        return try mounted(on: target, destination)
    }

    /// After a mount onto `target`'s descriptor, when nothing more is done through the new
    /// mount: readlink(2) of /proc/self/fd/N must still name a path inside the root.
    public func checkLanded(on target: Handle, _ destination: String) throws {
        let host = try target.hostPath()
        let root = hostPath == "/" ? "" : hostPath
        guard host == hostPath || host.hasPrefix(root + "/") else {
            throw IsolationError("the mount on \(destination) is at \(host), not inside the root filesystem \(hostPath)",
                                 hint: "something renamed a folder of the path while the mount was made")
        }
    }

    /// After a mount onto `target`'s descriptor: the mount itself, opened by the path the
    /// kernel gives `target` now, with no symlink followed. Throws (and detaches the mount)
    /// if that path is outside the root or no mount is on top of it.
    public func mounted(on target: Handle, _ destination: String) throws -> Handle {
        let below = try target.mountID()
        var host = ""
        // A process that renames folders of the path meanwhile can make the path we read
        // back stale (ENOENT) or a symlink (ELOOP) by the time we open it: read it again.
        for _ in 0..<100 {
            host = try target.hostPath()
            let root = hostPath == "/" ? "" : hostPath
            guard host == hostPath || host.hasPrefix(root + "/") else { break }
            do {
                if let top = try openat2(String(host.dropFirst(hostPath.count)), resolve: UInt64(ISO_RESOLVE_NO_SYMLINKS)),
                   try top.mountID() != below {
                    return top
                }
            } catch let error as Errno where error == .tooManySymbolicLinkLevels {}
            sched_yield()
        }
        // The folder was moved where the container cannot see it: nothing can reach what
        // was mounted there, and it goes with the container's mount namespace (or, without
        // one, with `delete`'s detach of the root filesystem and all below it).
        throw IsolationError("the mount on \(destination) cannot be found inside the root filesystem \(hostPath) (the folder is now at \(host))",
                             hint: "something renamed a folder of the path while the mount was made; nothing was mounted in its place")
    }
}

/// uname(2)'s release, for messages.
func kernelRelease() -> String {
    var name = utsname()
    guard uname(&name) == 0 else { return "?" }
    return withUnsafeBytes(of: &name.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
}
