// Mounts inside the root filesystem (CVE-2021-30465): a folder of a mount's destination
// swapped for a symlink to a folder outside the root, between the moment the runtime
// looks at the path and the moment it mounts. Observed from outside: the host's mount
// table, the runtime's mount namespace (read by a hook), and a marker file.
import Foundation
import Glibc
import Isolation
import SystemPackage
import Testing

/// A root, a folder outside it with a marker, and the swap an attacker makes.
private struct RaceLab {
    let folder: TemporaryFolder
    var root: String { folder.path + "/root" }
    var outside: String { folder.path + "/outside" }
    var marker: String { outside + "/marker" }

    init(_ purpose: String) throws {
        folder = try TemporaryFolder("mounts-\(purpose)")
        for path in [root + "/vol/a", outside] { try FileSystem.makeDirectories(FilePath(path)) }
        try FileSystem.writeFile(FilePath(marker), "host's own\n")
    }

    /// rename(2) the folder `vol/a` away and put a symlink to `outside` in its place:
    /// what a process sharing the volume does between the runtime's check and its mount.
    func swap() {
        rename(root + "/vol/a", root + "/vol/a.moved")
        symlink(outside, root + "/vol/a")
    }

    var outsideUntouched: Bool {
        mounts(under: outside).isEmpty && (try? FileSystem.contentsOfDirectory(FilePath(outside))) == ["marker"]
            && (try? FileSystem.readString(FilePath(marker))) == "host's own\n"
    }

    func remove() {
        for point in mounts(under: folder.path).reversed() { umount2(point, Int32(MNT_DETACH)) }
        folder.remove()
    }
}

@Suite("Mounts inside the root (CVE-2021-30465)", .serialized, .enabled(if: isRoot, "mounting needs root"))
struct MountsInRootTests {
    /// The old way, resolve then mount by path, with the swap in between: the mount lands
    /// outside. This is what the tests below must never see.
    @Test func resolvingThenMountingByPathLandsOutside() throws {
        let lab = try RaceLab("path")
        defer { lab.remove() }
        let resolved = try FileSystem.resolve("/vol/a", inside: FilePath(lab.root))
        #expect(resolved.string == lab.root + "/vol/a")
        lab.swap()
        try Mount.mount(source: "tmpfs", target: resolved, type: "tmpfs")
        #expect(mounts(under: lab.outside) == [lab.outside], "the naive mount followed the swapped symlink")
        #expect(!lab.outsideUntouched)
    }

    @Test("a middle folder swapped for a symlink between open and mount", arguments: ["/vol/a/b", "/vol/a"])
    func swappedBetweenOpenAndMount(_ destination: String) throws {
        let lab = try RaceLab("swap")
        defer { lab.remove() }
        let root = try RootDirectory(FilePath(lab.root))
        let mounted = try root.mount(source: "tmpfs", at: destination, type: "tmpfs", data: "mode=700") { _ in lab.swap() }
        // It is on the folder that was opened, now at vol/a.moved: inside the root.
        let landed = lab.root + "/vol/a.moved" + (destination == "/vol/a" ? "" : "/b")
        #expect(try mounted.hostPath() == landed)
        #expect(mounts(under: lab.root) == [landed])
        let line = try MountInfo.table().first { $0.mountPoint == landed }
        #expect(line?.fileSystemType == "tmpfs" && line?.options.hasPrefix("rw") == true)
        // Written through the descriptor of the new mount: into the tmpfs, not outside.
        try FileSystem.writeFile(mounted.procPath.appending("written"), "x")
        #expect(FileSystem.exists(FilePath(landed + "/written")))
        #expect(lab.outsideUntouched, "outside: \(mounts(under: lab.outside)) \((try? FileSystem.contentsOfDirectory(FilePath(lab.outside))) ?? [])")
    }

    @Test func aSymlinkOnTheWayIsFollowedInsideTheRoot() throws {
        let lab = try RaceLab("symlink")
        defer { lab.remove() }
        // A symlink in the image to the outside folder's host path, and to a missing one:
        // both mean a folder inside the root (created there), never the host's.
        symlink(lab.outside, lab.root + "/vol/abs")
        symlink("../../../../../../../../" + lab.outside + "/new", lab.root + "/vol/up")
        let root = try RootDirectory(FilePath(lab.root))
        let first = try root.mount(source: "tmpfs", at: "/vol/abs/x", type: "tmpfs")
        let second = try root.mount(source: "tmpfs", at: "vol/up/y", type: "tmpfs")
        #expect(try first.hostPath() == lab.root + lab.outside + "/x")
        #expect(try second.hostPath() == lab.root + lab.outside + "/new/y")
        #expect(lab.outsideUntouched)
        // A file's mount point is made as a file.
        let file = try root.open("/vol/abs/file", creating: .file)
        var info = stat()
        #expect(fstat(file.descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG)
        #expect(throws: Errno.noSuchFileOrDirectory) { try root.open("/vol/missing") }
    }

