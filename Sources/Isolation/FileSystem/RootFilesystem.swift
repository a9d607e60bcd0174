import Glibc
import SystemPackage

/// A directory that holds a root filesystem: what a jail's or container's `/` will be.
///
/// No chapter downloads an image: `RootFilesystem.builtIn()` assembles one, once, from
/// a static busybox if the host has one (`apt-get install busybox-static`), or else
/// from the host's own programs and the shared libraries they need.
public struct RootFilesystem: Sendable {
    public enum Source: String, Sendable, CaseIterable {
        /// `/bin/busybox` and one symlink per applet (`busybox --list-full`).
        case busybox
        /// The host's sh, ls, cat, ps, ... with every library `ldd` says they load.
        case host
    }

    /// Absolute path of the root directory.
    public let path: FilePath

    /// Checks that `path` looks like a root filesystem: a directory with an executable
    /// `/bin/sh` (symlinks resolved inside it). Throws an `IsolationError` that says what
    /// is wrong otherwise; changes nothing either way.
    public static func validate(_ path: FilePath) throws -> RootFilesystem {
        let hint = "pass --rootfs a directory that holds a root filesystem (with /bin/sh), or leave --rootfs out to use the built-in one"
        guard FileSystem.exists(path) else {
            throw IsolationError("root filesystem \(path) does not exist", hint: hint)
        }
        guard FileSystem.isDirectory(path) else {
            throw IsolationError("root filesystem \(path) is not a directory", hint: hint)
        }
        let absolute = try FileSystem.realPath(path)
        let shell = try? FileSystem.resolve("/bin/sh", inside: absolute)
        var info = stat()
        guard let shell, shell.withPlatformString({ stat($0, &info) }) == 0, (info.st_mode & S_IFMT) == S_IFREG,
              info.st_mode & 0o111 != 0 else {
            throw IsolationError("\(path) has no executable /bin/sh, so it is not a usable root filesystem", hint: hint)
        }
        return RootFilesystem(path: absolute)
    }

    /// The version of the builders' output; a cache built by another version is rebuilt.
    static let builderVersion = "2"

    /// The folder where built-in root filesystems are cached:
    /// - `$ISOLATION_CACHE_DIR` when set;
    /// - else `<package>/.build/isolation/` when this program runs from a `.build` folder
    ///   (so `rm -rf .build` or `doctor --clean` removes it with the build);
    /// - else `/var/cache/isolation` for root, `~/.cache/isolation` for others.
    public static func cacheDirectory() -> FilePath {
        if let custom = environmentValue("ISOLATION_CACHE_DIR"), !custom.isEmpty {
            return FilePath(custom)
        }
        var path = Identity.executablePath()
        while let last = path.lastComponent {
            path.removeLastComponent()
            if last.string == ".build" { return path.appending(".build").appending(projectPrefix) }
        }
        if Identity.isRoot { return FilePath("/var/cache/\(projectPrefix)") }
        let home = environmentValue("HOME") ?? "/tmp"
        return FilePath(home).appending(".cache").appending(projectPrefix)
    }

