extension OCIConfig {
    /// Linux-specific configuration: namespaces, ID mappings, devices, cgroups, seccomp and
    /// the mount table's finishing touches (config-linux.md).
    public struct Linux: Codable, Equatable, Sendable, OCIObject {
        /// Namespaces to create (no `path`) or join (`path`); kinds not listed are inherited ("Namespaces").
        public var namespaces: [Namespace]?
        /// UID mappings of the user namespace ("User namespace mappings").
        public var uidMappings: [IDMapping]?
        /// GID mappings of the user namespace ("User namespace mappings").
        public var gidMappings: [IDMapping]?
        /// Clock offsets of the time namespace, by clock name: `monotonic`, `boottime` ("Offset for Time Namespace", 1.1).
        public var timeOffsets: [String: TimeOffset]?
        /// Device nodes that must exist in the container, besides the default ones ("Devices").
        public var devices: [Device]?
        /// The cgroup to create or join: a path, or runc's systemd form `slice:prefix:name` ("Cgroups Path").
        public var cgroupsPath: String?
        /// cgroup limits ("Control groups").
        public var resources: Resources?
        /// Intel RDT cache and memory-bandwidth allocation; read loosely, a wrong type is ignored ("IntelRdt").
        public var intelRdt: IntelRdt?
        /// Kernel parameters set in the container's namespaces, such as `net.ipv4.ip_forward` ("Sysctl").
        public var sysctl: [String: String]?
        /// The system call filter ("Seccomp").
        public var seccomp: Seccomp?
        /// The propagation of the root mount ("Rootfs Mount Propagation").
        public var rootfsPropagation: RootfsPropagation?
        /// Paths made unreadable, by mounting over them ("Masked Paths").
        public var maskedPaths: [String]?
        /// Paths remounted read-only ("Readonly Paths").
        public var readonlyPaths: [String]?
        /// The SELinux context of the container's mounts ("Mount Label").
        public var mountLabel: String?
        /// The execution domain, set with personality(2) ("Personality", 1.0.2).
        public var personality: Personality?

        public init(namespaces: [Namespace]? = nil, uidMappings: [IDMapping]? = nil, gidMappings: [IDMapping]? = nil,
                    timeOffsets: [String: TimeOffset]? = nil, devices: [Device]? = nil, cgroupsPath: String? = nil,
                    resources: Resources? = nil, intelRdt: IntelRdt? = nil, sysctl: [String: String]? = nil,
                    seccomp: Seccomp? = nil, rootfsPropagation: RootfsPropagation? = nil, maskedPaths: [String]? = nil,
                    readonlyPaths: [String]? = nil, mountLabel: String? = nil, personality: Personality? = nil) {
            self.namespaces = namespaces
            self.uidMappings = uidMappings
            self.gidMappings = gidMappings
            self.timeOffsets = timeOffsets
            self.devices = devices
            self.cgroupsPath = cgroupsPath
            self.resources = resources
            self.intelRdt = intelRdt
            self.sysctl = sysctl
            self.seccomp = seccomp
            self.rootfsPropagation = rootfsPropagation
            self.maskedPaths = maskedPaths
            self.readonlyPaths = readonlyPaths
            self.mountLabel = mountLabel
            self.personality = personality
        }

        /// The kinds of namespace listed, as the option set the rest of the library uses.
        public var namespaceKinds: Namespaces { Namespaces((namespaces ?? []).map(\.type.kind)) }

