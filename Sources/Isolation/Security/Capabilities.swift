import CLibcap
import Glibc

/// A Linux capability (capabilities(7)), e.g. `Capability.sysChroot`. Root's power is
/// split into about forty of these; containers keep only a few.
public struct Capability: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let chown = Capability(rawValue: CAP_CHOWN)
    public static let killAny = Capability(rawValue: CAP_KILL)
    public static let setuid = Capability(rawValue: CAP_SETUID)
    public static let setgid = Capability(rawValue: CAP_SETGID)
    public static let netAdmin = Capability(rawValue: CAP_NET_ADMIN)
    public static let sysChroot = Capability(rawValue: CAP_SYS_CHROOT)
    public static let sysAdmin = Capability(rawValue: CAP_SYS_ADMIN)
    public static let sysResource = Capability(rawValue: CAP_SYS_RESOURCE)
    public static let sysTime = Capability(rawValue: CAP_SYS_TIME)
    public static let mknod = Capability(rawValue: CAP_MKNOD)

    /// libcap's name: `cap_sys_chroot` (cap_to_name(3)).
    public var description: String {
        guard let name = cap_to_name(cap_value_t(rawValue)) else { return "cap_\(rawValue)" }
        defer { cap_free(name) }
        return String(cString: name)
    }

    /// Parses `CAP_SYS_ADMIN` or `cap_sys_admin` (cap_from_name(3)).
    public init?(name: String) {
        var value: cap_value_t = 0
        guard cap_from_name(name.lowercased(), &value) == 0 else { return nil }
        self.rawValue = Int32(value)
    }
}

/// The capability sets of a process, read with libcap (cap_get_pid(3)).
public struct CapabilityState: Sendable {
    public enum Set: Sendable { case effective, permitted, inheritable }

    public let effective: Swift.Set<Capability>
    public let permitted: Swift.Set<Capability>
    public let inheritable: Swift.Set<Capability>

    /// The sets of `pid` (0: this process).
    public static func of(pid: pid_t = 0) throws -> CapabilityState {
        guard let caps = pid == 0 ? cap_get_proc() : cap_get_pid(pid) else { throw currentErrno() }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        func read(_ flag: cap_flag_t) -> Swift.Set<Capability> {
            var result = Swift.Set<Capability>()
            for value in 0...Int32(cap_max_bits()) - 1 {
                var state: cap_flag_value_t = CAP_CLEAR
                if cap_get_flag(caps, cap_value_t(value), flag, &state) == 0, state == CAP_SET {
                    result.insert(Capability(rawValue: value))
                }
            }
            return result
        }
        return CapabilityState(effective: read(CAP_EFFECTIVE), permitted: read(CAP_PERMITTED), inheritable: read(CAP_INHERITABLE))
    }

    /// Whether `capability` is in the bounding set (cap_get_bound(3)).
    public static func inBoundingSet(_ capability: Capability) -> Bool {
        cap_get_bound(cap_value_t(capability.rawValue)) == 1
    }
}
