// Exercise 05, stretch: a real engine drives the learner's runtime. A private podman
// (containers.conf and storage in the check's folder: Engines.Podman) has the runtime
// registered under its name, through a wrapper that records each call, its options and
// its exit status. Observed from outside: podman's own view (run, inspect, logs, ps),
// that call log, the container's namespaces, the file podman reads errors from, the
// processes after a stop, and that nothing is left after.
import Foundation
import Glibc
import Isolation
import SystemPackage

func checkEngineStretch(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    let missing = Engines.missing(["podman", "conmon"])
    guard missing.isEmpty else {
        report.fail("podman is installed", observed: "not found in \(Engines.searchPath): \(missing.joined(separator: ", "))",
                    expected: "podman and conmon", hint: "sudo apt-get install podman (it brings conmon)")
        return
    }
    do {
        let folder = try context.folder("05-stretch")
        let tag = "check-05s-\(getpid())"
        // 1. The engine's command line, straight: global options first, the error logged.
        let direct = folder.appending("direct"), log = folder.appending("direct.log")
        let answer = runCaptured(FilePath(program), ["exercise-05-stretch", "--root", direct.string, "--log-format=json", "--log", log.string, "state", tag],
                                 environment: context.environment(), timeout: 30)
        let todos = answer.stderr.todoSteps
        let logged = logLines(log)
        report.check("it reads an engine's global options, and logs its error as JSON", answer.status == .exited(1) && logged.last.map { $0.isError && $0.msg.contains(tag) } == true,
                     observed: "--root … --log-format=json --log FILE state \(tag): \(answer.status)" + (todos.isEmpty ? "" : ", at a TODO: " + todos.map { "step \"\($0)\"" }.joined(separator: ", "))
                        + "; FILE: " + (logged.isEmpty ? "no JSON line" : logged.map(\.text).joined(separator: " ")),
                     expected: "exit status 1 (no such container) and {\"level\":\"error\",\"msg\":\"… \(tag) …\",\"time\":…} in FILE",
                     hint: todos.isEmpty ? "steps \"global-options\" and \"log\"; what it said:\n" + indent(answer.stderr) : "write that step in Exercises/05-engines/Stretch/Steps.swift:\n" + indent(answer.stderr))
        if !todos.isEmpty {
            report.skipped("podman runs it (the runtime stops at a TODO)")
            return
        }
        let systemd = runCaptured(FilePath(program), ["exercise-05-stretch", "--root", direct.string, "--systemd-cgroup", "state", tag], environment: context.environment())
        report.check("an option it cannot honour is refused", systemd.status != .exited(0) && systemd.stderr.contains("systemd"),
                     observed: "--systemd-cgroup state \(tag): \(systemd.status): \(systemd.stderr.trimmed.split(separator: "\n").first ?? "")",
                     expected: "an error that names --systemd-cgroup",
                     hint: "step \"global-options\": refuse it with a message (podman's systemd cgroup manager sends it; this runtime writes cgroupfs paths)")
        try? FileSystem.removeTree(direct)

        // 2. A private podman, with the runtime registered through a wrapper that logs calls.
        let podman = try PrivatePodman(folder: folder, program: program, tag: tag, context: &context)
        defer {
            let left = podman.remove()
            report.check("nothing is left: no container, process, mount, cgroup or state", left.isEmpty,
                         observed: left.isEmpty ? "podman ps -a: empty; no process, mount or cgroup of \(tag); no state" : left.joined(separator: "; "),
                         expected: "all gone after podman rm", hint: "delete must remove the container's cgroup and state folder (the starter's Runtime does)")
        }
        report.note("podman: everything in \(podman.engine.folder); runtime \"exercise-05-stretch\" = \(podman.wrapper)")
        checkRunAndStop(report, podman)
        checkErrorReachesEngine(report, podman)
        checkStopWithoutPIDNamespace(report, podman)
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a private podman in /tmp", hint: "run `swift run doctor`")
    }
}

