import Glibc
import SystemPackage

extension Container {
    /// Runs `command` once `setUpInside` is done, in the container's first process.
    ///
    /// In a new PID namespace this process is PID 1, which has two jobs no shell does
    /// (pid_namespaces(7)): orphans are re-parented to it, so it must reap them; and the
    /// kernel drops signals sent to it that it has no handler for, so it must pass Ctrl-C
    /// and `kill` on. So it blocks those signals, forks the command and supervises it,
    /// and returns its status. Without a PID namespace it simply becomes the command.
    ///
    /// `shown` replaces the argument list in the narration (for long probe scripts).
    public func runCommand(
        _ command: [String], environment: [String], shown: String? = nil,
        narrate: (String, String) -> Void = { _, _ in }
    ) throws -> ExitStatus {
        let program = try Exec.resolve(command.first ?? "/bin/sh")
        let argv = command.isEmpty ? ["sh"] : command
        let display = shown ?? "\(argv)"
        guard namespaces.contains(.pid) else {
            narrate("execve(\"\(program)\", \(display))", "no PID namespace, so no PID 1 to be: become the command")
            try Exec.replaceProcess(program, arguments: argv, environment: environment)
        }
        narrate("clone(SIGCHLD) → execve(\"\(program)\", \(display))",
                "PID 1 forks the command and stays as its init: reaps orphans, forwards SIGINT/SIGTERM")
        blockSignalsForSupervision()
        let child = try ChildProcess.spawn(program, arguments: argv, environment: environment)
        // Returning from PID 1 ends the namespace: the kernel SIGKILLs whatever is left.
        return try child.waitForwardingSignals(reapOrphans: true)
    }
}
