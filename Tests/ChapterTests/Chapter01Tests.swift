// Chapter 01: what a chroot jail hides and what it does not, observed from outside.
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("chapter-01: the chroot jail", .serialized, .enabled(if: isRoot, "chroot(2) and mounting /proc need root"))
struct Chapter01Tests {
    @Test("first runs at once: every run finds a whole root filesystem, while others still build theirs")
    func firstRunsAtOnce() throws {
        // Three fresh caches' worth of racing: each shell runs the chapter five times in a
        // row. A builder that finished later must not take away the copy another run is
        // already using (it once moved it aside to replace it, and a run in between found
        // no root filesystem at all).
        let folder = try TemporaryFolder("ch01-race")
        defer { folder.remove() }
        let loop = "for i in 1 2 3 4 5; do \"$0\" -- true || exit 1; done"
        let runs = try (0..<3).map { _ in
            try TestProcess("/bin/sh", ["-c", loop, product("chapter-01")],
                            environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ISOLATION_CACHE_DIR": folder.path + "/cache"])
        }
        let results = runs.map { $0.result(timeout: 600) }
        #expect(results.allSatisfy { $0.status == 0 }, "\(results)")
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path + "/cache")
        #expect(left == ["rootfs-\(RootFilesystem.preferredSource.rawValue)"], "no staging or old copies left: \(left)")
    }

    @Test("a host file outside the rootfs is not reachable inside")
    func markerIsNotReachable() throws {
        let folder = try TemporaryFolder("marker")
        defer { folder.remove() }
        let marker = folder.path + "/marker.txt"
        let secret = "marker-\(UUID().uuidString)"
        try secret.write(toFile: marker, atomically: true, encoding: .utf8)
        let rootfs = try builtInRootfs()

        let result = try run(product("chapter-01"), ["--", "cat", marker])
        #expect(result.status != 0, "cat of a host path succeeded inside the jail: \(result)")
        #expect(!result.stdout.contains(secret))
        #expect(result.stderr.contains("No such file") || result.stderr.contains("can't open"), "\(result)")
        #expect(mounts(under: rootfs).isEmpty, "chapter-01 left mounts: \(mounts(under: rootfs))")
    }

    @Test("/ inside lists exactly the rootfs's entries")
    func rootListsRootfs() throws {
        let rootfs = try builtInRootfs()
        let result = try run(product("chapter-01"), ["--", "ls", "-a", "/"])
        #expect(result.status == 0, "\(result)")
        let inside = Set(result.stdout.split(whereSeparator: \.isWhitespace).map(String.init)).subtracting([".", ".."])
        let expected = Set(try FileManager.default.contentsOfDirectory(atPath: rootfs))
        #expect(inside == expected)
        #expect(!inside.contains("work") && !inside.contains("opt"))
    }

    @Test("the jail still sees the host's hostname")
    func hostnameIsShared() throws {
        let result = try run(product("chapter-01"), ["--", "hostname"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ProcessInfo.processInfo.hostName
                || result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == Identity.hostname())
    }

    @Test("the jail still sees (and can signal) the host's processes")
    func processListIsShared() throws {
        let me = getpid()
        let result = try run(product("chapter-01"), ["--", "sh", "-c", "test -d /proc/\(me) && kill -0 \(me) && ls -d /proc/[0-9]* | wc -l"])
        #expect(result.status == 0, "the test process \(me) is not visible in the jail: \(result)")
        let count = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let hostCount = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { $0.allSatisfy(\.isNumber) }.count
        #expect(count > hostCount / 2, "the jail sees \(count) processes, the host \(hostCount)")
    }

    @Test("the command's exit status is the chapter's: 7 stays 7, not found is 127")
    func exitStatusPropagates() throws {
        #expect(try run(product("chapter-01"), ["--", "sh", "-c", "exit 7"]).status == 7)
        let missing = try run(product("chapter-01"), ["--", "no-such-program"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("executable file not found"), "\(missing)")
    }

    @Test("the escape reaches a host file under plain chroot")
    func escapeWorks() throws {
        let folder = try TemporaryFolder("escape")
        defer { folder.remove() }
        let marker = folder.path + "/secret.txt"
        let secret = "escaped-\(UUID().uuidString)"
        try secret.write(toFile: marker, atomically: true, encoding: .utf8)
        let result = try run(product("chapter-01"), ["escape", "--target", marker])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains(secret), "the escaped process did not print the host file: \(result)")
        #expect(result.stdout.contains("ENOENT"), "the file should first be unreachable: \(result)")
        let wide = result.stdout.split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "lines over 80 columns: \(wide)")
        // A typo in --rootfs is an error (1), not an outcome of the escape (0 or 2).
        let broken = try run(product("chapter-01"), ["escape", "--rootfs", folder.path + "/no-such-root", "--target", marker])
        #expect(broken.status == 1, "\(broken)")
    }

