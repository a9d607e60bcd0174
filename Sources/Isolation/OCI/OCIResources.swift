extension OCIConfig {
    /// cgroup limits for the container (config-linux.md "Control groups"). Each field
    /// names a controller; the spec's units are the kernel's v1 files, which runtimes
    /// translate on cgroup v2 (shares to cpu.weight, ...), except `unified`.
    public struct Resources: Codable, Equatable, Sendable, OCIObject {
        /// The device allow/deny list, applied in order ("Allowed Device list").
        public var devices: [DeviceRule]?
        /// The memory controller ("Memory").
        public var memory: Memory?
        /// The cpu and cpuset controllers ("CPU").
        public var cpu: CPU?
        /// The pids controller ("PIDs").
        public var pids: Pids?
        /// The blkio (v1) or io (v2) controller ("Block IO").
        public var blockIO: BlockIO?
        /// The hugetlb controller, one limit per page size ("Huge page limits").
        public var hugepageLimits: [HugepageLimit]?
        /// The net_cls and net_prio controllers (v1 only) ("Network").
        public var network: Network?
        /// The rdma controller, by device name ("RDMA", 1.0.2).
        public var rdma: [String: Rdma]?
        /// cgroup v2 files written as they are, such as `memory.high` ("Unified", 1.1).
        public var unified: [String: String]?

        public init(devices: [DeviceRule]? = nil, memory: Memory? = nil, cpu: CPU? = nil, pids: Pids? = nil,
                    blockIO: BlockIO? = nil, hugepageLimits: [HugepageLimit]? = nil, network: Network? = nil,
                    rdma: [String: Rdma]? = nil, unified: [String: String]? = nil) {
            self.devices = devices
            self.memory = memory
            self.cpu = cpu
            self.pids = pids
            self.blockIO = blockIO
            self.hugepageLimits = hugepageLimits
            self.network = network
            self.rdma = rdma
            self.unified = unified
        }
    }

    /// One entry of the device allow/deny list (config-linux.md "Allowed Device list").
    public struct DeviceRule: Codable, Equatable, Sendable, OCIObject {
        /// Allows (true) or denies (false) the matching devices.
        public var allow: Bool
        /// `a` (all), `c` (character) or `b` (block); all when absent.
        public var type: DeviceRuleType?
        /// The major number; all when absent.
        public var major: Int64?
        /// The minor number; all when absent.
        public var minor: Int64?
        /// Any of `r` (read), `w` (write), `m` (mknod).
        public var access: String?

        public init(allow: Bool, type: DeviceRuleType? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
            self.allow = allow
            self.type = type
            self.major = major
            self.minor = minor
            self.access = access
        }
    }

    /// The device kinds a device rule matches.
    public enum DeviceRuleType: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        case all = "a"
        case character = "c"
        case block = "b"

        static let noun = "a device rule type"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// The memory controller, in bytes; -1 means unlimited (config-linux.md "Memory").
    public struct Memory: Codable, Equatable, Sendable, OCIObject {
        /// The hard limit (v1 memory.limit_in_bytes, v2 memory.max).
        public var limit: Int64?
        /// The soft limit (v1 memory.soft_limit_in_bytes, v2 memory.low).
        public var reservation: Int64?
        /// Memory plus swap (v1 memory.memsw.limit_in_bytes; v2 runtimes subtract `limit`).
        public var swap: Int64?
        /// NOT RECOMMENDED (1.1): the kernel-memory limit, gone from kernels since 5.4.
        public var kernel: Int64?
        /// NOT RECOMMENDED (1.1): the limit on kernel TCP buffer memory (v1 only).
        public var kernelTCP: Int64?
        /// How readily the kernel swaps the cgroup's pages: 0 to 100 (vm.swappiness).
        public var swappiness: UInt64?
        /// Disables the OOM killer (v1 memory.oom_control).
        public var disableOOMKiller: Bool?
        /// Hierarchical accounting (v1 memory.use_hierarchy; always on in v2) (1.0.2).
        public var useHierarchy: Bool?
        /// On update, refuses a limit below current usage (1.1).
        public var checkBeforeUpdate: Bool?

        public init(limit: Int64? = nil, reservation: Int64? = nil, swap: Int64? = nil, kernel: Int64? = nil,
                    kernelTCP: Int64? = nil, swappiness: UInt64? = nil, disableOOMKiller: Bool? = nil,
                    useHierarchy: Bool? = nil, checkBeforeUpdate: Bool? = nil) {
            self.limit = limit
            self.reservation = reservation
            self.swap = swap
            self.kernel = kernel
            self.kernelTCP = kernelTCP
            self.swappiness = swappiness
            self.disableOOMKiller = disableOOMKiller
            self.useHierarchy = useHierarchy
            self.checkBeforeUpdate = checkBeforeUpdate
        }
    }

    /// The cpu and cpuset controllers; times in microseconds (config-linux.md "CPU").
    public struct CPU: Codable, Equatable, Sendable, OCIObject {
        /// The relative weight under contention (v1 cpu.shares, default 1024).
        public var shares: UInt64?
        /// CPU time allowed per `period`; -1 for no limit (cpu.cfs_quota_us, v2 cpu.max).
        public var quota: Int64?
        /// Unused quota that may accumulate for bursts (cpu.cfs_burst_us) (1.1).
        public var burst: UInt64?
        /// The CFS period (cpu.cfs_period_us, default 100000).
        public var period: UInt64?
        /// Real-time CPU time per `realtimePeriod` (cpu.rt_runtime_us, v1 only).
        public var realtimeRuntime: Int64?
        /// The real-time period (cpu.rt_period_us, v1 only).
        public var realtimePeriod: UInt64?
        /// The CPUs the container may use, as `0-3,6` (cpuset.cpus).
        public var cpus: String?
        /// The memory nodes the container may use, as `0-1` (cpuset.mems).
        public var mems: String?
        /// 1 runs the cgroup at the lowest weight, like SCHED_IDLE (v2 cpu.idle) (1.1).
        public var idle: Int64?

        public init(shares: UInt64? = nil, quota: Int64? = nil, burst: UInt64? = nil, period: UInt64? = nil,
                    realtimeRuntime: Int64? = nil, realtimePeriod: UInt64? = nil, cpus: String? = nil,
                    mems: String? = nil, idle: Int64? = nil) {
            self.shares = shares
            self.quota = quota
            self.burst = burst
            self.period = period
            self.realtimeRuntime = realtimeRuntime
            self.realtimePeriod = realtimePeriod
            self.cpus = cpus
            self.mems = mems
            self.idle = idle
        }
    }

    /// The pids controller (config-linux.md "PIDs").
    public struct Pids: Codable, Equatable, Sendable, OCIObject {
        /// The most tasks at once (pids.max); -1 means no limit. REQUIRED up to 1.2.x,
        /// OPTIONAL from 1.3; read as optional so that both load.
        public var limit: Int64?

        public init(limit: Int64? = nil) { self.limit = limit }
    }

    /// The blkio (v1) or io (v2) controller (config-linux.md "Block IO").
    public struct BlockIO: Codable, Equatable, Sendable, OCIObject {
        /// The default weight on every device: 10 to 1000 (blkio.weight, v2 io.bfq.weight).
        public var weight: UInt16?
        /// The weight against the cgroup's own children (CFQ only, v1).
        public var leafWeight: UInt16?
        /// Weights for single devices.
        public var weightDevice: [WeightDevice]?
        /// Read bytes per second, per device (blkio.throttle.read_bps_device, v2 io.max rbps).
        public var throttleReadBpsDevice: [ThrottleDevice]?
        /// Write bytes per second, per device (v2 io.max wbps).
        public var throttleWriteBpsDevice: [ThrottleDevice]?
        /// Read operations per second, per device (v2 io.max riops).
        public var throttleReadIOPSDevice: [ThrottleDevice]?
        /// Write operations per second, per device (v2 io.max wiops).
        public var throttleWriteIOPSDevice: [ThrottleDevice]?

        public init(weight: UInt16? = nil, leafWeight: UInt16? = nil, weightDevice: [WeightDevice]? = nil,
                    throttleReadBpsDevice: [ThrottleDevice]? = nil, throttleWriteBpsDevice: [ThrottleDevice]? = nil,
                    throttleReadIOPSDevice: [ThrottleDevice]? = nil, throttleWriteIOPSDevice: [ThrottleDevice]? = nil) {
            self.weight = weight
            self.leafWeight = leafWeight
            self.weightDevice = weightDevice
            self.throttleReadBpsDevice = throttleReadBpsDevice
            self.throttleWriteBpsDevice = throttleWriteBpsDevice
            self.throttleReadIOPSDevice = throttleReadIOPSDevice
            self.throttleWriteIOPSDevice = throttleWriteIOPSDevice
        }
    }

    /// A weight for one block device (config-linux.md "Block IO": weightDevice).
    public struct WeightDevice: Codable, Equatable, Sendable, OCIObject {
        /// The device's major number.
        public var major: Int64
        /// The device's minor number.
        public var minor: Int64
        /// The weight on this device.
        public var weight: UInt16?
        /// The weight against the cgroup's children on this device (CFQ only).
        public var leafWeight: UInt16?

        public init(major: Int64, minor: Int64, weight: UInt16? = nil, leafWeight: UInt16? = nil) {
            self.major = major
            self.minor = minor
            self.weight = weight
            self.leafWeight = leafWeight
        }
    }

    /// A rate limit for one block device (config-linux.md "Block IO": throttle*Device).
    public struct ThrottleDevice: Codable, Equatable, Sendable, OCIObject {
        /// The device's major number.
        public var major: Int64
        /// The device's minor number.
        public var minor: Int64
        /// Bytes or operations per second.
        public var rate: UInt64

        public init(major: Int64, minor: Int64, rate: UInt64) {
            self.major = major
            self.minor = minor
            self.rate = rate
        }
    }

    /// A HugeTLB limit for one page size (config-linux.md "Huge page limits").
    public struct HugepageLimit: Codable, Equatable, Sendable, OCIObject {
        /// The page size, `<size><unit>B`: `2MB`, `1GB`, `64KB`.
        public var pageSize: String
        /// Bytes of huge pages of that size (reservations where supported, else usage).
        public var limit: UInt64

        public init(pageSize: String, limit: UInt64) {
            self.pageSize = pageSize
            self.limit = limit
        }
    }

    /// The net_cls and net_prio controllers, cgroup v1 only (config-linux.md "Network").
    public struct Network: Codable, Equatable, Sendable, OCIObject {
        /// The class ID packets are tagged with (net_cls.classid).
        public var classID: UInt32?
        /// Priorities of egress traffic per interface (net_prio.ifpriomap).
        public var priorities: [InterfacePriority]?

        public init(classID: UInt32? = nil, priorities: [InterfacePriority]? = nil) {
            self.classID = classID
            self.priorities = priorities
        }
    }

    /// The priority of traffic leaving through one interface (config-linux.md "Network").
    public struct InterfacePriority: Codable, Equatable, Sendable, OCIObject {
        /// The interface's name in the runtime's network namespace.
        public var name: String
        /// The priority.
        public var priority: UInt32

        public init(name: String, priority: UInt32) {
            self.name = name
            self.priority = priority
        }
    }

    /// Limits of the rdma controller for one device (config-linux.md "RDMA").
    public struct Rdma: Codable, Equatable, Sendable, OCIObject {
        /// The most HCA handles open at once; no limit when absent.
        public var hcaHandles: UInt32?
        /// The most HCA objects at once; no limit when absent.
        public var hcaObjects: UInt32?

        public init(hcaHandles: UInt32? = nil, hcaObjects: UInt32? = nil) {
            self.hcaHandles = hcaHandles
            self.hcaObjects = hcaObjects
        }
    }
}