/// podman run -d, its view, the container's namespaces, stop, rm; and the calls it made.
private func checkRunAndStop(_ report: Report, _ podman: PrivatePodman) {
    let name = podman.tag + "-run"
    let run = podman.run(["run", "-d", "--name", name, "--cgroup-parent", podman.engine.cgroupParent, Engines.imageName,
                          "sh", "-c", "echo \"started pid=$$\"; exec sleep 61.5"])
    let id = run.stdout.trimmed
    guard report.check("podman run -d starts a container with it", run.status == .exited(0) && id.count == 64,
                       observed: "podman run -d \(run.status)" + (run.stderr.isEmpty ? "" : ": " + run.stderr.trimmed),
                       expected: "exit 0 and the container's ID",
                       hint: "podman shows the runtime's error from its --log file; steps \"global-options\" and \"log\"") else { return }
    let inspect = podman.run(["inspect", "--format", "{{.State.Status}} {{.State.Pid}}", name]).stdout.trimmed.split(separator: " ")
    let pid = inspect.count == 2 ? pid_t(inspect[1]) : nil
    report.check("podman inspect: running, with a PID", inspect.first == "running" && pid != nil && pid! > 0 && kill(pid!, 0) == 0,
                 observed: "State.Status, State.Pid: \(inspect.joined(separator: " "))", expected: "running PID (a live process)",
                 hint: "podman reads the pid file that create writes")
    if let pid, pid > 0 {
        checkNamespaceIdentity(report, pid: pid, kinds: [.pid, .mount, .uts], who: "the container (PID \(pid))") { _ in
            "the runtime's create makes the namespaces config.json lists"
        }
    }
    var said = ""
    for _ in 0..<50 where !said.contains("started") { said = podman.run(["logs", name]).stdout.trimmed; usleep(100_000) }
    report.check("the process's output reaches podman (podman logs)", said == "started pid=1",
                 observed: "podman logs: \(said.isEmpty ? "nothing" : said)", expected: "started pid=1",
                 hint: "the container's stdio is what conmon gave create: the init must keep it")
    let stop = podman.run(["stop", "-t", "1", name], timeout: 60)
    let after = podman.run(["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name]).stdout.trimmed
    report.check("podman stop: SIGTERM, then SIGKILL; podman sees it exit 137", stop.status == .exited(0) && after == "exited 137",
                 observed: "podman stop \(stop.status)" + (stop.status == .exited(0) ? "" : ": " + stop.stderr.trimmed) + "; then \(after)",
                 expected: "exit 0, then exited 137 (sleep as PID 1 ignores SIGTERM)", hint: "podman calls kill ID 15, then kill ID 9")
    let removed = podman.run(["rm", name])
    let calls = podman.calls(for: id)
    let shape = calls.map(\.shape)
    let expectedShape = ["create", "start", "kill 15", "kill 9", "delete --force"]
    let createCall = calls.first { $0.shape == "create" }?.arguments ?? ""
    report.check("the calls podman made, with its options, each exit 0",
                 removed.status == .exited(0) && shape == expectedShape && calls.allSatisfy { $0.status == 0 }
                    && createCall.hasPrefix("--log-format=json --log ") && createCall.contains(" --pid-file "),
                 observed: calls.isEmpty ? "no call of \(id.prefix(12)) in the log" : calls.map { "\($0.status) \($0.short(id))" }.joined(separator: " · "),
                 expected: "0 --log-format=json --log FILE create --bundle DIR --pid-file FILE ID · 0 start · 0 kill 15 · 0 kill 9 · 0 delete --force",
                 hint: "a call that exited non-zero is what podman complained about; its message is in its --log file")
}

/// A program that does not exist: create fails, and podman shows the runtime's message.
private func checkErrorReachesEngine(_ report: Report, _ podman: PrivatePodman) {
    let name = podman.tag + "-error"
    let program = "/isolation-\"missing\""
    let run = podman.run(["run", "--name", name, "--cgroup-parent", podman.engine.cgroupParent, Engines.imageName, program])
    let id = podman.run(["inspect", "--format", "{{.Id}}", name]).stdout.trimmed
    let logFile = podman.engine.folder.appending("run/vfs-containers/\(id)/userdata/oci-log")
    let lines = id.count == 64 ? logLines(logFile) : []
    let text = (try? FileSystem.readString(logFile)) ?? ""
    report.check("create's error is in podman's --log file, as JSON podman can read", lines.count == 1 && lines[0].isError && lines[0].msg.contains(program) && !lines[0].time.isEmpty,
                 observed: "\(logFile.lastComponent?.string ?? "oci-log"): " + (FileSystem.exists(logFile) ? (text.isEmpty ? "empty" : text.trimmed) : "missing"),
                 expected: "one line {\"level\":\"error\",\"msg\":\"\(program.replacingOccurrences(of: "\"", with: "\\\"")): …\",\"time\":…}",
                 hint: "step \"log\": append to the --log file, with the message escaped as a JSON string (it has quotes); podman reads nothing else to explain a failed create")
    report.check("podman shows that error, and exits 127", run.status == .exited(127) && run.stderr.contains(program),
                 observed: "podman run \(run.status): \(run.stderr.trimmed.split(separator: "\n").last ?? "")",
                 expected: "exited 127, naming \(program)",
                 hint: "podman turns \"no such file or directory\" in the runtime's message into 127")
    let calls = podman.calls(for: id)
    let cleanUp = calls.first { $0.shape == "delete --force" }
    report.check("delete --force after the failed create succeeds", cleanUp?.status == 0,
                 observed: calls.map { "\($0.status) \($0.short(id))" }.joined(separator: " · "),
                 expected: "… · 0 delete --force ID (a container that is gone is no error, as runc)",
                 hint: "the starter's Runtime.delete(force:) does this: did a step throw?")
    _ = podman.run(["rm", "--force", name])
}

