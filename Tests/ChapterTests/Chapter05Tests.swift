// Chapter 05: real engines (podman with conmon, containerd with its runc shim) driving
// isorun. Each test keeps the engine's state in a temporary folder and removes its
// containers, images, cgroups, state folders and any containerd it started.
import Foundation
import Isolation
import SystemPackage
import Testing

let podmanInstalled = Engines.missing(["podman", "conmon"]).isEmpty
let containerdInstalled = Engines.missing(["containerd", "ctr", "containerd-shim-runc-v2"]).isEmpty

/// The runtime's call log in `root` (`<root>/calls.log`, see `RuntimeCommands.logCall`):
/// turned on for a test, and off again after if the test turned it on.
struct CallLog {
    let path: String
    let created: Bool
    init(root: String) throws {
        path = root + "/calls.log"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        created = !FileManager.default.fileExists(atPath: path)
        if created { _ = FileManager.default.createFile(atPath: path, contents: nil) }
    }
    /// The calls made for container `id`: each line's arguments, after the `→`.
    func calls(for id: String) -> [String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard line.split(separator: " ").contains(where: { $0 == id }), let arrow = line.range(of: " → ") else { return nil }
            return String(line[arrow.upperBound...])
        }
    }
    /// The IDs the runtime was asked to create (the last word of each `create` call).
    func createdIDs() -> [String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains(" create ") }.compactMap { $0.split(separator: " ").last.map(String.init) }
    }
    func remove() { if created { try? FileManager.default.removeItem(atPath: path) } }
}

/// Runs an engine's client to completion (SIGKILL after `timeout`), with stdin, stdout and
/// stderr in files of `folder`: posix_spawn(3) and waitpid(2) on that one PID. Foundation's
/// Process sometimes never saw `podman run -d` exit (the zombie stayed, waitUntilExit hung),
/// and what a detached engine leaves running must not hold our pipes open.
func runEngine(_ executable: String, _ arguments: [String], environment: [String: String],
               stdin: String? = nil, in folder: String, timeout: TimeInterval = 60) throws -> RunResult {
    let base = folder + "/io-\(UUID().uuidString)"
    try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: base + ".in"))
    defer { for suffix in [".in", ".out", ".err"] { try? FileManager.default.removeItem(atPath: base + suffix) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, base + ".in", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL) }
    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(timeout)
    while waitpid(pid, &status, WNOHANG) == 0 {
        if Date() > deadline { kill(pid, SIGKILL); waitpid(pid, &status, 0); break }
        usleep(5_000)
    }
    let signaled = status & 0x7f != 0
    return RunResult(status: signaled ? status & 0x7f : (status >> 8) & 0xff, reason: signaled ? .uncaughtSignal : .exit,
                     stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
                     stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
}

/// podman with a folder of its own and the built isorun as its runtime, and the project's
/// root filesystem imported as an image.
final class PodmanUnderTest {
    let folder: TemporaryFolder
    let engine: Engines.Podman
    let calls: CallLog?

    /// `logCalls`: turn the runtime's call log on (/run/isolation/calls.log, shared by
    /// every podman: only the tests that read it do).
    init(_ purpose: String, logCalls: Bool = true, otherRuntimes: [(name: String, path: FilePath)] = []) throws {
        folder = try TemporaryFolder("ch05-\(purpose)")
        engine = Engines.Podman(folder: FilePath(folder.path), runtime: FilePath(product("isorun")), otherRuntimes: otherRuntimes)
        calls = logCalls ? try CallLog(root: ContainerStore.defaultRoot.string) : nil
        do {
            try engine.writeConfiguration()
            let tar = folder.path + "/rootfs.tar"
            let packed = try run("/bin/tar", ["-C", try builtInRootfs(), "-cf", tar, "."])
            try #require(packed.status == 0, "tar: \(packed)")
            let imported = try podman(["import", tar, Engines.imageName])
            try #require(imported.status == 0, "podman import: \(imported)")
            try FileManager.default.removeItem(atPath: tar)
        } catch {
            remove()
            throw error
        }
    }

    func podman(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) throws -> RunResult {
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in engine.environment { environment[key] = value }
        return try runEngine(Command.find("podman")!.string, arguments, environment: environment, stdin: stdin, in: folder.path, timeout: timeout)
    }

