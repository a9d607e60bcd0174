import ArgumentParser
import Glibc
import Isolation
import SystemPackage

/// runc's command line, over `Runtime`. Every command is synchronous: `create` and `run`
/// fork, so no Dispatch, Task or NIO work is ever started here.
public enum RuntimeCommands {
    /// Engines write runc's global options before the command (`--root R create …`);
    /// ArgumentParser reads a subcommand's options after its name. This moves the
    /// global options that come before the command to just after it.
    public static func arguments(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> [String] {
        let withValue: Set<String> = ["--root", "--log", "--log-format", "--criu", "--rootless"]
        let flags: Set<String> = ["--debug", "--systemd-cgroup"]
        let names = Set(commandNames + [ContainerInitCommand.name, "lesson", "help"])
        var globals: [String] = []
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            let key = String(word.split(separator: "=", maxSplits: 1).first ?? "")
            if names.contains(word) {
                return [word] + globals + arguments[(index + 1)...]
            } else if withValue.contains(word), index + 1 < arguments.count {
                globals += [word, arguments[index + 1]]
                index += 2
            } else if flags.contains(word) || (word.contains("=") && withValue.contains(key)) {
                globals.append(word)
                index += 1
            } else {
                return arguments  // not the shape we rewrite: let ArgumentParser explain
            }
        }
        return arguments
    }

    /// The call log, a lesson's window on an engine: when `<root>/calls.log` exists, every
    /// call appends one line to it, saying who called (the parent's name and PID) and
    /// with which arguments. Create the file to turn it on; engines pass no option or
    /// environment for it (podman's own calls carry almost no environment).
    public static func logCall(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) {
        // The container's init is this program again (`init …`, cloned by create): not a call.
        if arguments.first == ContainerInitCommand.name { return }
        var root = ContainerStore.defaultRoot.string
        for (index, word) in arguments.enumerated() {
            if word == "--root", index + 1 < arguments.count { root = arguments[index + 1]; break }
            if word.hasPrefix("--root=") { root = String(word.dropFirst(7)); break }
            if !word.hasPrefix("-") && index > 0 && !arguments[index - 1].hasPrefix("--") { break }
        }
        // No O_CREAT: only an existing file turns the log on.
        let fd = open(root + "/calls.log", O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let parent = getppid()
        let name = ((try? FileSystem.readString(FilePath("/proc/\(parent)/comm"))) ?? "?").split(separator: "\n").first.map(String.init) ?? "?"
        let line = "\(RuntimeLog.now()) \(name)[\(parent)] → \(arguments.joined(separator: " "))\n"
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count) }
    }

    /// The names of `all`, spelled out: asking each type for its name (`_commandName`)
    /// costs a reflective cast per command at every start (a test keeps the two equal).
    public static let commandNames = ["spec", "create", "start", "state", "kill", "delete", "run", "list", "ps", "pause", "resume", "exec", "update"]

    public static let all: [ParsableCommand.Type] = [
        Spec.self, Create.self, Start.self, State.self, Kill.self, Delete.self, Run.self,
        List.self, Ps.self, Pause.self, Resume.self, Exec.self, Update.self,
    ]
}

public struct Spec: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Write a default config.json into the bundle.")
    @OptionGroup public var globals: GlobalOptions
    @Option(name: [.customShort("b"), .long], help: "The bundle folder.") public var bundle: String = "."
    @Flag(help: "Set process.terminal (needs --console-socket at create).") public var terminal = false
    @Flag(name: .customLong("no-seccomp"), help: "Leave linux.seccomp out, as `runc spec` does.") public var noSeccomp = false
    public init() {}
    public func run() throws {
        try globals.reporting("spec") {
            let path = FilePath(bundle).appending(OCIConfig.fileName)
            if FileSystem.exists(path) { throw IsolationError("\(path) already exists", hint: "remove it first") }
            var config = OCIConfig.defaultSpec(terminal: terminal, cgroupNamespace: CgroupMode.detect() == .unified)
            // runc's starter has no seccomp profile: the engines add theirs (Docker's and
            // podman's deny-list) at create. A config written by hand and run by the runtime
            // alone would get none, so this one carries the library's deny-list, the
            // profile of chapter 08's rung 4 (OCIDefaultSeccomp.swift).
            if !noSeccomp { config.linux?.seccomp = .containerDefault }
            try FileSystem.writeFile(path, config.encodedJSON())
        }
    }
}

