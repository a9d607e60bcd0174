import CIsolation
import Glibc
import SystemPackage

/// The session keyring (keyrings(7), session-keyring(7)): the keys a process and all it
/// starts share, such as a login's Kerberos tickets or an encrypted home's key. A new
/// process inherits its parent's, so a container started from someone's shell would
/// otherwise hold that shell's keys. runc gives every container its own.
public enum SessionKeyring {
    /// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a new session keyring called `name`, for
    /// us and every process we start. (An existing one of that name is joined instead only
    /// if we may search it; the keyrings a runtime makes are searchable by their own
    /// processes only.) A kernel built without keys (ENOSYS) has no keyring to leak.
    public static func join(name: String) throws {
        guard iso_join_session_keyring(name) < 0 else { return }
        let error = currentErrno()
        if error == .noFunction { return }
        throw StageError(stage: "keyctl(KEYCTL_JOIN_SESSION_KEYRING, \"\(name)\")", errno: error)
    }
}