    /// The real race: a host process swaps a folder of the volume for a symlink to the
    /// outside folder in a tight loop (renameat2 RENAME_EXCHANGE), while chapter 04's
    /// runtime creates containers that mount a tmpfs there. A createRuntime hook reads the
    /// container's mount table (its mount namespace, before pivot_root) and logs any
    /// mount at the outside folder.
    @Test func racingTheRuntimeNeverMountsOutside() throws {
        guard let compiler = ["cc", "gcc", "clang"].lazy.compactMap({ Command.find($0) }).first else {
            Issue.record("no C compiler for the swapper (apt-get install gcc)")
            return
        }
        let lab = try RaceLab("race")
        defer { lab.remove() }
        let volume = lab.folder.path + "/volume"
        try FileSystem.makeDirectories(FilePath(volume + "/race/dir"))
        symlink(lab.outside, volume + "/race/link")
        try FileSystem.makeDirectories(FilePath(lab.root + "/bin"))
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: lab.root + "/bin/busybox")
        let swapper = lab.folder.path + "/swapper"
        try FileSystem.writeFile(FilePath(swapper + ".c"), """
            #define _GNU_SOURCE
            #include <fcntl.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>
            int main(int argc, char **argv) {
                if (chdir(argv[1]) != 0) return 1;
                time_t end = time(NULL) + 60;
                unsigned long n = 0;
                while (access("stop", F_OK) != 0 && time(NULL) < end)
                    for (int i = 0; i < 1000; i++, n++) renameat2(AT_FDCWD, "dir", AT_FDCWD, "link", RENAME_EXCHANGE);
                printf("%lu\\n", n);
                return 0;
            }
            """)
        let built = try run(compiler.string, ["-O1", "-o", swapper, swapper + ".c"])
        try #require(built.status == 0, "\(built)")
        let log = lab.folder.path + "/landed"
        try FileSystem.writeFile(FilePath(log), "")
        let bundle = lab.folder.path + "/bundle"
        try FileSystem.makeDirectories(FilePath(bundle))
        var config = OCIConfig.defaultSpec(args: ["/bin/busybox", "true"], cgroupNamespace: CgroupMode.detect() == .unified)
        config.root = OCIConfig.Root(path: lab.root, readonly: false)
        config.mounts = (config.mounts ?? []) + [
            OCIConfig.Mount(destination: "/vol", type: "bind", source: volume, options: ["rbind", "rw"]),
            OCIConfig.Mount(destination: "/vol/race/dir", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev"]),
        ]
        let observe = "pid=$(sed -n 's/.*\"pid\" *: *\\([0-9][0-9]*\\).*/\\1/p'); grep -F ' \(lab.outside)' /proc/$pid/mountinfo >> \(log); exit 0"
        config.hooks = OCIConfig.Hooks(createRuntime: [OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", observe])])
        try FileSystem.writeFile(FilePath(bundle + "/config.json"), config.encodedJSON())
        let state = lab.folder.path + "/state"

        let attacker = try TestProcess(swapper, [volume + "/race"])
        defer { _ = FileManager.default.createFile(atPath: volume + "/race/stop", contents: nil); attacker.wait(timeout: 10) }
        // As many rounds as fit in 30 seconds, at most `attempts` (a loaded machine makes fewer).
        let attempts = 150
        var created = 0, failed: [String] = []
        let start = Date()
        for index in 0..<attempts where Date().timeIntervalSince(start) < 30 {
            let id = "isolation-race-\(getpid())-\(index)"
            let result = try runWithOutputInFiles(product("chapter-04"), ["--root", state, "create", "--bundle", bundle, id], in: lab.folder.path, timeout: 30)
            if result.status == 0 { created += 1 } else { failed.append(result.stderr.split(separator: "\n").last.map(String.init) ?? "") }
            _ = try runWithOutputInFiles(product("chapter-04"), ["--root", state, "delete", "--force", id], in: lab.folder.path, timeout: 30)
            #expect(mounts(under: lab.outside).isEmpty, "a host mount at the outside folder after attempt \(index)")
        }
        _ = FileManager.default.createFile(atPath: volume + "/race/stop", contents: nil)
        attacker.wait(timeout: 10)
        let swaps = attacker.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let landed = ((try? FileSystem.readString(FilePath(log))) ?? "").split(separator: "\n")
        print("race: \(created) of \(attempts) creates made, \(failed.count) refused, \(landed.count) mounts landed outside, \(swaps) swaps")
        #expect(landed.isEmpty, "\(landed.count) of \(created) containers had their tmpfs mounted on \(lab.outside): \(landed.prefix(3))")
        #expect(created >= 20 && failed.count * 10 <= created, "creates must succeed while the volume is raced: \(Set(failed))")
        #expect(Int(swaps) ?? 0 > 10_000, "the swapper ran: \(swaps)")
        #expect(lab.outsideUntouched)
    }
}