public struct Create: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Create a container from a bundle; it waits for start.")
    @OptionGroup public var globals: GlobalOptions
    @Option(name: [.customShort("b"), .long], help: "The bundle folder.") public var bundle: String = "."
    @Option(name: .customLong("pid-file"), help: "Write the container's PID here.") public var pidFile: String?
    @Option(name: .customLong("console-socket"), help: "A unix socket to send the terminal's master to.") public var consoleSocket: String?
    @Option(name: .customLong("preserve-fds"), help: "Pass descriptors 3 … 3+N-1 on to the process.") public var preserveFDs: Int = 0
    @Flag(name: .customLong("no-pivot"), help: .hidden) public var noPivot = false
    @Flag(name: .customLong("no-new-keyring"), help: "Keep the caller's session keyring (its keys are readable inside).") public var noNewKeyring = false
    @Argument(help: "The container ID.") public var id: String
    public init() {}
    public func run() throws {
        try globals.reporting("create") {
            var runtime = globals.runtime
            var options = Runtime.CreateOptions(bundle: FilePath(bundle))
            options.pidFile = pidFile.map { FilePath($0) }
            options.consoleSocket = consoleSocket.map { FilePath($0) }
            options.preserveFDs = preserveFDs
            options.newKeyring = !noNewKeyring
            _ = try runtime.create(id: id, options: options)
        }
    }
}

public struct Start: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Let a created container run its process.")
    @OptionGroup public var globals: GlobalOptions
    @Argument public var id: String
    public init() {}
    public func run() throws { try globals.reporting("start") { try globals.runtime.start(id: id) } }
}

public struct State: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Print the container's state as runtime-spec JSON.")
    @OptionGroup public var globals: GlobalOptions
    @Argument public var id: String
    public init() {}
    public func run() throws {
        try globals.reporting("state") {
            let bytes = try globals.runtime.state(id: id).encodedJSON()
            say(String(decoding: bytes, as: UTF8.self))
        }
    }
}

public struct Kill: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Send a signal (default SIGTERM) to the container's process.")
    @OptionGroup public var globals: GlobalOptions
    @Flag(name: .shortAndLong, help: "Every process in the container's cgroup.") public var all = false
    @Argument public var id: String
    @Argument(help: "A number (9) or a name (KILL, SIGKILL).") public var signal: String = "SIGTERM"
    public init() {}
    public func run() throws {
        try globals.reporting("kill") { try globals.runtime.kill(id: id, signal: try parseSignal(signal), all: all) }
    }
}

public struct Delete: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Remove a stopped container (--force: stop it first).")
    @OptionGroup public var globals: GlobalOptions
    @Flag(name: .shortAndLong) public var force = false
    @Argument public var id: String
    public init() {}
    public func run() throws { try globals.reporting("delete") { try globals.runtime.delete(id: id, force: force) } }
}

