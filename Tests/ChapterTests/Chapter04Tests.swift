// Chapter 04: the OCI runtime's lifecycle, its errors, and the config fields, observed
// from outside (state, /proc, cgroup files) and from a probe inside the container.
import ArgumentParser
import Foundation
import Isolation
import RuntimeCLI
import SystemPackage
import Testing

/// A bundle in a temporary folder whose root.path is the built-in rootfs (read-only), and
/// a state root of its own, so tests never see each other's containers.
struct TestBundle {
    let folder: TemporaryFolder
    var path: String { folder.path + "/bundle" }
    var stateRoot: String { folder.path + "/state" }

    /// The default process outlives any test, also in the slow cgroup v2 VM (software
    /// emulation); every test deletes its containers with --force.
    init(_ purpose: String, args: [String] = ["sleep", "600"], edit: (inout OCIConfig) -> Void = { _ in }) throws {
        folder = try TemporaryFolder("ch04-\(purpose)")
        try FileManager.default.createDirectory(atPath: folder.path + "/bundle", withIntermediateDirectories: true)
        var config = OCIConfig.defaultSpec(args: args, cgroupNamespace: CgroupMode.detect() == .unified)
        config.root = OCIConfig.Root(path: try builtInRootfs(), readonly: true)
        edit(&config)
        try Data(config.encodedJSON()).write(to: URL(fileURLWithPath: path + "/config.json"))
    }

    /// Runs `chapter-04 --root STATE ARGS`, output to files: a created container's init
    /// inherits them, so reading pipes to their end would wait for the container.
    func runtime(_ arguments: [String], timeout: TimeInterval = 30) throws -> RunResult {
        try runWithOutputInFiles(product("chapter-04"), ["--root", stateRoot] + arguments, in: folder.path, timeout: timeout)
    }

    func state(_ id: String) throws -> [String: Any]? {
        let result = try runtime(["state", id])
        guard result.status == 0 else { return nil }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    }

    /// Polls until the container reaches `status` (a killed init takes a moment to go).
    func waitFor(_ id: String, _ status: String) throws -> Bool {
        for _ in 0..<200 {
            if try state(id)?["status"] as? String == status { return true }
            usleep(20_000)
        }
        return false
    }

    func remove() {
        _ = try? runtime(["delete", "--force", "lifecycle"])
        folder.remove()
    }
}

/// Whether a process has ended: gone, or a zombie waiting for whoever adopted it to reap it.
func processEnded(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
}

/// The project's cgroup directories for a container ID, on either cgroup version.
func containerCgroups(_ id: String) -> [String] {
    Cleanup.cgroupParents().map { $0.string + "/" + id }.filter { FileManager.default.fileExists(atPath: $0) }
}

@Suite("chapter-04: an OCI runtime", .serialized, .enabled(if: isRoot, "a runtime needs root"))
struct Chapter04Tests {
    @Test("spec → create → state → start → kill → delete, every state checked")
    func roundTrip() throws {
        let bundle = try TestBundle("lifecycle")
        defer { bundle.remove() }
        try FileManager.default.removeItem(atPath: bundle.path + "/config.json")
        let spec = try bundle.runtime(["spec", "--bundle", bundle.path])
        #expect(spec.status == 0, "\(spec)")
        let written = try OCIConfig.load(bundle: FilePath(bundle.path))
        #expect(written.process?.args == ["sh"])
        // runc's starter, plus the deny-list that the engines would otherwise add.
        #expect(written.linux?.seccomp == .containerDefault)
        // The test's own config again (sleep, the built-in rootfs).
        let again = try TestBundle("lifecycle-config")
        defer { again.folder.remove() }
        try FileManager.default.removeItem(atPath: bundle.path + "/config.json")
        try FileManager.default.copyItem(atPath: again.path + "/config.json", toPath: bundle.path + "/config.json")

        let pidFile = bundle.folder.path + "/pid"
        let create = try bundle.runtime(["create", "--bundle", bundle.path, "--pid-file", pidFile, "lifecycle"])
        #expect(create.status == 0, "\(create)")
        let created = try #require(try bundle.state("lifecycle"))
        #expect(created["status"] as? String == "created")
        #expect(created["id"] as? String == "lifecycle")
        #expect(created["bundle"] as? String == bundle.path)
        let pid = try #require(created["pid"] as? Int)
        #expect(try String(contentsOfFile: pidFile, encoding: .utf8) == "\(pid)")
        // From outside: the init is in new namespaces, in the container's cgroup, and
        // has not exec'd the process yet.
        let hostPID = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/pid") != hostPID)
        #expect(!containerCgroups("lifecycle").isEmpty)
        #expect(try !String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8).hasPrefix("sleep"))

        #expect(try bundle.runtime(["start", "lifecycle"]).status == 0)
        #expect(try bundle.state("lifecycle")?["status"] as? String == "running")
        #expect(try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8).hasPrefix("sleep\u{0}600"))
        #expect(try bundle.runtime(["start", "lifecycle"]).status != 0, "a running container started again")

        // delete of a running container fails and changes nothing.
        let refused = try bundle.runtime(["delete", "lifecycle"])
        #expect(refused.status != 0 && refused.stderr.contains("running"), "\(refused)")
        #expect(try bundle.state("lifecycle")?["status"] as? String == "running")

        #expect(try bundle.runtime(["kill", "lifecycle", "KILL"]).status == 0)
        #expect(try bundle.waitFor("lifecycle", "stopped"))
        let stopped = try #require(try bundle.state("lifecycle"))
        #expect(stopped["pid"] == nil)
        #expect(try bundle.runtime(["kill", "lifecycle", "9"]).status != 0, "kill of a stopped container must fail")

        #expect(try bundle.runtime(["delete", "lifecycle"]).status == 0)
        let gone = try bundle.runtime(["state", "lifecycle"])
        #expect(gone.status != 0 && gone.stderr.contains("does not exist"), "\(gone)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/lifecycle"))
        #expect(containerCgroups("lifecycle").isEmpty)
    }