        func checkRules(at path: JSONPath) throws(OCIFieldError) {
            var seen: [NamespaceType: Int] = [:]
            for (index, namespace) in (namespaces ?? []).enumerated() {
                let here = path.appending("namespaces").appending(index)
                if let first = seen[namespace.type] {
                    throw OCIFieldError(path: here.appending("type"), problem: .invalid("'\(namespace.type.rawValue)' is listed twice"),
                                        hint: "each kind of namespace appears once; see namespaces[\(first)]")
                }
                seen[namespace.type] = index
                if let joined = namespace.path, !joined.hasPrefix("/") {
                    throw OCIFieldError(path: here.appending("path"), problem: .invalid("'\(joined)' is not an absolute path"),
                                        hint: "a namespace to join is a file such as /proc/1234/ns/\(namespace.type.kind.procName)")
                }
            }
            // Mappings and offsets belong to a namespace: without it they would do nothing
            // (runc refuses them too).
            let kinds = Set((namespaces ?? []).map(\.type))
            for (name, list) in [("uidMappings", uidMappings), ("gidMappings", gidMappings)] where !(list ?? []).isEmpty && !kinds.contains(.user) {
                throw OCIFieldError(path: path.appending(name), problem: .invalid("maps IDs, but linux.namespaces has no user namespace"),
                                    hint: "add {\"type\": \"user\"} to linux.namespaces, or remove the mappings")
            }
            if let offsets = timeOffsets, !offsets.isEmpty {
                guard let time = (namespaces ?? []).first(where: { $0.type == .time }), time.path == nil else {
                    throw OCIFieldError(path: path.appending("timeOffsets"),
                                        problem: .invalid(kinds.contains(.time) ? "sets clocks, but the time namespace is joined (its offsets are set already)"
                                                                                : "sets clocks, but linux.namespaces has no time namespace"),
                                        hint: "add {\"type\": \"time\"} (without a path) to linux.namespaces, or remove timeOffsets")
                }
                for clock in offsets.keys.sorted() where clock != "monotonic" && clock != "boottime" {
                    throw OCIFieldError(path: path.appending("timeOffsets").appending(clock), problem: .invalid("'\(clock)' is not a clock a time namespace offsets"),
                                        hint: "use monotonic or boottime (time_namespaces(7))")
                }
            }
            for (index, device) in (devices ?? []).enumerated() where device.type != .fifo {
                let here = path.appending("devices").appending(index)
                if device.major == nil { throw OCIFieldError(path: here.appending("major"), problem: .missing, hint: "every device but a FIFO (type p) has a major and a minor number") }
                if device.minor == nil { throw OCIFieldError(path: here.appending("minor"), problem: .missing, hint: "every device but a FIFO (type p) has a major and a minor number") }
            }
            for (index, rule) in (resources?.devices ?? []).enumerated() {
                if let access = rule.access, !access.allSatisfy({ "rwm".contains($0) }) {
                    throw OCIFieldError(path: path.appending("resources").appending("devices").appending(index).appending("access"),
                                        problem: .invalid("'\(access)' is not a device access"),
                                        hint: "combine r (read), w (write) and m (mknod), such as \"rwm\"")
                }
            }
            try seccomp?.checkRules(at: path.appending("seccomp"))
            for (name, list) in [("maskedPaths", maskedPaths), ("readonlyPaths", readonlyPaths)] {
                for (index, entry) in (list ?? []).enumerated() where !entry.hasPrefix("/") {
                    throw OCIFieldError(path: path.appending(name).appending(index), problem: .invalid("'\(entry)' is not an absolute path"),
                                        hint: "paths inside the container start with /, such as /proc/kcore")
                }
            }
        }
    }

    /// A namespace to create or join (config-linux.md "Namespaces").
    public struct Namespace: Codable, Equatable, Sendable, OCIObject {
        /// The kind of namespace.
        public var type: NamespaceType
        /// A namespace file to join (`/proc/PID/ns/net`, a bind mount of one); absent: create a new one.
        public var path: String?

        public init(type: NamespaceType, path: String? = nil) {
            self.type = type
            self.path = path
        }
    }

    /// The kinds of namespace the spec names (config-linux.md "Namespaces").
    public enum NamespaceType: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        case pid, network, mount, ipc, uts, user, cgroup, time

