import Glibc
import SystemPackage

/// The config's hooks (config.md "POSIX-platform Hooks"): programs the runtime runs at
/// fixed points of the lifecycle, each with the container's state JSON on its stdin.
///
/// | stage           | run by, where                          | a failure          |
/// |-----------------|----------------------------------------|--------------------|
/// | prestart        | `create`, runtime namespaces (deprecated) | aborts create   |
/// | createRuntime   | `create`, runtime namespaces, before pivot_root | aborts create |
/// | createContainer | the init, container namespaces, before pivot_root | aborts create |
/// | startContainer  | the init, in the container, before the process execs | aborts start |
/// | poststart       | `start`, runtime namespaces             | only a warning     |
/// | poststop        | `delete`, runtime namespaces            | only a warning     |
public enum Hooks {
    /// Runs `hooks` in order; the first that fails (non-zero exit, signal, timeout) throws.
    public static func run(_ hooks: [OCIConfig.Hook]?, stage: String, state: OCIState,
                           narrate: (String, String) -> Void = { _, _ in }) throws {
        for (index, hook) in (hooks ?? []).enumerated() {
            narrate("hooks.\(stage)[\(index)]: \(hook.path)", "state JSON on its stdin\(hook.timeout.map { ", at most \($0) s" } ?? "")")
            try runOne(hook, name: "hooks.\(stage)[\(index)] (\(hook.path))", state: state)
        }
    }

    /// Runs hooks whose failure must not change the outcome: each failure is returned.
    public static func runWarning(_ hooks: [OCIConfig.Hook]?, stage: String, state: OCIState) -> [String] {
        var warnings: [String] = []
        for (index, hook) in (hooks ?? []).enumerated() {
            do { try runOne(hook, name: "hooks.\(stage)[\(index)] (\(hook.path))", state: state) } catch {
                warnings.append("\(error)")
            }
        }
        return warnings
    }

    static func runOne(_ hook: OCIConfig.Hook, name: String, state: OCIState) throws {
        let input = try makePipe()
        var options = SpawnOptions()
        options.standardInput = FileDescriptor(rawValue: input.read)
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(FilePath(hook.path), arguments: hook.args ?? [hook.path],
                                           environment: hook.env ?? [], options: options)
        } catch {
            close(input.read); close(input.write)
            throw IsolationError("\(name) could not start: \(error)")
        }
        close(input.read)
        // The state is small, far below a pipe's 64 KiB: the write cannot block even if
        // the hook never reads it. A hook that exits early must not kill us with SIGPIPE.
        // One line, as runc sends it, so that even `read` in a shell hook gets all of it
        // (the pretty-printer's line breaks are only formatting: strings escape theirs).
        let bytes = Array(String(decoding: state.encodedJSON(), as: UTF8.self)
            .split(separator: "\n").map { $0.drop(while: { $0 == " " }) }.joined().utf8) + [10]
        signal(SIGPIPE, SIG_IGN)
        _ = bytes.withUnsafeBufferPointer { write(input.write, $0.baseAddress, $0.count) }
        close(input.write)
        let deadline = hook.timeout.map { monotonicNow() + Double($0) }
        while true {
            var raw: Int32 = 0
            let reaped = waitpid(child.pid, &raw, WNOHANG)
            if reaped == child.pid {
                let status = ExitStatus(waitStatus: raw)
                guard status == .exited(0) else { throw IsolationError("\(name) \(status)") }
                return
            }
            if reaped < 0 && Glibc.errno != EINTR { throw StageError(stage: "wait for \(name)", errno: currentErrno()) }
            if let deadline, monotonicNow() > deadline {
                _ = try? child.signal(SIGKILL)
                _ = try? child.wait()
                throw IsolationError("\(name) timed out after \(hook.timeout!) s and was killed")
            }
            usleep(2_000)
        }
    }
}
