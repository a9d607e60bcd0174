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

/// The --log file: text (`time=… level=error msg="…"`) or one JSON object per line.
struct RuntimeLog {
    let options: GlobalOptions
    init(_ options: GlobalOptions) { self.options = options }

    func write(level: String, _ message: String) {
        guard let path = options.log else { return }
        let line: String
        if options.logFormat == "json" {
            line = "{\"level\":\"\(level)\",\"msg\":\(jsonString(message)),\"time\":\"\(timestamp())\"}\n"
        } else {
            line = "time=\"\(timestamp())\" level=\(level) msg=\(jsonString(message))\n"
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    func timestamp() -> String { Self.now() }

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