    /// `podman run` (or create) with the cgroup parent of this folder.
    func runArguments(_ arguments: [String]) -> [String] {
        ["run", "--cgroup-parent", engine.cgroupParent] + arguments
    }

    /// No container, state folder or cgroup is left of the IDs podman created.
    func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let left = try podman(["ps", "--all", "--quiet"])
        #expect(left.stdout.isEmpty, "containers left: \(left.stdout)", sourceLocation: sourceLocation)
        for id in calls?.createdIDs() ?? [] where id.count == 64 {
            #expect(!FileManager.default.fileExists(atPath: ContainerStore.defaultRoot.string + "/" + id), "state of \(id) left", sourceLocation: sourceLocation)
            let cgroups = Cleanup.cgroupParents().map { $0.string + "/" + engine.cgroupParent.split(separator: "/").last! + "/libpod-" + id }
            #expect(cgroups.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "cgroup of \(id) left", sourceLocation: sourceLocation)
        }
    }

    func remove() {
        _ = try? podman(["rm", "--all", "--force", "--time", "0"])
        _ = try? podman(["rmi", "--all", "--force"])
        Engines.stopProcessesAndMounts(under: FilePath(folder.path))
        engine.removeCgroups()
        calls?.remove()
        folder.remove()
    }
}

@Suite("chapter-05: podman runs isorun", .serialized, .enabled(if: isRoot, "engines need root"),
       .enabled(if: podmanInstalled, "podman is not installed: apt-get install podman (it brings conmon)"))
struct Chapter05PodmanTests {
    @Test("podman run: output, exit codes, 127 and 126, env, workdir, user, hostname, -i, -t, --cap-drop all, --read-only")
    func runs() throws {
        let engine = try PodmanUnderTest("run")
        defer { engine.remove() }
        let image = Engines.imageName

        let hello = try engine.podman(engine.runArguments(["--rm", "--hostname", "probe", image, "sh", "-c", "echo hello from $(hostname), PID $$"]))
        #expect(hello.status == 0 && hello.stdout == "hello from probe, PID 1\n", "\(hello)")
        let three = try engine.podman(engine.runArguments(["--rm", image, "sh", "-c", "exit 3"]))
        #expect(three.status == 3, "\(three)")
        let missing = try engine.podman(engine.runArguments(["--rm", image, "no-such-program"]))
        #expect(missing.status == 127 && missing.stderr.contains("executable file not found"), "\(missing)")
        let notExecutable = try engine.podman(engine.runArguments(["--rm", image, "/etc/passwd"]))
        #expect(notExecutable.status == 126 && notExecutable.stderr.contains("permission denied"), "\(notExecutable)")

        let fields = try engine.podman(engine.runArguments([
            "--rm", "-e", "GREETING=hi", "-w", "/tmp", "-u", "1000:1000", image,
            "sh", "-c", "echo $GREETING $(pwd) $(id -u):$(id -g)",
        ]))
        #expect(fields.stdout == "hi /tmp 1000:1000\n", "\(fields)")

        let input = try engine.podman(engine.runArguments(["--rm", "-i", image, "sh", "-c", "read line; echo got: $line"]), stdin: "piped in\n")
        #expect(input.stdout == "got: piped in\n", "\(input)")
        // -t: conmon listens on --console-socket; the process sees a terminal, and its
        // newlines come back as CR LF (the pty's line discipline).
        let terminal = try engine.podman(engine.runArguments(["--rm", "-t", image, "sh", "-c", "tty; [ -t 1 ] && echo stdout-is-a-tty"]))
        #expect(terminal.status == 0 && terminal.stdout == "/dev/pts/0\r\nstdout-is-a-tty\r\n", "\(terminal)")

        // --cap-drop all: podman writes "capabilities": {}, every set empty.
        let noCaps = try engine.podman(engine.runArguments(["--rm", "--cap-drop", "all", image, "grep", "-E", "^Cap(Eff|Bnd)", "/proc/self/status"]))
        #expect(noCaps.stdout == "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n", "\(noCaps)")

        let readOnly = try engine.podman(engine.runArguments(["--rm", "--read-only", image, "sh", "-c", "touch /new 2>&1; echo status=$?"]))
        #expect(readOnly.stdout.contains("Read-only file system") && readOnly.stdout.contains("status=1"), "\(readOnly)")
        let writable = try engine.podman(engine.runArguments(["--rm", image, "sh", "-c", "touch /new && echo status=$?"]))
        #expect(writable.stdout == "status=0\n", "\(writable)")

        // What conmon asked of the runtime, in order, with the log options podman gives
        // runtimes named in runtime_supports_json.
        let ids = engine.calls!.createdIDs()
        #expect(ids.count >= 10, "\(ids)")
        if let id = ids.first {
            let calls = engine.calls!.calls(for: id)
            #expect(calls.count == 3, "\(calls)")
            if calls.count == 3 {
                #expect(calls[0].contains("--log-format=json --log ") && calls[0].contains(" create --bundle ") && calls[0].contains("--pid-file"))
                #expect(calls[1] == "start \(id)")
                #expect(calls[2] == "delete --force \(id)")
            }
        }
        try engine.expectNothingLeft()
    }

