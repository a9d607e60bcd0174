// Chapter 08: the catalogue of escapes against the ladder, observed from outside: the
// table the chapter prints must be the one its notes give (each layer stops exactly the
// escapes it is said to stop, and no fewer get through below it), and the host must be
// as it was: its core_pattern, its mounts, its cgroups, its processes, /tmp.
import Foundation
import Isolation
import SystemPackage
import Testing

private let hasCompiler = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].contains { FileManager.default.isExecutableFile(atPath: $0) }

@Suite("chapter-08: breaking out", .serialized,
       .enabled(if: isRoot && hasCompiler, "needs root (chroot, mknod, mount, containers) and a C compiler for the escapes (apt: gcc libc6-dev)"))
struct Chapter08Tests {
    /// The notes' table (README.md, "The table"): E for ESCAPED, else the errno the escape
    /// meets, rung 1 to 6. An escape whose target this machine lacks is n/a throughout.
    static let expected: [String: [String]] = [
        "chroot":       ["E", "ENOENT", "EPERM", "EPERM", "EPERM", "EPERM"],
        "disk":         ["E", "E", "EPERM", "EPERM", "EPERM", "EPERM"],
        "shocker":      ["E", "E", "EPERM", "EPERM", "EPERM", "EPERM"],
        "core-pattern": ["E", "E", "E", "E", "EROFS", "EACCES"],
        "sysrq":        ["E", "E", "E", "E", "EROFS", "EACCES"],
        "kcore":        ["E", "E", "EPERM", "EPERM", "masked", "masked"],
        "dev-mem":      ["E", "E", "EPERM", "EPERM", "EPERM", "EPERM"],
        "firmware":     ["E", "E", "E", "E", "ENOENT", "ENOENT"],
        "signal":       ["E", "ESRCH", "ESRCH", "ESRCH", "ESRCH", "ESRCH"],
        "ptrace":       ["E", "ESRCH", "ESRCH", "EPERM", "EPERM", "EPERM"],
        "module":       ["E", "E", "EPERM", "EPERM", "EPERM", "EPERM"],
        "clock":        ["E", "E", "EPERM", "EPERM", "EPERM", "EPERM"],
        "nested":       ["EPERM", "E", "E", "EPERM", "EPERM", "EPERM"],
        "keyring":      ["E", "E", "E", "EPERM", "EPERM", "EPERM"],
        "raw-socket":   ["E", "ENODEV", "EPERM", "EPERM", "EPERM", "EPERM"],
        "setuid":       ["E", "E", "E", "E", "E", "mapped"],
        "runtime-exe":  ["E", "EROFS", "EACCES", "EACCES", "EACCES", "EACCES"],
        // Rung 1 makes no runtime mounts; from rung 2 the runtime mounts onto the
        // descriptor it opened inside the root (openat2), whatever the volume's path says.
        "mount-race":   ["n/a", "in-root", "in-root", "in-root", "in-root", "in-root"],
    ]

    /// Which escapes this machine cannot offer a target for (the chapter must say n/a).
    static var absent: Set<String> {
        var names: Set<String> = []
        if !FileManager.default.fileExists(atPath: "/proc/sysrq-trigger") { names.insert("sysrq") }
        if !FileManager.default.fileExists(atPath: "/proc/kcore") { names.insert("kcore") }
        // The kernel has /dev/mem (CONFIG_DEVMEM), whether or not /dev holds its node.
        if !FileManager.default.fileExists(atPath: "/sys/dev/char/1:1") { names.insert("dev-mem") }
        if !FileManager.default.fileExists(atPath: "/proc/modules") { names.insert("module") }
        if !FileManager.default.fileExists(atPath: "/sys/firmware/memmap/0/end") { names.insert("firmware") }
        return names
    }

    /// Whether the table has rung 7 (gVisor's runsc is installed).
    static let hasRunsc = ["/usr/bin/runsc", "/usr/sbin/runsc", "/usr/local/bin/runsc"].contains { FileManager.default.isExecutableFile(atPath: $0) }

