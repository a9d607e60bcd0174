import CIsolation
import Glibc
import SystemPackage

/// Which device files a cgroup's processes may open and create: the device controller.
///
/// An ordered list of rules, each `allow` or `deny` for a kind (`c`, `b`, or `a` for both),
/// a major and a minor number (any when nil) and an access (`r`, `w`, `m` for mknod),
/// as `linux.resources.devices` writes them. The last rule that matches decides; a rule
/// for every device and every access resets the default. On cgroup v1 the rules are
/// written to `devices.deny`/`devices.allow` one by one; v2 has no such files, and a small
/// eBPF program made from the rules answers each open(2) and mknod(2) of a device instead.
///
/// Without it, a process with CAP_MKNOD could make `/dev/sda`'s node and read the host's
/// disk: the mount namespace hides files, not devices.
public struct DeviceAccess: Sendable, Equatable {
    public struct Access: OptionSet, Sendable, Hashable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let mknod = Access(rawValue: ISO_DEVICE_MKNOD)
        public static let read = Access(rawValue: ISO_DEVICE_READ)
        public static let write = Access(rawValue: ISO_DEVICE_WRITE)
        public static let all: Access = [.read, .write, .mknod]

        /// `rwm`, in any order; empty means all (as the runtime-spec says).
        public init?(_ text: String) {
            var access: Access = []
            for character in text {
                switch character {
                case "r": access.insert(.read)
                case "w": access.insert(.write)
                case "m": access.insert(.mknod)
                default: return nil
                }
            }
            self = access.isEmpty ? .all : access
        }

        public var text: String { (contains(.read) ? "r" : "") + (contains(.write) ? "w" : "") + (contains(.mknod) ? "m" : "") }
    }

    public struct Rule: Sendable, Equatable {
        public enum Kind: String, Sendable { case all = "a", character = "c", block = "b" }
        public var allow: Bool
        public var kind: Kind
        public var major: Int64?
        public var minor: Int64?
        public var access: Access

        public init(allow: Bool, kind: Kind = .all, major: Int64? = nil, minor: Int64? = nil, access: Access = .all) {
            self.allow = allow
            self.kind = kind
            self.major = major
            self.minor = minor
            self.access = access
        }

        /// Every device, every access: the rule that sets the default.
        var isWildcard: Bool { kind == .all && major == nil && minor == nil && access == .all }

        /// v1's line: `c 1:3 rwm`, `a *:* rwm`.
        public var v1Line: String {
            "\(kind.rawValue) \(major.map(String.init) ?? "*"):\(minor.map(String.init) ?? "*") \(access.text)"
        }

        func matches(_ kind: Kind, _ major: Int64, _ minor: Int64, _ access: Access) -> Bool {
            (self.kind == .all || self.kind == kind) && (self.major ?? major) == major && (self.minor ?? minor) == minor
                && self.access.isSuperset(of: access)
        }
    }

    /// What happens to a device no rule names.
    public private(set) var defaultAllow = true
    /// The rules after the last wildcard, in order.
    public private(set) var rules: [Rule] = []

    public init(_ list: [Rule]) {
        for rule in list {
            if rule.isWildcard {
                defaultAllow = rule.allow
                rules = []
            } else {
                rules.append(rule)
            }
        }
    }

    /// Whether `access` to the device `kind major:minor` is allowed: what the kernel will answer.
    public func allows(_ kind: Rule.Kind, _ major: Int64, _ minor: Int64, _ access: Access) -> Bool {
        rules.last(where: { $0.matches(kind, major, minor, access) })?.allow ?? defaultAllow
    }

    /// The devices every container gets (runc's list): /dev/null, zero, full, random,
    /// urandom, tty, the ptys (ptmx and pts/*) and tun, plus mknod of any node.
    public static let containerDefaults: [Rule] = [
        Rule(allow: true, kind: .character, access: .mknod),
        Rule(allow: true, kind: .block, access: .mknod),
        Rule(allow: true, kind: .character, major: 1, minor: 3),   // null
        Rule(allow: true, kind: .character, major: 1, minor: 5),   // zero
        Rule(allow: true, kind: .character, major: 1, minor: 7),   // full
        Rule(allow: true, kind: .character, major: 1, minor: 8),   // random
        Rule(allow: true, kind: .character, major: 1, minor: 9),   // urandom
        Rule(allow: true, kind: .character, major: 5, minor: 0),   // tty
        Rule(allow: true, kind: .character, major: 5, minor: 2),   // ptmx
        Rule(allow: true, kind: .character, major: 136),           // pts/*
        Rule(allow: true, kind: .character, major: 10, minor: 200), // net/tun
    ]

    /// Applies the rules to a v1 `devices` hierarchy directory: the default first
    /// (`a` to devices.deny or devices.allow clears every exception), then each rule.
    func writeV1(_ directory: FilePath, write: (FilePath, String) throws -> Void) throws {
        try write(directory.appending(defaultAllow ? "devices.allow" : "devices.deny"), "a")
        for rule in rules {
            try write(directory.appending(rule.allow ? "devices.allow" : "devices.deny"), rule.v1Line)
        }
    }

    /// Attaches the eBPF program for these rules to a v2 cgroup directory (bpf(2)).
    func attachV2(_ directory: FilePath) throws {
        let fd = open(directory.string, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StageError(stage: "open \(directory)", errno: currentErrno()) }
        defer { close(fd) }
        let raw = rules.map { rule in
            iso_device_rule(allow: rule.allow ? 1 : 0, type: CChar(UInt8(ascii: rule.kind.rawValue.unicodeScalars.first!)),
                            major: rule.major ?? -1, minor: rule.minor ?? -1, access: rule.access.rawValue)
        }
        var log = [CChar](repeating: 0, count: 4096)
        let result = raw.withUnsafeBufferPointer { buffer in
            iso_attach_device_program(fd, buffer.baseAddress, Int32(buffer.count), defaultAllow ? 1 : 0, &log, log.count)
        }
        if result != 0 {
            let error = currentErrno()
            let verifier = String(decoding: log.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw StageError(stage: "bpf(BPF_PROG_LOAD/BPF_PROG_ATTACH, BPF_CGROUP_DEVICE) for \(directory)", errno: error,
                             detail: verifier.isEmpty ? "cgroup v2 device rules need a kernel with CONFIG_CGROUP_BPF" : verifier)
        }
    }
}
