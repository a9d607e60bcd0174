// Exercise 05: the checker plays the engine (conmon, containerd's shim): it is a child
// subreaper, runs the runtime's commands one by one, reads the pid file and the state
// JSON, and reaps the container's process for its exit code.
import CIsolation
import Glibc
import Isolation
import SystemPackage

func checkEngine(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("05")
        let bundle = folder.appending("bundle")
        try FileSystem.makeDirectories(bundle)
        _ = try context.rootfs(in: bundle)
        var config = OCIConfig.defaultSpec(args: ["sh", "-c", "echo \"started pid=$$ hostname=$(hostname)\"; read x; exit 7"], cgroupNamespace: false)
        config.root = OCIConfig.Root(path: "rootfs", readonly: false)
        config.hostname = "isolation-ex05"
        config.mounts = (config.mounts ?? []).filter { $0.destination == "/proc" || $0.destination == "/dev" }
        try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
        let realBundle = try FileSystem.realPath(bundle).string
        let stateRoot = folder.appending("state")
        let id = "check-05-\(getpid())"
        let pidFile = folder.appending("container.pid")
        let outFile = folder.appending("container.out")
        let engine = Engine(program: program, root: stateRoot.string, environment: context.environment())

        // conmon and containerd-shim are subreapers: the container's init, orphaned when
        // `create` exits, becomes their child, and they collect its exit status.
        _ = iso_set_child_subreaper(1)
        var containerPID: pid_t? = nil
        defer {
            if let pid = containerPID, kill(pid, 0) == 0 { kill(pid, SIGKILL); var raw: Int32 = 0; _ = waitpid(pid, &raw, 0) }
            _ = engine.run(["delete", "--force", id])
            _ = context.unmountLeftovers(under: folder)
            try? FileSystem.removeTree(stateRoot)
        }

        // 1. create: the engine gives the container its stdin (a pipe) and stdout (a file).
        let input = try makePipe()
        defer { close(input.read); if input.write >= 0 { close(input.write) } }
        let output = try FileDescriptor.open(outFile, .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite])
        let create = engine.run(["create", "--bundle", bundle.string, "--pid-file", pidFile.string, id],
                                stdin: input.read, stdout: output.rawValue, timeout: 30)
        try? output.close()
        let todos = create.stderr.todoSteps
        guard report.check("`create` succeeds", create.status == .exited(0),
                           observed: "exercise-05 create … \(id) \(create.status)" + (todos.isEmpty ? "" : ", at a TODO: " + todos.map { "step \"\($0)\"" }.joined(separator: ", ")),
                           expected: "exited 0, with the container created and waiting",
                           hint: todos.isEmpty ? "what it said:\n" + indent(create.stderr) : "write that step in Exercises/05-engines/Steps.swift:\n" + indent(create.stderr)) else {
            report.skipped("state, start, the exit code and delete (create failed)")
            return
        }
        let pidText = ((try? FileSystem.readString(pidFile)) ?? "").trimmed
        guard let pid = pid_t(pidText), kill(pid, 0) == 0 else {
            report.fail("the pid file names the container's init", observed: "\(pidFile): \(pidText.isEmpty ? "missing or empty" : pidText)", expected: "a live PID", hint: "create writes --pid-file once the init is ready")
            return
        }
        containerPID = pid
        let cmdline = Proc.cmdline(pid)
        report.check("after create, the init waits: the process has not been exec'd", cmdline.dropFirst().first == "init" && !contents(of: outFile).contains("started"),
                     observed: "PID \(pid) runs: \(cmdline.prefix(2).joined(separator: " ")) …; the container's output: \(contents(of: outFile).isEmpty ? "nothing yet" : contents(of: outFile).trimmed)",
                     expected: "exercise-05 init, blocked before execve, silent",
                     hint: "step \"wait-for-start\": the init must block on exec.fifo (open O_WRONLY) until `start`")
        checkNamespaceIdentity(report, pid: pid, kinds: [.pid, .mount, .uts], who: "the container (PID \(pid))") { _ in
            "config.json asks for it in linux.namespaces; the starter passes those to clone(2)"
        }
        checkState(report, engine, id, expected: .created, pid: pid, bundle: realBundle,
                   hint: "step \"state\": created while the init is alive and exec.fifo exists (the process has not started yet)")

        // 2. start: the init execs the process, which keeps its PID.
        let start = engine.run(["start", id], timeout: 15)
        guard report.check("`start` succeeds", start.status == .exited(0), observed: "exercise-05 start \(id) \(start.status)" + (start.stderr.todoSteps.isEmpty ? "" : ", at a TODO: step \"\(start.stderr.todoSteps[0])\""),
                     expected: "exited 0", hint: "step \"start\": open exec.fifo for reading, read the init's byte, remove the FIFO:\n" + indent(start.stderr)) else {
            report.skipped("the process, its exit status, stopped and delete (start failed)")
            return
        }
        let end = monotonicNow() + 5
        while !contents(of: outFile).contains("started") && monotonicNow() < end { usleep(20_000) }
        let said = contents(of: outFile).trimmed
        report.check("the process runs as the container's PID 1, in the init's place", said.contains("started pid=1 hostname=isolation-ex05") && Proc.comm(pid) == "sh",
                     observed: "its output: \(said.isEmpty ? "nothing in 5 s" : said); PID \(pid) is now \(Proc.comm(pid))",
                     expected: "started pid=1 hostname=isolation-ex05, from PID \(pid) (exec, not a new process)",
                     hint: "step \"wait-for-start\" must return once `start` read the byte, so that the init goes on to execve; step \"start\" must open the FIFO")
        checkState(report, engine, id, expected: .running, pid: pid, bundle: realBundle,
                   hint: "step \"state\": running once the FIFO is gone and the process lives")

        // 3. The process exits 7: the engine (we, the subreaper) reaps it.
        let written = "exit\n".utf8CString.withUnsafeBufferPointer { write(input.write, $0.baseAddress, $0.count - 1) }
        _ = written
        var raw: Int32 = 0
        var reaped: pid_t = 0
        let stop = monotonicNow() + 10
        repeat { reaped = waitpid(pid, &raw, WNOHANG); if reaped == 0 { usleep(20_000) } } while reaped == 0 && monotonicNow() < stop && !interrupted()
        let exitStatus = reaped == pid ? ExitStatus(waitStatus: raw) : nil
        if reaped == pid { containerPID = nil }
        report.check("the engine gets the process's exit status", exitStatus == .exited(7),
                     observed: reaped == pid ? "waitpid(\(pid)) → \(exitStatus!)" : "waitpid(\(pid)) → \(reaped < 0 ? "not our child (\(Errno(rawValue: errno)))" : "still running after 10 s")",
                     expected: "exited with status 7 (the probe's `exit 7`)",
                     hint: "the init must execve the process itself (no extra fork), so the engine's child is the process")
        checkState(report, engine, id, expected: .stopped, pid: nil, bundle: realBundle,
                   hint: "step \"state\": stopped once the process is gone (kill(pid, 0) fails, or /proc/PID/stat is missing or says Z), and no pid then")
        let again = engine.run(["start", id], timeout: 15)
        report.check("`start` of a stopped container is refused", again.status != .exited(0),
                     observed: "exercise-05 start \(id) \(again.status): \(again.stderr.trimmed.split(separator: "\n").first ?? "")",
                     expected: "an error (runtime.md: start of a container that is not created is an error)",
                     hint: "step \"state\" must say stopped, so that start refuses")

        // 4. delete: the folder goes, and the container with it.
        let delete = engine.run(["delete", id], timeout: 15)
        let after = engine.run(["state", id], timeout: 15)
        report.check("`delete` removes it", delete.status == .exited(0) && after.status != .exited(0) && !FileSystem.exists(stateRoot.appending(id)),
                     observed: "delete \(delete.status); then state \(after.status); \(stateRoot.appending(id)) \(FileSystem.exists(stateRoot.appending(id)) ? "still there" : "gone")",
                     expected: "delete exits 0; state then fails; the folder is gone",
                     hint: "delete needs state to say stopped:\n" + indent(delete.stderr))
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a bundle in /tmp", hint: "run `swift run doctor`")
    }
}

