import Glibc
import SystemPackage

/// Small wrappers over the file system calls the lessons use. Each one names its C
/// function, throws `Errno` for `-1`, and takes `FilePath`s.
public enum FileSystem {
    /// chroot(2): change the root directory of the calling process. Nothing else.
    public static func changeRoot(_ path: FilePath) throws {
        try pathCall(path) { p in chroot(p) }
    }

    /// chdir(2).
    public static func changeDirectory(_ path: FilePath) throws {
        try pathCall(path) { p in chdir(p) }
    }

    /// fchdir(2): change the working directory to an open directory.
    public static func changeDirectory(_ fd: FileDescriptor) throws {
        try valueOrErrno { fchdir(fd.rawValue) }
    }

    /// mkdir(2); an existing directory is fine when `existingOK`.
    public static func makeDirectory(_ path: FilePath, mode: mode_t = 0o755, existingOK: Bool = true) throws {
        let result = path.withPlatformString { mkdir($0, mode) }
        if result != 0 {
            let error = currentErrno()
            if error == .fileExists && existingOK && isDirectory(path) { return }
            throw error
        }
    }

    /// What mount(2) needs at a target: a directory, or an empty file when a single file
    /// is bind mounted onto it (a bind mount's target must be of the source's kind).
    /// Missing parents are made.
    public static func makeMountPoint(_ target: FilePath, forFile: Bool) throws {
        guard forFile else { return try makeDirectories(target) }
        var parent = target
        parent.removeLastComponent()
        try makeDirectories(parent)
        if !exists(target) { try writeFile(target, "") }
    }

    /// `mkdir -p`: mkdir(2) for each missing component.
    public static func makeDirectories(_ path: FilePath, mode: mode_t = 0o755) throws {
        // From the end: usually the path, or all but its last component, exists already,
        // and one mkdir(2) answers (a container's setup makes dozens of these).
        if path.withPlatformString({ mkdir($0, mode) }) == 0 { return }
        let error = currentErrno()
        if error == .fileExists && isDirectory(path) { return }
        var parent = path
        guard error == .noSuchFileOrDirectory, parent.removeLastComponent(), !parent.isEmpty else { throw error }
        try makeDirectories(parent, mode: mode)
        try makeDirectory(path, mode: mode)
    }

    /// The inode number of `path` (stat(2)), or nil.
    public static func inode(_ path: FilePath) -> ino_t? {
        var info = stat()
        return path.withPlatformString { stat($0, &info) } == 0 ? info.st_ino : nil
    }

    /// lstat(2)-based checks: they do not follow a final symlink unless said so.
    public static func exists(_ path: FilePath, followSymlinks: Bool = true) -> Bool {
        var info = stat()
        return path.withPlatformString { followSymlinks ? stat($0, &info) : lstat($0, &info) } == 0
    }

