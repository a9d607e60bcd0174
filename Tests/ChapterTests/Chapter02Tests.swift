// Chapter 02: one isolation proof per namespace, observed from outside.
//
// Each test runs the BUILT chapter-02 as a subprocess with a root filesystem of its own
// (Ch02Rootfs, under /tmp/isolation-test-*) and checks what the host can see: namespace
// inodes, mount tables, files, processes. The test process itself never unshares,
// chroots or joins anything.
import Foundation
import Glibc
import Isolation
import SystemPackage
import Testing

@Suite("Chapter 02 · namespaces", .enabled(if: getuid() == 0, "creating namespaces as root; the rootless path is tested by switching to nobody"),
       .enabled(if: ch02HasBusybox, "the test root filesystems are built from busybox (apt-get install busybox-static)"))
struct Chapter02Tests {
    static let singleKinds: [String] = ["uts", "pid", "mount", "ipc", "net", "user", "cgroup", "time", "uts,pid,mount,ipc,net,user,cgroup,time"]

    // MARK: Identity: new where asked, shared where not

    @Test("the namespace inode differs from the host's for each requested kind, and is the same for the others",
          arguments: singleKinds)
    func namespaceIdentity(_ list: String) throws {
        let rootfs = try Ch02Rootfs("ns")
        defer { rootfs.remove() }
        let requested = try Namespaces(parsing: list)
        let running = try Ch02Background(["--rootfs", rootfs.path, "--namespaces", list, "--", "sleep", "60"])
        defer { running.remove() }
        let command = try #require(running.waitForDescendant(named: "sleep"), "no sleep started: \(running.errors)")
        let inside = Namespaces.identity(of: command)
        let host = Namespaces.identity()
        for kind in Namespaces.allKinds {
            let name = kind.procName
            try #require(host[name] != nil && inside[name] != nil, "no /proc/*/ns/\(name)")
            if requested.contains(kind) {
                #expect(inside[name] != host[name], "\(name) was asked for, but the command shares the host's")
            } else {
                #expect(inside[name] == host[name], "\(name) was not asked for, but the command has a new one")
            }
        }
        // SIGTERM reaches the command through chapter-02 (and PID 1 when there is one).
        #expect(running.stop(SIGTERM) == 128 + SIGTERM, "\(running.errors)")
        #expect(kill(command, 0) != 0, "the command \(command) outlived chapter-02")
    }

    // MARK: One proof per namespace

