import CIsolation
import Glibc
import SystemPackage

/// A control group made by this project: limits on CPU, memory, pids and CPUs for the
/// processes in it, and the kernel's own accounting of what they used.
///
/// One API, two backends, chosen by what the host mounts (`CgroupMode.detect()`):
/// - cgroup v2 (unified): one directory, `/sys/fs/cgroup/isolation/NAME`, with the
///   controllers enabled in each parent's `cgroup.subtree_control`;
/// - cgroup v1 (legacy or hybrid): one directory per controller hierarchy,
///   `/sys/fs/cgroup/{cpu,cpuacct,memory,pids,cpuset}/isolation/NAME`.
///
/// Put a process in *before* it execs its workload (spawn it with `waitForRelease`,
/// `addProcess`, then `release`), so the workload never runs unlimited.
/// Read next: cgroups(7), Documentation/admin-guide/cgroup-v2.rst.
public final class Cgroup {
    public let version: Version
    /// `isolation/NAME`, relative to each hierarchy.
    public let relativePath: String
    /// Directory per controller (v1) or the one directory under the key "" (v2).
    public let directories: [String: FilePath]
    /// Every file written, in order, as `(path, value)`, for lessons that print them.
    public private(set) var writes: [(path: FilePath, value: String)] = []
    private let log: (FilePath, String) -> Void
    private var destroyed = false

    public enum Version: String, Sendable { case v1, v2 }

    /// The controllers this project uses; v1 gets one hierarchy each.
    static let v1Controllers = ["cpu", "cpuacct", "memory", "pids", "cpuset", "freezer", "devices"]

