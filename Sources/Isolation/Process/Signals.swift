import Glibc

/// Signals a parent passes on to the process it waits for: Ctrl-C (SIGINT), `kill`
/// (SIGTERM), a closed terminal (SIGHUP), Ctrl-\ (SIGQUIT).
public let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

/// Blocks SIGCHLD and the forwarded signals in the calling thread, so that they wait
/// to be picked up by `waitForwardingSignals` (sigwaitinfo(2)) instead of killing us
/// before we had a chance to clean up. Call it before spawning; children start with an
/// empty mask (the C shim resets it before exec).
public func blockSignalsForSupervision() {
    var set = supervisedSignalSet()
    sigprocmask(SIG_BLOCK, &set, nil)
}

func supervisedSignalSet() -> sigset_t {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGCHLD)
    for signal in forwardedSignals { sigaddset(&set, signal) }
    return set
}

extension ChildProcess {
    /// Waits for this child to end while passing SIGINT, SIGTERM, SIGHUP and SIGQUIT on
    /// to it. With `reapOrphans`, also reaps every other child that ends, which PID 1 of
    /// a PID namespace must do (orphans are re-parented to it). Needs
    /// `blockSignalsForSupervision()` to have been called before `spawn`.
    ///
    /// `onSignal` is called for each forwarded signal (to tell the learner about it).
    @discardableResult
    public func waitForwardingSignals(
        reapOrphans: Bool = false,
        onSignal: (Int32) -> Void = { _ in }
    ) throws -> ExitStatus {
        var set = supervisedSignalSet()
        while true {
            // Reap first: SIGCHLD may have been merged with an earlier one.
            while true {
                var status: Int32 = 0
                let reapedPID = waitpid(reapOrphans ? -1 : pid, &status, WNOHANG)
                if reapedPID == pid {
                    let result = ExitStatus(waitStatus: status)
                    markReaped(result)
                    return result
                }
                if reapedPID > 0 { continue }  // an orphan: reaped, look again
                if reapedPID == 0 { break }     // children left, none has ended
                if Glibc.errno == EINTR { continue }
                return try wait()               // ECHILD: somebody reaped it already
            }
            var info = siginfo_t()
            let signal = sigwaitinfo(&set, &info)
            if signal < 0 { continue }
            if signal == SIGCHLD { continue }
            onSignal(signal)
            kill(pid, signal)
        }
    }
}