    @Test("uts: a hostname set inside does not change the host's")
    func uts() throws {
        let rootfs = try Ch02Rootfs("uts")
        defer { rootfs.remove() }
        let before = Identity.hostname()
        let result = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--namespaces", "uts", "--hostname", "ch02-inside", "--", "hostname"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ch02-inside")
        #expect(Identity.hostname() == before)
        #expect(before != "ch02-inside")
    }

    @Test("pid: PID 1 is the chapter's init, the command is its child, and /proc lists only the container")
    func pid() throws {
        let rootfs = try Ch02Rootfs("pid")
        defer { rootfs.remove() }
        // Inside: $$ and its parent, what PID 1 is, and every PID /proc has.
        let result = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--namespaces", "pid,mount", "--",
                                                     "sh", "-c", "echo $$ $PPID; cat /proc/1/comm; cd /proc && echo [0-9]*"])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 3, "\(result)")
        #expect(lines[0] == "2 1", "the command should be PID 2, child of our PID 1")
        #expect(lines[1] == "chapter-02")
        let pids = lines[2].split(separator: " ").compactMap { Int($0) }
        #expect(pids == [1, 2], "only init and the shell: \(lines[2])")
        let hostCount = ch02ProcessTable().count
        #expect(hostCount > pids.count)

        // Outside: the same process has two PIDs, the host's and the namespace's.
        let running = try Ch02Background(["--rootfs", rootfs.path, "--namespaces", "pid,mount", "--", "sleep", "60"])
        defer { running.remove() }
        let sleep = try #require(running.waitForDescendant(named: "sleep"))
        let nspid = ch02Read("/proc/\(sleep)/status").split(separator: "\n").first { $0.hasPrefix("NSpid:") } ?? ""
        #expect(nspid.split(whereSeparator: \.isWhitespace).dropFirst().map(String.init) == ["\(sleep)", "2"], "\(nspid)")
        running.stop()
    }

    @Test("mount: the container's mounts stay out of the host's table, and the old root is gone after pivot_root")
    func mount() throws {
        let rootfs = try Ch02Rootfs("mnt")
        defer { rootfs.remove() }
        let running = try Ch02Background(["--rootfs", rootfs.path, "--namespaces", "mount,pid", "--", "sleep", "60"])
        defer { running.remove() }
        let sleep = try #require(running.waitForDescendant(named: "sleep"), "\(running.errors)")
        // The host's mount table does not have the container's /, /proc or /dev.
        #expect(ch02HostMounts(mentioning: rootfs.folder.path).isEmpty)
        // The container's table, read from outside: only what the chapter mounted.
        let theirs = MountInfo.parse(ch02Read("/proc/\(sleep)/mountinfo"))
        let points = theirs.map(\.mountPoint)
        #expect(points.contains("/") && points.contains("/proc") && points.contains("/dev"), "\(points)")
        for point in points {
            #expect(point == "/" || point == "/proc" || point == "/dev" || point.hasPrefix("/dev/"), "a host mount leaked in: \(point)")
        }
        #expect(theirs.count < (try MountInfo.table()).count + 10)
        // Its root directory is the root filesystem, seen from the host.
        #expect(ch02Read("/proc/\(sleep)/root/etc/isolation-rootfs").contains("source=busybox"))
        running.stop()
        #expect(ch02HostMounts(mentioning: rootfs.folder.path).isEmpty)

        // Inside: the host's files (this test's own folder, /work …) are unreachable.
        let marker = rootfs.folder.path + "/host-only"
        _ = FileManager.default.createFile(atPath: marker, contents: Data("host\n".utf8))
        let result = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--namespaces", "mount,pid", "--",
                                                     "sh", "-c", "cat \(marker) 2>/dev/null || echo unreachable; ls /"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("unreachable\n"), "\(result)")
        let entries = result.stdout.split(separator: "\n").dropFirst().map(String.init).sorted()
        #expect(entries == (try FileManager.default.contentsOfDirectory(atPath: rootfs.path)).sorted())
    }

    @Test("mount: under a shared mount (as systemd mounts /), nothing the container mounts propagates to the host")
    func mountPropagation() throws {
        // A shared tmpfs of our own on the host, holding the root filesystem: without
        // MS_REC|MS_PRIVATE inside, the container's bind, /proc and /dev would appear here.
        let folder = try TemporaryFolder("ch02-shared")
        defer { folder.remove() }
        let point = FilePath(folder.path)
        try Mount.mount(source: "tmpfs", target: point, type: "tmpfs", data: "mode=755")
        defer { try? Mount.unmount(point, detach: true) }
        try Mount.mount(source: "none", target: point, flags: [.shared])
        let rootfs = folder.path + "/rootfs"
        try ch02CopyRootfs(to: rootfs)
        #expect(try MountInfo.table().first { $0.mountPoint == folder.path }?.propagation.contains { $0.hasPrefix("shared:") } == true)
        let running = try Ch02Background(["--rootfs", rootfs, "--namespaces", "mount,pid", "--", "sleep", "60"])
        defer { running.remove() }
        _ = try #require(running.waitForDescendant(named: "sleep"), "\(running.errors)")
        #expect(ch02HostMounts(mentioning: rootfs).isEmpty, "leaked to the host: \(ch02HostMounts(mentioning: rootfs))")
        running.stop()
    }

    @Test("net: only lo, and it is up")
    func net() throws {
        let rootfs = try Ch02Rootfs("net")
        defer { rootfs.remove() }
        let result = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--namespaces", "net,mount,pid", "--",
                                                     "sh", "-c", "ip -o link; echo ---; tail -n +3 /proc/net/dev | cut -d: -f1"])
        #expect(result.status == 0, "\(result)")
        let parts = result.stdout.components(separatedBy: "---\n")
        try #require(parts.count == 2, "\(result)")
        let links = parts[0].split(separator: "\n")
        #expect(links.count == 1, "\(parts[0])")
        #expect(links.first?.contains(" lo: <LOOPBACK,UP") == true, "\(parts[0])")
        #expect(parts[1].split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["lo"])

        // From outside: /proc/PID/net/dev follows the process's network namespace.
        let running = try Ch02Background(["--rootfs", rootfs.path, "--namespaces", "net,mount,pid", "--", "sleep", "60"])
        defer { running.remove() }
        let sleep = try #require(running.waitForDescendant(named: "sleep"))
        let devices = ch02Read("/proc/\(sleep)/net/dev").split(separator: "\n").dropFirst(2).compactMap { $0.split(separator: ":").first?.trimmingCharacters(in: .whitespaces) }
        #expect(devices == ["lo"])
        running.stop()
    }

    @Test("ipc: a SysV message queue made on the host is not visible inside (and is without the ipc namespace)")
    func ipc() throws {
        let rootfs = try Ch02Rootfs("ipc")
        defer { rootfs.remove() }
        let made = try run("/usr/bin/ipcmk", ["-Q"])
        try #require(made.status == 0, "\(made)")
        let id = try #require(made.stdout.split(whereSeparator: { !$0.isNumber }).last.map(String.init), "\(made.stdout)")
        defer { _ = try? run("/usr/bin/ipcrm", ["-q", id]) }
        func queueIDs(_ namespaces: String) throws -> [String] {
            let result = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--namespaces", namespaces, "--", "cat", "/proc/sysvipc/msg"])
            #expect(result.status == 0, "\(result)")
            return result.stdout.split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
        }
        #expect(try !queueIDs("ipc,mount,pid").contains(id))
        #expect(try queueIDs("mount,pid").contains(id), "without an IPC namespace the host's queue must show")
    }

    @Test("user: uid 0 inside, and a file it creates belongs to the mapped uid on the host")
    func userAsRoot() throws {
        let rootfs = try Ch02Rootfs("user")
        defer { rootfs.remove() }
        let result = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--namespaces", "user,mount,pid", "--",
                                                     "sh", "-c", "id -u; id -g; touch /tmp/made-inside; cat /proc/self/uid_map"])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines.prefix(2) == ["0", "0"], "\(result)")
        // Root's map is `0 0 1` (UserNamespace.forInvokingUser): the mapped uid is 0.
        #expect(lines.dropFirst(2).first == "0 0 1", "\(result)")
        var info = stat()
        #expect(stat(rootfs.path + "/tmp/made-inside", &info) == 0)
        #expect(info.st_uid == 0 && info.st_gid == 0)
    }

    @Test("user: the rootless path — nobody runs chapter-02 with every namespace and is root inside",
          .enabled(if: ch02CanSwitchToNobody, "needs setpriv and root to become nobody"),
          .enabled(if: ch02RootlessAllowed, "this host does not allow unprivileged user namespaces"))
    func rootless() throws {
        let rootfs = try Ch02Rootfs("rootless")
        defer { rootfs.remove() }
        // A copy of the binary nobody can read (the checkout may be under /root), and a
        // cache folder nobody cannot write: --rootfs is given, so none is needed.
        let binary = rootfs.folder.path + "/chapter-02"
        try FileManager.default.copyItem(atPath: product("chapter-02"), toPath: binary)
        chmod(binary, 0o755)
        let environment = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "ISOLATION_CACHE_DIR": "/nonexistent"]
        // --user-net none: only lo, whatever this machine has installed (the user-mode
        // networks are tested in RootlessNetworkTests, inside namespaces of their own).
        let result = try run(ch02AsNobody[0], Array(ch02AsNobody.dropFirst()) + [binary, "--rootfs", rootfs.path, "--user-net", "none", "--",
                             "sh", "-c", "id -u; touch /tmp/made-by-nobody; hostname; ip -o link | wc -l"], environment: environment)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.split(separator: "\n").map(String.init) == ["0", "container", "1"], "\(result)")
        var info = stat()
        #expect(stat(rootfs.path + "/tmp/made-by-nobody", &info) == 0)
        #expect(info.st_uid == 65534 && info.st_gid == 65534, "owned by \(info.st_uid):\(info.st_gid)")

        // The lesson runs rootless too (no terminal: no shell at the end).
        let lesson = try run(ch02AsNobody[0], Array(ch02AsNobody.dropFirst()) + [binary, "--rootfs", rootfs.path, "--user-net", "none"], environment: environment)
        #expect(lesson.status == 0, "\(lesson)")
        #expect(lesson.stdout.contains("(= 65534 on the host)"), "\(lesson.stdout)")

        // Without the user namespace, nobody gets the sudo line, and nothing is made.
        let refused = try run(ch02AsNobody[0], Array(ch02AsNobody.dropFirst()) + [binary, "--rootfs", rootfs.path, "--namespaces", "uts", "--", "true"], environment: environment)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("sudo "), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count <= 3, "a short message: \(refused.stderr)")
    }

    @Test("cgroup: /proc/self/cgroup inside shows the root, even when the container sits in a sub-cgroup")
    func cgroup() throws {
        let rootfs = try Ch02Rootfs("cgroup")
        defer { rootfs.remove() }
        // Put chapter-02 into a cgroup of its own, so that "/" inside is a real claim.
        let table = try MountInfo.table()
        let hierarchy = table.first { $0.fileSystemType == "cgroup2" } ?? table.first { $0.fileSystemType == "cgroup" && $0.options.contains("pids") }
        let mount = try #require(hierarchy, "no cgroup hierarchy mounted")
        let name = "isolation-test-ch02-\(getpid())"
        let group = mount.mountPoint + "/" + name
        try #require(mkdir(group, 0o755) == 0, "mkdir \(group): errno \(errno)")
        defer { rmdir(group) }
        let lineTag = mount.fileSystemType == "cgroup2" ? "0::" : ":pids:"
        func cgroupLine(_ namespaces: String) throws -> String {
            let result = try run("/bin/sh", ["-c", "echo $$ > \(group)/cgroup.procs && exec \"$@\"", "sh", product("chapter-02"),
                                             "--rootfs", rootfs.path, "--namespaces", namespaces, "--", "cat", "/proc/self/cgroup"])
            #expect(result.status == 0, "\(result)")
            return result.stdout.split(separator: "\n").first { $0.contains(lineTag) }.map(String.init) ?? ""
        }
        let inside = try cgroupLine("cgroup,mount,pid")
        #expect(inside.hasSuffix(":/"), "\(inside)")
        let shared = try cgroupLine("mount,pid")
        #expect(shared.hasSuffix(":/" + name), "without a cgroup namespace the path shows: \(shared)")
    }

    @Test("time: a monotonic offset set for the namespace is visible inside and not outside")
    func time() throws {
        let rootfs = try Ch02Rootfs("time")
        defer { rootfs.remove() }
        let day: Double = 86400
        let result = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--namespaces", "time,mount,pid", "--clock-offset", "86400", "--",
                                                     "cut", "-d", " ", "-f1", "/proc/uptime"])
        let hostUptime = Double(ch02Read("/proc/uptime").split(separator: " ").first ?? "") ?? -1
        #expect(result.status == 0, "\(result)")
        let inside = try #require(Double(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(result)")
        #expect(inside >= hostUptime + day - 30 && inside <= hostUptime + day + 1, "inside \(inside), host \(hostUptime)")
        #expect(hostUptime < inside - day / 2)

        // From outside: the namespace's offsets, and our own (none).
        let running = try Ch02Background(["--rootfs", rootfs.path, "--namespaces", "time,mount,pid", "--clock-offset", "86400", "--", "sleep", "60"])
        defer { running.remove() }
        let sleep = try #require(running.waitForDescendant(named: "sleep"))
        let theirs = ch02Read("/proc/\(sleep)/timens_offsets")
        #expect(theirs.split(separator: "\n").contains { $0.split(whereSeparator: \.isWhitespace).prefix(2) == ["monotonic", "86400"] }, "\(theirs)")
        let ours = ch02Read("/proc/self/timens_offsets")
        #expect(ours.split(separator: "\n").contains { $0.split(whereSeparator: \.isWhitespace).prefix(2) == ["monotonic", "0"] }, "\(ours)")
        running.stop()
    }

    // MARK: The escape, and what is left afterwards

    @Test("the chroot escape of chapter 01 fails after pivot_root (and works without a mount namespace)")
    func escape() throws {
        let rootfs = try Ch02Rootfs("escape")
        defer { rootfs.remove() }
        // One meaning of the exit status for both chapters: 0 escaped, 2 contained.
        let contained = try run(product("chapter-02"), ["escape", "--rootfs", rootfs.path])
        #expect(contained.status == 2, "\(contained)")
        #expect(contained.stdout.contains("CONTAINED"))
        #expect(!contained.stdout.contains("host secret"))
        let escaped = try run(product("chapter-02"), ["escape", "--rootfs", rootfs.path, "--namespaces", "uts"])
        #expect(escaped.status == 0, "\(escaped)")
        #expect(escaped.stdout.contains("ESCAPED") && escaped.stdout.contains("host secret"))
        let wide = (contained.stdout + escaped.stdout).split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "lines over 80 columns: \(wide)")
        // The init's protocol with the lesson (`@early.…`) is never shown to a person.
        #expect(!escaped.stdout.contains("@early") && !contained.stdout.contains("@early"), "\(escaped)")
    }

    @Test("the container's processes are gone after it exits, even when it is killed; nothing is left on the host")
    func nothingLeftBehind() throws {
        let rootfs = try Ch02Rootfs("left")
        defer { rootfs.remove() }
        let tmpBefore = Set(try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("isolation-escape") })
        // Background sleeps that outlive their shell: PID 1's exit takes them down.
        let marker = "4711\(getpid() % 1000)"
        let result = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--", "sh", "-c", "sleep \(marker) & sleep \(marker) & echo started"])
        #expect(result.status == 0, "\(result)")
        #expect(ch02Processes(withArgument: marker).isEmpty, "orphans survived: \(ch02Processes(withArgument: marker))")

        // chapter-02 killed outright: the parent-death signal takes its PID 1, and with it the namespace.
        let marker2 = marker + "2"
        let running = try Ch02Background(["--rootfs", rootfs.path, "--", "sh", "-c", "sleep \(marker2) & sleep 60"])
        defer { running.remove() }
        _ = try #require(running.waitForDescendant(named: "sleep"))
        #expect(running.stop(SIGKILL) == SIGKILL)  // terminationStatus is the signal for .uncaughtSignal
        var left = ch02Processes(withArgument: marker2)
        for _ in 0..<100 where !left.isEmpty { usleep(20_000); left = ch02Processes(withArgument: marker2) }
        #expect(left.isEmpty, "processes left after SIGKILL: \(left)")

        #expect(ch02HostMounts(mentioning: rootfs.folder.path).isEmpty)
        let tmpAfter = Set(try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("isolation-escape") })
        #expect(tmpAfter.subtracting(tmpBefore).isEmpty)
    }

    // MARK: The command line

    @Test("with a command it exits with the command's status; an unknown command is 127")
    func exitStatus() throws {
        let rootfs = try Ch02Rootfs("status")
        defer { rootfs.remove() }
        #expect(try run(product("chapter-02"), ["--rootfs", rootfs.path, "--", "sh", "-c", "exit 7"]).status == 7)
        let missing = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--", "no-such-program"])
        #expect(missing.status == 127, "\(missing)")
        #expect(missing.stderr.contains("no-such-program"))
    }

    @Test("the lesson prints the side-by-side table, for all namespaces and for one alone")
    func lesson() throws {
        let rootfs = try Ch02Rootfs("lesson")
        defer { rootfs.remove() }
        let all = try run(product("chapter-02"), ["--rootfs", rootfs.path])
        #expect(all.status == 0, "\(all)")
        for row in ["hostname", "PID of the shell", "processes", "network interfaces", "mounts", "SysV message queues", "uid", "/proc/self/cgroup", "pivot_root"] {
            #expect(all.stdout.contains(row), "missing: \(row)")
        }
        // The cgroup row shows the line that differs: on v1 or hybrid the memory
        // controller's (host: our cgroup; inside: the root), on v2 the one line.
        let cgroupRow = try #require(all.stdout.split(separator: "\n").first { $0.hasPrefix("  /proc/self/cgroup") }.map(String.init))
        let ours = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8).split(separator: "\n")
        if ours.count > 1, let memory = ours.first(where: { $0.split(separator: ":", omittingEmptySubsequences: false)[1] == "memory" }) {
            let path = memory.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)[2]
            #expect(cgroupRow.hasSuffix("memory:/ (+\(ours.count - 1) more)"), "\(cgroupRow)")
            #expect(cgroupRow.contains("memory:" + path.prefix(7)), "the host's memory line is not shown: \(cgroupRow)")
        } else {
            #expect(cgroupRow.hasSuffix("0::/"), "\(cgroupRow)")
        }
        let inodeRows = all.stdout.split(separator: "\n").filter { $0.hasPrefix("  ns/") }
        #expect(inodeRows.count == 8)
        let wide = all.stdout.split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "lines over 80 columns: \(wide)")
        #expect(inodeRows.allSatisfy { $0.hasSuffix("(new)") }, "\(inodeRows)")
        let one = try run(product("chapter-02"), ["--rootfs", rootfs.path, "--namespaces", "uts"])
        #expect(one.status == 0, "\(one)")
        let oneRows = one.stdout.split(separator: "\n").filter { $0.hasPrefix("  ns/") }
        #expect(oneRows.filter { $0.hasSuffix("(new)") }.count == 1)
        #expect(one.stdout.contains("chroot"))
    }
}

@Suite("Chapter 02 · command line")
struct Chapter02CommandLineTests {
    @Test("a bad --namespaces is a clear one-line error, and nothing is started")
    func badNamespaces() throws {
        let result = try run(product("chapter-02"), ["--namespaces", "uts,bogus", "--", "true"])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("chapter-02: unknown namespace 'bogus'"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        let empty = try run(product("chapter-02"), ["--namespaces", "", "--", "true"])
        #expect(empty.status == 1)
        #expect(empty.stderr.contains("--namespaces is empty"))
    }
}