public struct Run: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "create, start, wait, delete: exit with the process's status.")
    @OptionGroup public var globals: GlobalOptions
    @Option(name: [.customShort("b"), .long]) public var bundle: String = "."
    @Option(name: .customLong("pid-file")) public var pidFile: String?
    @Option(name: .customLong("console-socket")) public var consoleSocket: String?
    @Flag(name: .shortAndLong, help: "Return after start, leaving the container running.") public var detach = false
    @Flag(name: .customLong("no-new-keyring"), help: "Keep the caller's session keyring (its keys are readable inside).") public var noNewKeyring = false
    @Argument public var id: String
    public init() {}
    public func run() throws {
        var status = ExitStatus.exited(0)
        try globals.reporting("run") {
            var runtime = globals.runtime
            var options = Runtime.CreateOptions(bundle: FilePath(bundle))
            // run is create + start, and start needs a process: create refuses before it
            // makes anything.
            options.requireProcess = "run"
            options.newKeyring = !noNewKeyring
            options.pidFile = pidFile.map { FilePath($0) }
            options.consoleSocket = consoleSocket.map { FilePath($0) }
            blockSignalsForSupervision()  // Ctrl-C goes to the container; we delete it after
            let child = try runtime.create(id: id, options: options)
            do {
                try runtime.start(id: id)
                if detach { return }
                status = try child.waitForwardingSignals()
            } catch {
                try? runtime.delete(id: id, force: true)
                throw error
            }
            try runtime.delete(id: id, force: true)
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

public struct List: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "List the containers.")
    @OptionGroup public var globals: GlobalOptions
    @Option(name: .shortAndLong, help: "table or json.") public var format: String = "table"
    @Flag(name: .shortAndLong, help: "IDs only.") public var quiet = false
    public init() {}
    public func run() throws {
        try globals.reporting("list") {
            let store = globals.runtime.store
            let states = store.ids().compactMap { try? store.load($0) }.map { ($0, store.state(of: $0)) }
            if quiet { for (record, _) in states { say(record.id) }; return }
            if format == "json" {
                let items = states.map { record, state in
                    "{\"id\":\(jsonString(record.id)),\"pid\":\(state.pid ?? 0),\"status\":\"\(state.status.rawValue)\",\"bundle\":\(jsonString(record.bundle))}"
                }
                say("[" + items.joined(separator: ",") + "]")
                return
            }
            say(pad("ID", 20) + pad("PID", 10) + pad("STATUS", 10) + "BUNDLE")
            for (record, state) in states {
                say(pad(record.id, 20) + pad("\(state.pid ?? 0)", 10) + pad(state.status.rawValue, 10) + record.bundle)
            }
        }
    }
}

public struct Ps: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "The container's processes (host PIDs).")
    @OptionGroup public var globals: GlobalOptions
    @Option(name: .shortAndLong, help: "table or json.") public var format: String = "table"
    @Argument public var id: String
    @Argument(parsing: .captureForPassthrough, help: .hidden) public var psArguments: [String] = []
    public init() {}
    public func run() throws {
        try globals.reporting("ps") {
            let pids = try globals.runtime.processes(id: id)
            if format == "json" {
                say("[" + pids.map(String.init).joined(separator: ",") + "]")
            } else {
                say("PID")
                for pid in pids { say("\(pid)") }
            }
        }
    }
}

public struct Pause: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Freeze every process of the container.")
    @OptionGroup public var globals: GlobalOptions
    @Argument public var id: String
    public init() {}
    public func run() throws { try globals.reporting("pause") { try globals.runtime.pause(id: id, frozen: true) } }
}

public struct Resume: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Thaw a paused container.")
    @OptionGroup public var globals: GlobalOptions
    @Argument public var id: String
    public init() {}
    public func run() throws { try globals.reporting("resume") { try globals.runtime.pause(id: id, frozen: false) } }
}

/// The container's init, cloned by `create` as `init --bundle B --state-dir D --sync-fd N
/// --continue-fd N --config-fd N [--console-fd N] [--cgroup controller=path]… [--narrate]`.
///
/// Not an ArgumentParser command: every container pays for this second program start,
/// and ArgumentParser's reflection over a command's properties costs more than the rest
/// of the start (perf, release build: about 4 ms of 7). Its command line is written by
/// `Runtime.create` only, so it is read by hand, here, before ArgumentParser is touched.
public enum ContainerInitCommand {
    public static let name = "init"