    @Test("unknown and duplicate IDs are errors that change nothing")
    func ids() throws {
        let bundle = try TestBundle("ids")
        defer { _ = try? bundle.runtime(["delete", "--force", "dup"]); bundle.remove() }
        for command in [["start", "nope"], ["state", "nope"], ["kill", "nope"], ["delete", "nope"], ["pause", "nope"]] {
            let result = try bundle.runtime(command)
            #expect(result.status != 0 && result.stderr.contains("does not exist"), "\(command): \(result)")
        }
        // As runc: delete --force of a container that does not exist succeeds (podman
        // calls it after a create that failed), and leaves nothing.
        let forced = try bundle.runtime(["delete", "--force", "nope"])
        #expect(forced.status == 0 && forced.stderr.isEmpty, "\(forced)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/nope"))
        #expect(try bundle.runtime(["delete", "--force", "../escape"]).status != 0, "an invalid ID stays an error")
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "dup"]).status == 0)
        let second = try bundle.runtime(["create", "--bundle", bundle.path, "dup"])
        #expect(second.status != 0 && second.stderr.contains("already exists"), "\(second)")
        #expect(try bundle.state("dup")?["status"] as? String == "created", "the first container must be untouched")
        let invalid = try bundle.runtime(["create", "--bundle", bundle.path, "../escape"])
        #expect(invalid.status != 0 && invalid.stderr.contains("invalid container ID"))
        #expect(try bundle.runtime(["delete", "--force", "dup"]).status == 0)
        #expect(containerCgroups("dup").isEmpty)
    }

    @Test("bad bundles: clear errors, and no state folder, cgroup or mount left")
    func badBundles() throws {
        let bundle = try TestBundle("bad")
        defer { bundle.remove() }
        let config = bundle.path + "/config.json"
        func expectRejected(_ text: String, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            let result = try bundle.runtime(["create", "--bundle", bundle.path, "bad"])
            #expect(result.status != 0, "\(result)", sourceLocation: sourceLocation)
            #expect(result.stderr.contains(expected), "expected '\(expected)' in: \(result.stderr)", sourceLocation: sourceLocation)
            #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/bad"), sourceLocation: sourceLocation)
            #expect(containerCgroups("bad").isEmpty, sourceLocation: sourceLocation)
        }
        try expectRejected("{\"ociVersion\": \"1.2.0\", ", "not valid JSON")
        try expectRejected("{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"}, \"process\": {\"args\": \"sh\", \"cwd\": \"/\"}}", "process.args")
        try expectRejected("{\"ociVersion\": \"1.2.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"}}", "root")
        try expectRejected("{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"/nonexistent-rootfs\"}, \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"}, \"linux\": {\"namespaces\": [{\"type\": \"mount\"}]}}", "not a directory")
        // A mount destination that climbs out through a symlink in the root filesystem.
        let rootfs = bundle.folder.path + "/evil-rootfs"
        try FileManager.default.createDirectory(atPath: rootfs + "/proc", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: rootfs + "/evil", withDestinationPath: "../../../../../../../tmp")
        var evil = OCIConfig.defaultSpec(args: ["true"])
        evil.root = OCIConfig.Root(path: rootfs)
        evil.mounts = [OCIConfig.Mount(destination: "/evil/owned", type: "tmpfs", source: "tmpfs")]
        try expectRejected(String(decoding: evil.encodedJSON(), as: UTF8.self), "climbs out of the root filesystem")
        #expect(mounts(under: "/tmp/owned").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/owned"))
        // A command that does not exist: runc's words, which engines turn into 127.
        var missing = OCIConfig.defaultSpec(args: ["no-such-program"])
        missing.root = OCIConfig.Root(path: try builtInRootfs(), readonly: true)
        try expectRejected(String(decoding: missing.encodedJSON(), as: UTF8.self), "executable file not found")
        // systemd's cgroupsPath form (podman or containerd with the systemd manager).
        var systemd = OCIConfig.defaultSpec(args: ["true"])
        systemd.root = OCIConfig.Root(path: try builtInRootfs(), readonly: true)
        systemd.linux?.cgroupsPath = "system.slice:libpod:bad"
        try expectRejected(String(decoding: systemd.encodedJSON(), as: UTF8.self), "systemd's slice:prefix:name form")
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/system.slice:libpod:bad"))
        // A file that is not executable: found at create, with the words engines turn into 126.
        missing.process?.args = ["/etc/passwd"]
        try expectRejected(String(decoding: missing.encodedJSON(), as: UTF8.self), "/etc/passwd: permission denied")
        let run = try bundle.runtime(["run", "--bundle", bundle.path, "bad"])
        #expect(run.status == 126 && run.stderr.contains("permission denied"), "\(run)")
    }

    @Test("errors from paths name the path and the step: missing bundle, unreadable config, rootfs a file, state folder not writable")
    func pathErrors() throws {
        let bundle = try TestBundle("paths", args: ["true"])
        defer { bundle.remove() }
        func expectError(_ arguments: [String], _ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try bundle.runtime(arguments)
            #expect(result.status == 1, "\(result)", sourceLocation: sourceLocation)
            for text in expected {
                #expect(result.stderr.contains(text), "expected '\(text)' in: \(result.stderr)", sourceLocation: sourceLocation)
            }
            #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/p1"), sourceLocation: sourceLocation)
            #expect(containerCgroups("p1").isEmpty, sourceLocation: sourceLocation)
        }
        // A bundle that is not there: the path, the step, what a bundle is.
        let missing = bundle.folder.path + "/no/such/dir"
        try expectError(["create", "--bundle", missing, "p1"], ["create: the bundle \(missing) does not exist", "config.json"])
        // config.json that cannot be read (a directory where the file should be; root reads any file).
        let unreadable = bundle.folder.path + "/unreadable"
        try FileManager.default.createDirectory(atPath: unreadable + "/config.json", withIntermediateDirectories: true)
        try expectError(["create", "--bundle", unreadable, "p1"], ["cannot read \(unreadable)/config.json", "Is a directory"])
        // root.path names a file.
        let fileRoot = bundle.folder.path + "/rootfs-file"
        try "not a folder".write(toFile: fileRoot, atomically: true, encoding: .utf8)
        let config = bundle.path + "/config.json"
        let saved = try String(contentsOfFile: config, encoding: .utf8)
        var edited = try OCIConfig.decode(json: Array(saved.utf8))
        edited.root = OCIConfig.Root(path: fileRoot)
        try Data(edited.encodedJSON()).write(to: URL(fileURLWithPath: config))
        try expectError(["create", "--bundle", bundle.path, "p1"], ["root.path \(fileRoot) is not a directory"])
        try saved.write(toFile: config, atomically: true, encoding: .utf8)
        // A state folder (--root) that cannot be made: a file stands where its parent should be.
        let blocker = bundle.folder.path + "/blocker"
        try "a file".write(toFile: blocker, atomically: true, encoding: .utf8)
        let blocked = try run(product("chapter-04"), ["--root", blocker + "/state", "create", "--bundle", bundle.path, "p1"])
        let stderr = blocked.stderr
        #expect(blocked.status == 1, "\(blocked)")
        #expect(stderr.contains("making the state folder \(blocker)/state") && stderr.contains("ENOTDIR") && stderr.contains("--root"), "\(stderr)")
        #expect(containerCgroups("p1").isEmpty)
        #expect(try String(contentsOfFile: blocker, encoding: .utf8) == "a file")
    }

    @Test("config fields, seen from a probe inside the container")
    func fieldsFromInside() throws {
        let probe = """
        echo hostname=$(hostname); echo uid=$(id -u) gid=$(id -g) groups=$(id -G); echo pid=$$; echo cwd=$(pwd)
        echo env=$GREETING; echo nofile=$(ulimit -n)
        grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\\t ' ' '
        touch /cannot 2>/dev/null && echo rootfs=writable || echo rootfs=readonly
        echo 1 > /proc/sys/kernel/ostype 2>/dev/null && echo procsys=writable || echo procsys=readonly
        for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do [ -e $p ] && { [ -c $p ] && echo "masked $p:null" || echo "masked $p:file"; }; done
        grep -c ' /dev/shm ' /proc/self/mounts | sed 's/^/shm=/'
        cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null | head -1 | sed 's/^/memory=/'
        cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null | head -1 | sed 's/^/pids=/'
        """
        let bundle = try TestBundle("fields", args: ["sh", "-c", probe]) { config in
            config.hostname = "probe-host"
            config.process?.user = OCIConfig.User(uid: 1000, gid: 1000, additionalGids: [1001])
            config.process?.env?.append("GREETING=hello")
            config.process?.cwd = "/tmp"
            config.process?.rlimits = [OCIConfig.Rlimit(type: .openFiles, hard: 512, soft: 256)]
            config.linux?.resources = OCIConfig.Resources(memory: OCIConfig.Memory(limit: 100 << 20), pids: OCIConfig.Pids(limit: 42))
        }
        defer { bundle.remove() }
        let result = try run(product("chapter-04"), ["--root", bundle.stateRoot, "run", "--bundle", bundle.path, "fields"])
        #expect(result.status == 0, "\(result)")
        let seen = Dictionary(result.stdout.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { return (parts[0], parts[1]) }
            let words = line.split(separator: " ").map(String.init)
            return words.count == 2 ? (words[0], words[1]) : nil
        }, uniquingKeysWith: { a, _ in a })
        #expect(seen["hostname"] == "probe-host")
        #expect(result.stdout.contains("uid=1000 gid=1000 groups=1000 1001"), "\(result.stdout)")
        #expect(seen["pid"] == "1")
        #expect(seen["cwd"] == "/tmp")
        #expect(seen["env"] == "hello")
        #expect(seen["nofile"] == "256")
        // CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10): 0x20000420. As
        // uid 1000 without ambient capabilities, nothing is effective after execve.
        #expect(seen["CapBnd:"] == "0000000020000420", "\(result.stdout)")
        #expect(seen["CapEff:"] == "0000000000000000")
        #expect(seen["NoNewPrivs:"] == "1")
        #expect(seen["rootfs"] == "readonly")
        #expect(seen["procsys"] == "readonly")
        // maskedPaths: the files that exist are /dev/null now (a character device).
        let masked = result.stdout.split(separator: "\n").filter { $0.hasPrefix("masked ") }
        #expect(!masked.isEmpty && masked.allSatisfy { $0.hasSuffix(":null") }, "\(masked)")
        #expect(seen["shm"] == "1")
        #expect(seen["memory"] == "\(100 << 20)")
        #expect(seen["pids"] == "42")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/fields"), "run must delete the container")
        #expect(containerCgroups("fields").isEmpty)
    }

    @Test("linux.namespaces[].path: mount, uts and ipc namespaces held by another process are joined, not made")
    func joinNamespacesByPath() throws {
        // A holder on the host with its own mount, UTS and IPC namespaces (unshare(1)),
        // as a pod's infrastructure container would be. Its mount namespace is a copy of
        // the host's, so the bundle's rootfs is visible there.
        let holder = try TestProcess("/usr/bin/unshare", ["--mount", "--uts", "--ipc", "--propagation", "private", "sh", "-c", "hostname held-by-holder; exec sleep 600"])
        defer { holder.stop() }
        let held = holder.pid
        func inode(_ pid: pid_t, _ kind: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)") }
        for _ in 0..<200 where inode(held, "uts") == inode(getpid(), "uts") || (try? String(contentsOfFile: "/proc/\(held)/comm", encoding: .utf8)) != "sleep\n" { usleep(10_000) }

        let bundle = try TestBundle("nspath") { config in
            config.hostname = nil
            let namespaces = config.linux?.namespaces ?? []
            config.linux?.namespaces = namespaces.map { namespace in
                switch namespace.type {
                case .mount, .uts, .ipc: return OCIConfig.Namespace(type: namespace.type, path: "/proc/\(held)/ns/\(namespace.type.kind.procName)")
                default: return namespace
                }
            }
        }
        defer { _ = try? bundle.runtime(["delete", "--force", "nspath"]); bundle.remove() }
        let create = try bundle.runtime(["create", "--bundle", bundle.path, "nspath"])
        #expect(create.status == 0, "\(create)")
        let pid = pid_t(try #require(try bundle.state("nspath")?["pid"] as? Int))
        for kind in ["mnt", "uts", "ipc"] {
            #expect(inode(pid, kind) == inode(held, kind), "\(kind): the container is in the holder's namespace")
            #expect(inode(pid, kind) != inode(getpid(), kind), "\(kind): not the host's")
        }
        #expect(inode(pid, "pid") != inode(getpid(), "pid"), "a namespace without a path is still made new")
        // The container's rootfs mounts live in the holder's mount namespace, not ours.
        let hostMounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!hostMounts.contains(bundle.folder.path), "\(hostMounts)")
        #expect(try bundle.runtime(["delete", "--force", "nspath"]).status == 0)
        #expect(containerCgroups("nspath").isEmpty && processEnded(pid), "the container is gone with its cgroup")
        // A path to a namespace of another type is refused (setns checks the type).
        let wrong = try TestBundle("nspath-wrong") { config in
            let namespaces = config.linux?.namespaces ?? []
            config.linux?.namespaces = namespaces.map { namespace in
                namespace.type == .uts ? OCIConfig.Namespace(type: .uts, path: "/proc/\(held)/ns/ipc") : namespace
            }
        }
        defer { wrong.remove() }
        let refused = try wrong.runtime(["create", "--bundle", wrong.path, "wrong"])
        #expect(refused.status != 0 && refused.stderr.contains("setns"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: wrong.stateRoot + "/wrong"))
        #expect(containerCgroups("wrong").isEmpty)
    }

    @Test("linux.resources.devices: deny all, then the defaults and linux.devices; a node made with CAP_MKNOD cannot be opened")
    func deviceRules() throws {
        // Root in the container with CAP_MKNOD can make any node; the device controller
        // decides which ones open. 1:5 is /dev/zero (a default), 10:237 loop-control is not
        // allowed: EPERM before any driver is asked. 1:7 /dev/full comes from linux.devices.
        let probe = "exec 2>&1; mknod /dev/z c 1 5 && (exec 3</dev/z) && echo zero-node-opened; "
            + "mknod /dev/lc c 10 237 && { (exec 3</dev/lc) || echo loop-control-refused; }; "
            + "(exec 3</dev/extra-full) && echo extra-opened; (exec 3</dev/null) && echo null-opened"
        let bundle = try TestBundle("devices", args: ["sh", "-c", probe]) { config in
            config.process?.capabilities = OCIConfig.Capabilities(bounding: ["CAP_MKNOD"], effective: ["CAP_MKNOD"], permitted: ["CAP_MKNOD"])
            config.linux?.devices = [OCIConfig.Device(type: .character, path: "/dev/extra-full", major: 1, minor: 7, fileMode: 0o666)]
            #expect(config.linux?.resources?.devices == [OCIConfig.DeviceRule(allow: false, access: "rwm")], "the default spec denies every device")
        }
        defer { bundle.remove() }
        let result = try run(product("chapter-04"), ["--root", bundle.stateRoot, "run", "--bundle", bundle.path, "devices"])
        #expect(result.status == 0, "\(result)")
        for line in ["zero-node-opened", "loop-control-refused", "extra-opened", "null-opened"] {
            #expect(result.stdout.contains(line), "\(line): \(result.stdout)")
        }
        #expect(result.stdout.contains("Operation not permitted"), "\(result.stdout)")

        let invalid = try TestBundle("devices-bad") { config in
            config.linux?.resources?.devices = [OCIConfig.DeviceRule(allow: true, type: .character, major: 1, minor: 3, access: "rwx")]
        }
        defer { invalid.remove() }
        let refused = try invalid.runtime(["create", "--bundle", invalid.path, "bad"])
        #expect(refused.status != 0 && refused.stderr.contains("linux.resources.devices[0].access"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: invalid.stateRoot + "/bad") && containerCgroups("bad").isEmpty)
    }

    @Test("process.apparmorProfile on a host without AppArmor: a clear error at create, nothing left", .enabled(if: !AppArmor.isEnabled(), "this host has AppArmor: the AppArmor suite confines a container for real"))
    func apparmorUnavailable() throws {
        let bundle = try TestBundle("apparmor") { $0.process?.apparmorProfile = "containers-default-0.50.1" }
        defer { bundle.remove() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "aa"])
        #expect(result.status != 0 && result.stderr.contains("AppArmor is not enabled on this host"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/aa") && containerCgroups("aa").isEmpty)
    }

    @Test("exec joins a running container: its namespaces, its cgroup, another user; ps, pause and resume")
    func execPsPause() throws {
        let bundle = try TestBundle("exec")
        defer { _ = try? bundle.runtime(["delete", "--force", "ex"]); bundle.remove() }
        #expect(try bundle.runtime(["run", "--detach", "--bundle", bundle.path, "ex"]).status == 0)
        #expect(try bundle.state("ex")?["status"] as? String == "running")
        let initPID = try #require(try bundle.state("ex")?["pid"] as? Int)

        let me = getpid()
        let probe = try bundle.runtime(["exec", "ex", "sh", "-c", "echo pid=$$; hostname; echo \"$(tr '\\0' ' ' < /proc/1/cmdline)\"; test -d /proc/\(me) && echo host-visible || echo host-hidden"])
        #expect(probe.status == 0, "\(probe)")
        let lines = probe.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "pid=2", "the exec'd shell is PID 2 of the container: \(probe.stdout)")
        #expect(lines.dropFirst().first == "container")
        #expect(lines.dropFirst(2).first?.hasPrefix("sleep 600") == true)
        #expect(lines.last == "host-hidden", "the test process must not be visible from the container: \(probe.stdout)")

        let user = try bundle.runtime(["exec", "-u", "1000:1000", "-e", "FOO=bar", "--cwd", "/tmp", "ex", "sh", "-c", "echo $(id -u):$(id -g):$FOO:$(pwd); exit 7"])
        #expect(user.status == 7, "the exec'd process's status is exec's: \(user)")
        #expect(user.stdout == "1000:1000:bar:/tmp\n")
        let missing = try bundle.runtime(["exec", "ex", "no-such-program"])
        #expect(missing.status == 127 && missing.stderr.contains("executable file not found"), "\(missing)")
        // A process.json as Docker writes it, with oomScoreAdj: the score is written
        // before exec joins the PID namespace, whose /proc has no entry for exec itself.
        let processFile = bundle.folder.path + "/process.json"
        try Data(#"{"args": ["cat", "/proc/self/oom_score_adj"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"], "oomScoreAdj": 321}"#.utf8)
            .write(to: URL(fileURLWithPath: processFile))
        let scored = try bundle.runtime(["exec", "--process", processFile, "ex"])
        #expect(scored.status == 0 && scored.stdout == "321\n", "\(scored)")
        // exec's errors reach --log, though exec is inside the container's root by then;
        // a missing working directory is an error (ENOENT, as runc's), not made.
        let log = bundle.folder.path + "/exec-log.json"
        let noDirectory = try bundle.runtime(["--log", log, "--log-format", "json", "exec", "--cwd", "/no-such-directory", "ex", "pwd"])
        let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(noDirectory.status != 0 && logged.hasPrefix(#"{"level":"error","msg":"chdir(\"/no-such-directory\") failed: No such file or directory (ENOENT)"#),
                "\(noDirectory)\nlog: \(logged)")

        let pidFile = bundle.folder.path + "/exec.pid"
        #expect(try bundle.runtime(["exec", "--detach", "--pid-file", pidFile, "ex", "sh", "-c", "sleep 20"]).status == 0)
        let execPID = try #require(Int(try String(contentsOfFile: pidFile, encoding: .utf8)))
        let ps = try bundle.runtime(["ps", "--format", "json", "ex"])
        let pids = try JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [Int] ?? []
        #expect(Set(pids) == [initPID, execPID], "\(ps.stdout)")

        #expect(try bundle.runtime(["pause", "ex"]).status == 0)
        #expect(try bundle.state("ex")?["status"] as? String == "paused")
        let frozen = try String(contentsOfFile: "/proc/\(execPID)/status", encoding: .utf8)
        #expect(frozen.contains("State:\tD") || frozen.contains("State:\tS") || frozen.contains("(frozen)") || frozen.contains("State:\tT"), "\(frozen)")
        #expect(try bundle.runtime(["exec", "ex", "true"]).status != 0, "exec into a paused container must fail")
        #expect(try bundle.runtime(["resume", "ex"]).status == 0)
        #expect(try bundle.state("ex")?["status"] as? String == "running")
        #expect(try bundle.runtime(["delete", "--force", "ex"]).status == 0)
        #expect(containerCgroups("ex").isEmpty)
        #expect(kill(pid_t(execPID), 0) != 0, "the exec'd process must be gone with the container")
    }

    /// exec joins the user namespace first, and is not in the container's PID namespace
    /// itself (only its child is): it cannot read /proc/self/setgroups there, so it reads
    /// the init's on the host. Before, it called setgroups(2) where the namespace denies it
    /// and every exec into a user-namespaced container failed with EPERM.
    @Test("exec into a container with a user namespace: root inside, uid 100000 on the host")
    func execWithUserNamespace() throws {
        let bundle = try TestBundle("exec-userns") { config in
            config.linux?.namespaces?.append(OCIConfig.Namespace(type: .user))
            config.linux?.uidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 100_000, size: 65536)]
            config.linux?.gidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 100_000, size: 65536)]
        }
        defer { _ = try? bundle.runtime(["delete", "--force", "exu"]); bundle.remove() }
        let started = try bundle.runtime(["run", "--detach", "--bundle", bundle.path, "exu"])
        try #require(started.status == 0, "\(started)")
        let inside = try bundle.runtime(["exec", "exu", "sh", "-c", "id -u; id -g; cat /proc/self/uid_map"])
        #expect(inside.status == 0, "\(inside)")
        let words = inside.stdout.split(whereSeparator: \.isWhitespace).map(String.init)
        #expect(words == ["0", "0", "0", "100000", "65536"], "\(inside)")
        let pidFile = bundle.folder.path + "/exec.pid"
        #expect(try bundle.runtime(["exec", "--detach", "--pid-file", pidFile, "exu", "sleep", "20"]).status == 0)
        let execPID = try #require(Int(try String(contentsOfFile: pidFile, encoding: .utf8)))
        let status = try String(contentsOfFile: "/proc/\(execPID)/status", encoding: .utf8)
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(whereSeparator: \.isWhitespace).dropFirst().first
        #expect(uid == "100000", "from the host the exec'd process is uid 100000: \(status)")
        let initPID = try #require(try bundle.state("exu")?["pid"] as? Int)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(execPID)/ns/user")
                == FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(initPID)/ns/user"))
    }

    @Test("hooks: in the spec's order, each with the state on stdin; failures abort or warn as the spec says")
    func hooks() throws {
        let folder = try TemporaryFolder("ch04-hooks")
        defer { folder.remove() }
        let log = folder.path + "/hooks.log"
        // A host hook: appends its stage and the state it read on stdin to the log.
        func hostHook(_ stage: String) -> OCIConfig.Hook {
            OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "read -r state; echo \"\(stage) $state\" >> \(log)"])
        }
        let bundle = try TestBundle("hooks", args: ["sh", "-c", "echo process-runs"]) { config in
            config.hooks = OCIConfig.Hooks(
                prestart: [hostHook("prestart")], createRuntime: [hostHook("createRuntime")],
                createContainer: [hostHook("createContainer")],
                // startContainer runs inside the container: its path is the container's /bin/sh.
                startContainer: [OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "read -r state; echo \"startContainer in $(hostname)\""])],
                poststart: [hostHook("poststart"), OCIConfig.Hook(path: "/bin/false")],
                poststop: [hostHook("poststop")])
        }
        defer { bundle.remove() }
        let result = try run(product("chapter-04"), ["--root", bundle.stateRoot, "run", "--bundle", bundle.path, "hooked"])
        #expect(result.status == 0, "a failing poststart hook must only warn: \(result)")
        #expect(result.stderr.contains("warning") && result.stderr.contains("poststart"), "\(result)")
        #expect(result.stdout.contains("startContainer in container\nprocess-runs"), "\(result)")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.map { String($0.split(separator: " ")[0]) } == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"], "\(lines)")
        // Each got the state JSON, with the container's ID and the status of its moment.
        for line in lines { #expect(line.contains("\"id\":\"hooked\"") || line.contains("\"id\" : \"hooked\""), "\(line)") }
        // prestart (deprecated, once run "after start") sees `created`; createRuntime the truth, `creating`.
        #expect(lines[0].contains("created") && lines[1].contains("creating") && lines[3].contains("running") && lines[4].contains("stopped"), "\(lines)")

        // A createRuntime hook that hangs past its timeout aborts create, leaving nothing.
        let hanging = try TestBundle("hooks-hang") { config in
            config.hooks = OCIConfig.Hooks(createRuntime: [OCIConfig.Hook(path: "/bin/sleep", args: ["sleep", "600"], timeout: 1)])
        }
        defer { hanging.remove() }
        let started = Date()
        let refused = try hanging.runtime(["create", "--bundle", hanging.path, "hang"])
        #expect(refused.status != 0 && refused.stderr.contains("timed out"), "\(refused)")
        // Cut by its timeout, not by its end: far below the hook's 600 s, even in the slow VM.
        #expect(Date().timeIntervalSince(started) < 120)
        #expect(!FileManager.default.fileExists(atPath: hanging.stateRoot + "/hang"))
        #expect(containerCgroups("hang").isEmpty)
    }

    @Test("seccomp: a named syscall is refused, one argument test is honoured, the rest allowed", arguments: [true, false])
    func seccomp(noNewPrivileges: Bool) throws {
        let probe = """
        touch /dev/shm/f; chmod 600 /dev/shm/f 2>/dev/null && echo chmod=allowed || echo chmod=denied
        kill -0 $$ 2>/dev/null && echo signal0=allowed || echo signal0=denied
        kill -CONT $$ 2>/dev/null && echo cont=allowed || echo cont=denied
        grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t'
        """
        let bundle = try TestBundle("seccomp", args: ["sh", "-c", probe]) { config in
            config.process?.noNewPrivileges = noNewPrivileges
            config.linux?.seccomp = OCIConfig.Seccomp(
                defaultAction: .allow, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                syscalls: [
                    OCIConfig.Syscall(names: ["chmod", "fchmod", "fchmodat", "fchmodat2", "no_such_call"], action: .errno, errnoRet: 1),
                    // kill(pid, 0) only: argument 1 equal to 0.
                    OCIConfig.Syscall(names: ["kill"], action: .errno, errnoRet: 1,
                                      args: [OCIConfig.SyscallArgument(index: 1, value: 0, op: .equal)]),
                ])
        }
        defer { bundle.remove() }
        let result = try run(product("chapter-04"), ["--root", bundle.stateRoot, "run", "--bundle", bundle.path, "filtered"])
        #expect(result.status == 0, "\(result)")
        let lines = Set(result.stdout.split(separator: "\n").map(String.init))
        #expect(lines.isSuperset(of: ["chmod=denied", "signal0=denied", "cont=allowed", "Seccomp:2"]), "\(result.stdout)")
        #expect(lines.contains("NoNewPrivs:\(noNewPrivileges ? 1 : 0)"))
    }

    @Test("the lesson piped into a reader that stops early (head, less quit) still removes its bundle, state, container and cgroup")
    func lessonIntoClosedPipe() throws {
        func leftovers() -> Set<String> {
            let temporary = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
            let folders = temporary.filter { $0.hasPrefix("isolation-bundle-") || $0.hasPrefix("isolation-state-") }
            let cgroups = Cleanup.cgroupParents().flatMap { parent in
                ((try? FileManager.default.contentsOfDirectory(atPath: parent.string)) ?? []).filter { $0.hasPrefix("lesson-") }
            }
            return Set(folders + cgroups)
        }
        let before = leftovers()
        // The shell waits for both ends of the pipe: when it returns, the lesson has ended.
        let result = try run("/bin/sh", ["-c", "\"$0\" | head -c 300 > /dev/null", product("chapter-04")], environment: ["NO_COLOR": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        #expect(result.status == 0, "\(result)")
        #expect(leftovers().subtracting(before).isEmpty, "left behind: \(leftovers().subtracting(before))")
    }

    @Test("the lesson: the bundle's config, the steps timed, created → running → stopped")
    func lesson() throws {
        let result = try run(product("chapter-04"), [], timeout: 60)
        #expect(result.status == 0, "\(result)")
        for expected in ["config.json", "pivot_root", "cap_set_proc", "each stage took", "state: created", "state: running",
                         "state: stopped", "hello from oci-lesson, PID 1", "deleted"] {
            #expect(result.stdout.contains(expected), "the lesson lacks \(expected)")
        }
        #expect(!result.stdout.contains("Error"))
        // The fields the step is about, one line each, not the whole file; 80 columns.
        for field in ["process.args: [\"sh\", \"-c\"", "linux.namespaces: pid, network, ipc, uts, mount", "  /proc                proc",
                      "linux.resources: memory.limit 128 MiB, pids.limit 64", "--verbose shows the whole file"] {
            #expect(result.stdout.contains(field), "the summary lacks \(field)")
        }
        #expect(!result.stdout.contains("\"maskedPaths\"") && !result.stdout.contains("\"capabilities\""), "the whole config.json is shown")
        let wide = result.stdout.split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "lines over 80 columns: \(wide)")
        let verbose = try run(product("chapter-04"), ["--verbose"], timeout: 60)
        #expect(verbose.status == 0 && verbose.stdout.contains("\"maskedPaths\"") && verbose.stdout.contains("\"capabilities\""), "\(verbose)")
    }

    @Test("chapter-04 -- COMMAND: run in the lesson's bundle by the runtime (own hostname, PID 1), its status kept, nothing left")
    func command() throws {
        func leftovers() -> Set<String> {
            let temporary = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
            let cgroups = Cleanup.cgroupParents().flatMap { parent in
                ((try? FileManager.default.contentsOfDirectory(atPath: parent.string)) ?? []).filter { $0.hasPrefix("command-") }
            }
            return Set(temporary.filter { $0.hasPrefix("isolation-bundle-") || $0.hasPrefix("isolation-state-") } + cgroups)
        }
        let before = leftovers()
        let echo = try run(product("chapter-04"), ["--", "echo", "hi"], timeout: 60)
        #expect(echo.status == 0 && echo.stdout == "hi\n", "\(echo)")
        let inside = try run(product("chapter-04"), ["--", "sh", "-c", "echo $(hostname) $$; exit 7"], timeout: 60)
        #expect(inside.status == 7, "\(inside)")
        #expect(inside.stdout == "oci-lesson 1\n", "\(inside)")
        let missing = try run(product("chapter-04"), ["--", "no-such-program"], timeout: 60)
        #expect(missing.status == 127 && missing.stderr.contains("no-such-program"), "\(missing)")
        #expect(leftovers().subtracting(before).isEmpty, "left behind: \(leftovers().subtracting(before))")
    }
}

