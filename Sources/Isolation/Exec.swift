import Glibc
import SystemPackage

/// Replacing the current program with another: execve(2).
public enum Exec {
    /// The PATH a container's processes get when the caller gives none.
    public static let containerPath = "/bin:/sbin:/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin"

    /// Finds `command` in `path` the way execvp(3) does, as seen from our root directory.
    /// A command with no match throws an error with runc's words, "executable file not
    /// found in $PATH", which engines such as podman turn into exit status 127.
    public static func resolve(_ command: String, path: String = containerPath) throws -> FilePath {
        if command.contains("/") {
            guard FileSystem.exists(FilePath(command)) else {
                throw ExecError(command: command, reason: "no such file or directory")
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
}