    /// The table's rows: escape name → a cell per rung (six, seven with gVisor).
    static func table(_ output: String) -> [String: [String]] {
        var rows: [String: [String]] = [:]
        for line in output.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard words.count == (hasRunsc ? 8 : 7), expected[words[0]] != nil else { continue }
            rows[words[0]] = words.dropFirst().map { $0 == "ESCAPED" ? "E" : $0 }
        }
        return rows
    }

    /// What the machine holds of ours: folders, mounts, cgroups, processes.
    static func leftovers() -> [String] {
        var found: [String] = []
        let tmp = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        found += tmp.filter { $0.hasPrefix("isolation-breakout-") }.map { "/tmp/" + $0 }
        found += mounts(under: "/tmp").filter { $0.contains("isolation-breakout-") }
        for hierarchy in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
            let ours = "/sys/fs/cgroup/\(hierarchy)/isolation"
            let names = (try? FileManager.default.contentsOfDirectory(atPath: ours)) ?? []
            found += names.filter { $0.hasPrefix("breakout-") }.map { ours + "/" + $0 }
        }
        let unified = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/isolation")) ?? []
        found += unified.filter { $0.hasPrefix("breakout-") }.map { "/sys/fs/cgroup/isolation/" + $0 }
        for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(pid) != nil {
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            if command.contains("chapter-08\0marker") || command.contains("/escape\0/tmp/verdict") { found.append("process \(pid)") }
        }
        // The keyring escape's key (in root's user keyring during its attempts only).
        let keys = (try? String(contentsOfFile: "/proc/keys", encoding: .utf8)) ?? ""
        // (An invalidated or dead key, flag i or D, waits for the kernel's collector: gone.)
        for line in keys.split(separator: "\n") where line.contains("isolation-breakout-") {
            let flags = line.split(separator: " ").dropFirst().first ?? ""
            if !flags.contains("i") && !flags.contains("D") { found.append("key: \(line)") }
        }
        return found
    }

    @Test("the whole table: each layer stops what the notes say, the lower rungs let through what they say, the host is untouched")
    func wholeTable() throws {
        let corePattern = try String(contentsOfFile: "/proc/sys/kernel/core_pattern", encoding: .utf8)
        let before = Self.leftovers()
        let result = try run(product("chapter-08"), [], timeout: 600)
        #expect(result.status == 0, "\(result)")
        let rows = Self.table(result.stdout)
        let absent = Self.absent
        for (name, cells) in Self.expected {
            let want = absent.contains(name) ? Array(repeating: "n/a", count: 6) : cells
            #expect(rows[name].map { Array($0.prefix(6)) } == want, "\(name): the chapter printed \(rows[name] ?? []), the notes say \(want)\n\(result.stdout)")
            // Rung 7 (gVisor's kernel under rung 6's config) lets nothing through either;
            // its errnos are gVisor's own (EOPNOTSUPP for file handles, …).
            if Self.hasRunsc, let seventh = rows[name]?.dropFirst(6).first {
                #expect(seventh != "E" && seventh != "?", "\(name) in gVisor: \(seventh)\n\(result.stdout)")
                if name == "setuid" { #expect(seventh == "mapped", "\(result.stdout)") }
            }
        }
        // Every rung from 2 to 6 stops at least one escape the rung below it lets through.
        for rung in 1..<6 {
            let stopped = Self.expected.filter { !absent.contains($0.key) && $0.value[rung - 1] == "E" && $0.value[rung] != "E" }
            #expect(!stopped.isEmpty, "rung \(rung + 1) stops nothing the rung below lets through")
        }
        #expect(!result.stdout.contains("host changed"), "\(result.stdout)")
        #expect(try String(contentsOfFile: "/proc/sys/kernel/core_pattern", encoding: .utf8) == corePattern)
        let after = Self.leftovers()
        #expect(after.filter { !before.contains($0) }.isEmpty, "left behind: \(after)")
        // 80 columns, for the projector.
        let wide = result.stdout.split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "lines over 80 columns: \(wide)")
    }

    @Test("the chroot escape reads the host's token at rung 1 only; the signalled process is the host's own")
    func evidenceIsTheHosts() throws {
        let result = try run(product("chapter-08"), ["--escape", "chroot", "--escape", "signal", "--rung", "1", "--rung", "2"], timeout: 120)
        #expect(result.status == 0, "\(result)")
        // The token is in the marker file the chapter made; the escape could only print it by reading it.
        let token = result.stdout.range(of: #"isolation-token-[0-9a-f]{16}"#, options: .regularExpression).map { String(result.stdout[$0]) }
        #expect(token != nil, "no token in the evidence: \(result.stdout)")
        let prose = result.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(prose.contains("(the host saw it end)"), "\(result.stdout)")
        #expect(Self.table(result.stdout).isEmpty, "two rungs make no full row")
        #expect(result.stdout.contains("chroot       ESCAPED  ENOENT"), "\(result.stdout)")
        #expect(result.stdout.contains("signal       ESCAPED  ESRCH"), "\(result.stdout)")
    }

    @Test("the keyring escape reads the host's key below seccomp, /dev/mem the host's bytes; the key is gone afterwards")
    func keyringAndMemory() throws {
        let before = Self.leftovers()
        let result = try run(product("chapter-08"), ["--escape", "dev-mem", "--escape", "keyring", "--rung", "2", "--rung", "4"], timeout: 120)
        #expect(result.status == 0, "\(result)")
        // The key's payload is random, and only in the host's key: the escape read it there.
        let prose = result.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(prose.range(of: #"read a key of the host's root: isolation-key-[0-9a-f]{16}"#, options: .regularExpression) != nil, "\(result.stdout)")
        #expect(result.stdout.contains("keyring      ESCAPED  EPERM"), "\(result.stdout)")
        if Self.absent.contains("dev-mem") {
            #expect(result.stdout.contains("dev-mem      n/a      n/a"), "\(result.stdout)")
        } else {
            // The host compared the bytes with its own read of /dev/mem (else the cell is `?`).
            #expect(result.stdout.contains("dev-mem      ESCAPED  EPERM"), "\(result.stdout)")
            #expect(prose.range(of: #"read the machine's memory at 0xffff0: [0-9a-f]{32}"#, options: .regularExpression) != nil, "\(result.stdout)")
        }
        #expect(!result.stdout.contains("host changed"), "\(result.stdout)")
        #expect(Self.leftovers().filter { !before.contains($0) }.isEmpty, "left behind: \(Self.leftovers())")
    }

    /// The rows whose targets this project's test machine lacks (no /proc/sysrq-trigger,
    /// no /proc/kcore, no modules): the cgroup v2 lane's VM boots Debian's kernel, which
    /// has them all, and runs this test, so there the rows are measured, not only written
    /// down. Where a target is missing the chapter must say n/a on every rung.
    @Test("sysrq, kcore and module, where the kernel has them: each rung as the notes say")
    func kernelTargets() throws {
        let names = ["sysrq", "kcore", "module"]
        let before = Self.leftovers()
        let result = try run(product("chapter-08"), names.flatMap { ["--escape", $0] } + (1...6).flatMap { ["--rung", "\($0)"] }, timeout: 600)
        #expect(result.status == 0, "\(result)")
        for name in names {
            let line = result.stdout.split(separator: "\n").first { $0.hasPrefix(name + " ") }
            let cells = line.map { $0.split(separator: " ").dropFirst().map { $0 == "ESCAPED" ? "E" : String($0) } } ?? []
            let want = Self.absent.contains(name) ? Array(repeating: "n/a", count: 6) : Self.expected[name]!
            #expect(cells == want, "\(name): the chapter printed \(cells), the notes say \(want)\n\(result.stdout)")
        }
        #expect(!result.stdout.contains("host changed"), "\(result.stdout)")
        #expect(Self.leftovers().filter { !before.contains($0) }.isEmpty, "left behind: \(Self.leftovers())")
    }

    /// CVE-2019-5736 against a copy of each runtime in the lab: the copy of chapter 08's
    /// own jail runner is written through /proc/PID/exe at rung 1 (the host saw its size
    /// change); isorun's copy is not, and neither is a single byte of the real builds.
    @Test("the runtime-exe escape writes the lab's copy of the jail's runtime, never isorun's, never the real files")
    func runtimeExecutable() throws {
        func digest(_ path: String) throws -> String {
            let result = try run("/usr/bin/sha256sum", [path], timeout: 30)
            return String(result.stdout.prefix(64))
        }
        let real = [product("isorun"), product("chapter-08")]
        let digests = try real.map(digest)
        let before = Self.leftovers()
        let result = try run(product("chapter-08"), ["--escape", "runtime-exe", "--rung", "1", "--rung", "2", "--rung", "3"], timeout: 180)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("runtime-exe  ESCAPED  EROFS    EACCES"), "\(result.stdout)")
        let prose = result.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(prose.range(of: #"the host's copy of the runtime was written \([0-9]+ → [0-9]+ bytes\)"#, options: .regularExpression) != nil,
                "\(result.stdout)")
        #expect(prose.contains("stopped from rung 2 on by the runtime itself"), "\(result.stdout)")
        #expect(try real.map(digest) == digests, "a real build changed")
        #expect(Self.leftovers().filter { !before.contains($0) }.isEmpty, "left behind: \(Self.leftovers())")
    }

    @Test("bad input: a rung or an escape that does not exist is refused, and nothing is made")
    func badInput() throws {
        let before = Self.leftovers()
        for arguments in [["--rung", "8"], ["--escape", "dirty-cow"]] {
            let result = try run(product("chapter-08"), arguments, timeout: 30)
            #expect(result.status != 0)
            #expect(result.stderr.contains(arguments[1]), "the error names the bad value: \(result)")
        }
        #expect(Self.leftovers() == before)
    }
}

@Suite("chapter-08: the runtime against Leaky Vessels (CVE-2024-21626)", .serialized,
       .enabled(if: isRoot && RootFilesystem.busyboxPath() != nil, "needs root and busybox-static"))
struct Chapter08LeakyVesselsTests {
    /// `process.cwd` `/proc/self/fd/N`, for every N a runtime could hold open: runc 1.1.11
    /// held the host's /sys/fs/cgroup as 7, and the container started there. Each must be
    /// refused, or start inside the root; the shell then lists its own descriptors.
    @Test func cwdThroughADescriptorNeverLandsOutside() throws {
        let rootfs = try builtInRootfs()
        let folder = try TemporaryFolder("leaky")
        defer { folder.remove() }
        var refused = 0, inside = 0
        for n in 3...31 {
            let bundle = folder.path + "/bundle-\(n)"
            try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
            var config = OCIConfig.defaultSpec(args: ["sh", "-c", "pwd; ls /proc/$$/fd; exit 0"],
                                               cgroupNamespace: CgroupMode.detect() == .unified)
            config.root = OCIConfig.Root(path: rootfs, readonly: true)
            config.process?.cwd = "/proc/self/fd/\(n)"
            try Data(config.encodedJSON()).write(to: URL(fileURLWithPath: bundle + "/config.json"))
            let result = try runWithOutputInFiles(product("isorun"), ["--root", folder.path + "/state", "run", "--bundle", bundle, "isolation-leaky-\(n)"],
                                                  in: folder.path, timeout: 30)
            if result.status != 0 {
                refused += 1
                #expect(result.stderr.contains("/proc/self/fd/\(n)"), "fd \(n): refused, and the error names the path: \(result)")
                continue
            }
            inside += 1
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("/") == true && !(lines.first ?? "").contains("unreachable"), "fd \(n): cwd \(lines)")
            #expect(lines.dropFirst().map { $0.trimmingCharacters(in: .whitespaces) } == ["0", "1", "2"], "fd \(n): descriptors \(lines)")
        }
        #expect(refused + inside == 29)
    }

    /// With a plain cwd, the container's shell lists its own descriptors: 0, 1 and 2 only
    /// (nothing of the runtime's, nor of the caller's, which holds more: this test's).
    @Test func theContainerHoldsOnlyItsStandardDescriptors() throws {
        let rootfs = try builtInRootfs()
        let folder = try TemporaryFolder("leaky-fds")
        defer { folder.remove() }
        let bundle = folder.path + "/bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        // The shell's own descriptors, listed by a child with no pipe in between: a pipeline
        // or $(…) would have the shell hold a pipe end (fd 3) while ls looks, and a lone
        // last command would be exec'd in the shell's place (ls would list its own fd 3).
        var config = OCIConfig.defaultSpec(args: ["sh", "-c", "ls /proc/$$/fd; exit 0"], cgroupNamespace: CgroupMode.detect() == .unified)
        config.root = OCIConfig.Root(path: rootfs, readonly: true)
        try Data(config.encodedJSON()).write(to: URL(fileURLWithPath: bundle + "/config.json"))
        // A descriptor of ours without close-on-exec: whatever a launcher passes on, the
        // container must not hold it.
        let held = open(folder.path, O_RDONLY)
        defer { close(held) }
        let result = try runWithOutputInFiles(product("isorun"), ["--root", folder.path + "/state", "run", "--bundle", bundle, "isolation-leaky-fds"],
                                              in: folder.path, timeout: 30)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.split(whereSeparator: \.isWhitespace) == ["0", "1", "2"], "\(result)")
        #expect(mounts(under: folder.path).isEmpty)
    }
}

