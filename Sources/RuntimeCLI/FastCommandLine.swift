import ArgumentParser
import Glibc
import Isolation

/// The commands an engine calls for every container (`create`, `start`, `state`, `kill`,
/// `delete`, `run`), read by hand when their command line is plain.
///
/// ArgumentParser finds a command's options by reflecting over its properties; in a
/// release build that costs about 3 ms of every call, more than the rest of `start` or
/// `state`. So a plain command line (known options, right number of arguments) fills the
/// same command structs here and runs them; anything else (help, a mistake, an option
/// spelled in a way this reader does not know, any other command) returns nil, and
/// ArgumentParser reads it and explains what is wrong. `Chapter04CommandLineTests` checks
/// that both readers agree.
public enum FastCommandLine {
    /// The command `arguments` (without the program name) ask for, or nil to let
    /// ArgumentParser read them.
    public static func parse(_ arguments: [String]) -> (any ParsableCommand)? {
        // Every property is given a value: one left as made by init() is only a definition
        // for ArgumentParser, and reading it would stop the program.
        var globals = GlobalOptions()
        globals.root = ContainerStore.defaultRoot.string
        globals.log = nil
        globals.logFormat = "text"
        globals.debug = false
        globals.systemdCgroup = false
        globals.criu = nil
        globals.rootless = nil
        var options: [String: String] = [:]
        var flags: Set<String> = []
        var positionals: [String] = []
        var command: String?

        // What each command takes: options with a value (long and short names), flags.
        let valued: [String: String] = ["--root": "root", "--log": "log", "--log-format": "log-format", "--criu": "criu", "--rootless": "rootless",
                                        "--bundle": "bundle", "-b": "bundle", "--pid-file": "pid-file", "--console-socket": "console-socket",
                                        "--preserve-fds": "preserve-fds"]
        let flagNames: [String: String] = ["--debug": "debug", "--systemd-cgroup": "systemd-cgroup", "--force": "force", "-f": "force",
                                           "--all": "all", "-a": "all", "--detach": "detach", "-d": "detach",
                                           "--no-pivot": "no-pivot", "--no-new-keyring": "no-new-keyring"]
        let globalNames: Set<String> = ["root", "log", "log-format", "criu", "rootless", "debug", "systemd-cgroup"]
        let accepts: [String: Set<String>] = [
            "create": ["bundle", "pid-file", "console-socket", "preserve-fds", "no-pivot", "no-new-keyring"],
            "run": ["bundle", "pid-file", "console-socket", "detach", "no-new-keyring"],
            "start": [], "state": [], "delete": ["force"], "kill": ["all"],
        ]

        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            index += 1
            if word == "--" || word == "-" { return nil }
            if word.hasPrefix("-") {
                var name = word, value: String?
                if word.hasPrefix("--"), let equals = word.firstIndex(of: "=") {
                    name = String(word[..<equals])
                    value = String(word[word.index(after: equals)...])
                }
                // Before the command only global options (RuntimeCommands.arguments moves
                // those after it for ArgumentParser; anything else there is a mistake).
                if command == nil, let key = valued[name] ?? flagNames[name], !globalNames.contains(key) { return nil }
                if let key = valued[name] {
                    if value == nil {
                        // ArgumentParser takes no value that looks like an option ("--pid-file -d").
                        guard index < arguments.count, !arguments[index].hasPrefix("-") else { return nil }
                        value = arguments[index]
                        index += 1
                    }
                    guard options[key] == nil, value != "" else { return nil }  // twice, or empty: left to ArgumentParser
                    options[key] = value
                } else if let key = flagNames[name], value == nil {
                    flags.insert(key)
                } else {
                    return nil  // -h, --help, --version, combined short flags, anything unknown
                }
                continue
            }
            if command == nil {
                guard accepts[word] != nil else { return nil }
                command = word
            } else {
                positionals.append(word)
            }
        }
        guard let command, let allowed = accepts[command] else { return nil }
        // After the command: its own options or global ones.
        for key in Set(options.keys).union(flags) where !globalNames.contains(key) && !allowed.contains(key) { return nil }