/// A console socket server, as conmon and containerd's shim are: receives the pty master
/// over SCM_RIGHTS, types into it, and prints what the container wrote.
/// An engine's end of --console-socket, in python3 (as conmon would be): it accepts one
/// connection, takes the pty master that arrives with SCM_RIGHTS, types a line into it and
/// prints everything the container writes until it closes.
struct ConsoleServer {
    let socketPath: String
    let process: TestProcess

    init(in folder: TemporaryFolder) throws {
        socketPath = folder.path + "/console.sock"
        try consoleServer.write(toFile: folder.path + "/server.py", atomically: true, encoding: .utf8)
        process = try TestProcess(python3!, [folder.path + "/server.py", socketPath])
        for _ in 0..<3000 where !FileManager.default.fileExists(atPath: socketPath) && process.isRunning { usleep(10_000) }
    }

    /// What the server saw, once the container closed its terminal (at most two minutes).
    func output() -> String {
        process.wait(timeout: 120)
        return process.stdout
    }

    func stop() { process.stop() }
}

let consoleServer = """
import os, socket, sys, time
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
print("listening", flush=True)
server.settimeout(120)  # a runtime that never connects ends the test, not the suite
connection, _ = server.accept()
message, fds, _, _ = socket.recv_fds(connection, 1024, 1)
master = fds[0]
print("slave=" + message.decode(), flush=True)
os.write(master, b"typed-in\\n")
data = b""
deadline = time.time() + 20
while time.time() < deadline:
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
print(data.decode(errors="replace"), flush=True)
"""

