// Exercise 05, stretch — your runtime, registered with a real engine. podman (through
// conmon) calls it as it calls runc: with global options before the command
// (`--log-format=json --log FILE create …`), reads the errors back from that file, and
// stops a container that shares the host's PID namespace with `kill --all`. Your steps
// (Steps.swift) are those answers; this file is the rest: exercise 05's runtime with its
// steps solved (chapter 04's `Runtime`, whose holes they were) and runc's commands.
//
//   sudo .build/debug/exercise-05-stretch [--root DIR] [--log FILE] [--log-format text|json] \
//        create --bundle DIR [--pid-file FILE] ID      (then start, state, kill [--all], delete)
//   swift run check 05 --stretch          (a private podman runs it; see README.md)
//
// The solution is chapter 04's runtime: GlobalOptions and RuntimeLog in
// Sources/RuntimeCLI/GlobalOptions.swift, Runtime.kill(id:signal:all:) in Runtime.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import RuntimeCLI
import SystemPackage

/// runc's global options, as your step "global-options" reads them.
struct EngineOptions: Equatable {
    /// Where the containers' state lives (runc: /run/runc). podman passes no --root.
    var root = "/run/isolation-exercise-05"
    /// Where the engine reads the runtime's errors (nil: nowhere but stderr).
    var log: String? = nil
    /// "text" or "json".
    var logFormat = "text"
    /// --debug: accepted, and nothing more.
    var debug = false

    var runtime: Runtime { Runtime(store: ContainerStore(root: FilePath(root))) }
}

@main
struct Exercise05Stretch {
    /// The options of this call, read once by `main` (the commands below use them).
    nonisolated(unsafe) static var options = EngineOptions()

    static func main() {
        // `create` clones this program again as the container's init (`init …`): chapter 04's.
        ContainerInitCommand.runIfRequested()
        let arguments = Array(CommandLine.arguments.dropFirst())
        let command: [String]
        do {
            // Your step "global-options": what comes before the command.
            (options, command) = try parseEngineOptions(arguments)
        } catch {
            fail(error, logged: false)
        }
        do {
            var parsed = try Commands.parseAsRoot(command)
            try parsed.run()
        } catch let error as CleanExit {
            Commands.exit(withError: error)
        } catch let code as ExitCode where code == .success {
            exit(0)
        } catch {
            fail(error, logged: true)
        }
        exit(0)
    }

    /// Every failure ends here: one line on stderr, and (your step "log") the same
    /// message where the engine reads it; exit 1, or 127/126 for a program that cannot run.
    static func fail(_ error: any Error, logged: Bool) -> Never {
        if let todo = error as? ExerciseTODO {
            printError(todo.description)
            exit(exerciseTODOExitCode)
        }
        let message: String
        switch error {
        case let error as IsolationError: message = error.hint.map { "\(error.message) (\($0))" } ?? error.message
        case let error as Errno: message = "\(error) (\(errnoName(error)))"
        case is ExecError, is StageError: message = String(describing: error)
        default: message = Commands.message(for: error)  // what ArgumentParser refused
        }
        printError("exercise-05-stretch: \(message)")
        if logged {
            do { try logError(message, options: options) } catch { fail(error, logged: false) }
        }
        exit((error as? ExecError)?.status ?? 1)
    }
}

/// runc's commands, each given the options `main` read.
struct Commands: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-05-stretch",
        abstract: "Exercise 05, stretch: a runtime a real engine can drive (your steps: Steps.swift).",
        subcommands: [Create.self, Start.self, State.self, Kill.self, Delete.self])
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a container; its init waits for `start`.")
    @Option(help: ArgumentHelp("The bundle: a folder with config.json.", valueName: "DIR")) var bundle = "."
    @Option(help: ArgumentHelp("Write the init's PID here (engines read it).", valueName: "FILE")) var pidFile: String?
    @Option(help: ArgumentHelp("A unix socket for the terminal's master (podman -t).", valueName: "SOCKET")) var consoleSocket: String?
    @Flag(help: "Keep the caller's session keyring.") var noNewKeyring = false
    @Argument var id: String

    func run() throws {
        try Preflight.require([Preflight.kernel(), Preflight.root(why: "namespaces, mounts and cgroups need root")])
        var runtime = Exercise05Stretch.options.runtime
        var options = Runtime.CreateOptions(bundle: FilePath(bundle))
        options.pidFile = pidFile.map { FilePath($0) }
        options.consoleSocket = consoleSocket.map { FilePath($0) }
        options.newKeyring = !noNewKeyring
        _ = try runtime.create(id: id, options: options)
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Let a created container's init exec its process.")
    @Argument var id: String
    func run() throws { try Exercise05Stretch.options.runtime.start(id: id) }
}

struct State: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the container's state as runtime-spec JSON.")
    @Argument var id: String
    func run() throws {
        print(String(decoding: try Exercise05Stretch.options.runtime.state(id: id).encodedJSON(), as: UTF8.self))
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal (default SIGTERM) to the container's init, or with --all to all its processes.")
    @Flag(name: .shortAndLong, help: "Every process of the container, not only its init.") var all = false
    @Argument var id: String
    @Argument(help: "A number (15) or a name (TERM, SIGKILL).") var signal = "TERM"

    func run() throws {
        let number = try parseSignal(signal)
        let runtime = Exercise05Stretch.options.runtime
        guard all else { return try runtime.kill(id: id, signal: number) }
        let record = try runtime.store.load(id)
        // Your step "kill-all".
        try signalEveryProcess(of: record, status: runtime.store.status(of: record), signal: number)
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a stopped container (--force: kill it first; one already gone is no error).")
    @Flag(name: .shortAndLong) var force = false
    @Argument var id: String
    func run() throws { try Exercise05Stretch.options.runtime.delete(id: id, force: force) }
}
