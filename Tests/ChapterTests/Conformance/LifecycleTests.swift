// runtime.md: the state, the lifecycle and the operations, with their errors. Each
// rule is checked by its effect: the state JSON, the init's /proc entry, files the
// process writes into its root filesystem, the cgroup.
import Foundation
import Glibc
import Isolation
import SystemPackage
import Testing

@Suite("Conformance: runtime.md (state, lifecycle, operations)", .serialized,
       .enabled(if: canProbe, "needs root and a static busybox"))
struct ConformanceLifecycle {
    @Test("runtime.md#state: ociVersion, id, status, pid, bundle and annotations through created, running, stopped")
    func stateFields() throws {
        let bundle = try TestBundle(conformance: "state", args: ["sh", "-c", "while [ ! -e /srv/go ]; do sleep 0.05; done"]) { config in
            config.annotations = ["org.example.key": "value", "com.example.other": "2"]
        }
        defer { bundle.removeAll() }
        let created = try bundle.runtime(["create", "--bundle", bundle.path, "conf-st"])
        #expect(created.status == 0, "\(created)")
        let config = try OCIConfig.load(bundle: FilePath(bundle.path))
        func check(_ status: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
            let state = try #require(try bundle.state("conf-st"), sourceLocation: sourceLocation)
            #expect(state["ociVersion"] as? String == config.ociVersion, sourceLocation: sourceLocation)
            #expect(state["id"] as? String == "conf-st", sourceLocation: sourceLocation)
            #expect(state["status"] as? String == status, "\(state)", sourceLocation: sourceLocation)
            #expect(state["bundle"] as? String == bundle.path, "the bundle's absolute path", sourceLocation: sourceLocation)
            #expect(state["annotations"] as? [String: String] == config.annotations, sourceLocation: sourceLocation)
            return state
        }
        let pid = try #require(try check("created")["pid"] as? Int)
        // The pid is the container's process as the host sees it: in the container's PID namespace, as its PID 1.
        #expect(namespaceLink(pid_t(pid), "pid") != namespaceLink(nil, "pid"))
        #expect(procStatus(pid_t(pid))["NSpid"]?.split(separator: " ").last == "1", "\(procStatus(pid_t(pid)))")
        #expect(try bundle.runtime(["start", "conf-st"]).status == 0)
        #expect(try check("running")["pid"] as? Int == pid)
        // Let the process end by itself: the container is stopped, and still there.
        _ = FileManager.default.createFile(atPath: bundle.rootfs + "/srv/go", contents: nil)
        #expect(try bundle.waitFor("conf-st", "stopped"))
        let stopped = try check("stopped")
        #expect(stopped["pid"] == nil || stopped["pid"] as? Int == 0, "a stopped container has no process: \(stopped)")
    }

    @Test("runtime.md#state: bundle is the absolute path, also when create was given a relative one")
    func relativeBundle() throws {
        let bundle = try TestBundle(conformance: "relative")
        defer { bundle.removeAll() }
        let create = try TestProcess(product("chapter-04"), ["--root", bundle.stateRoot, "create", "--bundle", "bundle", "conf-rel"],
                                     directory: bundle.folder.path).result(timeout: 60)
        #expect(create.status == 0, "\(create)")
        #expect(try bundle.state("conf-rel")?["bundle"] as? String == bundle.path)
    }

    @Test("runtime.md#create: the config is applied, but process.args only run at start")
    func createDoesNotRunTheProcess() throws {
        let bundle = try TestBundle(conformance: "create", args: ["sh", "-c", "echo ran >> /srv/runs; exec sleep 30"]) { config in
            config.hostname = "created-host"
            config.process?.oomScoreAdj = 321
            config.process?.rlimits = [OCIConfig.Rlimit(type: .openFiles, hard: 600, soft: 300)]
        }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-cr"]).status == 0)
        let pid = try #require(try bundle.pid("conf-cr"))
        usleep(300_000)
        #expect(!FileManager.default.fileExists(atPath: bundle.rootfs + "/srv/runs"), "the process ran before start")
        // Everything but the process is in place already: namespaces, limits, root.
        #expect(namespaceLink(pid, "uts") != namespaceLink(nil, "uts"))
        #expect(try String(contentsOfFile: "/proc/\(pid)/oom_score_adj", encoding: .utf8) == "321\n")
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        #expect(limits.split(separator: "\n").contains { $0.hasPrefix("Max open files") && $0.split(separator: " ").dropFirst(3).prefix(2) == ["300", "600"] }, "\(limits)")
        // pivot_root is done at create: the init's root is the bundle's (/probe is there, not on the host).
        #expect(FileManager.default.fileExists(atPath: "/proc/\(pid)/root/probe") && !FileManager.default.fileExists(atPath: "/probe"))
        #expect(try bundle.runtime(["start", "conf-cr"]).status == 0)
        #expect(awaitLine(bundle.rootfs + "/srv/runs") == "ran\n")
    }

