/// Limits for a cgroup, as people write them: `--cpus 0.5 --memory 64M --pids 32`.
///
/// Parsing happens before anything is created: a wrong value is an `IsolationError`
/// that says what was expected, and nothing on the machine has changed.
public struct ResourceLimits: Sendable, Equatable {
    /// CPU time per period: 0.5 CPUs is 50 000 µs every 100 000 µs (CFS bandwidth control).
    public var cpus: Double?
    public var cpuPeriodMicroseconds: Int = 100_000
    /// Relative share when CPUs are contended: v2 `cpu.weight` (1–10000, default 100);
    /// v1 `cpu.shares` gets weight × 1024 / 100.
    public var cpuWeight: Int?
    /// The memory limit in bytes; past it the kernel reclaims, then OOM-kills.
    public var memoryBytes: UInt64?
    /// Swap the cgroup may use besides its memory (v2 `memory.swap.max`; v1 is set
    /// through `memory.memsw.limit_in_bytes` = memory + swap). 0 forbids swapping.
    public var swapBytes: UInt64?
    /// The soft limit the kernel reclaims towards under memory pressure (OCI
    /// `memory.reservation`): v1 `memory.soft_limit_in_bytes`, v2 `memory.low`.
    public var memoryReservationBytes: UInt64?
    /// How eagerly the kernel swaps this cgroup's memory, 0–100 (v1 `memory.swappiness`;
    /// cgroup v2 has no such file, and runc ignores it there, as we do).
    public var swappiness: UInt64?
    /// No OOM kill at the limit: the tasks wait for memory instead (v1 `memory.oom_control`;
    /// v2 has no such switch, and runc ignores it there, as we do).
    public var oomKillDisabled = false
    /// The most tasks (processes and threads) at once: fork(2) fails with EAGAIN past it.
    public var pids: Int?
    /// The CPUs the processes may run on, as `0-1` or `0,2`.
    public var cpuset: String?
    /// The memory nodes the processes may allocate from (OCI `cpu.mems`), as `0` or `0-1`:
    /// `cpuset.mems`; unset, the parent's.
    public var cpusetMems: String?
    /// v1 `cpu.shares` as an OCI config gives it (2–262144, default 1024); on v2 it is
    /// converted to `cpu.weight` the way runc does. Overrides `cpuWeight` when set.
    public var cpuShares: UInt64?
    /// Which devices the processes may open and mknod (`linux.resources.devices`); nil
    /// leaves the device controller alone.
    public var devices: DeviceAccess?
    /// The rest of an OCI config's `linux.resources`, written to the cgroup v1 files runc
    /// writes; where a file is missing, or on cgroup v2 where it has no equivalent here,
    /// `Cgroup.apply` fails with an error naming the field (nothing is silently dropped).
    /// memory.kernel and memory.kernelTCP (deprecated in the spec): v1 `memory.kmem.*`.
    public var kernelMemory: Int64?
    public var kernelTCPMemory: Int64?
    /// linux.resources.blockIO: v1 `blkio.*`.
    public var blockIO: OCIConfig.BlockIO?
    /// linux.resources.hugepageLimits: v1 `hugetlb.SIZE.limit_in_bytes`.
    public var hugepageLimits: [OCIConfig.HugepageLimit] = []
    /// linux.resources.network: v1 `net_cls.classid` and `net_prio.ifpriomap`.
    public var network: OCIConfig.Network?

    public init(cpus: Double? = nil, cpuWeight: Int? = nil, memoryBytes: UInt64? = nil, swapBytes: UInt64? = nil,
                pids: Int? = nil, cpuset: String? = nil) {
        self.cpus = cpus
        self.cpuWeight = cpuWeight
        self.memoryBytes = memoryBytes
        self.swapBytes = swapBytes
        self.pids = pids
        self.cpuset = cpuset
    }

    public var isEmpty: Bool { self == ResourceLimits() }