        if let root = options["root"] { globals.root = root }
        globals.log = options["log"]
        if let format = options["log-format"] {
            guard format == "text" || format == "json" else { return nil }
            globals.logFormat = format
        }
        globals.debug = flags.contains("debug")
        if flags.contains("systemd-cgroup") { return nil }  // refused, with ArgumentParser's words
        globals.criu = options["criu"]
        globals.rootless = options["rootless"]

        guard positionals.count == 1 || (command == "kill" && positionals.count == 2) else { return nil }
        let id = positionals[0]
        func made<Command: IdentifiedCommand>(_ type: Command.Type, _ fill: (inout Command) -> Void = { _ in }) -> Command {
            var made = Command()
            made.globals = globals
            made.id = id
            fill(&made)
            return made
        }
        switch command {
        case "create":
            guard let preserve = Int(options["preserve-fds"] ?? "0") else { return nil }
            return made(Create.self) {
                $0.bundle = options["bundle"] ?? "."
                $0.pidFile = options["pid-file"]
                $0.consoleSocket = options["console-socket"]
                $0.preserveFDs = preserve
                $0.noPivot = flags.contains("no-pivot")
                $0.noNewKeyring = flags.contains("no-new-keyring")
            }
        case "run":
            return made(Run.self) {
                $0.bundle = options["bundle"] ?? "."
                $0.pidFile = options["pid-file"]
                $0.consoleSocket = options["console-socket"]
                $0.detach = flags.contains("detach")
                $0.noNewKeyring = flags.contains("no-new-keyring")
            }
        case "start": return made(Start.self)
        case "state": return made(State.self)
        case "delete": return made(Delete.self) { $0.force = flags.contains("force") }
        case "kill":
            return made(Kill.self) {
                $0.all = flags.contains("all")
                $0.signal = positionals.count == 2 ? positionals[1] : "SIGTERM"
            }
        default:
            return nil
        }
    }
}

/// The commands `FastCommandLine` fills: each has the global options and a container ID.
protocol IdentifiedCommand: ParsableCommand {
    var globals: GlobalOptions { get set }
    var id: String { get set }
}

extension Create: IdentifiedCommand {}
extension Run: IdentifiedCommand {}
extension Start: IdentifiedCommand {}
extension State: IdentifiedCommand {}
extension Delete: IdentifiedCommand {}
extension Kill: IdentifiedCommand {}

extension RuntimeCommands {
    /// The runtime's `main`: the container's init, the call log, then the command line,
    /// read by hand when plain (`FastCommandLine`), else by ArgumentParser through `root`.
    public static func main(_ root: any ParsableCommand.Type, arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        ContainerInitCommand.runIfRequested(arguments)
        if self.arguments(arguments).first == "exec" {
            // `exec` enters the container itself: it starts again from a copy of this
            // program that the container cannot write (CVE-2019-5736; see RuntimeExecutable).
            do { try RuntimeExecutable.reexecuteProtected() } catch {
                printError("exec: \(error)")
                exit(1)
            }
        }
        logCall(arguments)
        if var command = FastCommandLine.parse(arguments) {
            do {
                try command.run()
                exit(0)
            } catch let code as ExitCode {
                // The commands report their own errors and end with a status; exit(withError:)
                // would build a help screen first, only to print nothing of it (about 2 ms).
                exit(code.rawValue)
            } catch {
                root.exit(withError: error)
            }
        }
        do {
            var command = try root.parseAsRoot(self.arguments(arguments))
            try command.run()
        } catch {
            // The commands log their own errors; what ArgumentParser refuses (a wrong
            // option, a missing ID) goes to --log here, so that an engine can show it too.
            if !(error is ExitCode), root.exitCode(for: error) != .success {
                RuntimeLog.open(arguments: arguments)
                RuntimeLog.write(level: "error", root.message(for: error))
            }
            root.exit(withError: error)
        }
        exit(0)
    }
}
