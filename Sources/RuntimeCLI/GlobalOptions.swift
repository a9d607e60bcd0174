import ArgumentParser
import Glibc
import Isolation
import SystemPackage

/// runc's global options. Engines put them before the command:
/// `runtime --root R --log F --log-format json create …`.
public struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Where container state lives.", valueName: "DIR"))
    public var root: String = ContainerStore.defaultRoot.string
    @Option(help: ArgumentHelp("Write errors (and, with --debug, each call) to this file.", valueName: "FILE"))
    public var log: String?
    @Option(name: .customLong("log-format"), help: ArgumentHelp("text or json.", valueName: "FORMAT"))
    public var logFormat: String = "text"
    @Flag(help: "Log each call and its steps.") public var debug = false
    @Flag(name: .customLong("systemd-cgroup"), help: .hidden) public var systemdCgroup = false
    @Option(help: .hidden) public var criu: String?
    @Option(help: .hidden) public var rootless: String?

    public init() {}

    public var runtime: Runtime { Runtime(store: ContainerStore(root: FilePath(root))) }

    /// Runs a command body: errors are printed to stderr, written to --log as runc does
    /// (one JSON object `{"level":"error","msg":…}` with --log-format json), exit 1.
    public func reporting(_ command: String, _ body: () throws -> Void) throws {
        RuntimeLog.open(path: log, format: logFormat)
        if debug { RuntimeLog(self).write(level: "debug", "\(command): " + CommandLine.arguments.dropFirst().joined(separator: " ")) }
        do {
            try body()
        } catch let exit as ExitCode {
            throw exit
        } catch let error as ExecError {
            // A command that cannot be found: runc's words, and the shell's status.
            printError("\(CommandLine.arguments.first.map { FilePath($0).lastComponent?.string ?? $0 } ?? "runtime"): \(error)")
            RuntimeLog(self).write(level: "error", error.description)
            throw ExitCode(error.status)
        } catch {
            var message = Self.message(for: error)
            // A bare errno names no step: say at least which command it stopped.
            if error is Errno { message = "\(command): " + message }
            printError("\(CommandLine.arguments.first.map { FilePath($0).lastComponent?.string ?? $0 } ?? "runtime"): \(message)")
            RuntimeLog(self).write(level: "error", message)
            throw ExitCode(1)
        }
    }

    static func message(for error: any Error) -> String {
        switch error {
        case let error as IsolationError: return error.hint.map { "\(error.message) (\($0))" } ?? error.message
        case let error as Errno: return "\(error) (\(errnoName(error)))"
        default: return String(describing: error)
        }
    }

    public func validate() throws {
        guard !root.isEmpty else { throw ValidationError("--root must name a folder (the runtime's state lives there)") }
        guard logFormat == "text" || logFormat == "json" else {
            throw ValidationError("--log-format must be text or json")
        }
        if systemdCgroup {
            throw ValidationError("--systemd-cgroup is not supported: this runtime manages cgroupfs paths itself (use cgroup_manager = \"cgroupfs\")")
        }
    }
}

/// The --log file: text (`time=… level=error msg="…"`) or one JSON object per line
/// (`{"level":"error","msg":"…","time":"…"}`, runc's logrus form), which engines read
/// back to show why a call failed.
struct RuntimeLog {
    /// The file, opened once before the command runs (runc opens it at start too): `exec`
    /// ends up inside the container's root, where the path no longer leads to it.
    nonisolated(unsafe) private static var descriptor: Int32 = -1
    nonisolated(unsafe) private static var json = false

    let options: GlobalOptions
    init(_ options: GlobalOptions) { self.options = options }

    /// Opens the --log file, if one was given, once; creating it, as runc does.
    static func open(path: String?, format: String) {
        guard descriptor < 0, let path, !path.isEmpty else { return }
        json = format == "json"
        descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    }

    /// The --log and --log-format of a command line, read before ArgumentParser reads it,
    /// so that a command line it refuses is logged too.
    static func open(arguments: [String]) {
        var path: String?, format = "text"
        for (index, word) in arguments.enumerated() {
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            if word == "--log" { path = next } else if word.hasPrefix("--log=") { path = String(word.dropFirst(6)) }
            if word == "--log-format", let next { format = next } else if word.hasPrefix("--log-format=") { format = String(word.dropFirst(13)) }
        }
        open(path: path, format: format)
    }

    func write(level: String, _ message: String) {
        Self.open(path: options.log, format: options.logFormat)
        Self.write(level: level, message)
    }

    static func write(level: String, _ message: String) {
        guard descriptor >= 0 else { return }
        let line: String
        if json {
            line = "{\"level\":\"\(level)\",\"msg\":\(jsonString(message)),\"time\":\"\(now())\"}\n"
        } else {
            line = "time=\"\(now())\" level=\(level) msg=\(jsonString(message))\n"
        }
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBufferPointer { Glibc.write(descriptor, $0.baseAddress, $0.count) }
    }

    /// The time now, as RFC 3339 in UTC with nanoseconds (runc's log format).
    static func now() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let nanos = String(now.tv_nsec)
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            + String(repeating: "0", count: 9 - nanos.count) + nanos + "Z"
    }
}

/// A JSON string literal with the escapes JSON requires.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// `9`, `KILL`, `SIGKILL`, `sigkill` → 9.
public func parseSignal(_ text: String) throws -> Int32 {
    if let number = Int32(text), number > 0, number < 65 { return number }
    var name = text.uppercased()
    if !name.hasPrefix("SIG") { name = "SIG" + name }
    for number in Int32(1)..<Int32(32) where signalName(number) == name { return number }
    throw ValidationError("'\(text)' is not a signal: use a number (9) or a name (KILL, SIGTERM)")
}
