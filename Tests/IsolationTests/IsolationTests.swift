// Unit tests for the pieces of the library that need no root.
import Foundation
import SystemPackage
import Testing
@testable import Isolation

@Suite("Namespaces")
struct NamespacesTests {
    @Test func parsesNamesPeopleType() throws {
        #expect(try Namespaces(parsing: "uts,pid,mnt,net") == [.uts, .pid, .mount, .network])
        #expect(try Namespaces(parsing: "mount, network ,user") == [.mount, .network, .user])
        #expect(try Namespaces(parsing: "all") == .all)
        #expect(Namespaces.all.kinds.count == 8)
    }

    @Test func rejectsUnknownNamesWithTheValidOnes() {
        do {
            _ = try Namespaces(parsing: "uts,bogus")
            Issue.record("bogus was accepted")
        } catch let error as IsolationError {
            #expect(error.message.contains("bogus"))
            #expect(error.hint?.contains("cgroup") == true)
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func namesMatchProcAndCloneFlags() {
        #expect(Namespaces.mount.procName == "mnt")
        #expect(Namespaces.network.shortName == "net")
        #expect(Namespaces.pid.cloneFlagName == "CLONE_NEWPID")
        #expect(Namespaces.mount.rawValue == 0x0002_0000)
        #expect(Namespaces.time.rawValue == 0x80)
    }

    @Test func identityOfThisProcessHasOneInodePerKind() {
        let ids = Namespaces.identity()
        let kernel = Namespaces.supportedByKernel()
        #expect(ids.count == kernel.kinds.count)
        #expect(ids.values.allSatisfy { $0 > 0 })
    }
}

@Suite("Parsers")
struct ParserTests {
    @Test func mountinfoWithEscapes() {
        let text = """
        36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue
        37 36 0:5 / /proc rw,nosuid shared:2 - proc proc rw

        """
        let table = MountInfo.parse(text)
        #expect(table.count == 2)
        #expect(table[0].mountPoint == "/mnt two")
        #expect(table[0].propagation == ["master:1"])
        #expect(table[0].fileSystemType == "ext3")
        #expect(table[1].mountPoint == "/proc" && table[1].parentID == 36)
    }

    @Test func lddOutput() {
        let text = """
        \tlinux-vdso.so.1 (0x00007ffd1b5f2000)
        \tlibselinux.so.1 => /lib/x86_64-linux-gnu/libselinux.so.1 (0x00007f0b2b8b1000)
        \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b2b6d0000)
        \tlibmissing.so => not found
        \t/lib64/ld-linux-x86-64.so.2 (0x00007f0b2b91c000)
        """
        #expect(RootFilesystem.parseLdd(text) == [
            "/lib/x86_64-linux-gnu/libselinux.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
        ])
    }

    @Test func waitStatusWords() {
        #expect(ExitStatus(waitStatus: 7 << 8) == .exited(7))
        #expect(ExitStatus(waitStatus: 9) == .signaled(9))
        #expect(ExitStatus.signaled(9).shellCode == 137)
        #expect(ExitStatus.signaled(9).description == "killed by SIGKILL")
    }

    @Test func shellQuoting() {
        #expect(shellQuote("ls") == "ls")
        #expect(shellQuote("a b") == "'a b'")
        #expect(shellQuote("it's") == "'it'\\''s'")
    }
}

@Suite("Files and root filesystems")
struct FileSystemTests {
    func temporary() throws -> FilePath { try FileSystem.makeTemporaryDirectory(purpose: "unit") }

    @Test func resolveStaysInsideTheRoot() throws {
        let root = try temporary()
        defer { try? FileSystem.removeTree(root) }
        try FileSystem.makeDirectories(root.appending("etc"))
        try FileSystem.makeDirectories(root.appending("usr/bin"))
        try FileSystem.symlink(target: "/etc", at: root.appending("abs"))           // absolute: restarts at root
        try FileSystem.symlink(target: "../../../../..", at: root.appending("up"))   // climbs: stops at root
        try FileSystem.symlink(target: "usr/bin", at: root.appending("bin"))         // relative
        try FileSystem.symlink(target: "loop", at: root.appending("loop"))
        #expect(try FileSystem.resolve("/abs/passwd", inside: root) == root.appending("etc/passwd"))
        #expect(try FileSystem.resolve("/up/etc", inside: root) == root.appending("etc"))
        #expect(try FileSystem.resolve("/bin/sh", inside: root) == root.appending("usr/bin/sh"))
        #expect(try FileSystem.resolve("/../../etc", inside: root) == root.appending("etc"))
        #expect(throws: Errno.tooManySymbolicLinkLevels) { try FileSystem.resolve("/loop", inside: root) }
    }