let python3: String? = ["/usr/bin/python3", "/usr/local/bin/python3", "/root/.pyenv/shims/python3"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

@Suite("chapter-04: terminals", .enabled(if: isRoot && python3 != nil, "needs root, and python3 for the console socket server"))
struct Chapter04TerminalTests {
    @Test("process.terminal: the pty's master arrives over --console-socket; the process has a terminal")
    func consoleSocket() throws {
        let probe = "read line; echo \"got $line\"; tty; test -t 0 && echo stdin-is-a-tty; stty size"
        let bundle = try TestBundle("tty", args: ["sh", "-c", probe]) { config in
            config.process?.terminal = true
            config.process?.consoleSize = OCIConfig.ConsoleSize(height: 33, width: 99)
        }
        defer { bundle.remove() }
        let console = try ConsoleServer(in: bundle.folder)
        defer { console.stop() }
        let socketPath = console.socketPath

        let result = try bundle.runtime(["run", "--console-socket", socketPath, "--bundle", bundle.path, "tty"])
        #expect(result.status == 0, "\(result)")
        let seen = console.output()
        #expect(seen.contains("slave=/dev/pts/0"), "the container's own devpts numbers from 0: \(seen)")
        #expect(seen.contains("got typed-in"), "\(seen)")
        #expect(seen.contains("/dev/pts/0\r\nstdin-is-a-tty"), "\(seen)")
        #expect(seen.contains("33 99"), "consoleSize: \(seen)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/tty"))
    }

    @Test("exec --tty: a new pty from the container's devpts, its master over --console-socket, the controlling terminal of the process")
    func execTerminal() throws {
        let bundle = try TestBundle("exec-tty")
        defer { _ = try? bundle.runtime(["delete", "--force", "et"]); bundle.remove() }
        #expect(try bundle.runtime(["run", "--detach", "--bundle", bundle.path, "et"]).status == 0)
        let console = try ConsoleServer(in: bundle.folder)
        defer { console.stop() }
        let socketPath = console.socketPath

        // `ps -o pid,tty` would need procps; the shell's /proc/PID/stat: tty_nr (field 7) and the
        // session (field 6) say the same: a controlling terminal, and we lead its session.
        let probe = "read line; echo \"got $line\"; tty; test -t 0 && echo stdin-is-a-tty; "
            + "set -- $(cat /proc/$$/stat); echo \"session=$6 me=$1 tty_nr=$7\"; id -u; exit 3"
        let result = try bundle.runtime(["exec", "--tty", "--console-socket", socketPath, "-u", "1000:1000", "et", "sh", "-c", probe])
        #expect(result.status == 3, "exec's status is the process's: \(result)")
        let seen = console.output()
        #expect(seen.contains("slave=/dev/pts/"), "\(seen)")
        #expect(seen.contains("got typed-in"), "\(seen)")
        #expect(seen.contains("stdin-is-a-tty"), "\(seen)")
        #expect(seen.contains("\r\n1000\r\n"), "the process runs as -u 1000: \(seen)")
        let fields = seen.components(separatedBy: "session=").last?.split(separator: " ") ?? []
        let session = fields.first.map(String.init), me = fields.dropFirst().first.map { String($0.dropFirst(3)) }
        #expect(session != nil && session == me, "the exec'd process leads its own session: \(seen)")
        #expect(!seen.contains("tty_nr=0\r"), "it has a controlling terminal: \(seen)")
        // What the engine must not be told to do: a terminal needs a socket, and back.
        let noSocket = try bundle.runtime(["exec", "--tty", "et", "true"])
        #expect(noSocket.status != 0 && noSocket.stderr.contains("--console-socket"), "\(noSocket)")
        #expect(try bundle.runtime(["delete", "--force", "et"]).status == 0)
    }

    @Test("a terminal without a console socket, or a socket without a terminal, is a clear error")
    func mismatch() throws {
        let withTerminal = try TestBundle("tty-missing") { $0.process?.terminal = true }
        defer { withTerminal.remove() }
        let noSocket = try withTerminal.runtime(["create", "--bundle", withTerminal.path, "t1"])
        #expect(noSocket.status != 0 && noSocket.stderr.contains("--console-socket"), "\(noSocket)")
        let plain = try TestBundle("tty-extra")
        defer { plain.remove() }
        let extra = try plain.runtime(["create", "--console-socket", "/nonexistent.sock", "--bundle", plain.path, "t2"])
        #expect(extra.status != 0 && extra.stderr.contains("process.terminal is false"), "\(extra)")
        #expect(!FileManager.default.fileExists(atPath: plain.stateRoot + "/t2"))
    }
}

// Read by chapter 05, which shows what engines call.
extension Chapter04Tests {
    @Test("the call log: with <root>/calls.log present, each call is one line naming its caller; absent, nothing is written")
    func callLog() throws {
        let bundle = try TestBundle("calls")
        defer { bundle.remove() }
        _ = try bundle.runtime(["state", "quiet"])
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/calls.log"), "the log is never created by the runtime")
        try FileManager.default.createDirectory(atPath: bundle.stateRoot, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: bundle.stateRoot + "/calls.log", contents: nil)
        _ = try bundle.runtime(["state", "nope"])
        _ = try bundle.runtime(["delete", "--force", "nope"])
        let lines = try String(contentsOfFile: bundle.stateRoot + "/calls.log", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2, "\(lines)")
        // The caller is this test process: its name as the kernel knows it (15 characters at most).
        let me = String((try String(contentsOfFile: "/proc/self/comm", encoding: .utf8)).dropLast())
        #expect(lines.first?.hasSuffix("\(me)[\(getpid())] → --root \(bundle.stateRoot) state nope") == true, "\(lines)")
        #expect(lines.last?.hasSuffix(" → --root \(bundle.stateRoot) delete --force nope") == true, "\(lines)")
        // create: one line; the container's init (this program again, `init …`) is not a call.
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "logged"]).status == 0)
        #expect(try bundle.runtime(["delete", "--force", "logged"]).status == 0)
        let all = try String(contentsOfFile: bundle.stateRoot + "/calls.log", encoding: .utf8).split(separator: "\n")
        #expect(all.count == 4 && all[2].hasSuffix(" create --bundle \(bundle.path) logged") && !all.contains { $0.contains(" → init ") }, "\(all)")
    }

    @Test("process.capabilities {} (podman --cap-drop all): every set empty, the bounding set too, so root's execve gains nothing")
    func emptyCapabilities() throws {
        let bundle = try TestBundle("nocaps", args: ["sh", "-c", "grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"]) { config in
            config.process?.capabilities = OCIConfig.Capabilities()
            config.process?.noNewPrivileges = false
        }
        defer { bundle.remove() }
        let result = try bundle.runtime(["run", "--bundle", bundle.path, "nocaps"])
        #expect(result.status == 0 && result.stdout == "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n", "\(result)")
    }
}