private func contents(of file: FilePath) -> String { (try? FileSystem.readString(file)) ?? "" }

/// `state ID`, parsed as runtime-spec state JSON, compared with what it must say.
private func checkState(_ report: Report, _ engine: Engine, _ id: String, expected: OCIState.Status, pid: pid_t?, bundle: String, hint: String) {
    let result = engine.run(["state", id], timeout: 15)
    let json = result.stdout.trimmed
    guard result.status == .exited(0) else {
        let todos = result.stderr.todoSteps
        report.fail("`state` says \(expected.rawValue)", observed: "exercise-05 state \(id) \(result.status)" + (todos.isEmpty ? ": " + result.stderr.trimmed : ", at a TODO: step \"\(todos[0])\""),
                    expected: "state JSON with status \(expected.rawValue)", hint: hint)
        return
    }
    let state: OCIState
    do { state = try OCIState.decode(json: Array(json.utf8), source: "state output") } catch {
        report.fail("`state` says \(expected.rawValue)", observed: "not runtime-spec state JSON: \(error) — \(json.prefix(200))",
                    expected: "{\"ociVersion\", \"id\", \"status\", \"pid\", \"bundle\"}", hint: "print OCIState(...).encodedJSON()")
        return
    }
    let ok = state.status == expected && state.pid == pid && state.id == id && state.bundle == bundle
    report.check("`state` says \(expected.rawValue)\(pid.map { ", pid \($0)" } ?? ", no pid")", ok,
                 observed: "status \(state.status.rawValue), pid \(state.pid.map(String.init) ?? "none"), id \(state.id), bundle \(state.bundle)",
                 expected: "status \(expected.rawValue), pid \(pid.map(String.init) ?? "none"), id \(id), bundle \(bundle)", hint: hint)
}

