import CIsolation
import Glibc
import SystemPackage

/// A pseudo-terminal for `process.terminal` (pty(7)): opened from the /dev/ptmx of the
/// mount namespace we are in (the container's own devpts), its master sent to the engine
/// over the console socket, its slave the process's 0, 1, 2 and controlling terminal.
struct PseudoTerminal {
    let slave: Int32
    let name: String

    /// posix_openpt/unlockpt/ptsname (iso_open_pty), the window size (TIOCSWINSZ), the
    /// slave owned by the process's user, and the master sent over `console` with
    /// SCM_RIGHTS (unix(7)). The master is closed here: only the engine holds it.
    static func open(sendingMasterTo console: Int32, size: OCIConfig.ConsoleSize?, owner: (uid: UInt32, gid: UInt32)) throws -> PseudoTerminal {
        var master: Int32 = -1, slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        guard iso_open_pty(&master, &slave, &name, name.count) == 0 else { throw StageError(stage: "open a pseudo-terminal", errno: currentErrno()) }
        defer { close(master) }
        if let size { _ = iso_set_window_size(slave, UInt16(clamping: size.height), UInt16(clamping: size.width)) }  // checked when decoded
        _ = fchown(slave, owner.uid, owner.gid)
        let path = String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard iso_send_fd(console, master, path) == 0 else {
            close(slave)
            throw StageError(stage: "send the terminal over the console socket", errno: currentErrno())
        }
        return PseudoTerminal(slave: slave, name: path)
    }

    /// Connects to the engine's console socket (a host path: call before entering the container).
    static func connect(_ socket: FilePath) throws -> Int32 {
        let connected = iso_connect_unix(socket.string)
        guard connected >= 0 else { throw StageError(stage: "connect to --console-socket \(socket)", errno: currentErrno()) }
        return connected
    }
}