/// AppArmor needs a kernel with it on and apparmor_parser to load a profile: the cgroup v2
/// VM lane (Debian's kernel) has both; this host has neither.
let apparmorParser = "/usr/sbin/apparmor_parser"
let canLoadAppArmorProfiles = isRoot && AppArmor.isEnabled() && FileManager.default.isExecutableFile(atPath: apparmorParser)
    && FileManager.default.fileExists(atPath: "/sys/kernel/security/apparmor/.replace")

@Suite("chapter-04: AppArmor", .enabled(if: canLoadAppArmorProfiles, "needs AppArmor on in the kernel, securityfs and apparmor_parser (apt install apparmor); the cgroup v2 VM lane has them"))
struct Chapter04AppArmorTests {
    @Test("process.apparmorProfile: the process runs confined (attr/current names the profile), and what the profile denies fails")
    func confined() throws {
        let folder = try TemporaryFolder("ch04-apparmor")
        defer { folder.remove() }
        let name = "isolation-test-\(getpid())"
        // Everything allowed but reading /etc/passwd: what the container can still do
        // shows the profile is the one we wrote, not a blanket refusal.
        let profile = """
        profile \(name) flags=(attach_disconnected,mediate_deleted) {
          /** rwlkmix,
          capability,
          network,
          signal,
          deny /etc/passwd r,
        }
        """
        try profile.write(toFile: folder.path + "/profile", atomically: true, encoding: .utf8)
        let load = try run(apparmorParser, ["-r", folder.path + "/profile"])
        try #require(load.status == 0, "apparmor_parser could not load the profile: \(load)")
        defer { _ = try? run(apparmorParser, ["-R", folder.path + "/profile"]) }

        let probe = "cat /proc/self/attr/current; echo; cat /etc/passwd > /dev/null 2>&1 && echo passwd-read || echo passwd-denied; "
            + "cat /etc/group > /dev/null && echo group-read"
        let bundle = try TestBundle("apparmor-on", args: ["sh", "-c", probe]) { $0.process?.apparmorProfile = name }
        defer { bundle.remove() }
        let result = try run(product("chapter-04"), ["--root", bundle.stateRoot, "run", "--bundle", bundle.path, "aa"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("\(name) (enforce)"), "the process's profile: \(result.stdout)")
        #expect(result.stdout.contains("passwd-denied") && result.stdout.contains("group-read"), "\(result.stdout)")

        // And exec: the new process is confined too.
        let running = try TestBundle("apparmor-exec") { $0.process?.apparmorProfile = name }
        defer { _ = try? running.runtime(["delete", "--force", "aa-exec"]); running.remove() }
        #expect(try running.runtime(["run", "--detach", "--bundle", running.path, "aa-exec"]).status == 0)
        let exec = try running.runtime(["exec", "aa-exec", "sh", "-c", probe])
        #expect(exec.stdout.contains("\(name) (enforce)") && exec.stdout.contains("passwd-denied"), "\(exec)")
        #expect(try running.runtime(["delete", "--force", "aa-exec"]).status == 0)
    }
}

@Suite("chapter-04: the command line")
struct Chapter04CommandLineTests {
    @Test("the command names spelled out for the fast start are the commands' own")
    func commandNames() {
        // RuntimeCommands.arguments moves global options after the command it finds by
        // name; a command added to `all` but not to `commandNames` would lose them.
        #expect(RuntimeCommands.commandNames == RuntimeCommands.all.map { $0._commandName })
    }

