import Glibc
import SystemPackage

/// Replacing the current program with another: execve(2).
public enum Exec {
    /// The PATH a container's processes get when the caller gives none.
    public static let containerPath = "/bin:/sbin:/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin"

    /// Finds `command` in `path` the way execvp(3) does, as seen from our root directory.
    /// A command with no match throws an error with runc's words, "executable file not
    /// found in $PATH", which engines such as podman turn into exit status 127. A path
    /// that names no executable file is "permission denied" (status 126), found here, before
    /// the container is ready, as runc does: once started, nobody would hear the error.
    public static func resolve(_ command: String, path: String = containerPath) throws -> FilePath {
        if command.contains("/") {
            var info = stat()
            guard stat(command, &info) == 0 else {
                throw ExecError(command: command, reason: "no such file or directory")
            }
            // access(2) with X_OK: root passes if any execute bit is set, as execve(2) wants.
            guard (info.st_mode & S_IFMT) == S_IFREG, access(command, X_OK) == 0 else {
                throw ExecError(command: command, reason: "permission denied")
            }
            return FilePath(command)
        }
        if let found = Command.find(command, path: path) { return found }
        throw ExecError(command: command, reason: "executable file not found in $PATH (\(path))")
    }

    /// execve(2): this process becomes `executable`. Returns only by throwing.
    public static func replaceProcess(_ executable: FilePath, arguments: [String], environment: [String]) throws -> Never {
        withCStringArray(arguments) { argv in
            withCStringArray(environment) { envp in
                _ = executable.withPlatformString { execve($0, argv, envp) }
            }
        }
        throw StageError(stage: "execve(\"\(executable)\")", errno: currentErrno())
    }
}

/// A command that cannot be run: shells and engines report it with status 127.
public struct ExecError: Error, CustomStringConvertible {
    public var command: String
    public var reason: String
    public var description: String { "\(command): \(reason)" }
    public init(command: String, reason: String) {
        self.command = command
        self.reason = reason
    }

    /// Reads back a `description` (the container's init sends it to the runtime as text).
    public init?(parsing text: String) {
        for reason in ["permission denied", "no such file or directory", "executable file not found in $PATH"] {
            var index = text.startIndex
            while index < text.endIndex {
                if text[index...].hasPrefix(": " + reason) {
                    self.init(command: String(text[..<index]), reason: String(text[index...].dropFirst(2)))
                    return
                }
                index = text.index(after: index)
            }
        }
        return nil
    }

    /// The shell's status: 126 for a file that cannot be executed, 127 for one not found.
    public var status: Int32 { reason == "permission denied" ? 126 : 127 }
}
