// What every exercise shares: the TODO that fails loudly, and the run wrapper that turns
// errors into one clear message. Nothing here does an exercise's step for you.
import Glibc
import Isolation
import SystemPackage

/// A step of an exercise that is not written yet. Thrown by `exerciseTODO`.
public struct ExerciseTODO: Error, CustomStringConvertible {
    public var exercise: String
    public var step: String
    public var hint: String
    public var notes: String

    public var description: String {
        // The first line is what `check` looks for: keep its shape. The hint and the notes
        // wrap at 70 columns, under their labels (80 also inside the checker's "  │ " frame).
        func labelled(_ label: String, _ text: String) -> String {
            wrapLines(text, first: 70 - 9, rest: 70 - 9).enumerated()
                .map { ($0.offset == 0 ? "  \(label)" : String(repeating: " ", count: 9)) + $0.element }.joined(separator: "\n")
        }
        return "exercise \(exercise): step \"\(step)\" is still a TODO\n" + labelled("hint:  ", hint) + "\n" + labelled("notes: ", notes)
    }
}

/// Marks a hole: replace the call with your code. Until then it throws, so that running
/// the exercise says which step is missing instead of silently doing nothing.
///
///     try exerciseTODO("01", step: "chroot", hint: "…", notes: "Chapters/01-chroot-jail/README.md")
public func exerciseTODO(_ exercise: String, step: String, hint: String, notes: String) throws -> Never {
    throw ExerciseTODO(exercise: exercise, step: step, hint: hint, notes: notes)
}

/// The exit status of a process that stopped at a TODO (check tells it from a failure).
public let exerciseTODOExitCode: Int32 = 3

/// Runs an exercise's body: a TODO exits 3 with the step's name and hint, any other
/// error exits 1 (127 for a command that cannot be found) with one clear message.
public func runExercise(_ exercise: String, _ body: () throws -> Void) {
    do {
        try body()
    } catch let todo as ExerciseTODO {
        printError(todo.description)
        exit(exerciseTODOExitCode)
    } catch {
        reportingErrors("exercise-\(exercise)") { throw error }
    }
}

/// The environment of a contained process: nothing from the host.
public func exerciseEnvironment() -> [String] {
    ["PATH=\(Exec.containerPath)", "HOME=/root", "TERM=\(environmentValue("TERM") ?? "xterm")"]
}

/// The root filesystem: the given one, validated, or the built-in one (built on first
/// use, as the chapters do). Checks for root first: nothing is created before that.
public func exerciseRootfs(_ path: String?, why: String) throws -> RootFilesystem {
    try Preflight.require([Preflight.kernel(), Preflight.root(why: why)])
    if let path { return try RootFilesystem.validate(FilePath(path)) }
    return try RootFilesystem.builtIn(log: { say(Style.standardOutput.dim("  (\($0))")) })
}

/// A process that clone(2) made and that waits before execve(2) until `release()`.
/// Exercise 03 hands you one of these: what you do before `release()` happens before
/// the program runs.
public final class HeldProcess {
    let child: ChildProcess
    public var pid: pid_t { child.pid }

    public init(_ child: ChildProcess) { self.child = child }

    /// Lets the process exec. When the checker asks (ISOLATION_EXERCISE_REPORT names a
    /// file), notes which cgroups the process was in at this moment, read from
    /// /proc/PID/cgroup: that is how it can tell "joined before exec" from "after".
    public func release() throws {
        if let report = environmentValue("ISOLATION_EXERCISE_REPORT"), !report.isEmpty {
            let cgroups = ((try? FileSystem.readString(FilePath("/proc/\(pid)/cgroup"))) ?? "")
                .split(separator: "\n").joined(separator: ";")
            let line = "released pid=\(pid) cgroup=\(cgroups)\n"
            let fd = open(report, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 {
                _ = line.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
                close(fd)
            }
        }
        try child.release()
    }

    /// waitpid(2) with Ctrl-C passed on to the process.
    public func waitForwardingSignals() throws -> ExitStatus { try child.waitForwardingSignals() }

    /// kill(2).
    public func signal(_ signal: Int32) throws { try child.signal(signal) }
}
