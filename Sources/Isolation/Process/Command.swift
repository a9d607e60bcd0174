import CIsolation
import Glibc
import SystemPackage

/// Runs a program to completion and collects what it printed: for `ldd` while building
/// a root filesystem, and for the lessons' side-by-side views. Uses `ChildProcess`, so
/// the fork-to-exec window stays in C.
public struct CommandOutput: Sendable {
    public var status: ExitStatus
    public var standardOutput: String
    public var standardError: String
}

public enum Command {
    /// Runs `executable` with `arguments` (not including argv[0]).
    public static func run(
        _ executable: FilePath, _ arguments: [String] = [],
        environment: [String] = defaultEnvironment, options: SpawnOptions = SpawnOptions()
    ) throws -> CommandOutput {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        try valueOrErrno { iso_pipe(&outPipe) }
        defer { for fd in outPipe where fd >= 0 { close(fd) } }
        try valueOrErrno { iso_pipe(&errPipe) }
        defer { for fd in errPipe where fd >= 0 { close(fd) } }
        var options = options
        options.standardOutput = FileDescriptor(rawValue: outPipe[1])
        options.standardError = FileDescriptor(rawValue: errPipe[1])
        let name = executable.lastComponent?.string ?? executable.string
        let child = try ChildProcess.spawn(executable, arguments: [name] + arguments, environment: environment, options: options)
        close(outPipe[1]); outPipe[1] = -1
        close(errPipe[1]); errPipe[1] = -1
        let (out, err) = drain(outPipe[0], errPipe[0])
        let status = try child.wait()
        return CommandOutput(status: status, standardOutput: String(decoding: out, as: UTF8.self),
                             standardError: String(decoding: err, as: UTF8.self))
    }

    /// A plain PATH for programs we run on the host.
    public static let defaultEnvironment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]

    /// Finds `name` in the directories of a PATH string, like execvp(3) does.
    public static func find(_ name: String, path: String = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", root: FilePath = "/") -> FilePath? {
        if name.contains("/") { return FilePath(name) }
        for directory in path.split(separator: ":") {
            let candidate = FilePath(String(directory)).appending(name)
            let onDisk = root == "/" ? candidate : root.pushing(candidate.removingRoot())
            var info = stat()
            if onDisk.withPlatformString({ stat($0, &info) }) == 0, (info.st_mode & S_IFMT) == S_IFREG,
               onDisk.withPlatformString({ access($0, X_OK) }) == 0 {
                return candidate
            }
        }
        return nil
    }

    /// Reads two pipes until both are closed, with poll(2) so neither can fill up and block.
    static func drain(_ a: Int32, _ b: Int32) -> ([UInt8], [UInt8]) {
        var outputs: [[UInt8]] = [[], []]
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 { if Glibc.errno == EINTR { continue } else { break } }
            for i in 0..<fds.count where fds[i].fd >= 0 && fds[i].revents != 0 {
                let count = read(fds[i].fd, &buffer, buffer.count)
                if count > 0 {
                    outputs[i].append(contentsOf: buffer[0..<count])
                } else if count == 0 || Glibc.errno != EINTR {
                    fds[i].fd = -1
                }
            }
        }
        return (outputs[0], outputs[1])
    }
}

func iso_pipe(_ fds: inout [Int32]) -> Int32 {
    fds.withUnsafeMutableBufferPointer { iso_pipe_cloexec($0.baseAddress) }
}

/// pipe2(2) with O_CLOEXEC: (read end, write end). Close-on-exec, so a child keeps only
/// the ends dup2'd onto its 0, 1 and 2; a stray write end would keep a reader from EOF.
public func makePipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    try valueOrErrno { iso_pipe(&fds) }
    return (fds[0], fds[1])
}

/// Reads `fd` until end of file (retrying on EINTR) and decodes it as UTF-8; a read
/// error ends it as end of file would (`FileSystem.readAll` throws instead).
public func readAll(_ fd: Int32) -> String {
    String(decoding: (try? FileSystem.readAll(FileDescriptor(rawValue: fd))) ?? [], as: UTF8.self)
}
