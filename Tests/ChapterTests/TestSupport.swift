// Helpers for tests that run the built chapter binaries and observe them from outside.
import Foundation
import Isolation
import SystemPackage
import Testing

/// Root-only suites are enabled with this; CI runs as root.
let isRoot = getuid() == 0

/// The folder with the built products: the test bundle lives beside them in
/// `.build/<triple>/debug/`.
let productsDirectory: URL = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    return exe.deletingLastPathComponent()
}()

/// The path of a built executable product (`chapter-01`, `doctor`, …). The README's test
/// command builds them first (`swift build && swift test`).
func product(_ name: String) -> String {
    let path = productsDirectory.appendingPathComponent(name).path
    precondition(FileManager.default.isExecutableFile(atPath: path), "\(path) is missing: run `swift build` before `swift test`")
    return path
}

struct RunResult: CustomStringConvertible {
    var status: Int32
    var reason: Process.TerminationReason
    var stdout: String
    var stderr: String
    var description: String { "status \(status) (\(reason == .exit ? "exit" : "signal"))\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

/// A program a test started, observed and waited for on the test's own thread.
///
/// Why not Foundation's `Process`: its exit is noticed by a SIGCHLD handler on a Dispatch
/// queue, and its pipes are read to their end by more Dispatch work. Swift Testing runs
/// suites in parallel on a pool of as many threads as CPUs (2 in the VM lane); tests that
/// block those threads waiting for Dispatch work can stall the whole run. Here nothing
/// needs another thread: `ChildProcess.spawn` starts the program (only system calls
/// between clone and exec), its output goes to files (a container that inherits them
/// cannot keep us waiting for an end of file), and `waitpid(WNOHANG)` polls it until a
/// deadline, after which it is killed.
final class TestProcess {
    let pid: pid_t
    private let child: ChildProcess
    private let folder: String
    private var ended: Isolation.ExitStatus?

    /// Starts `executable` (a path, or a name looked up in PATH) with `arguments`.
    /// `environment` nil: this test process's own, with NO_COLOR=1. `stdin` nil: /dev/null.
    /// `directory`: its working directory (nil: ours).
    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
         stdin: String? = nil, directory: String? = nil) throws {
        let path = try Command.find(executable).map(\.string) ?? { throw TestProcessError(message: "\(executable) is not installed") }()
        folder = try FileSystem.makeTemporaryDirectory(purpose: "test-run").string
        var env = environment ?? ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1"]) { $1 }
        if environment == nil { env["NO_COLOR"] = "1" }
        let input = folder + "/in"
        if let stdin { try stdin.write(toFile: input, atomically: false, encoding: .utf8) }
        let inFD = try FileDescriptor.open(stdin == nil ? "/dev/null" : input, .readOnly, options: .closeOnExec)
        defer { try? inFD.close() }
        let outFD = try FileDescriptor.open(FilePath(folder + "/out"), .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: .ownerReadWrite)
        defer { try? outFD.close() }
        let errFD = try FileDescriptor.open(FilePath(folder + "/err"), .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: .ownerReadWrite)
        defer { try? errFD.close() }
        var options = SpawnOptions()
        options.standardInput = inFD
        options.standardOutput = outFD
        options.standardError = errFD
        options.workingDirectory = directory.map { FilePath($0) }
        do {
            child = try ChildProcess.spawn(FilePath(path), arguments: [path] + arguments,
                                           environment: env.map { "\($0.key)=\($0.value)" }, options: options)
        } catch {
            try? FileSystem.removeTree(FilePath(folder))
            throw error
        }
        pid = child.pid
    }

    deinit {
        if ended == nil { kill(pid, SIGKILL); var status: Int32 = 0; _ = waitpid(pid, &status, 0) }
        try? FileSystem.removeTree(FilePath(folder))
    }

    /// How it ended, if it has: waitpid(2) with WNOHANG.
    func poll() -> Isolation.ExitStatus? {
        if let ended { return ended }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { ended = Isolation.ExitStatus(waitStatus: status) }
        return ended
    }

    var isRunning: Bool { poll() == nil }

    /// Waits until it ends, at most `timeout` seconds; then SIGKILL, and waits for that.
    @discardableResult
    func wait(timeout: TimeInterval) -> Isolation.ExitStatus {
        let deadline = Date().addingTimeInterval(timeout)
        while poll() == nil {
            if Date() >= deadline {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                ended = Isolation.ExitStatus(waitStatus: status)
                break
            }
            usleep(5_000)
        }
        return ended!
    }

    /// SIGTERM, `grace` seconds to end, then SIGKILL.
    func stop(grace: TimeInterval = 5) {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        wait(timeout: grace)
    }

    /// What it has written so far.
    var stdout: String { (try? String(contentsOfFile: folder + "/out", encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: folder + "/err", encoding: .utf8)) ?? "" }

    /// Waits (at most `timeout` seconds) and returns the status and output.
    func result(timeout: TimeInterval) -> RunResult {
        let status = wait(timeout: timeout)
        switch status {
        case .exited(let code): return RunResult(status: code, reason: .exit, stdout: stdout, stderr: stderr)
        case .signaled(let signal): return RunResult(status: signal, reason: .uncaughtSignal, stdout: stdout, stderr: stderr)
        }
    }
}

struct TestProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Runs a program to completion (killing it after `timeout` seconds) and collects its output.
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
         stdin: String? = nil, timeout: TimeInterval = 60) throws -> RunResult {
    try TestProcess(executable, arguments, environment: environment.map { $0.merging(["NO_COLOR": "1"]) { $1 } }, stdin: stdin)
        .result(timeout: timeout)
}

