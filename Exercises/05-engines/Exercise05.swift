// Exercise 05 — what an engine asks a runtime. podman (through conmon) and containerd
// (through its shim) never make a container themselves: they run a runtime's `create`,
// `start`, `state`, `kill` and `delete`, each a separate short process, and read the
// answers. Your steps (Steps.swift) are those answers; this file is the rest of a tiny
// runtime with runc's command line, written with the Isolation library.
//
//   sudo .build/debug/exercise-05 [--root DIR] create --bundle DIR [--pid-file FILE] ID
//   sudo .build/debug/exercise-05 [--root DIR] start|state|kill|delete ID
//   swift run check 05        (it drives your runtime the way an engine does)
//
// The solution is chapter 04's runtime: Runtime.create/start/state in
// Sources/Isolation/Runtime/Runtime.swift, ContainerStore.status and ContainerInit.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise05: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-05",
        abstract: "Exercise 05: a tiny OCI runtime an engine can drive (your steps: Steps.swift).",
        subcommands: [Create.self, Start.self, State.self, Kill.self, Delete.self, Init.self])

    /// Engines put runc's global options first (`runc --root DIR create …`): move
    /// `--root DIR` behind the subcommand, where ArgumentParser reads it.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var global: [String] = []
        while let first = arguments.first, first.hasPrefix("--root") {
            global.append(arguments.removeFirst())
            if first == "--root", !arguments.isEmpty { global.append(arguments.removeFirst()) }
        }
        if !global.isEmpty, !arguments.isEmpty { arguments.insert(contentsOf: global, at: 1) }
        main(arguments)
    }
}

/// `--root`: where the runtime keeps one folder per container (runc: /run/runc).
struct RootOption: ParsableArguments {
    @Option(help: ArgumentHelp("The runtime's state folder.", valueName: "DIR")) var root = "/run/isolation-exercise-05"

    func folder(_ id: String) throws -> FilePath {
        try ContainerStore.validate(id: id)
        return FilePath(root).appending(id)
    }
}

/// What `create` remembers about a container, for the commands that come after it.
struct Record {
    var id: String
    var bundle: String
    /// The init's PID, and its start time (field 22 of /proc/PID/stat), so that a reused
    /// PID is never mistaken for the container.
    var pid: pid_t
    var startTime: UInt64
    /// The container's folder; the exec FIFO is `folder/exec.fifo`.
    var folder: FilePath
    var fifo: FilePath { folder.appending("exec.fifo") }

    func save() throws {
        try FileSystem.writeFile(folder.appending("record"), "\(pid)\n\(startTime)\n\(bundle)\n", mode: 0o600)
    }

    static func load(_ id: String, in root: RootOption) throws -> Record {
        let folder = try root.folder(id)
        guard let text = try? FileSystem.readString(folder.appending("record")) else {
            throw IsolationError("container '\(id)' does not exist")
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3, let pid = pid_t(lines[0]), let start = UInt64(lines[1]) else {
            throw IsolationError("the record of container '\(id)' is unreadable", hint: "delete --force \(id)")
        }
        return Record(id: id, bundle: lines[2], pid: pid, startTime: start, folder: folder)
    }
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a container: its init sets everything up and waits for `start`.")
    @OptionGroup var root: RootOption
    @Option(help: ArgumentHelp("The bundle: a folder with config.json.", valueName: "DIR")) var bundle = "."
    @Option(help: ArgumentHelp("Write the init's PID here (engines read it).", valueName: "FILE")) var pidFile: String?
    @Argument var id: String

    func run() throws {
        runExercise("05") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "namespaces and mounts need root")])
            let folder = try root.folder(id)
            let bundlePath = try FileSystem.realPath(FilePath(bundle))
            let config = try OCIConfig.load(bundle: bundlePath)
            _ = try BundleSetup.rootfs(of: config, bundle: bundlePath)
            let kinds = (config.linux?.namespaceKinds ?? []).subtracting([.cgroup, .user])
            guard kinds.contains(.mount) else { throw IsolationError("config.json needs a mount namespace") }
            guard config.process != nil else { throw IsolationError("config.json has no process") }

            try FileSystem.makeDirectories(FilePath(root.root), mode: 0o711)
            guard mkdir(folder.string, 0o711) == 0 else {
                if errno == EEXIST { throw IsolationError("container '\(id)' already exists") }
                throw StageError(stage: "mkdir \(folder)", errno: Errno(rawValue: errno))
            }
            var child: ChildProcess? = nil
            do {
                // Your step "exec-fifo": the FIFO the init will wait on until `start`.
                try makeExecFIFO(at: folder.appending("exec.fifo"))

                // The init says "ready" (or what failed) on a pipe it inherits at fd ≥ 100.
                let sync = try makePipe()
                let syncFD = fcntl(sync.write, F_DUPFD, 100)
                close(sync.write)
                defer { close(sync.read) }
                FileSystem.closeOnExecAll(except: [syncFD])
                var options = SpawnOptions()
                options.namespaces = kinds
                // No parent-death signal: the container outlives `create`. Its init is
                // re-parented to the engine's subreaper (conmon, the shim), which reaps it.
                child = try ChildProcess.spawn(
                    "/proc/self/exe",
                    arguments: ["exercise-05", "init", "--bundle", bundlePath.string, "--state-dir", folder.string, "--sync-fd", "\(syncFD)"],
                    environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], options: options)
                close(syncFD)
                let answer = readAll(sync.read).split(separator: "\n").first.map(String.init) ?? ""
                guard answer == "ready" else {
                    throw IsolationError(answer.hasPrefix("error ") ? String(answer.dropFirst(6)) : "the container's init ended before it was ready")
                }
                guard let info = ProcessInfoStat(pid: child!.pid) else { throw IsolationError("the container's init vanished") }
                try Record(id: id, bundle: bundlePath.string, pid: child!.pid, startTime: info.startTime, folder: folder).save()
                if let pidFile { try FileSystem.writeFile(FilePath(pidFile), "\(child!.pid)") }
            } catch {
                if let child { _ = try? child.signal(SIGKILL); _ = try? child.wait() }
                try? FileSystem.removeTree(folder)
                throw error
            }
        }
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Let a created container's init exec its process.")
    @OptionGroup var root: RootOption
    @Argument var id: String

    func run() throws {
        runExercise("05") {
            let record = try Record.load(id, in: root)
            let status = try containerState(record).status
            guard status == .created else { throw IsolationError("cannot start container '\(id)': it is \(status.rawValue), not created") }
            try startContainer(fifo: record.fifo)  // your step "start"
        }
    }
}

