// Helpers for Chapter02Tests: start chapter-02 in the background and look at its
// processes from outside, through the host's /proc. (Shared helpers — product, run,
// TemporaryFolder — are in TestSupport.swift.)
import Foundation
import Glibc
import Isolation
import SystemPackage
import Testing

/// A root filesystem of our own for one test, in a /tmp/isolation-test-* folder that
/// `nobody` can read. Tests write into it (files made inside the container), so it is
/// not the chapters' shared cache. It is a `cp -a` of one template that the library's
/// builder (`RootFilesystem.build`, the same one the chapters use) makes once per test
/// run and that is removed when the test process exits.
struct Ch02Rootfs {
    let folder: TemporaryFolder
    var path: String { folder.path + "/rootfs" }

    init(_ purpose: String) throws {
        folder = try TemporaryFolder("ch02-\(purpose)")
        do {
            try ch02CopyRootfs(to: folder.path + "/rootfs")
        } catch {
            folder.remove()
            throw error
        }
    }

    func remove() { folder.remove() }
}

/// `cp -a` of the test template root filesystem to `destination`.
func ch02CopyRootfs(to destination: String) throws {
    let template = try ch02Template.get()
    let copy = try run("/bin/cp", ["-a", template, destination])
    if copy.status != 0 { throw IsolationError("cp -a \(template): \(copy.stderr)") }
}

/// The folder that holds the template, for the exit handler (a C function pointer
/// cannot capture anything).
nonisolated(unsafe) private var ch02TemplateFolder: String?

private let ch02Template: Result<String, any Error> = Result {
    let folder = try FileSystem.makeTemporaryDirectory(purpose: "test-ch02-template")
    chmod(folder.string, 0o755)
    ch02TemplateFolder = folder.string
    atexit {
        if let folder = ch02TemplateFolder { try? FileSystem.removeTree(FilePath(folder)) }
    }
    try RootFilesystem.build(at: folder.appending("rootfs"), from: .busybox)
    return folder.appending("rootfs").string
}

let ch02HasBusybox = RootFilesystem.busyboxPath() != nil

/// `chapter-02 ARGS` running in the background, its output going to files.
final class Ch02Background {
    let process: TestProcess
    let folder: TemporaryFolder

    init(_ arguments: [String], executable: String? = nil, prefix: [String] = []) throws {
        folder = try TemporaryFolder("ch02-bg")
        let program = executable ?? product("chapter-02")
        if prefix.isEmpty {
            process = try TestProcess(program, arguments)
        } else {
            process = try TestProcess(prefix[0], Array(prefix.dropFirst()) + [program] + arguments)
        }
    }

    var pid: pid_t { process.pid }
    var output: String { process.stdout }
    var errors: String { process.stderr }

    /// Waits until a descendant named `comm` exists (the command inside) and returns its
    /// host PID, or nil after `timeout` seconds.
    func waitForDescendant(named comm: String, timeout: Double = 15) -> pid_t? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let found = ch02Descendants(of: pid).first(where: { ch02Comm($0) == comm }) { return found }
            if !process.isRunning { return nil }
            usleep(20_000)
        }
        return nil
    }

    /// Sends `signal` to chapter-02 and waits for it; returns its exit status.
    @discardableResult
    func stop(_ signal: Int32 = SIGTERM, timeout: Double = 15) -> Int32 {
        if process.isRunning { kill(pid, signal) }
        switch process.wait(timeout: timeout) {
        case .exited(let code): return code
        case .signaled(let signal): return signal
        }
    }

    func remove() {
        if process.isRunning { stop(SIGKILL) }
        folder.remove()
    }
}

/// (pid, ppid) of every process, from /proc/PID/stat (the name may hold spaces and
/// parentheses: the fields after the *last* ')' are fixed).
func ch02ProcessTable() -> [(pid: pid_t, ppid: pid_t)] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return names.compactMap { name -> (pid_t, pid_t)? in
        guard let pid = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let ppid = pid_t(fields[1]) else { return nil }
        return (pid, ppid)
    }
}

/// Every descendant of `root`, children first.
func ch02Descendants(of root: pid_t) -> [pid_t] {
    let table = ch02ProcessTable()
    var result: [pid_t] = []
    var frontier = [root]
    while let next = frontier.popLast() {
        let children = table.filter { $0.ppid == next }.map(\.pid)
        result += children
        frontier += children
    }
    return result
}

func ch02Comm(_ pid: pid_t) -> String {
    ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}

func ch02Read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

/// Host PIDs whose command line contains `marker` (a unique sleep duration, say).
func ch02Processes(withArgument marker: String) -> [pid_t] {
    ch02ProcessTable().map(\.pid).filter { pid in
        let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
        return String(decoding: cmdline, as: UTF8.self).split(separator: "\0").contains { $0 == marker }
    }
}

/// `prefix` for running a program as nobody (uid/gid 65534, no supplementary groups).
let ch02AsNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
let ch02CanSwitchToNobody = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")

/// The unprivileged-user-namespace check the chapter makes, for the rootless tests.
let ch02RootlessAllowed = Preflight.unprivilegedUserNamespaces().status == .ok

/// Mount points in the host's mount table whose path or source mentions `text`.
func ch02HostMounts(mentioning text: String) -> [String] {
    ((try? MountInfo.table()) ?? []).filter { $0.mountPoint.contains(text) || $0.source.contains(text) }.map(\.mountPoint)
}