@Suite("chapter-08 --config: the catalogue against a config.json of the reader's", .serialized,
       .enabled(if: isRoot && hasCompiler && (FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc") || FileManager.default.isExecutableFile(atPath: "/usr/bin/runc")),
                "needs root, a C compiler and runc (apt: runc) for its `runc spec`"))
struct Chapter08ConfigTests {
    /// runc's own starter config: capabilities cut to three, masked and read-only paths,
    /// but no seccomp profile and no user namespace. The nested namespace, root's user
    /// keyring and the set-user-ID program get through; everything else is stopped.
    @Test func runcSpecLetsThreeThrough() throws {
        let folder = try TemporaryFolder("runc-spec")
        defer { folder.remove() }
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"].first { FileManager.default.isExecutableFile(atPath: $0) }!
        let spec = try runWithOutputInFiles(runc, ["spec", "--bundle", folder.path], in: folder.path, timeout: 30)
        try #require(spec.status == 0, "\(spec)")
        let before = Chapter08Tests.leftovers()
        let result = try run(product("chapter-08"), ["--config", folder.path + "/config.json"], timeout: 300)
        #expect(result.status == 0, "\(result)")
        var cells: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            if words.count == 2, Chapter08Tests.expected[words[0]] != nil { cells[words[0]] = words[1] }
        }
        #expect(cells.count == Chapter08Tests.expected.count, "one cell per escape: \(result.stdout)")
        let escaped = Set(cells.filter { $0.value == "ESCAPED" }.keys)
        #expect(escaped == ["nested", "keyring", "setuid"], "\(result.stdout)")
        #expect(!cells.values.contains("?"), "\(result.stdout)")
        #expect(Chapter08Tests.leftovers().filter { !before.contains($0) }.isEmpty)
    }

    /// `isorun spec` writes runc's starter with the library's deny-list as its seccomp
    /// profile, and `--no-seccomp` writes runc's starter as it is: the catalogue sees
    /// exactly that difference. Seccomp stops the nested namespace and the keyring; only
    /// the set-user-ID program (no user namespace) still gets through. Without the profile
    /// the same three escapes as under `runc spec` get through.
    @Test func isorunSpecCarriesTheDefaultProfile() throws {
        for (flags, through) in [([String](), Set(["setuid"])), (["--no-seccomp"], Set(["nested", "keyring", "setuid"]))] {
            let folder = try TemporaryFolder("isorun-spec")
            defer { folder.remove() }
            let spec = try run(product("isorun"), ["spec", "--bundle", folder.path] + flags, timeout: 30)
            try #require(spec.status == 0, "\(spec)")
            let config = try OCIConfig.load(bundle: FilePath(folder.path))
            #expect(config.linux?.seccomp == (flags.isEmpty ? OCIConfig.Seccomp.containerDefault : nil), "spec \(flags)")
            let before = Chapter08Tests.leftovers()
            let result = try run(product("chapter-08"), ["--config", folder.path + "/config.json"], timeout: 300)
            #expect(result.status == 0, "\(result)")
            var cells: [String: String] = [:]
            for line in result.stdout.split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init)
                if words.count == 2, Chapter08Tests.expected[words[0]] != nil { cells[words[0]] = words[1] }
            }
            #expect(cells.count == Chapter08Tests.expected.count, "one cell per escape: \(result.stdout)")
            #expect(Set(cells.filter { $0.value == "ESCAPED" }.keys) == through, "spec \(flags): \(result.stdout)")
            #expect(!cells.values.contains("?"), "\(result.stdout)")
            #expect(Chapter08Tests.leftovers().filter { !before.contains($0) }.isEmpty)
        }
    }

    @Test func aConfigThatIsNotOneIsRefusedBeforeAnythingIsMade() throws {
        let folder = try TemporaryFolder("bad-config")
        defer { folder.remove() }
        try "{\"ociVersion\": 7}".write(toFile: folder.path + "/config.json", atomically: true, encoding: .utf8)
        let before = Chapter08Tests.leftovers()
        let result = try run(product("chapter-08"), ["--config", folder.path + "/config.json"], timeout: 30)
        #expect(result.status != 0)
        #expect(result.stderr.contains(folder.path + "/config.json"), "the error names the file: \(result)")
        #expect(Chapter08Tests.leftovers() == before)
    }
}