    @Test("runtime.md#create: an ID that is not unique is an error; the existing container is untouched")
    func duplicateID() throws {
        let bundle = try TestBundle(conformance: "dup", args: ["sh", "-c", "echo first >> /srv/runs; exec sleep 30"])
        defer { bundle.removeAll() }
        let other = try TestBundle(conformance: "dup-other", args: ["sh", "-c", "echo second >> /srv/runs; exec sleep 30"]) { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("dup-other")
        }
        defer { other.folder.remove() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-dup"]).status == 0)
        let before = try #require(try bundle.state("conf-dup"))
        let again = try bundle.runtime(["create", "--bundle", other.path, "conf-dup"])
        #expect(again.status != 0 && again.stderr.contains("already exists"), "\(again)")
        #expect(!cgroupExists(conformanceCgroup("dup-other")), "the refused create made a cgroup")
        let after = try #require(try bundle.state("conf-dup"))
        #expect(after["pid"] as? Int == before["pid"] as? Int && after["status"] as? String == "created")
        #expect(after["bundle"] as? String == bundle.path)
        #expect(try bundle.runtime(["start", "conf-dup"]).status == 0)
        #expect(awaitLine(bundle.rootfs + "/srv/runs") == "first\n")
        #expect(!FileManager.default.fileExists(atPath: other.rootfs + "/srv/runs"))
    }

    @Test("runtime.md#start: a container that is not created (running, stopped) cannot start; the process never runs twice")
    func startNotCreated() throws {
        let bundle = try TestBundle(conformance: "start", args: ["sh", "-c", "echo ran >> /srv/runs; exec sleep 30"])
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-s1"]).status == 0)
        #expect(try bundle.runtime(["start", "conf-s1"]).status == 0)
        #expect(awaitLine(bundle.rootfs + "/srv/runs") == "ran\n")
        let running = try bundle.runtime(["start", "conf-s1"])
        #expect(running.status != 0 && running.stderr.contains("running"), "\(running)")
        #expect(try bundle.state("conf-s1")?["status"] as? String == "running")
        #expect(try bundle.runtime(["kill", "conf-s1", "KILL"]).status == 0)
        #expect(try bundle.waitFor("conf-s1", "stopped"))
        let stopped = try bundle.runtime(["start", "conf-s1"])
        #expect(stopped.status != 0 && stopped.stderr.contains("stopped"), "\(stopped)")
        #expect(try bundle.state("conf-s1")?["status"] as? String == "stopped")
        usleep(200_000)
        #expect(try String(contentsOfFile: bundle.rootfs + "/srv/runs", encoding: .utf8) == "ran\n")
    }

    @Test("runtime.md#start: start MUST generate an error if process was not set; create without it succeeds and the container stays created")
    func startWithoutProcess() throws {
        let path = conformanceCgroup("no-process")
        let bundle = try TestBundle(conformance: "no-process") { config in
            config.process = nil  // config.md "Process": OPTIONAL, REQUIRED only when start is called
            config.hostname = "no-process"
            config.linux?.cgroupsPath = "/" + path
        }
        defer { bundle.removeAll() }
        // From outside: the cgroup's folder in any hierarchy (v1: one per controller; v2: one).
        func cgroupFolders() -> [String] {
            let top = "/sys/fs/cgroup"
            let hierarchies = [top] + ((try? FileManager.default.contentsOfDirectory(atPath: top)) ?? []).map { top + "/" + $0 }
            return hierarchies.map { $0 + "/" + path }.filter { FileManager.default.fileExists(atPath: $0) }
        }
        func alive(_ pid: pid_t) -> Bool { ProcessInfoStat(pid: pid).map { $0.state != "Z" && $0.state != "X" } ?? false }
        func expectGone(_ id: String, _ pid: pid_t, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/" + id), "the state folder is left", sourceLocation: sourceLocation)
            #expect(cgroupFolders().isEmpty, "cgroup folders are left: \(cgroupFolders())", sourceLocation: sourceLocation)
            for _ in 0..<100 where alive(pid) { usleep(10_000) }
            #expect(!alive(pid), "the init \(pid) survived", sourceLocation: sourceLocation)
        }

        let created = try bundle.runtime(["create", "--bundle", bundle.path, "conf-np"])
        try #require(created.status == 0, "create without process: \(created)")
        #expect(try bundle.state("conf-np")?["status"] as? String == "created")
        let pid = try #require(try bundle.pid("conf-np"))
        // Everything that does not need the process is in place: namespaces, cgroup, root.
        #expect(namespaceLink(pid, "uts") != namespaceLink(nil, "uts"))
        #expect(!cgroupFolders().isEmpty && (try? String(contentsOfFile: cgroupFolders()[0] + "/cgroup.procs", encoding: .utf8))?.contains("\(pid)") == true)
        #expect(FileManager.default.fileExists(atPath: "/proc/\(pid)/root/probe") && !FileManager.default.fileExists(atPath: "/probe"))

        let started = try bundle.runtime(["start", "conf-np"])
        #expect(started.status != 0 && started.stderr.contains("no process") && started.stderr.contains("config.json"), "\(started)")
        // ... and changes nothing: still created, the same init, still waiting on its FIFO.
        usleep(100_000)
        #expect(try bundle.state("conf-np")?["status"] as? String == "created")
        #expect(try bundle.pid("conf-np") == pid && alive(pid))
        #expect(FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-np/exec.fifo"))
        // A created container is not deleted without --force (see `delete`); kill, then delete.
        let refused = try bundle.runtime(["delete", "conf-np"])
        #expect(refused.status != 0 && refused.stderr.contains("created"), "\(refused)")
        #expect(try bundle.runtime(["kill", "conf-np", "KILL"]).status == 0)
        #expect(try bundle.waitFor("conf-np", "stopped"))
        #expect(try bundle.runtime(["delete", "conf-np"]).status == 0)
        expectGone("conf-np", pid)

        // delete --force of a created container without process.
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-np2"]).status == 0)
        let pid2 = try #require(try bundle.pid("conf-np2"))
        #expect(try bundle.runtime(["start", "conf-np2"]).status != 0)
        #expect(try bundle.runtime(["delete", "--force", "conf-np2"]).status == 0)
        expectGone("conf-np2", pid2)

        // run is create + start: an error naming the cause, and nothing is left.
        let ran = try bundle.runtime(["run", "--bundle", bundle.path, "conf-np3"])
        #expect(ran.status != 0 && ran.stderr.contains("no process"), "\(ran)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-np3"))
        #expect(cgroupFolders().isEmpty, "run left cgroup folders: \(cgroupFolders())")
        #expect(mounts(under: bundle.folder.path).isEmpty)
    }

    @Test("runtime.md#kill: the signal reaches the process; a created container can be killed; a stopped one is an error")
    func killSignals() throws {
        let script = "trap 'echo USR1 > /srv/signal; exit 3' USR1; echo ready > /srv/ready; while :; do sleep 0.05; done"
        let bundle = try TestBundle(conformance: "kill", args: ["sh", "-c", script])
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-k1"]).status == 0)
        #expect(try bundle.runtime(["start", "conf-k1"]).status == 0)
        #expect(awaitLine(bundle.rootfs + "/srv/ready") == "ready\n")
        #expect(try bundle.runtime(["kill", "conf-k1", "USR1"]).status == 0)
        #expect(try bundle.waitFor("conf-k1", "stopped"))
        #expect(try String(contentsOfFile: bundle.rootfs + "/srv/signal", encoding: .utf8) == "USR1\n", "the process's own handler ran")
        let again = try bundle.runtime(["kill", "conf-k1", "KILL"])
        #expect(again.status != 0 && again.stderr.contains("stopped"), "\(again)")
        #expect(try bundle.state("conf-k1")?["status"] as? String == "stopped")

        // A created container: its init is signalled before it ever ran the process.
        try FileManager.default.removeItem(atPath: bundle.rootfs + "/srv/ready")
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-k2"]).status == 0)
        #expect(try bundle.runtime(["kill", "conf-k2", "9"]).status == 0)
        #expect(try bundle.waitFor("conf-k2", "stopped"))
        #expect(try bundle.runtime(["start", "conf-k2"]).status != 0)
        usleep(100_000)
        #expect(!FileManager.default.fileExists(atPath: bundle.rootfs + "/srv/ready"), "a killed created container ran its process")
    }

    @Test("runtime.md#delete: created and running containers cannot be deleted; a stopped one loses everything create made")
    func delete() throws {
        let bundle = try TestBundle(conformance: "delete", args: ["sh", "-c", "exec sleep 30"]) { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("delete")
        }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-d1"]).status == 0)
        let pid = try #require(try bundle.pid("conf-d1"))
        #expect(cgroupExists(conformanceCgroup("delete")))
        for status in ["created", "running"] {
            if status == "running" { #expect(try bundle.runtime(["start", "conf-d1"]).status == 0) }
            let refused = try bundle.runtime(["delete", "conf-d1"])
            #expect(refused.status != 0 && refused.stderr.contains(status), "\(refused)")
            #expect(try bundle.state("conf-d1")?["status"] as? String == status)
            #expect(Glibc.kill(pid, 0) == 0, "delete of a \(status) container killed its process")
            #expect(cgroupExists(conformanceCgroup("delete")))
        }
        #expect(try bundle.runtime(["kill", "conf-d1", "KILL"]).status == 0)
        #expect(try bundle.waitFor("conf-d1", "stopped"))
        #expect(try bundle.runtime(["delete", "conf-d1"]).status == 0)
        #expect(!cgroupExists(conformanceCgroup("delete")), "delete must remove the cgroup create made")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-d1"))
        let gone = try bundle.runtime(["state", "conf-d1"])
        #expect(gone.status != 0 && gone.stderr.contains("does not exist"), "\(gone)")
        // The ID is free again.
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-d1"]).status == 0)
    }

    @Test("runtime.md#delete: a container whose create was killed half-way is removed by delete --force, with its cgroup and init")
    func deleteHalfMade() throws {
        let path = conformanceCgroup("half-made")
        let folder = try TemporaryFolder("conf-half-made-hook")
        let hookPID = folder.path + "/hook.pid"
        let bundle = try TestBundle(conformance: "half-made") { config in
            config.linux?.cgroupsPath = "/" + path
            // create waits in this hook, after the cgroup and the init exist, before its record.
            config.hooks = OCIConfig.Hooks(createRuntime: [OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "echo $$ > \(hookPID); exec sleep 30"])])
        }
        defer {
            // The hook outlives the killed create: it is ours to end.
            if let pid = (try? String(contentsOfFile: hookPID, encoding: .utf8)).flatMap({ pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
                Glibc.kill(pid, SIGKILL)
            }
            folder.remove()
            bundle.removeAll()
        }
        let create = try TestProcess(product("chapter-04"), ["--root", bundle.stateRoot, "create", "--bundle", bundle.path, "conf-half"])
        var members: [pid_t] = []
        for _ in 0..<500 where members.isEmpty {
            members = (try? Cgroup.existing(path: path))?.processes() ?? []
            if members.isEmpty { usleep(10_000) }
        }
        Glibc.kill(create.pid, SIGKILL)
        create.wait(timeout: 30)
        try #require(!members.isEmpty, "the init never joined its cgroup")
        #expect(try bundle.runtime(["delete", "--force", "conf-half"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-half"))
        #expect(!cgroupExists(path), "delete --force left the half-made container's cgroup")
        // Gone, or a zombie waiting for whoever inherited it from the killed create.
        func alive(_ pid: pid_t) -> Bool { ProcessInfoStat(pid: pid).map { $0.state != "Z" && $0.state != "X" } ?? false }
        for _ in 0..<100 where members.contains(where: alive) { usleep(10_000) }
        for pid in members { #expect(!alive(pid), "the init \(pid) survived: \(String(describing: ProcessInfoStat(pid: pid)?.state))") }
    }

    @Test("runtime.md#operations: state, start, kill and delete of an unknown ID are errors that change nothing")
    func unknownID() throws {
        let bundle = try TestBundle(conformance: "unknown")
        defer { bundle.removeAll() }
        // Another container exists: the error is about the ID, not an empty runtime.
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-known"]).status == 0)
        for command in [["state", "ghost"], ["start", "ghost"], ["kill", "ghost", "KILL"], ["delete", "ghost"]] {
            let result = try bundle.runtime(command)
            #expect(result.status != 0 && result.stderr.contains("'ghost' does not exist"), "\(command): \(result)")
            #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/ghost"))
        }
        #expect(try bundle.state("conf-known")?["status"] as? String == "created")
    }

    @Test("runtime.md#errors: a create that fails at any step leaves no container, cgroup or mount behind")
    func failedCreate() throws {
        // The failure comes late: after the cgroup, the namespaces and the mounts.
        let bundle = try TestBundle(conformance: "failed") { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("failed")
            config.linux?.sysctl = ["net.ipv4.no_such_sysctl_here": "1"]  // allowed (a network namespace), absent
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-f1"])
        #expect(result.status != 0 && result.stderr.contains("net.ipv4.no_such_sysctl_here"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-f1"))
        #expect(!cgroupExists(conformanceCgroup("failed")))
        #expect(mounts(under: bundle.folder.path).isEmpty)
        let state = try bundle.runtime(["state", "conf-f1"])
        #expect(state.status != 0 && state.stderr.contains("does not exist"))
    }
}