/// `podman run --pid host`: no PID namespace, so podman stops it with `kill --all`. The
/// shell (the init) waits, on SIGTERM, for its child, which says when it gets SIGTERM too.
private func checkStopWithoutPIDNamespace(_ report: Report, _ podman: PrivatePodman) {
    let name = podman.tag + "-all"
    let script = "trap 'wait; echo main: child ended; exit 0' TERM; "
        + "( trap 'echo child got TERM; exit 0' TERM; echo started; while :; do sleep 0.1; done ) & wait"
    let run = podman.run(["run", "-d", "--pid", "host", "--name", name, "--cgroup-parent", podman.engine.cgroupParent, Engines.imageName, "sh", "-c", script])
    let id = run.stdout.trimmed
    guard report.check("podman run -d --pid host starts it", run.status == .exited(0) && id.count == 64,
                       observed: "podman run -d --pid host \(run.status)" + (run.stderr.isEmpty ? "" : ": " + run.stderr.trimmed),
                       expected: "exit 0 and the container's ID", hint: "what podman said is above") else { return }
    var said = ""
    for _ in 0..<50 where !said.contains("started") { said = podman.run(["logs", name]).stdout.trimmed; usleep(100_000) }
    let started = monotonicNow()
    let stop = podman.run(["stop", "-t", "4", name], timeout: 60)
    let took = monotonicNow() - started
    said = podman.run(["logs", name]).stdout.trimmed
    let kills = podman.calls(for: id).filter { $0.shape.hasPrefix("kill") }
    report.check("podman stop → kill --all: the shell's child gets SIGTERM too", stop.status == .exited(0) && said == "started\nchild got TERM\nmain: child ended"
                    && kills.map(\.shape) == ["kill --all 15"] && kills.allSatisfy { $0.status == 0 },
                 observed: "podman stop \(stop.status) after \(String(format: "%.1f", took)) s; calls: \(kills.isEmpty ? "no kill" : kills.map { "\($0.status) \($0.short(id))" }.joined(separator: " · "))"
                    + "; podman logs: " + said.replacingNewlines(),
                 expected: "0 kill --all ID 15 only; podman logs: started · child got TERM · main: child ended",
                 hint: "step \"kill-all\": the shell's child is not the init, and with --pid host the kernel kills nothing when the init ends (the shell waits for it here, until podman's SIGKILL). The container's cgroup lists every process")
    _ = podman.run(["rm", "--force", name])
}