        static let noun = "a namespace type"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }

        /// The same kind in the library's `Namespaces` option set (`network` is `.network`).
        public var kind: Namespaces {
            switch self {
            case .pid: return .pid
            case .network: return .network
            case .mount: return .mount
            case .ipc: return .ipc
            case .uts: return .uts
            case .user: return .user
            case .cgroup: return .cgroup
            case .time: return .time
            }
        }
    }

    /// A clock's offset in a time namespace (config-linux.md "Offset for Time Namespace").
    public struct TimeOffset: Codable, Equatable, Sendable, OCIObject {
        /// Whole seconds added to the clock.
        public var secs: Int64?
        /// Nanoseconds added besides `secs`.
        public var nanosecs: UInt32?

        public init(secs: Int64? = nil, nanosecs: UInt32? = nil) {
            self.secs = secs
            self.nanosecs = nanosecs
        }
    }

    /// A device node that must exist in the container (config-linux.md "Devices").
    public struct Device: Codable, Equatable, Sendable, OCIObject {
        /// Character, block, unbuffered character or FIFO.
        public var type: DeviceType
        /// Where in the container: a full path, anywhere (not only under /dev).
        public var path: String
        /// The major number; required unless `type` is `p`.
        public var major: Int64?
        /// The minor number; required unless `type` is `p`.
        public var minor: Int64?
        /// The node's mode bits, in decimal (438 is 0666).
        public var fileMode: UInt32?
        /// The owner's user ID in the container.
        public var uid: UInt32?
        /// The group ID in the container.
        public var gid: UInt32?

        public init(type: DeviceType, path: String, major: Int64? = nil, minor: Int64? = nil, fileMode: UInt32? = nil,
                    uid: UInt32? = nil, gid: UInt32? = nil) {
            self.type = type
            self.path = path
            self.major = major
            self.minor = minor
            self.fileMode = fileMode
            self.uid = uid
            self.gid = gid
        }
    }

    /// Kinds of device node, as mknod(1) names them.
    public enum DeviceType: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        /// A character device (`c`).
        case character = "c"
        /// A block device (`b`).
        case block = "b"
        /// An unbuffered character device (`u`, the same as `c` on Linux).
        case unbuffered = "u"
        /// A FIFO (`p`), which has no major or minor number.
        case fifo = "p"

        static let noun = "a device type"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// The propagation of the root mount (config-linux.md "Rootfs Mount Propagation").
    /// The spec names the first four; runc also accepts the recursive `r` forms, and so
    /// does this type.
    public enum RootfsPropagation: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        /// Receives no mount events from the host and sends none.
        case `private`
        /// Shares mount events both ways with a new peer group.
        case shared
        /// Receives mount events from the host but sends none.
        case slave
        /// Private, and cannot be bind mounted.
        case unbindable
        case rprivate, rshared, rslave, runbindable

        static let noun = "a mount propagation"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// The execution domain, set with personality(2) (config-linux.md "Personality").
    public struct Personality: Codable, Equatable, Sendable, OCIObject {
        /// `LINUX`, or `LINUX32` so that uname(2) reports a 32-bit machine such as i686.
        public var domain: PersonalityDomain
        /// Further flags; the spec defines none yet.
        public var flags: [String]?

        public init(domain: PersonalityDomain, flags: [String]? = nil) {
            self.domain = domain
            self.flags = flags
        }
    }

    /// Execution domains of personality(2) that the spec supports.
    public enum PersonalityDomain: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        case linux = "LINUX"
        case linux32 = "LINUX32"

        static let noun = "a personality domain"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// Intel Resource Director Technology settings (config-linux.md "IntelRdt"). Read
    /// loosely: a field of the wrong type, or a non-object, reads as absent, so that a
    /// config written for other hardware still loads.
    public struct IntelRdt: Codable, Equatable, Sendable, OCIObject {
        /// The resctrl class of service (a directory under /sys/fs/resctrl); the container ID when absent.
        public var closID: String?
        /// The L3 cache schema, `L3:<cache_id>=<capacity bitmask>;...`.
        public var l3CacheSchema: String?
        /// The memory bandwidth schema, `MB:<cache_id>=<bandwidth>;...`.
        public var memBwSchema: String?
        /// Turns on Cache Monitoring Technology.
        public var enableCMT: Bool?
        /// Turns on Memory Bandwidth Monitoring.
        public var enableMBM: Bool?

        public init(closID: String? = nil, l3CacheSchema: String? = nil, memBwSchema: String? = nil,
                    enableCMT: Bool? = nil, enableMBM: Bool? = nil) {
            self.closID = closID
            self.l3CacheSchema = l3CacheSchema
            self.memBwSchema = memBwSchema
            self.enableCMT = enableCMT
            self.enableMBM = enableMBM
        }

        enum CodingKeys: String, CodingKey {
            case closID, l3CacheSchema, memBwSchema, enableCMT, enableMBM
        }

        public init(from decoder: any Decoder) throws {
            self.init()
            guard let container = try? decoder.container(keyedBy: CodingKeys.self) else { return }
            closID = try? container.decodeIfPresent(String.self, forKey: .closID)
            l3CacheSchema = try? container.decodeIfPresent(String.self, forKey: .l3CacheSchema)
            memBwSchema = try? container.decodeIfPresent(String.self, forKey: .memBwSchema)
            enableCMT = try? container.decodeIfPresent(Bool.self, forKey: .enableCMT)
            enableMBM = try? container.decodeIfPresent(Bool.self, forKey: .enableMBM)
        }
    }
}