    /// The limits of an OCI config's `linux.resources` that this project enforces.
    /// Memory `swap` in OCI is memory *plus* swap; here it is the swap alone.
    public init(oci resources: OCIConfig.Resources?) {
        self.init()
        guard let resources else { return }
        if let cpu = resources.cpu {
            // config.json's numbers are range-checked when it is decoded (OCIBounds); these
            // conversions never trap on a config built in code either.
            if let period = cpu.period, period > 0 { cpuPeriodMicroseconds = Int(clamping: period) }
            if let quota = cpu.quota, quota > 0 { cpus = Double(quota) / Double(cpuPeriodMicroseconds) }
            if let shares = cpu.shares, shares > 0 { cpuShares = shares }
            if let list = cpu.cpus, !list.isEmpty { cpuset = list }
            if let nodes = cpu.mems, !nodes.isEmpty { cpusetMems = nodes }
        }
        if let memory = resources.memory {
            if let limit = memory.limit, limit > 0 {
                memoryBytes = UInt64(limit)
                if let swap = memory.swap, swap >= limit { swapBytes = UInt64(swap - limit) }
            }
            if let reservation = memory.reservation, reservation > 0 { memoryReservationBytes = UInt64(reservation) }
            // Docker writes -1 (as an unsigned number) for "the kernel's default".
            if let value = memory.swappiness, value != UInt64.max { swappiness = value }
            oomKillDisabled = memory.disableOOMKiller == true
            if let kernel = memory.kernel, kernel != 0 { kernelMemory = kernel }
            if let tcp = memory.kernelTCP, tcp != 0 { kernelTCPMemory = tcp }
        }
        if var blockIO = resources.blockIO {
            // A weight of 0 is "not set", as runc reads it: Docker writes blockIO.weight 0
            // for every container, and the kernel refuses 0 (its weights start at 1 or 10).
            if blockIO.weight == 0 { blockIO.weight = nil }
            if blockIO.leafWeight == 0 { blockIO.leafWeight = nil }
            blockIO.weightDevice = blockIO.weightDevice?.map { device in
                var device = device
                if device.weight == 0 { device.weight = nil }
                if device.leafWeight == 0 { device.leafWeight = nil }
                return device
            }.filter { $0.weight != nil || $0.leafWeight != nil }
            if blockIO.weightDevice?.isEmpty == true { blockIO.weightDevice = nil }
            for keyPath in [\OCIConfig.BlockIO.throttleReadBpsDevice, \.throttleWriteBpsDevice, \.throttleReadIOPSDevice, \.throttleWriteIOPSDevice]
            where blockIO[keyPath: keyPath]?.isEmpty == true {
                blockIO[keyPath: keyPath] = nil
            }
            if blockIO != OCIConfig.BlockIO() { self.blockIO = blockIO }
        }
        hugepageLimits = resources.hugepageLimits ?? []
        if let network = resources.network, network.classID != nil || !(network.priorities ?? []).isEmpty { self.network = network }
        if let limit = resources.pids?.limit, limit > 0 { pids = Int(clamping: limit) }
    }

    /// The quota in µs per period for `cpus`.
    public var cpuQuotaMicroseconds: Int? {
        cpus.map { cpus in
            let quota = (cpus * Double(cpuPeriodMicroseconds)).rounded()
            return quota.isNaN ? 0 : quota >= Double(Int.max) ? Int.max : quota <= Double(Int.min) ? Int.min : Int(quota)
        }
    }

    /// Parses a CPU count: `0.5`, `2`, `1.25`. At least 0.01, at most 1024.
    public static func parseCPUs(_ text: String) throws -> Double {
        guard let value = Double(text.trimmingCharacters(in: " ")), value.isFinite, value >= 0.01, value <= 1024 else {
            throw IsolationError("'\(text)' is not a CPU count", hint: "write a number of CPUs such as 0.5, 1 or 1.5 (at least 0.01)")
        }
        return value
    }

    /// Parses a size: `64M`, `1.5G`, `512k`, `64MiB`, `100000` (bytes). Units are
    /// binary (M = 1024 × 1024), as in docker, podman and the kernel's own files.
    public static func parseSize(_ text: String) throws -> UInt64 {
        let trimmed = text.trimmingCharacters(in: " ").lowercased()
        let hint = "write a size such as 64M, 1.5G, 512K or a number of bytes"
        var number = Substring(trimmed)
        var unit = ""
        while let last = number.last, last.isLetter { unit = String(last) + unit; number = number.dropLast() }
        let k = 1024.0, m = k * k, g = m * k, t = g * k
        let multipliers: [String: Double] = [
            "": 1, "b": 1, "k": k, "kb": k, "kib": k, "m": m, "mb": m, "mib": m,
            "g": g, "gb": g, "gib": g, "t": t, "tb": t, "tib": t,
        ]
        guard let multiplier = multipliers[unit] else {
            throw IsolationError("'\(text)' has an unknown unit '\(unit)'", hint: hint)
        }
        guard let value = Double(number), value.isFinite, value > 0 else {
            throw IsolationError("'\(text)' is not a size", hint: hint)
        }
        let bytes = value * multiplier
        guard bytes >= 4096, bytes < 1.0e18 else {
            throw IsolationError("'\(text)' is out of range", hint: "a memory limit must be at least 4K")
        }
        return UInt64(bytes)
    }

    /// Parses a process count: a whole number from 1.
    public static func parsePids(_ text: String) throws -> Int {
        guard let value = Int(text.trimmingCharacters(in: " ")), value >= 1 else {
            throw IsolationError("'\(text)' is not a number of processes", hint: "write a whole number such as 32")
        }
        return value
    }

    /// Parses a cpuset list such as `0`, `0-1` or `0,2-3`.
    public static func parseCPUSet(_ text: String) throws -> String {
        let valid = !text.isEmpty && text.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { part in
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            return (1...2).contains(bounds.count) && bounds.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
        }
        guard valid else { throw IsolationError("'\(text)' is not a CPU list", hint: "write CPUs such as 0, 0-1 or 0,2") }
        return text
    }
}

/// `64.0 MiB`, `1.5 GiB`: a size for people.
public func formatBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    if unit == 0 { return "\(bytes) B" }
    let rounded = (value * 10).rounded() / 10
    return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[unit])" : "\(rounded) \(units[unit])"
}