/// One line of a --log file, as runc writes it with --log-format json.
private struct LogLine: Decodable {
    var level: String
    var msg: String
    var time: String
    var text: String { "{level \(level), msg \(msg), time \(time)}" }
    var isError: Bool { level == "error" }
}

/// The JSON lines of a --log file (a line that is not such JSON: none).
private func logLines(_ path: FilePath) -> [LogLine] {
    let text = (try? FileSystem.readString(path)) ?? ""
    let lines = text.split(separator: "\n")
    let parsed = lines.compactMap { try? JSONDecoder().decode(LogLine.self, from: Data($0.utf8)) }
    return parsed.count == lines.count ? parsed : []
}

/// podman with its configuration, storage and state in the check's folder, the project's
/// root filesystem imported as its image, and the runtime behind a wrapper that appends
/// `STATUS ARGS` to calls.log after each call (with `--root` in the folder: podman passes none).
private struct PrivatePodman {
    let engine: Engines.Podman
    let tag: String
    let wrapper: FilePath
    let callLog: FilePath
    let state: FilePath
    let environment: [String]

    struct Call {
        var status: Int
        var arguments: String
        /// "create", "start", "kill 15", "kill --all 15", "delete --force": the command, its signal.
        var shape: String {
            var words = arguments.split(separator: " ").map(String.init)
            while let first = words.first, first.hasPrefix("--") {  // the global options
                words.removeFirst()
                if !first.contains("="), let next = words.first, !next.hasPrefix("-") { words.removeFirst() }
            }
            guard let command = words.first else { return "" }
            switch command {
            case "kill": return (["kill"] + words.dropFirst().filter { $0.count != 64 }).joined(separator: " ")
            case "delete": return words.contains("--force") ? "delete --force" : "delete"
            default: return command
            }
        }
        /// The arguments, with the ID shortened and long paths cut.
        func short(_ id: String) -> String {
            arguments.split(separator: " ").map { word in
                word == id ? String(id.prefix(12)) : word.hasPrefix("/") && word.count > 24 ? "…/" + (word.split(separator: "/").last ?? "") : String(word)
            }.joined(separator: " ")
        }
    }

    init(folder: FilePath, program: String, tag: String, context: inout CheckContext) throws {
        let home = folder.appending("podman")
        engine = Engines.Podman(folder: home, runtime: folder.appending("runtime.sh"), runtimeName: "exercise-05-stretch", cgroupName: "podman-\(tag)")
        self.tag = tag
        wrapper = folder.appending("runtime.sh")
        callLog = folder.appending("calls.log")
        state = folder.appending("state")
        environment = context.environment() + engine.environment.map { "\($0.key)=\($0.value)" }
        try engine.writeConfiguration()
        try FileSystem.writeFile(wrapper, """
            #!/bin/sh
            # podman's calls, recorded: exit status, then the arguments podman gave.
            '\(program)' --root '\(state)' "$@"
            status=$?
            echo "$status $*" >> '\(callLog)'
            exit $status

            """, mode: 0o755)
        let rootfs = try context.rootfs(in: folder)
        let tar = folder.appending("rootfs.tar")
        let packed = try Command.run("/bin/tar", ["-C", rootfs.string, "-cf", tar.string, "."])
        try? FileSystem.removeTree(rootfs)
        guard packed.status == .exited(0) else { throw IsolationError("tar of \(rootfs): \(packed.standardError)") }
        let imported = run(["import", tar.string, Engines.imageName], timeout: 120)
        try? FileSystem.removeTree(tar)
        guard imported.status == .exited(0) else {
            _ = remove()
            throw IsolationError("podman import: \(imported.stderr.trimmed)")
        }
    }

    func run(_ arguments: [String], timeout: Double = 60) -> Engine.Result {
        guard let podman = Engines.find("podman") else { return Engine.Result(status: .exited(127), stdout: "", stderr: "podman not found") }
        return runCaptured(podman, ["podman"] + arguments, environment: environment, timeout: timeout)
    }