/// A temporary folder named with the project prefix, removed by `remove()`.
struct TemporaryFolder {
    let path: String
    init(_ purpose: String) throws {
        path = try FileSystem.makeTemporaryDirectory(purpose: "test-\(purpose)").string
        chmod(path, 0o755)
    }
    func remove() { try? FileSystem.removeTree(FilePath(path)) }
}

/// Mount points at or below `path` in this (the host's) mount namespace.
func mounts(under path: String) -> [String] {
    ((try? MountInfo.table()) ?? []).map(\.mountPoint).filter { $0 == path || $0.hasPrefix(path + "/") }
}

/// The built-in root filesystem as chapters use it (built by the first chapter run).
func builtInRootfs() throws -> String {
    // The first call builds it; in the emulated VM lane several suites start by building it
    // at once, which takes minutes there.
    let result = try run(product("chapter-01"), ["--", "true"], timeout: 600)
    #expect(result.status == 0, "chapter-01 -- true: \(result)")
    return RootFilesystem.cacheDirectory().appending("rootfs-\(RootFilesystem.preferredSource.rawValue)").string
}

/// Copies a built product into a folder an unprivileged user can read (the checkout may
/// live under /root), for tests that run it as `nobody`.
func productCopyForNobody(_ name: String, in folder: TemporaryFolder) throws -> String {
    let copy = folder.path + "/" + name
    try FileManager.default.copyItem(atPath: product(name), toPath: copy)
    chmod(copy, 0o755)
    return copy
}

/// Runs a runtime (`chapter-04` or `isorun`) to completion with its output in files,
/// killed after `timeout` seconds: a created container's init inherits the runtime's
/// output, so reading pipes to their end would wait for the container. (`folder` is kept
/// for the callers; the output files live in the process's own temporary folder.)
func runWithOutputInFiles(_ executable: String, _ arguments: [String], in folder: String,
                          environment extra: [String: String] = [:], timeout: TimeInterval) throws -> RunResult {
    let environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1"].merging(extra) { $1 }
    return try TestProcess(executable, arguments, environment: environment).result(timeout: timeout)
}