    /// Runs the init and never returns when `arguments` (without the program name) is an
    /// init's command line; returns at once otherwise.
    public static func runIfRequested(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) {
        guard arguments.first == name else { return }
        var bundle: String?, stateDirectory: String?
        var syncFD: Int32?, continueFD: Int32?, configFD: Int32?, consoleFD: Int32 = -1
        var directories: [String: FilePath] = [:]
        var narrate = false
        var newKeyring = true
        var index = 1
        func value() -> String? {
            index += 1
            return index < arguments.count ? arguments[index] : nil
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--bundle": bundle = value()
            case "--state-dir": stateDirectory = value()
            case "--sync-fd": syncFD = value().flatMap { Int32($0) }
            case "--continue-fd": continueFD = value().flatMap { Int32($0) }
            case "--config-fd": configFD = value().flatMap { Int32($0) }
            case "--console-fd": consoleFD = value().flatMap { Int32($0) } ?? -1
            case "--cgroup":
                let parts = (value() ?? "").split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if parts.count == 2 { directories[String(parts[0])] = FilePath(String(parts[1])) }
            case "--narrate": narrate = true
            case "--no-new-keyring": newKeyring = false
            default: usage("unknown argument '\(arguments[index])'")
            }
            index += 1
        }
        guard let bundle, let stateDirectory, let syncFD, let continueFD, let configFD else {
            usage("--bundle, --state-dir, --sync-fd, --continue-fd and --config-fd are required")
        }
        let style = Style.standardOutput
        Runtime.containerInit(
            bundle: FilePath(bundle), stateDirectory: FilePath(stateDirectory), syncFD: syncFD, continueFD: continueFD, configFD: configFD, consoleFD: consoleFD,
            cgroupDirectories: directories, newKeyring: newKeyring,
            narrate: narrate ? { call, why in lessonStep(call, why) } : { _, _ in },
            timings: narrate ? { timings in
                sayWrapped("inside, each stage took: " + timings.map { "\($0.stage) \(milliseconds($0.seconds))" }.joined(separator: " · "),
                           indent: "  ", hanging: "    ", style: style.dim)
            } : { _ in })
    }

    private static func usage(_ problem: String) -> Never {
        printError("init: \(problem). This is the container's init, which `create` starts itself; it is not a command to type.")
        exit(2)
    }
}

/// `1.25 ms`.
public func milliseconds(_ seconds: Double) -> String {
    let hundredths = Int((seconds * 100_000).rounded())
    let whole = hundredths / 100, fraction = hundredths % 100
    return "\(whole).\(fraction < 10 ? "0" : "")\(fraction) ms"
}