    /// The calls that named container `id`, in order.
    func calls(for id: String) -> [Call] {
        ((try? FileSystem.readString(callLog)) ?? "").split(separator: "\n").compactMap { line in
            guard line.split(separator: " ").contains(where: { $0 == id }), let space = line.firstIndex(of: " "), let status = Int(line[..<space]) else { return nil }
            return Call(status: status, arguments: String(line[line.index(after: space)...]))
        }
    }

    /// Removes the containers, the image, what runs or is mounted in the folder, the
    /// cgroups and the runtime's state; returns what was left before that clean-up.
    func remove() -> [String] {
        var left: [String] = []
        let listed = run(["ps", "--all", "--quiet"]).stdout.trimmed
        if !listed.isEmpty { left.append("podman ps -a: " + listed.replacingNewlines()) }
        let logged: String = (try? FileSystem.readString(callLog)) ?? ""
        let words: [Substring] = logged.split(whereSeparator: { $0 == " " || $0 == "\n" })
        let ids: Set<String> = Set(words.filter { $0.count == 64 }.map { String($0) })
        for id in ids.sorted() {
            if FileSystem.exists(state.appending(id)) { left.append("state of \(id.prefix(12)) in \(state)") }
            for parent in Cleanup.cgroupParents() where FileSystem.exists(parent.appending("\(engine.cgroupName)/libpod-\(id)")) {
                left.append("cgroup \(parent.appending("\(engine.cgroupName)/libpod-\(id)"))")
            }
        }
        let running = Proc.allPIDs().filter { pid in
            Proc.cmdline(pid) == ["sleep", "61.5"] || ((try? FileSystem.readString(FilePath("/proc/\(pid)/cgroup"))) ?? "").contains("/\(engine.cgroupName)/libpod-")
        }
        if !running.isEmpty { left.append("still running: " + running.map(String.init).joined(separator: " ")) }
        let mounted = ((try? MountInfo.table()) ?? []).map(\.mountPoint).filter { $0.hasPrefix(engine.folder.string + "/") || $0.hasPrefix(state.string + "/") }
        if !mounted.isEmpty { left.append("mounted: " + mounted.joined(separator: " ")) }
        _ = run(["rm", "--all", "--force", "--time", "0"])
        _ = run(["rmi", "--all", "--force"])
        for pid in running { kill(pid, SIGKILL) }
        Engines.stopProcessesAndMounts(under: engine.folder)
        engine.removeCgroups()
        try? FileSystem.removeTree(state)
        return left
    }
}

/// `check 05 --stretch --hint`: level 1 the API, level 2 the shape of the answer.
let engineStretchHints: [StepHint] = [
    StepHint(step: "global-options",
             api: "A loop over `arguments` while the word starts with \"-\": split it at the first \"=\" (word.split(separator: \"=\", maxSplits: 1)); without one, the value is the next word. EngineOptions has root, log, logFormat and debug; throw IsolationError(_:hint:) for what cannot be honoured.",
             shape: "switch on the name: --root, --log, --log-format (text or json, else throw), --debug; --systemd-cgroup throws (\"not supported: cgroupfs paths\"); anything else throws \"unknown global option\". Return the options and Array(arguments[index...]), the command first."),
    StepHint(step: "log",
             api: "open(2) with O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC and mode 0o644; write(2) one line; close(2). JSON strings escape \" and \\ and every character below 0x20 (\\n, \\t, \\u001b …); gmtime_r(3) gives the UTC time for RFC 3339.",
             shape: "Nothing without options.log. json: {\"level\":\"error\",\"msg\":ESCAPED,\"time\":\"2026-01-31T12:00:00Z\"} and a newline; text: time=\"…\" level=error msg=ESCAPED. Build the escaped string scalar by scalar (message.unicodeScalars); throw StageError when open or write fails."),
    StepHint(step: "kill-all",
             api: "Cgroup.existing(path: record.cgroupPath) (throws when it is gone); cgroup.processes() reads cgroup.procs; cgroup.setFrozen(true/false) (the freezer); Glibc.kill(pid, signal).",
             shape: "No cgroup: return if status == .stopped, else throw. Freeze it, defer the thaw; kill(pid, signal) for each of cgroup.processes(), ignoring ESRCH (one that just ended). The init's PID alone is the classic mistake."),
]
