import Glibc

/// How a process ended, decoded from waitpid(2)'s status word.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    /// It called exit(code) or returned from main.
    case exited(Int32)
    /// A signal ended it (SIGKILL from the OOM killer, SIGINT from Ctrl-C, ...).
    case signaled(Int32)

    public init(waitStatus status: Int32) {
        // WIFEXITED/WEXITSTATUS/WTERMSIG are macros, which Swift does not import.
        let signal = status & 0x7f
        if signal == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(signal)
        }
    }

    /// The code a shell reports for it: the exit code, or 128 + the signal number.
    public var shellCode: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal): return "killed by \(signalName(signal))"
        }
    }
}

/// `SIGKILL`, `SIGTERM`, ...; the number for signals without a well-known name.
public func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [
        SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL",
        SIGTRAP: "SIGTRAP", SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE",
        SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1", SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2",
        SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGCHLD: "SIGCHLD",
        SIGCONT: "SIGCONT", SIGSTOP: "SIGSTOP", SIGTSTP: "SIGTSTP", SIGTTIN: "SIGTTIN",
        SIGTTOU: "SIGTTOU", SIGURG: "SIGURG", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ",
        SIGVTALRM: "SIGVTALRM", SIGPROF: "SIGPROF", SIGWINCH: "SIGWINCH", SIGIO: "SIGIO",
        SIGPWR: "SIGPWR", SIGSYS: "SIGSYS",
    ]
    return names[signal] ?? "signal \(signal)"
}