    /// Creates `isolation/NAME` and writes `limits`. `log` hears each file written
    /// (`echo VALUE > PATH`). On failure, whatever was created is removed again.
    public static func create(
        name: String, limits: ResourceLimits, root: String = "/sys/fs/cgroup",
        log: @escaping (FilePath, String) -> Void = { _, _ in }
    ) throws -> Cgroup {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw IsolationError("'\(name)' is not a cgroup name")
        }
        return try create(path: projectPrefix + "/" + name, limits: limits, root: root, log: log)
    }

    /// Creates the cgroup at `path` below each hierarchy's root (an OCI config's
    /// `linux.cgroupsPath`, such as `/machine/web`), with any missing parents.
    public static func create(
        path: String, limits: ResourceLimits, root: String = "/sys/fs/cgroup",
        log: @escaping (FilePath, String) -> Void = { _, _ in }
    ) throws -> Cgroup {
        let cgroup = try locate(path: path, limits: limits, root: root, log: log)
        try cgroup.make(limits: limits, root: root)
        return cgroup
    }

    /// Makes a cgroup that `locate` found the place of: its folders, with any missing
    /// parents, then `limits`. On failure, whatever was created is removed again.
    public func make(limits: ResourceLimits, root: String = "/sys/fs/cgroup") throws {
        do {
            try makeDirectories(root: root, limits: limits)
            try apply(limits)
        } catch {
            destroy()
            throw error
        }
    }

    /// Starts the RCU grace period that the first cgroup migration of a moment waits for
    /// (about 7 ms on cgroup v1 here), so that it passes while the caller does other work:
    /// a child process moves itself into the cgroup it is already in, and exits
    /// (`iso_warm_cgroup_migration`). Best effort: nil when it cannot start; reap the
    /// PID with `waitpid(2)` once this process has moved its own processes.
    public static func warmMigration(root: String = "/sys/fs/cgroup") -> pid_t? {
        guard let text = try? FileSystem.readString("/proc/self/cgroup") else { return nil }
        var procs: String?
        for line in text.split(separator: "\n") {
            // "ID:controllers:path": v1's pids hierarchy, else v2's one ("0::path").
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[1] == "pids" { procs = "\(root)/pids\(parts[2])/cgroup.procs"; break }
            if parts[0] == "0" && parts[1].isEmpty { procs = "\(root)\(parts[2])/cgroup.procs" }
        }
        guard let procs else { return nil }
        let pid = iso_warm_cgroup_migration(procs)
        return pid > 0 ? pid : nil
    }

    /// A cgroup made earlier (by another process) at `path`, to read, freeze or remove.
    public static func existing(path: String, root: String = "/sys/fs/cgroup") throws -> Cgroup {
        let cgroup = try locate(path: path, limits: ResourceLimits(), root: root, log: { _, _ in })
        cgroup.destroyOnDeinit = false  // someone else's: removed only by an explicit destroy()
        return cgroup
    }

    /// Where the cgroup at `path` goes in each hierarchy (the controllers `limits` need
    /// must be there, else an error now), without making anything: `make` does.
    /// (Not public: the object it returns removes the cgroup's folders, and whatever runs
    /// in them, when it is released without `keep()`.)
    static func locate(path: String, limits: ResourceLimits, root: String = "/sys/fs/cgroup",
                       log: @escaping (FilePath, String) -> Void = { _, _ in }) throws -> Cgroup {
        let parts = path.split(separator: "/").map(String.init)
        guard !parts.isEmpty, !parts.contains(".."), !parts.contains(".") else {
            throw IsolationError("'\(path)' is not a cgroup path", hint: "write it as /parent/name, without . or ..")
        }
        let mode = CgroupMode.detect(root: root)
        let relative = parts.joined(separator: "/")
        var directories: [String: FilePath] = [:]
        let version: Version
        switch mode {
        case .none:
            throw IsolationError("no cgroup file system is mounted at \(root)", hint: "run `doctor`: cgroups are missing")
        case .unified:
            version = .v2
            directories[""] = FilePath(root + "/" + relative)
        case .legacy, .hybrid:
            version = .v1
            var seen = Set<String>()
            // cpuset only when asked for (a v1 cpuset needs cpus and mems set up), or when
            // it is already there (a cgroup made earlier, opened with `existing`).
            // blkio, hugetlb, net_cls and net_prio only when linux.resources asks for them
            // (or, for `existing`, when the cgroup has them).
            let optional = ["cpuset", "blkio", "hugetlb", "net_cls", "net_prio"]
            for controller in v1Controllers + ["blkio", "hugetlb", "net_cls", "net_prio"]
            where !optional.contains(controller) || controllerNeeded(controller, limits) || FileSystem.isDirectory(FilePath(root + "/\(controller)/" + relative)) {
                let hierarchy = root + "/" + controller
                guard iso_statfs_type_v1(hierarchy) else {
                    if controllerNeeded(controller, limits) {
                        throw IsolationError("the cgroup v1 '\(controller)' controller is not mounted at \(hierarchy)",
                                             hint: "mount it: mount -t cgroup -o \(controller) cgroup \(hierarchy)")
                    }
                    continue
                }
                // cpu and cpuacct are often one hierarchy (cpu,cpuacct): one directory each.
                let real = (try? FileSystem.realPath(FilePath(hierarchy)).string) ?? hierarchy
                if seen.insert(real).inserted { directories[controller] = FilePath(real + "/" + relative) }
            }
        }
        return Cgroup(version: version, relativePath: relative, directories: directories, log: log)
    }

    static func controllerNeeded(_ controller: String, _ limits: ResourceLimits) -> Bool {
        switch controller {
        case "cpu": return limits.cpus != nil || limits.cpuWeight != nil
        case "memory": return limits.memoryBytes != nil || limits.swapBytes != nil || limits.memoryReservationBytes != nil
            || limits.swappiness != nil || limits.oomKillDisabled || limits.kernelMemory != nil || limits.kernelTCPMemory != nil
        case "blkio", "io": return limits.blockIO != nil
        case "hugetlb": return !limits.hugepageLimits.isEmpty
        case "net_cls": return limits.network?.classID != nil
        case "net_prio": return !(limits.network?.priorities ?? []).isEmpty
        case "pids": return limits.pids != nil
        case "cpuset": return limits.cpuset != nil || limits.cpusetMems != nil
        case "devices": return limits.devices != nil
        default: return false
        }
    }

    private init(version: Version, relativePath: String, directories: [String: FilePath], log: @escaping (FilePath, String) -> Void) {
        self.version = version
        self.relativePath = relativePath
        self.directories = directories
        self.log = log
    }

    /// A cgroup this object created is removed when the object goes away, unless `keep()`.
    private var destroyOnDeinit = true

    deinit { if destroyOnDeinit { destroy() } }

    /// Keeps the cgroup when this object goes away (a runtime's `create` leaves it to `delete`).
    public func keep() { destroyOnDeinit = false }

    /// The cgroup's directory for `controller` (v2: the one directory).
    public func directory(for controller: String) -> FilePath? {
        version == .v2 ? directories[""] : directories[controller]
    }

    /// The parent folders `make` created (a cgroupsPath such as /x/a/b/c may need x, x/a
    /// and x/a/b), top first: `destroy` removes them again when they are empty, and a
    /// runtime keeps the list for `delete`. Folders that were there before are not in it.
    public private(set) var madeParents: [FilePath] = []

    /// The parents of the cgroup's folders, below each hierarchy's root, that do not exist.
    private func missingParents() -> [FilePath] {
        var missing: [FilePath] = []
        for directory in Set(directories.values.map(\.string)).sorted() {
            var level = FilePath(String(directory.dropLast(relativePath.count + 1)))
            for part in relativePath.split(separator: "/").dropLast() {
                level.append(String(part))
                if !FileSystem.exists(level) { missing.append(level) }
            }
        }
        return missing
    }

    /// Removes the parents `make` created, deepest first, where empty (rmdir(2) refuses a
    /// cgroup with children: another container's parent stays).
    public static func removeParents(_ parents: [FilePath]) {
        for parent in parents.reversed() { rmdir(parent.string) }
    }

    private func makeDirectories(root: String, limits: ResourceLimits) throws {
        let missing = missingParents()
        defer { madeParents = missing.filter { FileSystem.exists($0) } }
        if version == .v2 {
            // A v2 controller works in a cgroup only if every parent enabled it for its
            // children ("+cpu" in cgroup.subtree_control), from the root down.
            let available = Set(CgroupMode.usableControllers(mode: .unified, root: root))
            // cpuset, io and hugetlb only when asked for.
            let candidates = ["cpu", "memory", "pids", "cpuset", "io", "hugetlb"]
            let wanted = candidates.filter { available.contains($0) && (!["cpuset", "io", "hugetlb"].contains($0) || Cgroup.controllerNeeded($0, limits)) }
            for controller in candidates where Cgroup.controllerNeeded(controller, limits) && !available.contains(controller) {
                throw IsolationError("the cgroup v2 '\(controller)' controller is not available in \(root)",
                                     hint: "check \(root)/cgroup.controllers; on systemd hosts run as root or with Delegate=yes")
            }
            // Every level from the root down must hand the controllers on.
            var level = FilePath(root)
            try enable(wanted, in: level)
            let parts = relativePath.split(separator: "/").map(String.init)
            for part in parts.dropLast() {
                level.append(part)
                try makeDirectoryRetrying(level)
                try enable(wanted, in: level)
            }
            try inStage("making the cgroup \(directories[""]!)") { try makeDirectoryRetrying(directories[""]!) }
            return
        }
        for (controller, directory) in directories.sorted(by: { $0.key < $1.key }) {
            try inStage("making the cgroup \(directory)") { try make(controller: controller, directory: directory, limits: limits) }
        }
    }

    /// One controller's folder of `create` (v1), and the cpuset values it needs.
    private func make(controller: String, directory: FilePath, limits: ResourceLimits) throws {
        var parent = directory
        parent.removeLastComponent()
        try FileSystem.makeDirectories(parent)
        if controller == "cpuset" {
            // A v1 cpuset accepts tasks, and CPUs for its children, only once its cpus
            // and mems are set, at every level (a new one starts empty): copy each
            // empty one from its parent, from the hierarchy's root down.
            var level = FilePath(String(directory.string.dropLast(relativePath.count + 1)))
            for part in relativePath.split(separator: "/").dropLast() {
                let above = level
                level.append(String(part))
                for file in ["cpuset.cpus", "cpuset.mems"] where ((try? FileSystem.readString(level.appending(file))) ?? "").trimmingCharacters(in: "\n ").isEmpty {
                    let value = try FileSystem.readString(above.appending(file)).trimmingCharacters(in: "\n ")
                    try FileSystem.writeFile(level.appending(file), value)
                }
            }
        }
        try makeDirectoryRetrying(directory)
        if controller == "cpuset" {
            // The parent's, until `apply` writes the config's: a v1 cpuset with either
            // empty takes no task.
            let mems = try FileSystem.readString(parent.appending("cpuset.mems")).trimmingCharacters(in: "\n ")
            try write(directory.appending("cpuset.mems"), mems)
            if limits.cpuset == nil {
                let cpus = try FileSystem.readString(parent.appending("cpuset.cpus")).trimmingCharacters(in: "\n ")
                try write(directory.appending("cpuset.cpus"), cpus)
            }
        }
    }

    /// mkdir(2), retried when a concurrent clean-up removed the parent in between.
    private func makeDirectoryRetrying(_ path: FilePath) throws {
        for attempt in 0..<5 {
            do {
                try FileSystem.makeDirectory(path, mode: 0o755)
                return
            } catch let error as Errno where error == .noSuchFileOrDirectory && attempt < 4 {
                var parent = path
                parent.removeLastComponent()
                try? FileSystem.makeDirectory(parent, mode: 0o755)
            }
        }
    }

    func enable(_ controllers: [String], in directory: FilePath) throws {
        let file = directory.appending("cgroup.subtree_control")
        let enabled = Set(((try? FileSystem.readString(file)) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        let missing = controllers.filter { !enabled.contains($0) }
        guard !missing.isEmpty else { return }
        do {
            try write(file, missing.map { "+" + $0 }.joined(separator: " "))
        } catch let error as StageError where error.errno == .resourceBusy {
            // v2's "no internal processes" rule: only the real root may hold processes and
            // give controllers to its children. Inside a container with its own cgroup
            // namespace, /sys/fs/cgroup is not the real root and holds the container's
            // processes (docker-in-docker moves them into a leaf first).
            throw IsolationError(
                "cannot enable \(missing.joined(separator: ", ")) for the children of \(directory): it still holds processes (cgroup v2 allows that only at the real root)",
                hint: "inside a container, move them into a leaf first: mkdir \(directory)/init && for p in $(cat \(directory)/cgroup.procs); do echo $p > \(directory)/init/cgroup.procs; done")
        }
    }

    /// Writes one cgroup file, records it, and tells `log`.
    func write(_ path: FilePath, _ value: String) throws {
        log(path, value)
        writes.append((path, value))
        do {
            try FileSystem.writeFile(path, value)
        } catch let error as Errno {
            throw StageError(stage: "echo \"\(value)\" > \(path)", errno: error,
                             detail: error == .invalidArgument ? "the kernel rejected this value" : nil)
        }
    }

    /// Writes `limits` into the cgroup's files (also to change them later).
    public func apply(_ limits: ResourceLimits) throws {
        switch version {
        case .v2:
            try Cgroup.refuseOnV2(limits)
            let dir = directories[""]!
            if let quota = limits.cpuQuotaMicroseconds { try write(dir.appending("cpu.max"), "\(quota) \(limits.cpuPeriodMicroseconds)") }
            if let shares = limits.cpuShares {
                // runc's conversion of v1 shares [2, 262144] to v2 weight [1, 10000].
                let weight = 1 + ((max(2, min(shares, 262_144)) - 2) * 9999) / 262_142
                try write(dir.appending("cpu.weight"), "\(weight)")
            } else if let weight = limits.cpuWeight {
                try write(dir.appending("cpu.weight"), "\(weight)")
            }
            if let memory = limits.memoryBytes { try write(dir.appending("memory.max"), "\(memory)") }
            if let reservation = limits.memoryReservationBytes { try write(dir.appending("memory.low"), "\(reservation)") }
            if let swap = limits.swapBytes {
                if FileSystem.exists(dir.appending("memory.swap.max")) {
                    try write(dir.appending("memory.swap.max"), "\(swap)")
                } else if Cgroup.hostHasSwap() {
                    throw Cgroup.noSwapAccounting
                }
            }
            if let pids = limits.pids { try write(dir.appending("pids.max"), "\(pids)") }
            if let cpus = limits.cpuset { try write(dir.appending("cpuset.cpus"), cpus) }
            if let mems = limits.cpusetMems { try write(dir.appending("cpuset.mems"), mems) }
            if let io = limits.blockIO { try applyIO(io, in: dir) }
            for limit in limits.hugepageLimits {
                try writeExisting(dir, "hugetlb.\(limit.pageSize).max", "\(limit.limit)", field: "hugepageLimits pageSize \(limit.pageSize)")
            }
            if let devices = limits.devices {
                log(dir, "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE): \(devices.rules.count) rules, otherwise \(devices.defaultAllow ? "allow" : "deny")")
                try devices.attachV2(dir)
            }
        case .v1:
            if let dir = directories["cpu"] {
                if let quota = limits.cpuQuotaMicroseconds {
                    try write(dir.appending("cpu.cfs_period_us"), "\(limits.cpuPeriodMicroseconds)")
                    try write(dir.appending("cpu.cfs_quota_us"), "\(quota)")
                }
                if let shares = limits.cpuShares {
                    try write(dir.appending("cpu.shares"), "\(shares)")
                } else if let weight = limits.cpuWeight {
                    try write(dir.appending("cpu.shares"), "\(max(2, weight * 1024 / 100))")
                }
            }
            if let dir = directories["memory"] {
                if let memory = limits.memoryBytes {
                    try write(dir.appending("memory.limit_in_bytes"), "\(memory)")
                    // v1 limits memory+swap together; "no swap" means memsw = memory.
                    if let swap = limits.swapBytes {
                        if FileSystem.exists(dir.appending("memory.memsw.limit_in_bytes")) {
                            try write(dir.appending("memory.memsw.limit_in_bytes"), "\(memory + swap)")
                        } else if Cgroup.hostHasSwap() {
                            throw Cgroup.noSwapAccounting
                        }
                    }
                }
                if let reservation = limits.memoryReservationBytes {
                    try write(dir.appending("memory.soft_limit_in_bytes"), "\(reservation)")
                }
                if let swappiness = limits.swappiness { try write(dir.appending("memory.swappiness"), "\(swappiness)") }
                if limits.oomKillDisabled { try write(dir.appending("memory.oom_control"), "1") }
                if let kernel = limits.kernelMemory { try writeApplied(dir, "memory.kmem.limit_in_bytes", kernel, field: "memory.kernel") }
                if let tcp = limits.kernelTCPMemory { try writeApplied(dir, "memory.kmem.tcp.limit_in_bytes", tcp, field: "memory.kernelTCP") }
            }
            if let blockIO = limits.blockIO, let dir = v1Directory("blkio") { try applyBlockIO(blockIO, in: dir) }
            if let dir = v1Directory("hugetlb") {
                for limit in limits.hugepageLimits {
                    try writeExisting(dir, "hugetlb.\(limit.pageSize).limit_in_bytes", "\(limit.limit)", field: "hugepageLimits pageSize \(limit.pageSize)")
                }
            }
            if let classID = limits.network?.classID, let dir = v1Directory("net_cls") { try write(dir.appending("net_cls.classid"), "\(classID)") }
            if let dir = v1Directory("net_prio") {
                for priority in limits.network?.priorities ?? [] { try write(dir.appending("net_prio.ifpriomap"), "\(priority.name) \(priority.priority)") }
            }
            if let dir = directories["pids"], let pids = limits.pids { try write(dir.appending("pids.max"), "\(pids)") }
            if let dir = directories["cpuset"], let cpus = limits.cpuset { try write(dir.appending("cpuset.cpus"), cpus) }
            if let dir = directories["cpuset"], let mems = limits.cpusetMems { try write(dir.appending("cpuset.mems"), mems) }
            if let devices = limits.devices {
                guard let dir = directories["devices"] else {
                    throw IsolationError("device rules need the cgroup v1 'devices' controller, and it is not mounted", hint: "mount it at /sys/fs/cgroup/devices")
                }
                try devices.writeV1(dir, write: write)
            }
        }
    }

    /// A v1 controller's directory, also when its hierarchy is mounted with another one
    /// (net_cls,net_prio): `locate` made one directory for both, under the first name.
    func v1Directory(_ controller: String) -> FilePath? {
        if let directory = directories[controller] { return directory }
        return directories.values.first { directory in
            let hierarchy = FilePath(String(directory.string.dropLast(relativePath.count + 1)))
            return hierarchy.lastComponent?.string.split(separator: ",").contains(Substring(controller)) == true
        }
    }

    /// A v1 file that only some kernels have: its absence is an error naming the OCI field.
    private func writeExisting(_ dir: FilePath, _ file: String, _ value: String, field: String) throws {
        guard FileSystem.exists(dir.appending(file)) else {
            throw IsolationError("linux.resources.\(field) cannot be applied: this kernel has no \(dir.appending(file))")
        }
        try write(dir.appending(file), value)
    }

    /// A v1 limit that newer kernels accept but ignore (kernel memory, since Linux 5.4
    /// deprecated): written, read back, and an error if it did not take.
    private func writeApplied(_ dir: FilePath, _ file: String, _ value: Int64, field: String) throws {
        try writeExisting(dir, file, "\(value)", field: field)
        let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
        let expected = value < 0 ? nil : (value / page) * page
        let actual = Int64(((try? FileSystem.readString(dir.appending(file))) ?? "").trimmingCharacters(in: "\n "))
        if let expected, actual != expected {
            throw IsolationError("linux.resources.\(field) cannot be applied: this kernel accepts \(file) but ignores it (it reads \(actual.map(String.init) ?? "nothing"))",
                                 hint: "kernel memory limits are deprecated in the runtime spec; leave the field out")
        }
    }

    /// linux.resources.blockIO on v1, into the files runc writes (a weight goes to the BFQ
    /// scheduler's blkio.bfq.weight where the CFQ-era blkio.weight is gone).
    private func applyBlockIO(_ io: OCIConfig.BlockIO, in dir: FilePath) throws {
        func weightFile(_ plain: String, _ bfq: String) -> String { FileSystem.exists(dir.appending(plain)) ? plain : bfq }
        if let weight = io.weight { try writeExisting(dir, weightFile("blkio.weight", "blkio.bfq.weight"), "\(weight)", field: "blockIO.weight") }
        if let leaf = io.leafWeight { try writeExisting(dir, "blkio.leaf_weight", "\(leaf)", field: "blockIO.leafWeight") }
        for device in io.weightDevice ?? [] {
            if let weight = device.weight {
                try writeExisting(dir, weightFile("blkio.weight_device", "blkio.bfq.weight_device"), "\(device.major):\(device.minor) \(weight)", field: "blockIO.weightDevice")
            }
            if let leaf = device.leafWeight {
                try writeExisting(dir, "blkio.leaf_weight_device", "\(device.major):\(device.minor) \(leaf)", field: "blockIO.weightDevice leafWeight")
            }
        }
        let throttles: [([OCIConfig.ThrottleDevice]?, String, String)] = [
            (io.throttleReadBpsDevice, "blkio.throttle.read_bps_device", "throttleReadBpsDevice"),
            (io.throttleWriteBpsDevice, "blkio.throttle.write_bps_device", "throttleWriteBpsDevice"),
            (io.throttleReadIOPSDevice, "blkio.throttle.read_iops_device", "throttleReadIOPSDevice"),
            (io.throttleWriteIOPSDevice, "blkio.throttle.write_iops_device", "throttleWriteIOPSDevice"),
        ]
        for (devices, file, field) in throttles {
            for device in devices ?? [] { try writeExisting(dir, file, "\(device.major):\(device.minor) \(device.rate)", field: "blockIO.\(field)") }
        }
    }

    /// linux.resources.blockIO on v2, as runc writes it: a weight to io.bfq.weight as it
    /// is (BFQ), else to io.weight converted from v1's 10–1000 to v2's 1–10000; the
    /// throttles to io.max (`MAJ:MIN rbps=N`, one key per write).
    private func applyIO(_ io: OCIConfig.BlockIO, in dir: FilePath) throws {
        let bfq = FileSystem.exists(dir.appending("io.bfq.weight"))
        func converted(_ weight: UInt16) -> UInt64 { 1 + (UInt64(max(10, min(1000, weight))) - 10) * 9999 / 990 }
        if let weight = io.weight {
            if bfq { try write(dir.appending("io.bfq.weight"), "\(weight)") } else {
                try writeExisting(dir, "io.weight", "default \(converted(weight))", field: "blockIO.weight")
            }
        }
        for device in io.weightDevice ?? [] {
            guard let weight = device.weight else { continue }
            if bfq { try write(dir.appending("io.bfq.weight"), "\(device.major):\(device.minor) \(weight)") } else {
                try writeExisting(dir, "io.weight", "\(device.major):\(device.minor) \(converted(weight))", field: "blockIO.weightDevice")
            }
        }
        let throttles: [([OCIConfig.ThrottleDevice]?, String, String)] = [
            (io.throttleReadBpsDevice, "rbps", "throttleReadBpsDevice"), (io.throttleWriteBpsDevice, "wbps", "throttleWriteBpsDevice"),
            (io.throttleReadIOPSDevice, "riops", "throttleReadIOPSDevice"), (io.throttleWriteIOPSDevice, "wiops", "throttleWriteIOPSDevice"),
        ]
        for (devices, key, field) in throttles {
            for device in devices ?? [] { try writeExisting(dir, "io.max", "\(device.major):\(device.minor) \(key)=\(device.rate)", field: "blockIO.\(field)") }
        }
    }

    /// What this project writes on cgroup v1 only and cannot ignore: on v2 an error naming the field.
    static func refuseOnV2(_ limits: ResourceLimits) throws {
        var fields: [String] = []
        // (swappiness and disableOOMKiller have no v2 file either; runc ignores them there,
        // and so does this runtime: see ResourceLimits.)
        if limits.kernelMemory != nil { fields.append("memory.kernel (v2 has no kernel memory limit)") }
        if limits.kernelTCPMemory != nil { fields.append("memory.kernelTCP (v2 has no TCP memory limit)") }
        if limits.blockIO?.leafWeight != nil || (limits.blockIO?.weightDevice ?? []).contains(where: { $0.leafWeight != nil }) {
            fields.append("blockIO leafWeight (v2 has no leaf weights)")
        }
        if limits.network != nil { fields.append("network (v2 has no net_cls or net_prio)") }
        guard fields.isEmpty else {
            throw IsolationError("linux.resources cannot be applied on cgroup v2: \(fields.joined(separator: "; "))",
                                 hint: "leave these fields out of config.json")
        }
    }

    /// Whether the host swaps at all (/proc/swaps lists a device or file). Without swap a
    /// swap limit has nothing to limit, so a missing swap file is no error then.
    public static func hostHasSwap() -> Bool {
        let text = (try? FileSystem.readString("/proc/swaps")) ?? ""
        return text.split(separator: "\n").count > 1
    }

    /// Whether a swap limit can be written here: the kernel accounts swap per cgroup
    /// (v2 `memory.swap.max`; v1 `memory.memsw.*`, with swapaccount=1 on older kernels).
    public static func swapAccounting(root: String = "/sys/fs/cgroup") -> Bool {
        switch CgroupMode.detect(root: root) {
        case .unified:
            // The root has no memory.swap.max: look at any child with the memory controller.
            // With no child yet, v2 accounts swap unless the kernel was told not to.
            let children = ((try? FileSystem.contentsOfDirectory(FilePath(root))) ?? [])
                .filter { FileSystem.exists(FilePath(root + "/" + $0 + "/memory.max")) }
            if children.isEmpty {
                let cmdline = (try? FileSystem.readString("/proc/cmdline")) ?? ""
                return !cmdline.contains("swapaccount=0")
            }
            return children.contains { FileSystem.exists(FilePath(root + "/" + $0 + "/memory.swap.max")) }
        case .legacy, .hybrid: return FileSystem.exists(FilePath(root + "/memory/memory.memsw.limit_in_bytes"))
        case .none: return false
        }
    }

    static let noSwapAccounting = IsolationError(
        "this host swaps, but its kernel does not account swap per cgroup, so a swap limit cannot be set",
        hint: "boot with swapaccount=1 (older kernels), or turn swap off for the demo: sudo swapoff -a")

    /// Moves `pid` into the cgroup (every hierarchy, for v1) by writing `cgroup.procs`.
    public func addProcess(_ pid: pid_t) throws {
        for directory in Set(directories.values.map(\.string)).sorted() {
            try write(FilePath(directory).appending("cgroup.procs"), "\(pid)")
        }
    }

    /// Freezes (pause) or thaws (resume) every process in the cgroup: v2 `cgroup.freeze`,
    /// v1 `freezer.state`. Waits until the kernel says it is done.
    public func setFrozen(_ frozen: Bool) throws {
        if version == .v2, let dir = directories[""] {
            try write(dir.appending("cgroup.freeze"), frozen ? "1" : "0")
            for _ in 0..<500 {
                let events = (try? FileSystem.readString(dir.appending("cgroup.events"))) ?? ""
                if events.contains("frozen \(frozen ? 1 : 0)") { return }
                usleep(2_000)
            }
            return
        }
        guard let dir = directories["freezer"] else {
            throw IsolationError("the cgroup v1 freezer controller is not mounted", hint: "mount -t cgroup -o freezer cgroup /sys/fs/cgroup/freezer")
        }
        try write(dir.appending("freezer.state"), frozen ? "FROZEN" : "THAWED")
        for _ in 0..<500 {
            let state = ((try? FileSystem.readString(dir.appending("freezer.state"))) ?? "").trimmingCharacters(in: "\n ")
            if state == (frozen ? "FROZEN" : "THAWED") { return }
            usleep(2_000)
        }
    }

    /// Whether the cgroup is frozen now.
    public var isFrozen: Bool {
        if version == .v2, let dir = directories[""] {
            return ((try? FileSystem.readString(dir.appending("cgroup.events"))) ?? "").contains("frozen 1")
        }
        guard let dir = directories["freezer"] else { return false }
        return ((try? FileSystem.readString(dir.appending("freezer.state"))) ?? "").hasPrefix("FROZEN")
    }

    /// The PIDs in the cgroup now.
    public func processes() -> [pid_t] {
        var result = Set<pid_t>()
        for directory in directories.values {
            let text = (try? FileSystem.readString(directory.appending("cgroup.procs"))) ?? ""
            result.formUnion(text.split(separator: "\n").compactMap { pid_t($0) })
        }
        return result.sorted()
    }

    /// Kills what is left in it, waits until it is empty, and removes it (and the
    /// project's parent folder when nothing else is in it). Safe to call twice.
    public func destroy() {
        guard !destroyed else { return }
        destroyed = true
        for directory in directories.values where FileSystem.exists(directory) {
            _ = Cleanup.removeCgroupTree(directory, report: { _ in })
            var parent = directory
            parent.removeLastComponent()
            if parent.lastComponent?.string == projectPrefix {
                rmdir(parent.string)  // fails harmlessly while other cgroups of ours exist
            }
        }
        Cgroup.removeParents(madeParents)
    }

    /// Reads the kernel's accounting for this cgroup.
    public func stats() -> CgroupStats {
        var stats = CgroupStats()
        func number(_ dir: FilePath?, _ file: String) -> UInt64? {
            guard let dir, let text = try? FileSystem.readString(dir.appending(file)) else { return nil }
            let value = text.trimmingCharacters(in: "\n ")
            return value == "max" ? UInt64.max : UInt64(value)
        }
        func keyed(_ dir: FilePath?, _ file: String) -> [String: UInt64] {
            guard let dir, let text = try? FileSystem.readString(dir.appending(file)) else { return [:] }
            var result: [String: UInt64] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let value = UInt64(parts[1]) { result[String(parts[0])] = value }
            }
            return result
        }
        switch version {
        case .v2:
            let dir = directories[""]
            let cpu = keyed(dir, "cpu.stat")
            stats.cpuUsageMicroseconds = cpu["usage_usec"]
            stats.periods = cpu["nr_periods"]
            stats.throttledPeriods = cpu["nr_throttled"]
            stats.throttledMicroseconds = cpu["throttled_usec"]
            stats.memoryBytes = number(dir, "memory.current")
            stats.memoryPeakBytes = number(dir, "memory.peak")
            stats.memoryLimitBytes = number(dir, "memory.max")
            let events = keyed(dir, "memory.events")
            stats.oomKills = events["oom_kill"]
            stats.memoryLimitHits = events["max"]
            stats.pids = number(dir, "pids.current")
            stats.pidsLimit = number(dir, "pids.max")
            stats.pidsRefused = keyed(dir, "pids.events")["max"]
        case .v1:
            let cpuacct = directories["cpuacct"] ?? directories["cpu"]
            stats.cpuUsageMicroseconds = number(cpuacct, "cpuacct.usage").map { $0 / 1000 }
            let cpu = keyed(directories["cpu"], "cpu.stat")
            stats.periods = cpu["nr_periods"]
            stats.throttledPeriods = cpu["nr_throttled"]
            stats.throttledMicroseconds = cpu["throttled_time"].map { $0 / 1000 }
            let memory = directories["memory"]
            stats.memoryBytes = number(memory, "memory.usage_in_bytes")
            stats.memoryPeakBytes = number(memory, "memory.max_usage_in_bytes")
            stats.memoryLimitBytes = number(memory, "memory.limit_in_bytes")
            stats.oomKills = keyed(memory, "memory.oom_control")["oom_kill"]
            stats.memoryLimitHits = number(memory, "memory.failcnt")
            let pids = directories["pids"]
            stats.pids = number(pids, "pids.current")
            stats.pidsLimit = number(pids, "pids.max")
            stats.pidsRefused = keyed(pids, "pids.events")["max"]
        }
        // "Unlimited" reads as max (v2) or a huge page-aligned number (v1).
        if let limit = stats.memoryLimitBytes, limit >= (1 << 60) { stats.memoryLimitBytes = nil }
        if stats.pidsLimit == UInt64.max { stats.pidsLimit = nil }
        return stats
    }

    /// The CPU quota actually in force, in CPUs (nil: unlimited).
    public func cpuLimit() -> Double? {
        switch version {
        case .v2:
            guard let dir = directories[""], let text = try? FileSystem.readString(dir.appending("cpu.max")) else { return nil }
            let parts = text.trimmingCharacters(in: "\n ").split(separator: " ")
            guard parts.count == 2, let quota = Double(parts[0]), let period = Double(parts[1]) else { return nil }
            return quota / period
        case .v1:
            guard let dir = directories["cpu"],
                  let quota = Double(((try? FileSystem.readString(dir.appending("cpu.cfs_quota_us"))) ?? "").trimmingCharacters(in: "\n ")),
                  let period = Double(((try? FileSystem.readString(dir.appending("cpu.cfs_period_us"))) ?? "").trimmingCharacters(in: "\n ")),
                  quota > 0 else { return nil }
            return quota / period
        }
    }
}

/// What the kernel counted for a cgroup; nil where this host's files do not say.
public struct CgroupStats: Sendable, Equatable {
    public var cpuUsageMicroseconds: UInt64?
    public var periods: UInt64?
    public var throttledPeriods: UInt64?
    public var throttledMicroseconds: UInt64?
    public var memoryBytes: UInt64?
    public var memoryPeakBytes: UInt64?
    public var memoryLimitBytes: UInt64?
    /// Processes the OOM killer killed in this cgroup.
    public var oomKills: UInt64?
    /// Times usage hit the limit (v2 memory.events max, v1 memory.failcnt).
    public var memoryLimitHits: UInt64?
    public var pids: UInt64?
    public var pidsLimit: UInt64?
    /// fork(2)s refused because of pids.max.
    public var pidsRefused: UInt64?
    public init() {}
}

func iso_statfs_type_v1(_ path: String) -> Bool { iso_statfs_type(path) == CgroupMode.cgroup1Magic }