struct State: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the container's state as runtime-spec JSON.")
    @OptionGroup var root: RootOption
    @Argument var id: String

    func run() throws {
        runExercise("05") {
            let state = try containerState(try Record.load(id, in: root))  // your step "state"
            print(String(decoding: state.encodedJSON(), as: UTF8.self))
        }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal to the container's init (default SIGTERM).")
    @OptionGroup var root: RootOption
    @Argument var id: String
    @Argument(help: "A number or a name: 15, TERM, SIGKILL …") var signal = "TERM"

    func run() throws {
        runExercise("05") {
            let names: [String: Int32] = ["HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1,
                                          "USR2": SIGUSR2, "TERM": SIGTERM, "CONT": SIGCONT, "STOP": SIGSTOP, "WINCH": SIGWINCH]
            let name = signal.uppercased().hasPrefix("SIG") ? String(signal.uppercased().dropFirst(3)) : signal.uppercased()
            guard let number = Int32(signal) ?? names[name], number > 0, number < 65 else {
                throw IsolationError("unknown signal '\(signal)'", hint: "give a number or one of: " + names.keys.sorted().joined(separator: ", "))
            }
            let record = try Record.load(id, in: root)
            guard try containerState(record).status != .stopped else { throw IsolationError("container '\(id)' is not running") }
            guard Glibc.kill(record.pid, number) == 0 else { throw StageError(stage: "kill(\(record.pid), \(signalName(number)))", errno: Errno(rawValue: errno)) }
        }
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a stopped container (--force: kill it first).")
    @OptionGroup var root: RootOption
    @Flag var force = false
    @Argument var id: String

    func run() throws {
        runExercise("05") {
            let folder = try root.folder(id)
            guard let record = try? Record.load(id, in: root) else {
                if force && FileSystem.isDirectory(folder) { try FileSystem.removeTree(folder); return }
                throw IsolationError("container '\(id)' does not exist")
            }
            if try containerState(record).status != .stopped {
                guard force else { throw IsolationError("cannot delete container '\(id)': it is not stopped", hint: "kill it first, or delete --force") }
                Glibc.kill(record.pid, SIGKILL)
                for _ in 0..<500 where ProcessInfoStat(pid: record.pid).map({ $0.startTime == record.startTime && $0.state != "Z" }) == true {
                    usleep(10_000)
                }
            }
            try FileSystem.removeTree(folder)
        }
    }
}

/// The container's init (hidden): set up the inside, say "ready", wait for `start`, exec.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) the container's init.", shouldDisplay: false)
    @Option var bundle: String
    @Option var stateDir: String
    @Option var syncFd: Int32

    func run() throws {
        _ = fcntl(syncFd, F_SETFD, FD_CLOEXEC)  // the process must not inherit it
        var ready = false
        func report(_ line: String) {
            _ = (line + "\n").utf8CString.withUnsafeBufferPointer { write(syncFd, $0.baseAddress, $0.count - 1) }
        }
        do {
            let config = try OCIConfig.load(bundle: FilePath(bundle))
            guard let process = config.process else { throw IsolationError("config.json has no process") }
            let rootfs = try BundleSetup.rootfs(of: config, bundle: FilePath(bundle))
            // The state folder is on the host: keep a descriptor to it across pivot_root.
            let state = open(stateDir, 0o10000000 /* O_PATH */ | O_DIRECTORY | O_CLOEXEC)
            guard state >= 0 else { throw StageError(stage: "open \(stateDir)", errno: Errno(rawValue: errno)) }
            // Chapter 02's set-up: hostname, private mounts, /proc, /dev, pivot_root.
            let kinds = (config.linux?.namespaceKinds ?? []).subtracting([.cgroup, .user])
            _ = try Container(rootfs: rootfs, namespaces: kinds, hostname: config.hostname).setUpInside()
            let environment = process.env ?? []
            let path = environment.first(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) } ?? Exec.containerPath
            let program = try Exec.resolve(process.args[0], path: path)
            try FileSystem.changeDirectory(FilePath(process.cwd))
            report("ready")
            close(syncFd)
            ready = true

            // Your step "wait-for-start": block here until `start`.
            try waitForStart(stateDirectory: state)
            close(state)
            // The init becomes the process: the engine's PID is the process's PID.
            try Exec.replaceProcess(program, arguments: process.args, environment: environment)
        } catch let todo as ExerciseTODO {
            if !ready { report("error exercise 05: step \"\(todo.step)\" is still a TODO") }
            printError(todo.description)
            Glibc.exit(exerciseTODOExitCode)
        } catch {
            if ready { printError("exercise-05 init: \(error)") } else { report("error \(String(describing: error).split(separator: "\n").joined(separator: " "))") }
            Glibc.exit(1)
        }
    }
}
