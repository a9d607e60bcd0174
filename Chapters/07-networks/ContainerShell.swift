// A container whose first process is a shell reading commands from us: the lesson's way
// to run `ping` or `wget` inside, one command at a time (an `exec` without setns).
import Glibc
import Isolation
import SystemPackage

final class ContainerShell {
    let name: String
    let child: ChildProcess
    private var input: Int32
    private let output: Int32
    private var pending: [UInt8] = []

    /// Starts `sh -s` in new namespaces (none of `network` when `namespaces` lacks it).
    /// `beforeStart` runs while the child waits before exec: the runtime's window between
    /// `create` and `start`, where engines call their network plugin.
    init(name: String, root: RootFilesystem, namespaces: Namespaces, beforeStart: @escaping (pid_t) throws -> Void) throws {
        self.name = name
        let toShell = try makePipe(), fromShell = try makePipe()
        defer { close(toShell.read); close(fromShell.write) }
        do {
            child = try Container.start(
                arguments: ["chapter-07", "init", "--rootfs", root.path.string, "--namespaces", namespaces.description,
                            "--hostname", name, "--", "sh", "-s"],
                environment: containerEnvironment(), namespaces: namespaces,
                standardInput: FileDescriptor(rawValue: toShell.read), standardOutput: FileDescriptor(rawValue: fromShell.write),
                standardError: FileDescriptor(rawValue: fromShell.write), beforeRelease: beforeStart)
        } catch {
            close(toShell.write); close(fromShell.read)
            throw error
        }
        input = toShell.write
        output = fromShell.read
    }

    /// Runs `command` in the container's shell and returns its exit status and output.
    @discardableResult
    func run(_ command: String, timeoutSeconds: Int32 = 20) throws -> (status: Int, lines: [String]) {
        let line = "{ \(command)\n} </dev/null 2>&1; echo \"@done:$?\"\n"
        _ = Array(line.utf8).withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
        var lines: [String] = []
        let deadline = time(nil) + Int(timeoutSeconds)
        while true {
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let text = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                if text.hasPrefix("@done:") { return (Int(text.dropFirst(6)) ?? -1, lines) }
                lines.append(text)
            }
            var poller = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let left = Int32(max(0, deadline - time(nil)))
            guard left > 0, poll(&poller, 1, left * 1000) > 0 else {
                throw IsolationError("\(name): `\(command)` did not finish within \(timeoutSeconds) s")
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            guard count > 0 else { throw IsolationError("\(name): the container's shell ended while running `\(command)`") }
            pending += buffer[0..<count]
        }
    }

    /// Ends the shell (end of its input) and waits for the container to end; SIGKILL after 5 s.
    func stop() {
        if input >= 0 { close(input); input = -1 }
        var status: Int32 = 0
        for _ in 0..<50 {
            if waitpid(child.pid, &status, WNOHANG) == child.pid { close(output); return }
            usleep(100_000)
        }
        kill(child.pid, SIGKILL)
        _ = waitpid(child.pid, &status, 0)
        close(output)
    }
}