    public static func isDirectory(_ path: FilePath) -> Bool {
        var info = stat()
        return path.withPlatformString { stat($0, &info) } == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    public static func isSymlink(_ path: FilePath) -> Bool {
        var info = stat()
        return path.withPlatformString { lstat($0, &info) } == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    /// stat(2)'s st_mode, following symlinks.
    public static func mode(_ path: FilePath) throws -> mode_t {
        var info = stat()
        try pathCall(path) { p in stat(p, &info) }
        return info.st_mode
    }

    /// readlink(2).
    public static func readLink(_ path: FilePath) throws -> FilePath {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let capacity = buffer.count - 1
        let count = try pathCall(path) { readlink($0, &buffer, capacity) }
        buffer[count] = 0
        return FilePath(platformString: buffer)
    }

    /// realpath(3).
    public static func realPath(_ path: FilePath) throws -> FilePath {
        guard let resolved = path.withPlatformString({ realpath($0, nil) }) else { throw currentErrno() }
        defer { free(resolved) }
        return FilePath(platformString: resolved)
    }

    /// symlink(2): create `link` pointing at `target`.
    public static func symlink(target: String, at link: FilePath) throws {
        try pathCall(link) { Glibc.symlink(target, $0) }
    }

    /// The names in a directory (readdir(3)), without `.` and `..`, sorted.
    public static func contentsOfDirectory(_ path: FilePath) throws -> [String] {
        guard let dir = path.withPlatformString({ opendir($0) }) else { throw currentErrno() }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Reads a whole file (open(2), read(2)).
    public static func readFile(_ path: FilePath) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        defer { try? fd.close() }
        return try readAll(fd)
    }

    /// Reads a whole file of at most `limit` bytes: nil when there is more (a file that
    /// grows, or one that never ends, such as /dev/zero), after reading `limit` + 1 bytes.
    public static func readFile(_ path: FilePath, limit: Int) throws -> [UInt8]? {
        let fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        defer { try? fd.close() }
        return try readAll(fd, limit: limit)
    }

    /// Everything left to read from `fd` (read(2) until end of file).
    public static func readAll(_ fd: FileDescriptor) throws -> [UInt8] {
        try readAll(fd, limit: Int.max - 1)!
    }

    /// Everything left to read from `fd`, or nil once more than `limit` bytes came.
    public static func readAll(_ fd: FileDescriptor, limit: Int) throws -> [UInt8]? {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let wanted = min(buffer.count, limit + 1 - result.count)
            let count = try buffer.withUnsafeMutableBytes { try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<wanted])) }
            if count == 0 { return result }
            result.append(contentsOf: buffer[0..<count])
            if result.count > limit { return nil }
        }
    }

    public static func readString(_ path: FilePath) throws -> String {
        String(decoding: try readFile(path), as: UTF8.self)
    }

    /// Writes `bytes` to a file, creating or truncating it.
    public static func writeFile(_ path: FilePath, _ bytes: some Collection<UInt8>, mode: mode_t = 0o644) throws {
        let fd = try FileDescriptor.open(
            path, .writeOnly, options: [.create, .truncate, .closeOnExec],
            permissions: FilePermissions(rawValue: CModeT(mode)))
        defer { try? fd.close() }
        _ = try fd.writeAll(bytes)
    }

    public static func writeFile(_ path: FilePath, _ text: String, mode: mode_t = 0o644) throws {
        try writeFile(path, Array(text.utf8), mode: mode)
    }

    /// Copies a regular file's bytes and permission bits (following symlinks at `source`).
    public static func copyFile(from source: FilePath, to destination: FilePath) throws {
        let permissions = try mode(source) & 0o7777
        let input = try FileDescriptor.open(source, .readOnly, options: .closeOnExec)
        defer { try? input.close() }
        let output = try FileDescriptor.open(
            destination, .writeOnly, options: [.create, .truncate, .closeOnExec],
            permissions: FilePermissions(rawValue: CModeT(permissions)))
        defer { try? output.close() }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try input.read(into: $0) }
            if count == 0 { break }
            _ = try output.writeAll(buffer[0..<count])
        }
        try valueOrErrno { fchmod(output.rawValue, permissions) }
    }

    /// unlink(2) or rmdir(2), recursively, without following symlinks and without
    /// crossing into other mounts (a mount point inside is an error, never emptied).
    public static func removeTree(_ path: FilePath) throws {
        var info = stat()
        if path.withPlatformString({ lstat($0, &info) }) != 0 {
            let error = currentErrno()
            if error == .noSuchFileOrDirectory { return }
            throw error
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            let device = info.st_dev
            for name in try contentsOfDirectory(path) {
                let child = path.appending(name)
                var childInfo = stat()
                if child.withPlatformString({ lstat($0, &childInfo) }) == 0,
                   (childInfo.st_mode & S_IFMT) == S_IFDIR, childInfo.st_dev != device {
                    throw IsolationError("refusing to delete \(child): something is mounted there",
                                         hint: "unmount it first (umount -l \(child)), or run `doctor --clean`")
                }
                try removeTree(child)
            }
            try pathCall(path) { p in rmdir(p) }
        } else {
            try pathCall(path) { p in unlink(p) }
        }
    }

    /// Sets FD_CLOEXEC on every open descriptor from 3 up except `keep`, so that nothing
    /// our own parent handed us leaks into a container (runc closes them in its init).
    /// A leaked pipe would also keep whoever waits for its end waiting for the container.
    public static func closeOnExecAll(except keep: Set<Int32> = []) {
        for name in (try? contentsOfDirectory("/proc/self/fd")) ?? [] {
            guard let fd = Int32(name), fd > 2, !keep.contains(fd) else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// mkdtemp(3) under /tmp with the project prefix, so leftovers are easy to find:
    /// `/tmp/isolation-<purpose>-XXXXXX`.
    public static func makeTemporaryDirectory(purpose: String) throws -> FilePath {
        var template = Array("/tmp/\(projectPrefix)-\(purpose)-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else {
            throw StageError(stage: "making a temporary folder /tmp/\(projectPrefix)-\(purpose)-… (mkdtemp)", errno: currentErrno(),
                             detail: "/tmp must be a writable folder")
        }
        return FilePath(platformString: template)
    }
}

/// The prefix of everything this project creates on a machine: temporary folders
/// (`/tmp/isolation-*`), cgroups (`…/isolation/…`), state (`/run/isolation`).
public let projectPrefix = "isolation"
