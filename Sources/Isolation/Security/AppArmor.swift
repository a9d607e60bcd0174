import Glibc
import SystemPackage

/// AppArmor, the Linux security module Ubuntu and Debian enable: a profile loaded into
/// the kernel (by apparmor_parser; podman loads `containers-default-…`) confines a
/// program. A runtime only asks for the switch: "exec PROFILE" written to the task's
/// own `attr/apparmor/exec` (or the older `attr/exec`) takes effect at the next
/// execve(2) — aa_change_onexec(3), and what runc does.
public enum AppArmor {
    /// Whether the kernel has AppArmor on (`/sys/module/apparmor/parameters/enabled` is `Y`).
    public static func isEnabled(sysfs: FilePath = "/sys") -> Bool {
        (try? FileSystem.readString(sysfs.appending("module/apparmor/parameters/enabled")))?.hasPrefix("Y") == true
    }

    /// Throws a clear error when a profile is asked for on a host without AppArmor.
    public static func requireEnabled(for profile: String) throws {
        guard isEnabled() else {
            throw IsolationError("process.apparmorProfile is '\(profile)', but AppArmor is not enabled on this host",
                                 hint: "remove apparmorProfile from config.json, or enable AppArmor (security=apparmor on the kernel command line)")
        }
    }

    /// Asks to be confined by `profile` from the next execve(2) on (aa_change_onexec(3)).
    /// `procSelf` is where this task's /proc entry is (after setns into another PID
    /// namespace's /proc, /proc/self is not us: pass the host's, opened before).
    /// `checkEnabled: false` where /sys may not be the host's (inside the container).
    public static func changeOnExec(_ profile: String, procSelf: FilePath = "/proc/self", checkEnabled: Bool = true) throws {
        if checkEnabled { try requireEnabled(for: profile) }
        var lastError = Errno.noSuchFileOrDirectory
        for file in ["attr/apparmor/exec", "attr/exec"] {
            do {
                // One write(2), no O_CREAT: the file is the kernel's, and the whole request
                // must arrive at once.
                let fd = try FileDescriptor.open(procSelf.appending(file), .writeOnly, options: .closeOnExec)
                defer { try? fd.close() }
                _ = try fd.writeAll(Array("exec \(profile)".utf8))
                return
            } catch let error as Errno {
                lastError = error
                if error != .noSuchFileOrDirectory { break }
            }
        }
        throw StageError(stage: "echo \"exec \(profile)\" > \(procSelf)/attr/apparmor/exec", errno: lastError,
                         detail: lastError == .noSuchFileOrDirectory || lastError == .invalidArgument
                             ? "is the profile loaded? (sudo aa-status lists them; podman loads containers-default itself)" : nil)
    }
}
