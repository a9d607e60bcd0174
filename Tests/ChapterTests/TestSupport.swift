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

/// Runs a program to completion (killing it after `timeout` seconds) and collects its output.
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
         stdin: String? = nil, timeout: TimeInterval = 60) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = environment ?? ProcessInfo.processInfo.environment
    env["NO_COLOR"] = "1"
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let input = Pipe()
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try? input.fileHandleForWriting.close()
    // Read both pipes concurrently so neither can fill up.
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        kill(process.processIdentifier, SIGKILL)
        group.wait()
    }
    process.waitUntilExit()
    return RunResult(status: process.terminationStatus, reason: process.terminationReason,
                     stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
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

/// Runs a runtime (`chapter-04` or `isorun`) to completion with its output in files in
/// `folder`, killed after `timeout` seconds: a created container's init inherits the
/// runtime's output, so reading pipes to their end would wait for the container.
func runWithOutputInFiles(_ executable: String, _ arguments: [String], in folder: String,
                          environment extra: [String: String] = [:], timeout: TimeInterval) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = folder + "/out-\(UUID().uuidString)", err = out + ".err"
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
    process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1"].merging(extra) { $1 }
    try process.run()
    let pid = process.processIdentifier
    let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
    process.waitUntilExit()
    watchdog.cancel()
    return RunResult(status: process.terminationStatus, reason: process.terminationReason,
                     stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                     stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}