public struct Exec: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Run another process in a running container.")
    @OptionGroup public var globals: GlobalOptions
    @Option(name: [.customShort("p"), .long], help: "A process.json (the config's process object).") public var process: String?
    @Flag(name: .shortAndLong, help: "Return at once, leaving the process running.") public var detach = false
    @Option(name: .customLong("pid-file")) public var pidFile: String?
    @Flag(name: .shortAndLong, help: "A terminal (its master goes to --console-socket).") public var tty = false
    @Option(name: .customLong("console-socket")) public var consoleSocket: String?
    @Option(help: "The working directory.") public var cwd: String?
    @Option(name: [.customShort("e"), .long], help: "KEY=value, added to the environment.") public var env: [String] = []
    @Option(name: [.customShort("u"), .long], help: "uid[:gid].") public var user: String?
    @Option(name: [.customShort("g"), .customLong("additional-gids")]) public var additionalGids: [UInt32] = []
    @Flag(name: .customLong("no-new-privs")) public var noNewPrivileges = false
    @Option(name: .customLong("preserve-fds")) public var preserveFDs: Int = 0
    @Argument(help: "The container ID.") public var id: String
    @Argument(parsing: .captureForPassthrough, help: "COMMAND ARGS… (without --process).") public var command: [String] = []
    public init() {}

    public func run() throws {
        var status = ExitStatus.exited(0)
        try globals.reporting("exec") {
            let runtime = globals.runtime
            var spec: OCIConfig.Process
            if let process {
                // A process.json is the config's `process` object: decode it inside a minimal
                // config, so its errors name their path (process.args …).
                guard let bytes = try FileSystem.readFile(FilePath(process), limit: OCIConfig.maximumSize) else {
                    throw IsolationError("\(process) is larger than \(OCIConfig.maximumSize >> 20) MiB, the most this runtime reads")
                }
                let text = String(decoding: bytes, as: UTF8.self)
                let wrapped = "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": \"/\"}, \"process\": " + text + "}"
                guard let decoded = try OCIConfig.decode(json: Array(wrapped.utf8), source: process).process else {
                    throw IsolationError("\(process) holds no process")
                }
                spec = decoded
            } else {
                guard !command.isEmpty else {
                    throw IsolationError("nothing to exec", hint: "give a command after the ID, or --process FILE")
                }
                guard var base = try runtime.createdConfig(id: id).process else { throw IsolationError("container '\(id)' has no process") }
                base.args = command
                base.terminal = tty
                spec = base
            }
            if let cwd { spec.cwd = cwd }
            if !env.isEmpty { spec.env = (spec.env ?? []) + env }
            if let user {
                let parts = user.split(separator: ":").map { UInt32($0) }
                guard let uid = parts.first ?? nil, parts.count <= 2, !parts.contains(nil) else {
                    throw IsolationError("--user '\(user)' is not uid[:gid]", hint: "numbers only, such as 1000:1000")
                }
                spec.user.uid = uid
                spec.user.gid = parts.count == 2 ? parts[1]! : uid
            }
            if !additionalGids.isEmpty { spec.user.additionalGids = additionalGids }
            if noNewPrivileges { spec.noNewPrivileges = true }
            if tty { spec.terminal = true }
            if !detach { blockSignalsForSupervision() }
            var options = Runtime.ExecOptions(process: spec)
            options.pidFile = pidFile.map { FilePath($0) }
            options.preserveFDs = preserveFDs
            options.consoleSocket = consoleSocket.map { FilePath($0) }
            let child = try runtime.exec(id: id, options: options)
            if detach { return }
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}


public struct Update: ParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Change a container's cgroup limits (runc's update).",
        discussion: "Either flags or -r FILE (an OCI linux.resources object; - reads standard input). -1 lifts a limit.")
    // -1 looks like an option to ArgumentParser: the limits take their next word as it is.
    @OptionGroup public var globals: GlobalOptions
    @Option(name: [.customShort("r"), .long], help: "A linux.resources JSON file, or - for standard input.") public var resources: String?
    @Option(name: .customLong("blkio-weight"), help: "Block I/O weight, 10 to 1000.") public var blkioWeight: UInt16?
    @Option(name: .customLong("cpu-period"), help: "CFS period in µs.") public var cpuPeriod: UInt64?
    @Option(name: .customLong("cpu-quota"), parsing: .unconditional, help: "CPU time per period in µs (-1: none).") public var cpuQuota: Int64?
    @Option(name: [.customLong("cpu-share"), .customLong("cpu-shares")], help: "Relative CPU weight (v1 shares).") public var cpuShare: UInt64?
    @Option(name: .customLong("cpu-burst"), help: "Quota that may be saved for bursts, in µs.") public var cpuBurst: UInt64?
    @Option(name: .customLong("cpu-idle"), parsing: .unconditional, help: "1: run at the lowest weight.") public var cpuIdle: Int64?
    @Option(name: .customLong("cpu-rt-period"), help: "Real-time period in µs (v1).") public var cpuRealtimePeriod: UInt64?
    @Option(name: .customLong("cpu-rt-runtime"), parsing: .unconditional, help: "Real-time runtime in µs (v1).") public var cpuRealtimeRuntime: Int64?
    @Option(name: .customLong("cpuset-cpus"), help: "CPUs, as 0-1 or 0,2.") public var cpusetCPUs: String?
    @Option(name: .customLong("cpuset-mems"), help: "Memory nodes, as 0.") public var cpusetMems: String?
    @Option(name: .customLong("kernel-memory"), parsing: .unconditional, help: .hidden) public var kernelMemory: String?
    @Option(name: .customLong("kernel-memory-tcp"), parsing: .unconditional, help: .hidden) public var kernelMemoryTCP: String?
    @Option(parsing: .unconditional, help: "Memory limit, as 64M (-1: none).") public var memory: String?
    @Option(name: .customLong("memory-reservation"), parsing: .unconditional, help: "Soft memory limit.") public var memoryReservation: String?
    @Option(name: .customLong("memory-swap"), parsing: .unconditional, help: "Memory plus swap (-1: no swap limit).") public var memorySwap: String?
    @Option(name: .customLong("pids-limit"), parsing: .unconditional, help: "The most tasks (-1: none).") public var pidsLimit: Int64?
    @Argument(help: "The container ID.") public var id: String
    public init() {}

    /// A size as runc reads it: -1, or a number with an optional unit (64M, 1g).
    static func size(_ text: String?, _ flag: String) throws -> Int64? {
        guard let text else { return nil }
        if text == "-1" { return -1 }
        do { return Int64(try ResourceLimits.parseSize(text)) } catch let error as IsolationError {
            throw IsolationError("--\(flag): " + error.message, hint: (error.hint ?? "") + ", or -1 for no limit")
        }
    }

    public func run() throws {
        try globals.reporting("update") {
            var update = Cgroup.Update()
            update.blkioWeight = blkioWeight
            update.cpuPeriod = cpuPeriod
            update.cpuQuota = cpuQuota
            update.cpuShares = cpuShare
            update.cpuBurst = cpuBurst
            update.cpuIdle = cpuIdle
            update.cpuRealtimePeriod = cpuRealtimePeriod
            update.cpuRealtimeRuntime = cpuRealtimeRuntime
            update.cpusetCPUs = cpusetCPUs
            update.cpusetMems = cpusetMems
            update.kernelMemory = try Self.size(kernelMemory, "kernel-memory")
            update.kernelTCPMemory = try Self.size(kernelMemoryTCP, "kernel-memory-tcp")
            update.memory = try Self.size(memory, "memory")
            update.memoryReservation = try Self.size(memoryReservation, "memory-reservation")
            update.memorySwap = try Self.size(memorySwap, "memory-swap")
            update.pidsLimit = pidsLimit
            if let resources {
                guard update.isEmpty else {
                    throw IsolationError("give either -r \(resources) or flags, not both", hint: "runc reads only the file when -r is given")
                }
                update = try Self.decode(resources)
            }
            try globals.runtime.update(id: id, update)
        }
    }

    /// `-r FILE`: an OCI `linux.resources` object, decoded inside a minimal config so that
    /// its errors name their path (linux.resources.memory.limit …).
    static func decode(_ source: String) throws -> Cgroup.Update {
        let bytes: [UInt8]
        if source == "-" {
            guard let read = try FileSystem.readAll(.standardInput, limit: OCIConfig.maximumSize) else {
                throw IsolationError("standard input holds more than \(OCIConfig.maximumSize >> 20) MiB, the most this runtime reads")
            }
            bytes = read
        } else {
            guard let read = try FileSystem.readFile(FilePath(source), limit: OCIConfig.maximumSize) else {
                throw IsolationError("\(source) is larger than \(OCIConfig.maximumSize >> 20) MiB, the most this runtime reads")
            }
            bytes = read
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let wrapped = "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": \"/\"}, \"linux\": {\"resources\": " + text + "}}"
        let config = try OCIConfig.decode(json: Array(wrapped.utf8), source: source == "-" ? "standard input" : source)
        return try Cgroup.Update(resources: config.linux?.resources ?? OCIConfig.Resources())
    }
}