    /// Where `busybox` lives on this host, if it does.
    public static func busyboxPath() -> FilePath? {
        for candidate in ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox"] {
            if access(candidate, X_OK) == 0 { return FilePath(candidate) }
        }
        return nil
    }

    /// The source `builtIn()` uses on this host: busybox when present.
    public static var preferredSource: Source { busyboxPath() != nil ? .busybox : .host }

    /// The cached built-in root filesystem, built on first use. `log` hears what is built.
    public static func builtIn(source: Source = preferredSource, log: (String) -> Void = { _ in }) throws -> RootFilesystem {
        let cache = cacheDirectory()
        let target = cache.appending("rootfs-\(source.rawValue)")
        let marker = target.appending("etc/isolation-rootfs")
        if let text = try? FileSystem.readString(marker), text.contains("version=\(builderVersion)\n") {
            return try validate(target)
        }
        try FileSystem.makeDirectories(cache)
        // Build beside the target and rename(2) into place, so that two chapters started at
        // once never see half a root filesystem: the loser of the race removes its copy.
        let staging = cache.appending("rootfs-\(source.rawValue).building-\(getpid())")
        try? FileSystem.removeTree(staging)
        log("building the \(source.rawValue) root filesystem once, in \(target)")
        do {
            try build(at: staging, from: source, log: log)
            try matchOwner(of: cache, tree: staging)
            if let text = try? FileSystem.readString(marker), text.contains("version=\(builderVersion)\n") {
                // Another process built the same version meanwhile, and may be using it
                // already: keep it, drop ours.
                try? FileSystem.removeTree(staging)
                return try validate(target)
            }
            if FileSystem.exists(target) {
                // An older version: move it aside first.
                let old = cache.appending("rootfs-\(source.rawValue).old-\(getpid())")
                if rename(target.string, old.string) == 0 { try? FileSystem.removeTree(old) }
            }
            if rename(staging.string, target.string) != 0 {
                let error = currentErrno()
                try? FileSystem.removeTree(staging)
                if error != .directoryNotEmpty && error != .fileExists { throw error }
            }
        } catch {
            try? FileSystem.removeTree(staging)
            throw error
        }
        return try validate(target)
    }

    /// Builds a root filesystem into `directory` (created; must not exist or be empty).
    public static func build(at directory: FilePath, from source: Source, log: (String) -> Void = { _ in }) throws {
        try FileSystem.makeDirectories(directory)
        for dir in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "tmp", "var", "home"] {
            try FileSystem.makeDirectories(directory.appending(dir))
        }
        chmod(directory.appending("tmp").string, 0o1777)
        chmod(directory.appending("root").string, 0o700)
        switch source {
        case .busybox:
            guard let busybox = busyboxPath() else {
                throw IsolationError("there is no busybox on this host",
                                     hint: "sudo apt-get install -y busybox-static (or build from host binaries)")
            }
            try installBusybox(busybox, into: directory, log: log)
        case .host:
            try installHostPrograms(into: directory, log: log)
        }
        // stress-ng, when the host has it, for chapter 03's hogs (and yours).
        if let stress = Command.find("stress-ng"), let real = try? FileSystem.realPath(stress) {
            try copyProgram(real, to: directory.appending("usr/bin/stress-ng"), root: directory)
            log("stress-ng from \(stress)")
        }
        try writeEtc(into: directory, source: source)
    }

    static func installBusybox(_ busybox: FilePath, into root: FilePath, log: (String) -> Void) throws {
        try copyProgram(busybox, to: root.appending("bin/busybox"), root: root)
        let list = try Command.run(busybox, ["--list-full"])
        guard list.status == .exited(0) else {
            throw IsolationError("`\(busybox) --list-full` failed: \(list.standardError)")
        }
        var count = 0
        for line in list.standardOutput.split(separator: "\n") {
            let link = String(line).trimmingCharacters(in: " ")
            guard !link.isEmpty, link != "bin/busybox", !link.contains("..") else { continue }
            let linkPath = root.appending(link)
            var parent = linkPath
            parent.removeLastComponent()
            try FileSystem.makeDirectories(parent)
            if !FileSystem.exists(linkPath, followSymlinks: false) {
                try FileSystem.symlink(target: "/bin/busybox", at: linkPath)
                count += 1
            }
        }
        log("busybox from \(busybox) with \(count) applet links")
    }

    /// The programs copied from the host when there is no busybox.
    public static let hostPrograms = [
        "sh", "ls", "cat", "echo", "ps", "hostname", "id", "mount", "umount", "sleep", "mkdir",
        "rm", "rmdir", "cp", "mv", "ln", "touch", "grep", "uname", "env", "stat", "readlink", "head",
        "tail", "wc", "true", "false", "kill", "chmod", "sed", "date", "whoami", "nproc", "dd",
        "seq", "tr", "cut", "sort", "find", "ip", "free", "df", "ipcs", "ipcmk", "test", "printf",
    ]

    static func installHostPrograms(into root: FilePath, log: (String) -> Void) throws {
        var copied: [String] = []
        var libraries = Set<String>()
        for name in hostPrograms {
            guard let found = Command.find(name) else { continue }
            let real = try FileSystem.realPath(found)
            try copyProgram(real, to: root.appending("bin").appending(name), root: root, libraries: &libraries)
            copied.append(name)
        }
        guard copied.contains("sh") else {
            throw IsolationError("this host has no /bin/sh to copy into the root filesystem")
        }
        // glibc before 2.34 loads /etc/passwd lookups from libnss_files: bring it along.
        if let libc = libraries.first(where: { $0.contains("/libc.so") }) {
            var dir = FilePath(libc)
            dir.removeLastComponent()
            for nss in ["libnss_files.so.2"] where FileSystem.exists(dir.appending(nss)) {
                try copyProgram(dir.appending(nss), to: root.pushing(dir.appending(nss).removingRoot()), root: root, libraries: &libraries)
            }
        }
        log("host programs: \(copied.joined(separator: " ")) (+\(libraries.count) shared libraries)")
    }

    static func copyProgram(_ source: FilePath, to destination: FilePath, root: FilePath) throws {
        var libraries = Set<String>()
        try copyProgram(source, to: destination, root: root, libraries: &libraries)
    }

    /// Copies a program and every shared library it needs (as `ldd` resolves them, at
    /// the same paths, so the dynamic loader finds them inside the new root).
    static func copyProgram(_ source: FilePath, to destination: FilePath, root: FilePath, libraries: inout Set<String>) throws {
        var parent = destination
        parent.removeLastComponent()
        try FileSystem.makeDirectories(parent)
        try FileSystem.copyFile(from: source, to: destination)
        for library in try sharedLibraries(of: source) where !libraries.contains(library) {
            libraries.insert(library)
            let target = root.pushing(FilePath(library).removingRoot())
            var libraryParent = target
            libraryParent.removeLastComponent()
            try FileSystem.makeDirectories(libraryParent)
            try FileSystem.copyFile(from: FilePath(library), to: target)
        }
    }

    /// The absolute paths of the shared libraries `ldd` lists for `program` (none for a
    /// static one), including the dynamic loader itself.
    public static func sharedLibraries(of program: FilePath) throws -> [String] {
        guard let ldd = Command.find("ldd") else { return [] }
        let output = try Command.run(ldd, [program.string])
        // A static program: "not a dynamic executable" and status 1.
        guard output.status == .exited(0) else { return [] }
        return parseLdd(output.standardOutput)
    }

    /// Parses `ldd` lines: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and
    /// `/lib64/ld-linux-x86-64.so.2 (0x…)`; skips the vDSO and anything not found.
    public static func parseLdd(_ text: String) -> [String] {
        var result: [String] = []
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: "\t") }
            if let arrow = words.firstIndex(of: "=>") {
                if arrow + 1 < words.count, words[arrow + 1].hasPrefix("/") { result.append(words[arrow + 1]) }
            } else if let first = words.first, first.hasPrefix("/") {
                result.append(first)
            }
        }
        return result
    }

    static func writeEtc(into root: FilePath, source: Source) throws {
        let etc = root.appending("etc")
        try FileSystem.writeFile(etc.appending("passwd"), """
            root:x:0:0:root:/root:/bin/sh
            nobody:x:65534:65534:nobody:/nonexistent:/bin/false

            """)
        try FileSystem.writeFile(etc.appending("group"), """
            root:x:0:
            nogroup:x:65534:

            """)
        try FileSystem.writeFile(etc.appending("hostname"), "container\n")
        try FileSystem.writeFile(etc.appending("hosts"), "127.0.0.1 localhost\n::1 localhost\n")
        try FileSystem.writeFile(etc.appending("nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files\n")
        try FileSystem.writeFile(etc.appending("isolation-rootfs"), "source=\(source.rawValue)\nversion=\(builderVersion)\n")
    }

    /// Gives the built tree to the owner of the cache folder, so that a user who built
    /// the package can still `rm -rf .build` after a chapter ran as root.
    static func matchOwner(of folder: FilePath, tree: FilePath) throws {
        var info = stat()
        guard stat(folder.string, &info) == 0, geteuid() == 0, info.st_uid != 0 || info.st_gid != 0 else { return }
        try chownTree(tree, uid: info.st_uid, gid: info.st_gid)
    }

    static func chownTree(_ path: FilePath, uid: uid_t, gid: gid_t) throws {
        try pathCall(path) { p in lchown(p, uid, gid) }
        if !FileSystem.isSymlink(path) && FileSystem.isDirectory(path) {
            for name in try FileSystem.contentsOfDirectory(path) {
                try chownTree(path.appending(name), uid: uid, gid: gid)
            }
        }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        return String(self.drop(while: { chars.contains($0) }).reversed().drop(while: { chars.contains($0) }).reversed())
    }
}
extension Substring {
    func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}