    @Test("the lesson, piped: each step's system call, side by side, what chroot does not hide")
    func lessonPiped() throws {
        let rootfs = try builtInRootfs()
        let result = try run(product("chapter-01"), [])
        #expect(result.status == 0, "\(result)")
        // The jail is this run's own layer over the cache (never the cache itself).
        for expected in ["chroot(\"/tmp/isolation-layer-", "chdir(\"/\")", "execve(\"/bin/ls\"", "the jail: ls /", "What chroot does NOT hide", "kill -0 works"] {
            #expect(result.stdout.contains(expected), "lesson output lacks \(expected)")
        }
        #expect(!result.stdout.contains("chroot(\"\(rootfs)\")"))
        #expect(result.stdout.contains(Identity.hostname()))
        #expect(mounts(under: rootfs).isEmpty)
        // Projected at 80 columns (not a terminal: 80): no line is wider, narration wraps.
        let wide = result.stdout.split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "lines over 80 columns: \(wide)")
    }

    @Test("both rootfs builders make a rootfs where sh -c 'echo ok' runs", arguments: RootFilesystem.Source.allCases)
    func builders(source: RootFilesystem.Source) throws {
        if source == .busybox && RootFilesystem.busyboxPath() == nil {
            Issue.record("busybox is not installed (apt-get install busybox-static): the busybox builder is untested")
            return
        }
        let folder = try TemporaryFolder("rootfs-\(source.rawValue)")
        defer { folder.remove() }
        let rootfs = folder.path + "/rootfs"
        try RootFilesystem.build(at: FilePath(rootfs), from: source)
        #expect(FileManager.default.fileExists(atPath: rootfs + "/etc/passwd"))
        #expect(FileManager.default.fileExists(atPath: rootfs + "/proc"))
        let result = try run(product("chapter-01"), ["--rootfs", rootfs, "--", "sh", "-c", "echo ok; id -un"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "ok\nroot\n", "\(result)")
        #expect(mounts(under: rootfs).isEmpty)
    }

    @Test("bad input: a missing rootfs and a rootfs without a shell are clear errors")
    func badRootfs() throws {
        let folder = try TemporaryFolder("bad-rootfs")
        defer { folder.remove() }
        let missing = try run(product("chapter-01"), ["--rootfs", folder.path + "/nope", "--", "true"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("does not exist") && missing.stderr.contains("--rootfs"), "\(missing)")

        try FileManager.default.createDirectory(atPath: folder.path + "/noshell/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder.path + "/noshell/proc", withIntermediateDirectories: true)
        let noShell = try run(product("chapter-01"), ["--rootfs", folder.path + "/noshell", "--", "true"])
        #expect(noShell.status != 0)
        #expect(noShell.stderr.contains("no executable /bin/sh"), "\(noShell)")
        #expect(mounts(under: folder.path).isEmpty, "a rejected rootfs got a mount")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path + "/noshell").sorted() == ["bin", "proc"])
    }

    @Test("bad input: not root is a one-line error with the sudo command, and creates nothing")
    func notRoot() throws {
        let folder = try TemporaryFolder("not-root")
        defer { folder.remove() }
        let binary = try productCopyForNobody("chapter-01", in: folder)
        let cache = folder.path + "/cache"
        let result = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", binary, "--", "true"],
                             environment: ["PATH": "/usr/bin:/bin", "ISOLATION_CACHE_DIR": cache])
        #expect(result.status != 0)
        #expect(result.stderr.contains("needs") || result.stderr.contains("root"), "\(result)")
        #expect(result.stderr.contains("sudo \(binary)"), "the error should say how to run it: \(result)")
        #expect(!FileManager.default.fileExists(atPath: cache), "not-root run created \(cache)")
    }
}