    @Test("podman run --memory, --cpus, --pids-limit: read back from inside the container")
    func limits() throws {
        let engine = try PodmanUnderTest("limits")
        defer { engine.remove() }
        // The container's cgroup files, on v1 (one mount per controller) or v2.
        let probe = """
            cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
            { cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us && cat /sys/fs/cgroup/cpu/cpu.cfs_period_us; } 2>/dev/null | paste -sd ' ' || cat /sys/fs/cgroup/cpu.max
            cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max
            """
        let result = try engine.podman(engine.runArguments(["--rm", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", Engines.imageName, "sh", "-c", probe]))
        #expect(result.status == 0 && result.stdout == "67108864\n50000 100000\n50\n", "\(result)")
        try engine.expectNothingLeft()
    }

    @Test("podman -d, exec (exit code, -i, -t, -u, -w, -e), pause, unpause, stop, restart, kill (137), rm")
    func detached() throws {
        let engine = try PodmanUnderTest("detached")
        defer { engine.remove() }
        // PID 1 with a SIGTERM handler, so that `stop` ends it with SIGTERM, not SIGKILL.
        let script = "trap 'echo got SIGTERM; exit 0' TERM; echo started; while :; do sleep 0.1; done"
        let started = try engine.podman(engine.runArguments(["-d", "--name", "web", Engines.imageName, "sh", "-c", script]))
        try #require(started.status == 0, "\(started)")
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        func inspect(_ format: String) throws -> String {
            try engine.podman(["inspect", "web", "--format", format]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try inspect("{{.State.Status}}") == "running")
        let pid = try inspect("{{.State.Pid}}")
        // The init's parent is conmon, the subreaper, not the runtime (which has exited).
        let parent = ProcessInfoStat(pid: pid_t(pid) ?? 0)?.parent ?? 0
        let parentName = (try? String(contentsOfFile: "/proc/\(parent)/comm", encoding: .utf8)) ?? ""
        #expect(parentName == "conmon\n", "the container's init \(pid) has parent \(parent) '\(parentName)'")

        let exec = try engine.podman(["exec", "web", "sh", "-c", "echo in $(hostname) as PID $$; exit 4"])
        #expect(exec.status == 4 && exec.stdout.hasPrefix("in \(id.prefix(12)) as PID "), "\(exec)")
        let fields = try engine.podman(["exec", "-u", "1000", "-w", "/tmp", "-e", "X=y", "web", "sh", "-c", "echo $(id -u) $(pwd) $X"])
        #expect(fields.stdout == "1000 /tmp y\n", "\(fields)")
        let terminal = try engine.podman(["exec", "-t", "web", "sh", "-c", "tty; exit 5"])
        #expect(terminal.status == 5 && terminal.stdout.hasPrefix("/dev/pts/") && terminal.stdout.hasSuffix("\r\n"), "\(terminal)")
        let input = try engine.podman(["exec", "-i", "web", "cat"], stdin: "through exec\n")
        #expect(input.stdout == "through exec\n", "\(input)")
        let missing = try engine.podman(["exec", "web", "no-such-program"])
        #expect(missing.status == 127, "\(missing)")

        #expect(try engine.podman(["pause", "web"]).status == 0)
        #expect(try inspect("{{.State.Status}}") == "paused")
        let frozen = Cleanup.cgroupParents().compactMap { parent -> String? in
            try? String(contentsOfFile: parent.string + "/" + engine.engine.cgroupParent.split(separator: "/").last! + "/libpod-\(id)/freezer.state", encoding: .utf8)
        }
        #expect(frozen.isEmpty || frozen.contains("FROZEN\n"), "\(frozen)")
        #expect(try engine.podman(["unpause", "web"]).status == 0)
        #expect(try inspect("{{.State.Status}}") == "running")

        let stop = try engine.podman(["stop", "--time", "10", "web"])
        #expect(stop.status == 0, "\(stop)")
        #expect(try inspect("{{.State.Status}}") == "exited")
        #expect(try inspect("{{.State.ExitCode}}") == "0", "SIGTERM reached the trap")
        #expect(try engine.podman(["logs", "web"]).stdout.contains("got SIGTERM"))

        // restart: conmon calls create again with the same ID.
        let restart = try engine.podman(["restart", "web"])
        #expect(restart.status == 0, "\(restart)")
        #expect(try inspect("{{.State.Status}}") == "running")
        #expect(try inspect("{{.State.Pid}}") != pid)
        #expect(engine.calls!.calls(for: id).filter { $0.contains(" create ") }.count == 2, "\(engine.calls!.calls(for: id))")

        #expect(try engine.podman(["kill", "web"]).status == 0)
        let wait = try engine.podman(["wait", "web"])
        #expect(wait.stdout == "137\n", "\(wait)")
        let removed = try engine.podman(["rm", "web"])
        #expect(removed.status == 0, "\(removed)")

        let calls = engine.calls!.calls(for: id)
        for expected in ["exec --pid-file", "--process", "--detach", "pause \(id)", "resume \(id)", "kill \(id) 15", "kill \(id) 9", "delete --force \(id)"] {
            #expect(calls.contains { $0.contains(expected) }, "no call with '\(expected)' in \(calls)")
        }
        try engine.expectNothingLeft()
    }
}

/// containerd started on a socket of its own, with its root, state and the runc shim's
/// `--root` in a temporary folder; the image comes from podman (`podman save --format
/// oci-archive`, then `ctr image import`), as no registry is reachable.
final class ContainerdUnderTest {
    let folder: TemporaryFolder
    let engine: Engines.Containerd
    var daemon: ChildProcess? = nil
    let calls: CallLog
    let isorun: String
    let runDirectoryExisted = Engines.Containerd.runDirectoryExists()

    init(_ purpose: String) throws {
        folder = try TemporaryFolder("ch05-\(purpose)")
        engine = Engines.Containerd(folder: FilePath(folder.path))
        isorun = product("isorun")
        // The shim calls the runtime with --root <runc root>/<namespace>.
        calls = try CallLog(root: engine.runcRoot.string + "/default")
        do {
            try engine.writeConfiguration()
            try startDaemon()
            let podman = try PodmanUnderTest("\(purpose)-image", logCalls: false)
            defer { podman.remove() }
            let archive = folder.path + "/image.tar"
            let saved = try podman.podman(["save", "--format", "oci-archive", "-o", archive, Engines.imageName])
            try #require(saved.status == 0, "podman save: \(saved)")
            let imported = try ctr(["images", "import", "--base-name", String(Engines.imageName.split(separator: ":")[0]), archive])
            try #require(imported.status == 0, "ctr images import: \(imported)")
            try FileManager.default.removeItem(atPath: archive)
        } catch {
            remove()
            throw error
        }
    }

    /// containerd --config FILE, its output in the folder; ready once `ctr version` answers.
    func startDaemon() throws {
        daemon = try engine.startDaemon()
        for _ in 0..<100 {
            if FileManager.default.fileExists(atPath: engine.address.string), try ctr(["version"], timeout: 5).status == 0 { return }
            usleep(100_000)
        }
        let text = (try? String(contentsOfFile: engine.log.string, encoding: .utf8)) ?? ""
        throw IsolationError("containerd did not answer on \(engine.address) within 10 s", hint: String(text.suffix(2000)))
    }

    /// ctr on our socket; the native snapshotter (plain copies) works on any file system.
    func ctr(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) throws -> RunResult {
        var environment = ProcessInfo.processInfo.environment
        environment["CONTAINERD_ADDRESS"] = engine.address.string
        environment["CONTAINERD_SNAPSHOTTER"] = "native"
        return try runEngine(Command.find("ctr")!.string, arguments, environment: environment, stdin: stdin, in: folder.path, timeout: timeout)
    }

    /// The options that make the runc shim call isorun, with its state in our folder, and
    /// the container's cgroup below ours.
    func runOptions(_ id: String) -> [String] {
        ["--runc-binary", isorun, "--runc-root", engine.runcRoot.string, "--cgroup", engine.cgroupParent + "/" + id]
    }

    func remove() {
        if let daemon {
            for task in ((try? ctr(["tasks", "list", "--quiet"]))?.stdout ?? "").split(separator: "\n") {
                _ = try? ctr(["tasks", "kill", "--signal", "SIGKILL", String(task)])
                _ = try? ctr(["tasks", "delete", "--force", String(task)])
            }
            for container in ((try? ctr(["containers", "list", "--quiet"]))?.stdout ?? "").split(separator: "\n") {
                _ = try? ctr(["containers", "delete", String(container)])
            }
            for image in ((try? ctr(["images", "list", "--quiet"]))?.stdout ?? "").split(separator: "\n") {
                _ = try? ctr(["images", "remove", String(image)])
            }
            _ = try? daemon.signal(SIGTERM)
            _ = try? daemon.wait()
        }
        // A shim names our socket on its command line.
        Engines.stopProcessesAndMounts(under: FilePath(folder.path))
        engine.removeCgroups()
        Engines.Containerd.removeRunDirectory(existedBefore: runDirectoryExisted)
        calls.remove()
        folder.remove()
    }

    /// The container's cgroup directories that exist now.
    func cgroups(_ id: String) -> [String] {
        let name = engine.cgroupParent.split(separator: "/").last!
        return Cleanup.cgroupParents().map { $0.string + "/\(name)/\(id)" }.filter { FileManager.default.fileExists(atPath: $0) }
    }
}

@Suite("chapter-05: containerd runs isorun", .serialized, .enabled(if: isRoot, "engines need root"),
       .enabled(if: containerdInstalled, "containerd is not installed: apt-get install containerd (it brings ctr and the runc v2 shim)"),
       .enabled(if: podmanInstalled, "the image is made with podman, which is not installed: apt-get install podman"))
struct Chapter05ContainerdTests {
    @Test("ctr run --rm: output and exit code; a detached task: exec (and with a tty), ps, pause, resume, kill, delete")
    func tasks() throws {
        let engine = try ContainerdUnderTest("containerd")
        defer { engine.remove() }
        let image = Engines.imageName

        let once = try engine.ctr(["run", "--rm"] + engine.runOptions("once") + [image, "once", "sh", "-c", "echo hello from PID $$; exit 5"])
        #expect(once.status == 5 && once.stdout == "hello from PID 1\n", "\(once)")
        let onceCalls = engine.calls.calls(for: "once")
        #expect(onceCalls.first?.hasPrefix("--root \(engine.engine.runcRoot)/default --log ") == true, "\(onceCalls)")
        #expect(onceCalls.first.map { $0.contains(" --log-format json create --bundle ") && $0.contains(" --pid-file ") && $0.hasSuffix(" once") } == true, "\(onceCalls)")
        #expect(onceCalls.contains { $0.hasSuffix(" start once") }, "\(onceCalls)")
        #expect(onceCalls.contains { $0.hasSuffix(" delete once") || $0.hasSuffix(" delete --force once") }, "\(onceCalls)")
        #expect(!FileManager.default.fileExists(atPath: engine.engine.runcRoot.string + "/default/once"))

        let started = try engine.ctr(["run", "--detach"] + engine.runOptions("task") + [image, "task", "sleep", "300"])
        try #require(started.status == 0, "\(started)")
        func status() throws -> String {
            let list = try engine.ctr(["tasks", "list"]).stdout
            return list.split(separator: "\n").first { $0.hasPrefix("task ") }?.split(separator: " ", omittingEmptySubsequences: true).last.map(String.init) ?? "?"
        }
        #expect(try status() == "RUNNING")
        let pid = try engine.ctr(["tasks", "list"]).stdout.split(separator: "\n").first { $0.hasPrefix("task ") }?
            .split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map(String.init) ?? "?"
        // The init's parent is the shim, a subreaper; the runtime exited after start.
        let parent = ProcessInfoStat(pid: pid_t(pid) ?? 0)?.parent ?? 0
        let parentName = (try? String(contentsOfFile: "/proc/\(parent)/comm", encoding: .utf8)) ?? ""
        #expect(parentName.hasPrefix("containerd-shim"), "the task's init \(pid) has parent \(parent) '\(parentName)'")

        #expect(!engine.cgroups("task").isEmpty, "the task's cgroup is below \(engine.engine.cgroupParent)")
        // exec with a terminal: the shim passes --console-socket, the process file says
        // terminal: true. ctr wants a terminal of its own: script(1) gives it one.
        if let script = Command.find("script") {
            let ctr = Command.find("ctr")!.string
            func execWithTerminal(_ name: String) throws -> RunResult {
                try runEngine(script.string, ["-qec", "\(ctr) tasks exec --tty --exec-id \(name) task sh -c 'tty; sleep 0.2; exit 7'", "/dev/null"],
                              environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERD_ADDRESS": engine.engine.address.string],
                              in: engine.folder.path)
            }
            func worked(_ result: RunResult) -> Bool {
                result.status == 7 && result.stdout.hasPrefix("/dev/pts/") && result.stdout.contains("\r\n")
            }
            // In 2 of about 8 full runs this failed once (never when run alone, nor in 100
            // tries by hand): the first failure is reported as a known, intermittent issue
            // with its output, and a second try must work.
            var tty = try execWithTerminal("tty")
            if !worked(tty) {
                let first = tty
                withKnownIssue("ctr exec --tty, first try", isIntermittent: true) { Issue.record("\(first)") }
                tty = try execWithTerminal("tty-again")
            }
            #expect(worked(tty), "\(tty)")
        }
        let exec = try engine.ctr(["tasks", "exec", "--exec-id", "probe", "task", "sh", "-c", "echo in the task, PID 1 is $(cat /proc/1/comm); exit 6"])
        #expect(exec.status == 6 && exec.stdout == "in the task, PID 1 is sleep\n", "\(exec)")
        let ps = try engine.ctr(["tasks", "ps", "task"])
        #expect(ps.status == 0 && ps.stdout.contains(pid), "\(ps)")

        #expect(try engine.ctr(["tasks", "pause", "task"]).status == 0)
        #expect(try status() == "PAUSED")
        #expect(try engine.ctr(["tasks", "resume", "task"]).status == 0)
        #expect(try status() == "RUNNING")
        #expect(try engine.ctr(["tasks", "kill", "--signal", "SIGKILL", "task"]).status == 0)
        var stopped = false
        for _ in 0..<100 where !stopped { stopped = try status() == "STOPPED"; if !stopped { usleep(50_000) } }
        #expect(stopped)
        let deleted = try engine.ctr(["tasks", "delete", "task"])
        #expect(deleted.status == 0, "\(deleted)")
        #expect(try engine.ctr(["containers", "delete", "task"]).status == 0)

        let calls = engine.calls.calls(for: "task")
        for expected in ["create --bundle", "start task", "exec --process", "ps --format json task", "pause task", "resume task", "kill task 9", "delete task"] {
            #expect(calls.contains { $0.contains(expected) }, "no call with '\(expected)' in \(calls)")
        }
        #expect(!FileManager.default.fileExists(atPath: engine.engine.runcRoot.string + "/default/task"))
        #expect(engine.cgroups("task").isEmpty && engine.cgroups("once").isEmpty, "\(engine.cgroups("task"))")
    }
}

@Suite("chapter-05: the lesson", .serialized, .enabled(if: isRoot, "engines need root"))
struct Chapter05LessonTests {
    @Test("without podman, containerd and Docker (not in PATH) the lesson names the packages, skips them, and still shows the registrations")
    func withoutEngines() throws {
        _ = try builtInRootfs()
        let folder = try TemporaryFolder("ch05-no-engines")
        defer { folder.remove() }
        try FileManager.default.createDirectory(atPath: folder.path + "/bin", withIntermediateDirectories: true)
        let result = try runEngine(product("chapter-05"), [], environment: ["PATH": folder.path + "/bin", "NO_COLOR": "1"], in: folder.path)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("podman is not installed: apt-get install podman — skipping podman.\n  (missing: podman, conmon)"), "\(result)")
        #expect(result.stdout.contains("containerd is not installed: apt-get install containerd — skipping containerd.\n  (missing: containerd, ctr, containerd-shim-runc-v2)"), "\(result)")
        #expect(result.stdout.contains("Docker is not installed: apt-get install docker.io — skipping Docker.\n  (missing: dockerd, docker, containerd, containerd-shim-runc-v2)"), "\(result)")
        #expect(result.stdout.split(separator: "\n").allSatisfy { $0.count <= 80 }, "lines over 80 columns: \(result.stdout)")
        #expect(!result.stdout.contains("$ podman") && !result.stdout.contains("$ ctr") && !result.stdout.contains("$ docker"))
        #expect(result.stdout.contains("dockerd --add-runtime isorun=") && result.stdout.contains("kind: RuntimeClass"))
    }

    @Test("the lesson: podman, containerd and (when installed) Docker run the image with isorun, their calls shown, the registrations printed, nothing left",
          .enabled(if: podmanInstalled && containerdInstalled, "podman or containerd is not installed: apt-get install podman containerd"))
    func lesson() throws {
        let folder = try TemporaryFolder("ch05-lesson")
        defer { folder.remove() }
        let logExisted = FileManager.default.fileExists(atPath: ContainerStore.defaultRoot.string + "/calls.log")
        let runDirectories = Engines.Docker.runDirectoriesExisting()
        let result = try runEngine(product("chapter-05"), [], environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1"],
                                   in: folder.path, timeout: 300)
        #expect(result.status == 0, "\(result)")
        let out = result.stdout
        // Projected at 80 columns (not a terminal: 80): no line is wider, long ones wrap.
        let wide = out.split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "lines over 80 columns: \(wide)")
        // The calls, each on one line again (a long one goes on 8 columns in, between words).
        let calls = out.replacingOccurrences(of: "\n        ", with: " ")
        // podman: the container's output, its memory limit read inside, conmon as its parent.
        #expect(out.contains("hello from from-podman, PID 1\n    67108864\n"), "\(out)")
        #expect(out.contains(" conmon\n"), "the container's parent is conmon")
        // Who called what: conmon creates (with podman's JSON log options), podman starts and deletes.
        #expect(calls.contains("conmon[") && calls.contains("--log-format=json --log ") && calls.contains(" create --bundle "))
        #expect(calls.contains("] → start ") && calls.contains("] → delete --force ") && calls.contains(" 15\n") && calls.contains(" 9\n"))
        #expect(calls.contains(" exec --pid-file ") && calls.contains(" --process "))
        // containerd: the shim calls with --root and a JSON log, the exit status comes back.
        #expect(out.contains("hello from containerd, PID 1\n    (exited with status 3)"), "\(out)")
        #expect(calls.contains("containerd-shim[") && calls.contains(" --log-format json create --bundle ") && calls.contains(" ps --format json lesson-task"))
        #expect(out.contains("PAUSED"))
        // Docker, when installed: its own dockerd with isorun added, the image loaded, the
        // container's output and memory limit, the shim's calls.
        if dockerInstalled {
            #expect(out.contains("--add-runtime isorun=") && out.contains("Runtimes: ") && out.contains("Loaded image: \(Engines.imageName)"), "\(out)")
            #expect(out.contains("hello from Docker, PID 1\n    67108864\n"), "\(out)")
            #expect(out.contains("hello from exec, PID ") && calls.contains("runtime-runc/moby --log ") && calls.contains(" exec --process "), "\(out)")
        }
        // gVisor, when installed: the same image under another kernel.
        if Command.find("runsc") != nil {
            #expect(out.contains("    Linux 4.4.0\n") && out.contains("Starting gVisor"), "runsc's kernel did not answer: \(out)")
        }
        // Elsewhere.
        for text in ["dockerd --add-runtime isorun=", "\"default-runtime\": \"isorun\"", "BinaryName = ", "kind: RuntimeClass", "handler: isorun", "runtimeClassName: isorun"] {
            #expect(out.contains(text), "missing '\(text)'")
        }
        // Nothing left: its folder, its cgroups, the call log it turned on.
        let folders = out.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: "/tmp/isolation-engines-") else { return nil }
            // "/tmp/isolation-engines-XXXXXX/podman…" → "/tmp/isolation-engines-XXXXXX"
            return "/" + line[range.lowerBound...].split(separator: "/").prefix(2).joined(separator: "/")
        }
        #expect(!folders.isEmpty)
        for path in Set(folders) { #expect(!FileManager.default.fileExists(atPath: path), "\(path) left") }
        let cgroups = Cleanup.cgroupParents().flatMap { parent in
            ((try? FileManager.default.contentsOfDirectory(atPath: parent.string)) ?? []).filter {
                $0.hasPrefix("podman-lesson-") || $0.hasPrefix("containerd-lesson-") || $0.hasPrefix("docker-lesson-")
            }
        }
        #expect(cgroups.isEmpty, "\(cgroups)")
        if !logExisted { #expect(!FileManager.default.fileExists(atPath: ContainerStore.defaultRoot.string + "/calls.log")) }
        if runDirectories["/run/docker"] == false { #expect(!FileManager.default.fileExists(atPath: "/run/docker"), "/run/docker left") }
    }
}

@Suite("chapter-05: podman runs gVisor's runsc beside isorun", .serialized, .enabled(if: isRoot, "engines need root"),
       .enabled(if: podmanInstalled, "podman is not installed: apt-get install podman"),
       .enabled(if: Command.find("runsc") != nil, "runsc is not installed: apt-get install runsc"))
struct Chapter05GVisorTests {
    @Test("the lesson's image under runsc: gVisor's kernel answers (uname, dmesg), files and exit codes as under isorun; nothing left")
    func runscBesideIsorun() throws {
        let podman = try PodmanUnderTest("runsc", logCalls: false, otherRuntimes: [("runsc", Command.find("runsc")!)])
        defer { podman.remove() }
        let runsc = ["--runtime-flag", "platform=ptrace", "--runtime-flag", "network=none"]
        let probe = "uname -r; dmesg | head -n 1; hostname; echo written > /tmp/x && cat /tmp/x; exit 7"
        let underRunsc = try podman.podman(runsc + podman.runArguments(["--rm", "--runtime", "runsc", "--hostname", "box", Engines.imageName, "sh", "-c", probe]), timeout: 120)
        let underIsorun = try podman.podman(podman.runArguments(["--rm", "--hostname", "box", Engines.imageName, "sh", "-c", probe]))
        // Another kernel: gVisor's Sentry says it is Linux 4.4.0 and has booted.
        let runscLines = underRunsc.stdout.split(separator: "\n").map(String.init)
        #expect(runscLines.first == "4.4.0", "\(underRunsc)")
        #expect(underRunsc.stdout.contains("Starting gVisor"), "\(underRunsc)")
        // The host's kernel under isorun.
        let isorunLines = underIsorun.stdout.split(separator: "\n").map(String.init)
        #expect(isorunLines.first == Preflight.kernelRelease(), "\(underIsorun)")
        // The rest is the same container: the image's files, a write, the exit status.
        #expect(underRunsc.status == 7 && underIsorun.status == 7, "runsc: \(underRunsc)\nisorun: \(underIsorun)")
        #expect(Array(runscLines.suffix(2)) == ["box", "written"] && Array(isorunLines.suffix(2)) == ["box", "written"], "runsc: \(underRunsc)\nisorun: \(underIsorun)")
        let left = try podman.podman(["ps", "--all", "--quiet"])
        #expect(left.stdout.isEmpty, "containers left: \(left.stdout)")
        #expect(Engines.processes(mentioning: podman.folder.path).isEmpty, "processes left in \(podman.folder.path)")
    }
}
