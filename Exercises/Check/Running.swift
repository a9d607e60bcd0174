// Running the learner's exercise as a subprocess: its stdin is ours to write (the probe
// waits on it), its stdout and stderr are read with poll(2) in this one thread.
import Glibc
import Isolation
import SystemPackage

/// Ctrl-C, SIGTERM, SIGHUP and SIGQUIT are blocked in the checker (see Check.run), so
/// that they cannot kill it before it cleaned up: every wait loop asks this instead.
func interrupted() -> Bool {
    var pending = sigset_t()
    sigpending(&pending)
    return forwardedSignals.contains { sigismember(&pending, $0) == 1 }
}

final class Running {
    let child: ChildProcess
    let commandLine: String
    private var input: Int32
    private var output: Int32
    private var errors: Int32
    private(set) var stdout = ""
    private(set) var stderr = ""
    private(set) var status: ExitStatus?

    /// Starts `executable arguments` in a session of its own (so that everything it
    /// starts can be killed as a group), with pipes for 0, 1 and 2.
    init(_ executable: String, _ arguments: [String], environment: [String]) throws {
        let stdinPipe = try makePipe(), stdoutPipe = try makePipe(), stderrPipe = try makePipe()
        var options = SpawnOptions()
        options.standardInput = FileDescriptor(rawValue: stdinPipe.read)
        options.standardOutput = FileDescriptor(rawValue: stdoutPipe.write)
        options.standardError = FileDescriptor(rawValue: stderrPipe.write)
        options.newSession = true
        options.parentDeathSignal = SIGKILL
        let name = FilePath(executable).lastComponent?.string ?? executable
        commandLine = ([name] + arguments).map(shellQuote).joined(separator: " ")
        do {
            child = try ChildProcess.spawn(FilePath(executable), arguments: [name] + arguments, environment: environment, options: options)
        } catch {
            for fd in [stdinPipe.read, stdinPipe.write, stdoutPipe.read, stdoutPipe.write, stderrPipe.read, stderrPipe.write] { close(fd) }
            throw error
        }
        close(stdinPipe.read); close(stdoutPipe.write); close(stderrPipe.write)
        input = stdinPipe.write
        output = stdoutPipe.read
        errors = stderrPipe.read
        _ = fcntl(input, F_SETFL, O_NONBLOCK)
    }

    deinit {
        kill()
        for fd in [input, output, errors] where fd >= 0 { close(fd) }
    }

    /// Reads what is there, for up to `milliseconds`. Returns false once both are closed.
    @discardableResult
    private func pump(_ milliseconds: Int32) -> Bool {
        var fds = [pollfd(fd: output, events: Int16(POLLIN), revents: 0), pollfd(fd: errors, events: Int16(POLLIN), revents: 0)]
        guard output >= 0 || errors >= 0 else { usleep(UInt32(milliseconds) * 1000); return false }
        _ = poll(&fds, 2, milliseconds)
        for index in 0..<2 where fds[index].fd >= 0 && fds[index].revents != 0 {
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = read(fds[index].fd, &buffer, buffer.count)
            if n > 0 {
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                if index == 0 { stdout += text } else { stderr += text }
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                close(fds[index].fd)
                if index == 0 { output = -1 } else { errors = -1 }
            }
        }
        return output >= 0 || errors >= 0
    }

    /// Whether the process has ended (reaped here).
    private func reap() -> Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        if waitpid(child.pid, &raw, WNOHANG) == child.pid { status = ExitStatus(waitStatus: raw); return true }
        return false
    }

    /// Waits until stdout has a line equal to `line` (true), or the process ended or
    /// `timeout` passed (false).
    func waitForLine(_ line: String, timeout: Double) -> Bool {
        let end = monotonicNow() + timeout
        while monotonicNow() < end {
            if interrupted() { kill(); return false }
            if stdout.split(separator: "\n").contains(where: { $0 == line }) { return true }
            pump(50)
            if reap() {
                while pump(20) {}
                return stdout.split(separator: "\n").contains(where: { $0 == line })
            }
        }
        return false
    }

    /// Writes to the process's stdin (the probe's `read` returns).
    func send(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { write(input, $0.baseAddress, $0.count - 1) }
    }

    func closeInput() {
        if input >= 0 { close(input); input = -1 }
    }

    /// Closes stdin and waits for the end (killing the group after `timeout`): the status.
    @discardableResult
    func finish(timeout: Double) -> ExitStatus {
        closeInput()
        let end = monotonicNow() + timeout
        while !reap() {
            if monotonicNow() > end || interrupted() { kill(); break }
            pump(50)
        }
        while pump(20) {}
        return status ?? .signaled(SIGKILL)
    }

    /// SIGKILL to the whole session and reap.
    func kill() {
        guard status == nil else { return }
        Glibc.kill(-child.pid, SIGKILL)
        Glibc.kill(child.pid, SIGKILL)
        var raw: Int32 = 0
        if waitpid(child.pid, &raw, 0) == child.pid { status = ExitStatus(waitStatus: raw) }
    }
}