    /// A root command like isorun's, for ArgumentParser to read the same lines.
    struct Root: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "isorun", subcommands: RuntimeCommands.all)
    }

    /// Every field the commands read, in one line, to compare two readings.
    static func fields(_ command: any ParsableCommand) -> String {
        func globals(_ g: GlobalOptions) -> String { "root=\(g.root) log=\(g.log ?? "-") format=\(g.logFormat) debug=\(g.debug) criu=\(g.criu ?? "-") rootless=\(g.rootless ?? "-")" }
        switch command {
        case let c as Create: return "create \(globals(c.globals)) bundle=\(c.bundle) pid=\(c.pidFile ?? "-") console=\(c.consoleSocket ?? "-") fds=\(c.preserveFDs) nopivot=\(c.noPivot) keyring=\(c.noNewKeyring) id=\(c.id)"
        case let c as Run: return "run \(globals(c.globals)) bundle=\(c.bundle) pid=\(c.pidFile ?? "-") console=\(c.consoleSocket ?? "-") detach=\(c.detach) id=\(c.id)"
        case let c as Start: return "start \(globals(c.globals)) id=\(c.id)"
        case let c as RuntimeCLI.State: return "state \(globals(c.globals)) id=\(c.id)"
        case let c as Delete: return "delete \(globals(c.globals)) force=\(c.force) id=\(c.id)"
        case let c as Kill: return "kill \(globals(c.globals)) all=\(c.all) id=\(c.id) signal=\(c.signal)"
        default: return "other \(type(of: command))"
        }
    }

    @Test("the commands engines call, read by hand (FastCommandLine) and by ArgumentParser, agree", arguments: [
        // podman (through conmon), containerd's shim, runtime-tools, the benchmark
        "--root /run/r --log /run/r/log --log-format json create --bundle /b --pid-file /p --console-socket /s c1",
        "--root=/run/r --log-format=text --debug create -b /b --preserve-fds 2 --no-pivot --no-new-keyring c1",
        "create --bundle=/b c1 --pid-file=/p",
        "--root /run/r start c1", "start c1 --root /run/r",
        "--root /run/r state c1",
        "--root /run/r kill c1", "--root /run/r kill --all c1 9", "kill -a c1 SIGKILL", "--log /l kill c1 KILL",
        "--root /run/r delete c1", "--root /run/r delete --force c1", "delete -f c1",
        "--root /run/r run --bundle /b -d c1", "run c1", "run --detach --pid-file /p --console-socket /s c1",
        "--criu /x --rootless false state c1",
    ])
    func fastReaderAgrees(line: String) throws {
        let words = line.split(separator: " ").map(String.init)
        let fast = try #require(FastCommandLine.parse(words), "the fast reader left \(line) to ArgumentParser")
        let parsed = try Root.parseAsRoot(RuntimeCommands.arguments(words))
        #expect(Self.fields(fast) == Self.fields(parsed))
    }

    @Test("help, mistakes and other commands are left to ArgumentParser, which explains them", arguments: [
        "", "--help", "create --help", "-h", "create", "start", "kill", "kill c1 9 extra", "start c1 c2",
        "--log-format xml state c1", "--systemd-cgroup create c1", "create --preserve-fds two c1", "delete -fa c1",
        "create --force c1", "state --bundle /b c1", "--bundle /b state c1", "list", "spec", "exec c1 true", "lesson",
        "create -- c1", "--root", "create --unknown c1", "--root /a --root /b state c1",
        "--bundle /b create c1", "-f delete c1", "--detach run c1", "run --pid-file -d c1", "create --preserve-fds -1 c1",
        "--root= state c1", "--log --debug state c1",
    ])
    func leftToArgumentParser(line: String) {
        #expect(FastCommandLine.parse(line.split(separator: " ").map(String.init)) == nil)
    }

    @Test("errors go to --log as runc writes them, one JSON object a line: from a command, and from a command line ArgumentParser refuses")
    func errorsLogged() throws {
        let folder = try TemporaryFolder("ch04-log")
        defer { folder.remove() }
        let log = folder.path + "/log.json"
        let missing = try run(product("isorun"), ["--root", folder.path, "--log", log, "--log-format", "json", "state", "no-such"])
        #expect(missing.status == 1, "\(missing)")
        let refused = try run(product("isorun"), ["--root", folder.path, "--log", log, "--log-format", "json", "kill"])
        #expect(refused.status != 0, "\(refused)")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        try #require(lines.count == 2, "\(lines)")
        let entries = try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String], "\($0)") }
        #expect(entries.allSatisfy { Set($0.keys) == ["level", "msg", "time"] && $0["level"] == "error" }, "\(entries)")
        // RFC 3339 in UTC with nanoseconds, as logrus writes it for runc.
        #expect(entries.allSatisfy { $0["time"]?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z/) != nil }, "\(entries)")
        #expect(entries[0]["msg"]?.contains("container 'no-such' does not exist") == true, "\(entries[0])")
        #expect(entries[1]["msg"]?.contains("Missing expected argument") == true, "\(entries[1])")
    }

    @Test("`init` typed by hand: a clear refusal, not a container")
    func initByHand() throws {
        let result = try run(product("chapter-04"), ["init", "--bundle", "/nonexistent"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("not a command to type"), "\(result)")
    }
}