    @Test func validateNamesWhatIsWrong() throws {
        let root = try temporary()
        defer { try? FileSystem.removeTree(root) }
        #expect(throws: IsolationError.self) { try RootFilesystem.validate(root.appending("missing")) }
        do { _ = try RootFilesystem.validate(root); Issue.record("empty dir accepted") } catch let error as IsolationError {
            #expect(error.message.contains("no executable /bin/sh"))
        }
        try FileSystem.makeDirectories(root.appending("bin"))
        try FileSystem.writeFile(root.appending("bin/busybox"), "#!/bin/true\n", mode: 0o755)
        try FileSystem.symlink(target: "/bin/busybox", at: root.appending("bin/sh"))
        #expect(try RootFilesystem.validate(root).path == root)
        try FileSystem.writeFile(root.appending("file"), "x")
        #expect(throws: IsolationError.self) { try RootFilesystem.validate(root.appending("file")) }
    }

    @Test func removeTreeDoesNotFollowSymlinks() throws {
        let root = try temporary()
        let outside = try temporary()
        defer { try? FileSystem.removeTree(outside) }
        try FileSystem.writeFile(outside.appending("keep"), "keep")
        try FileSystem.symlink(target: outside.string, at: root.appending("link"))
        try FileSystem.removeTree(root)
        #expect(!FileSystem.exists(root))
        #expect(FileSystem.exists(outside.appending("keep")))
    }

    @Test func temporaryFoldersCarryTheProjectPrefix() throws {
        let folder = try temporary()
        defer { try? FileSystem.removeTree(folder) }
        #expect(folder.string.hasPrefix("/tmp/isolation-unit-"))
    }

    @Test func spawnReportsAMissingProgramAsAnExecStage() {
        do {
            _ = try ChildProcess.spawn("/nonexistent/program", arguments: ["x"], environment: [])
            Issue.record("spawned a missing program")
        } catch let error as StageError {
            #expect(error.stage.contains("execve"))
            #expect(error.errno == .noSuchFileOrDirectory)
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func commandCapturesOutputAndStatus() throws {
        let output = try Command.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
        #expect(output.standardOutput == "out\n")
        #expect(output.standardError == "err\n")
        #expect(output.status == .exited(3))
    }
}

@Suite("Machine checks")
struct PreflightTests {
    @Test func kernelAndCgroupsAreReported() {
        #expect(Preflight.kernel().status == .ok)
        #expect(Preflight.kernel().detail.contains(Preflight.kernelRelease()))
        #expect(CgroupMode.detect() != .none)
        #expect(Preflight.libcap().status == .ok)
    }

    @Test func failedChecksAreOneLineEachWithTheFix() {
        let check = Check("root", .failed, "needs root", fix: "run: sudo x")
        do { try Preflight.require([check, Check("ok", .ok, "fine")]); Issue.record("passed") } catch let error as IsolationError {
            #expect(error.description == "needs root; run: sudo x")
        } catch { Issue.record("\(error)") }
    }
}

@Suite("Narration at 80 columns")
struct NarrationWrapTests {
    @Test("long calls wrap after a space or comma, long paths anywhere, no line over its width, nothing lost")
    func wraps() {
        let call = "mount(\"proc\", \"/tmp/isolation-layer-hapxnf/root/proc\", \"proc\", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)"
        let lines = wrapLines(call, first: 78, rest: 74)
        func squeezed(_ text: String) -> String { text.replacingOccurrences(of: " ", with: "") }
        #expect(lines.count == 2, "\(lines)")
        #expect(lines[0].count <= 78 && lines.dropFirst().allSatisfy { $0.count <= 74 }, "\(lines)")
        #expect(lines[0].hasSuffix("|") && squeezed(lines.joined()) == squeezed(call), "\(lines)")
        // A long path breaks after a slash; a word longer than a line anywhere.
        let path = "/sys/fs/cgroup/memory/isolation/lesson-32192/memory.limit_in_bytes"
        let broken = wrapLines("echo \"134217728\" > " + path, first: 78, rest: 74)
        #expect(broken.count == 2 && broken[0].hasSuffix("/") && squeezed(broken.joined()) == squeezed("echo \"134217728\" > " + path), "\(broken)")
        let word = String(repeating: "x", count: 200)
        #expect(wrapLines(word, first: 78, rest: 74).map(\.count) == [78, 74, 48])
        #expect(wrapLines("short", first: 78, rest: 74) == ["short"])
    }
}