/// Runs the learner's runtime the way an engine does: one short command at a time.
struct Engine {
    var program: String
    var root: String
    var environment: [String]

    struct Result { var status: ExitStatus; var stdout: String; var stderr: String }

    /// `program --root ROOT ARGS`, stdout and stderr captured (stdout into a file the
    /// container may keep open, so that we never wait for its end).
    func run(_ arguments: [String], stdin: Int32? = nil, stdout: Int32? = nil, timeout: Double = 15) -> Result {
        runCaptured(FilePath(program), ["exercise-05", "--root", root] + arguments, environment: environment, stdin: stdin, stdout: stdout, timeout: timeout)
    }
}

/// Runs `program` with `argv` to its end (SIGKILL after `timeout` seconds), its stdout
/// and stderr captured in files (or stdout into `stdout`), stdin /dev/null unless given.
func runCaptured(_ program: FilePath, _ argv: [String], environment: [String], stdin: Int32? = nil, stdout: Int32? = nil,
                 timeout: Double = 15) -> Engine.Result {
    guard let folder = try? FileSystem.makeTemporaryDirectory(purpose: "check-engine") else {
        return Engine.Result(status: .exited(255), stdout: "", stderr: "cannot make a temporary folder")
    }
    defer { try? FileSystem.removeTree(folder) }
    do {
        let outPath = folder.appending("out"), errPath = folder.appending("err")
        let out = try FileDescriptor.open(outPath, .writeOnly, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
        let err = try FileDescriptor.open(errPath, .writeOnly, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
        let null = try FileDescriptor.open("/dev/null", .readOnly, options: [.closeOnExec])
        defer { try? out.close(); try? err.close(); try? null.close() }
        var options = SpawnOptions()
        options.standardInput = stdin.map { FileDescriptor(rawValue: $0) } ?? null
        options.standardOutput = stdout.map { FileDescriptor(rawValue: $0) } ?? out
        options.standardError = err
        let child = try ChildProcess.spawn(program, arguments: argv, environment: environment, options: options)
        var raw: Int32 = 0
        let end = monotonicNow() + timeout
        var status: ExitStatus? = nil
        while status == nil {
            if waitpid(child.pid, &raw, WNOHANG) == child.pid { status = ExitStatus(waitStatus: raw); break }
            if monotonicNow() > end || interrupted() { kill(child.pid, SIGKILL); _ = waitpid(child.pid, &raw, 0); status = .signaled(SIGKILL); break }
            usleep(10_000)
        }
        return Engine.Result(status: status!, stdout: (try? FileSystem.readString(outPath)) ?? "", stderr: (try? FileSystem.readString(errPath)) ?? "")
    } catch {
        return Engine.Result(status: .exited(255), stdout: "", stderr: "\(error)")
    }
}

/// `check 05 --hint`: level 1 the API, level 2 the shape of the answer.
let engineHints: [StepHint] = [
    StepHint(step: "exec-fifo",
             api: "mkfifo(3): Glibc's mkfifo(path.string, mode) returns -1 and sets errno on failure (throw StageError(stage:errno:) or Errno(rawValue: errno)). The umask takes bits off the mode: chmod(2) after it.",
             shape: "mkfifo(path.string, 0o622), its failure thrown, then chmod(path.string, 0o622): the init may have become another user by the time it opens it."),
    StepHint(step: "wait-for-start",
             api: "openat(2) with the directory descriptor: openat(stateDirectory, \"exec.fifo\", O_WRONLY | O_CLOEXEC) blocks until a reader opens the FIFO. write(2) one byte, close(2).",
             shape: "fd = openat(…, O_WRONLY | O_CLOEXEC), a failure thrown; write one byte (any: \"0\"); close(fd). Returning lets the init go on to execve(2)."),
    StepHint(step: "start",
             api: "open(2) with O_RDONLY | O_NONBLOCK | O_CLOEXEC does not block on a FIFO; poll(2) with POLLIN and a timeout waits for the byte; read(2) it; unlink(2) the FIFO.",
             shape: "Open non-blocking; loop: poll 10 ms, read 1 byte; on the byte, unlink the FIFO and return; after ~10 s throw an error that names the FIFO (a dead init never writes). Close the descriptor in a defer."),
    StepHint(step: "state",
             api: "ProcessInfoStat(pid: record.pid) reads /proc/PID/stat: nil when there is no such process; .startTime and .state (\"Z\" zombie, \"X\" dead). record.startTime is what create saw; FileSystem.exists(record.fifo, followSymlinks: false); OCIState(id:status:pid:bundle:).",
             shape: "stopped unless the process exists with record.startTime and a state other than Z or X; else created while record.fifo exists, running when it is gone. pid is nil when stopped."),
]
