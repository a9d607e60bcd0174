import CIsolation
import Glibc
import SystemPackage

extension Cgroup {
    /// What `runc update` changes in a running container's cgroup: its command line's
    /// flags, or the same fields of an OCI `linux.resources` object (`-r FILE`, which is
    /// how containerd's shim calls it for a kubelet's UpdateContainerResources).
    /// -1 means "no limit" where the kernel has one (memory, swap, CPU quota, pids).
    public struct Update: Equatable, Sendable {
        /// Bytes (v1 memory.limit_in_bytes, v2 memory.max).
        public var memory: Int64?
        /// Memory plus swap, in bytes, as runc counts it (v1 memory.memsw.limit_in_bytes;
        /// v2 memory.swap.max gets this minus the memory limit).
        public var memorySwap: Int64?
        /// The soft limit (v1 memory.soft_limit_in_bytes, v2 memory.low).
        public var memoryReservation: Int64?
        /// Deprecated kernel-memory limits (v1 memory.kmem.*; kernels since 5.4 ignore them).
        public var kernelMemory: Int64?
        public var kernelTCPMemory: Int64?
        /// v1 cpu.shares (v2 cpu.weight, converted as runc does).
        public var cpuShares: UInt64?
        /// CPU time per period in µs (v1 cpu.cfs_quota_us, v2 the first number of cpu.max).
        public var cpuQuota: Int64?
        /// The period in µs (v1 cpu.cfs_period_us, v2 the second number of cpu.max).
        public var cpuPeriod: UInt64?
        /// Quota that may be saved up for bursts (cpu.cfs_burst_us, v2 cpu.max.burst).
        public var cpuBurst: UInt64?
        /// 1: the cgroup runs at the lowest weight (cpu.idle).
        public var cpuIdle: Int64?
        /// Real-time scheduling (v1 cpu.rt_runtime_us and cpu.rt_period_us only).
        public var cpuRealtimeRuntime: Int64?
        public var cpuRealtimePeriod: UInt64?
        /// CPUs and memory nodes (cpuset.cpus, cpuset.mems).
        public var cpusetCPUs: String?
        public var cpusetMems: String?
        /// The most tasks (pids.max).
        public var pidsLimit: Int64?
        /// The block I/O weight, 10 to 1000 (v1 blkio.weight or blkio.bfq.weight; v2
        /// io.bfq.weight, or io.weight converted).
        public var blkioWeight: UInt16?

        public init() {}

        /// The fields of `linux.resources` that runc's `update` reads. A zero is "not
        /// given", as runc reads it (containerd sends `"shares": 0` for "unset"). Device
        /// rules are ignored, as runc ignores them: they are set once, at create. Fields
        /// that `update` cannot change are an error naming them.
        public init(resources: OCIConfig.Resources) throws {
            func given<T: BinaryInteger>(_ value: T?) -> T? { value == 0 ? nil : value }
            memory = given(resources.memory?.limit)
            memorySwap = given(resources.memory?.swap)
            memoryReservation = given(resources.memory?.reservation)
            kernelMemory = given(resources.memory?.kernel)
            kernelTCPMemory = given(resources.memory?.kernelTCP)
            cpuShares = given(resources.cpu?.shares)
            cpuQuota = given(resources.cpu?.quota)
            cpuPeriod = given(resources.cpu?.period)
            cpuBurst = resources.cpu?.burst
            cpuIdle = resources.cpu?.idle
            cpuRealtimeRuntime = given(resources.cpu?.realtimeRuntime)
            cpuRealtimePeriod = given(resources.cpu?.realtimePeriod)
            cpusetCPUs = resources.cpu?.cpus.flatMap { $0.isEmpty ? nil : $0 }
            cpusetMems = resources.cpu?.mems.flatMap { $0.isEmpty ? nil : $0 }
            pidsLimit = given(resources.pids?.limit)
            blkioWeight = given(resources.blockIO?.weight)
            var refused: [String] = []
            if !(resources.hugepageLimits ?? []).isEmpty { refused.append("hugepageLimits") }
            if resources.network != nil { refused.append("network") }
            if !(resources.rdma ?? [:]).isEmpty { refused.append("rdma") }
            if !(resources.unified ?? [:]).isEmpty { refused.append("unified") }
            if let io = resources.blockIO, io.leafWeight != nil || io.weightDevice != nil || io.throttleReadBpsDevice != nil
                || io.throttleWriteBpsDevice != nil || io.throttleReadIOPSDevice != nil || io.throttleWriteIOPSDevice != nil {
                refused.append("blockIO (other than weight)")
            }
            if resources.memory?.swappiness != nil || resources.memory?.disableOOMKiller == true {
                refused.append("memory.swappiness and memory.disableOOMKiller")
            }
            guard refused.isEmpty else {
                throw IsolationError("update cannot change \(refused.joined(separator: ", ")): runc's update does not either",
                                     hint: "these are set when the container is created; leave them out")
            }
            try validate()
        }

        public var isEmpty: Bool { self == Update() }

        /// Refuses what no kernel accepts before anything is written.
        public func validate() throws {
            for (name, value) in [("memory", memory), ("memory-swap", memorySwap), ("memory-reservation", memoryReservation),
                                  ("cpu-quota", cpuQuota), ("pids-limit", pidsLimit), ("kernel-memory", kernelMemory),
                                  ("kernel-memory-tcp", kernelTCPMemory)] {
                if let value, value < -1 {
                    throw IsolationError("--\(name) \(value) is negative", hint: "write -1 for no limit, or a positive number")
                }
            }
            if let memory, let memorySwap, memory > 0, memorySwap > 0, memorySwap < memory {
                throw IsolationError("--memory-swap \(memorySwap) is below --memory \(memory)",
                                     hint: "--memory-swap counts memory plus swap: give at least the memory limit, or -1")
            }
            if let cpusetCPUs { _ = try ResourceLimits.parseCPUSet(cpusetCPUs) }
            if let cpusetMems { _ = try ResourceLimits.parseCPUSet(cpusetMems) }
            if let blkioWeight, !(10...1000).contains(blkioWeight) {
                throw IsolationError("--blkio-weight \(blkioWeight) is out of range", hint: "a block I/O weight is 10 to 1000")
            }
        }
    }

    /// The controllers `update` writes to that a container may have been created
    /// without: this runtime joins cpuset and blkio (v2: io) only when a limit asks.
    public static func controllersToJoin(for update: Update) -> [String] {
        var controllers: [String] = []
        if update.cpusetCPUs != nil || update.cpusetMems != nil { controllers.append("cpuset") }
        if update.blkioWeight != nil { controllers.append("blkio") }
        return controllers
    }

    /// Whether `controller` manages this cgroup now (v1: a folder in its hierarchy; v2:
    /// its files in the cgroup's folder).
    public func manages(_ controller: String) -> Bool {
        if version == .v1 { return v1Directory(controller) != nil }
        guard let directory = directories[""] else { return false }
        switch controller {
        case "cpuset": return FileSystem.exists(directory.appending("cpuset.cpus"))
        case "blkio", "io": return FileSystem.exists(directory.appending("io.weight")) || FileSystem.exists(directory.appending("io.bfq.weight"))
        default: return FileSystem.exists(directory.appending("\(controller).max"))
        }
    }

    /// Puts the cgroup under `controller` after the fact, as runc's containers are from
    /// the start (runc joins every controller). v1: the cgroup's folder in that hierarchy
    /// (missing parents too; a cpuset's cpus and mems copied from its parent, as a new v1
    /// cpuset starts empty and takes no task), and every process of the container moved
    /// into it (cgroup.procs). v2: the controller enabled for the children of every level
    /// above (`+cpuset` in cgroup.subtree_control). Returns the parent folders it made, for
    /// the container's delete to remove. A process forked while this runs may stay in the
    /// hierarchy's root cgroup for that controller.
    public func join(_ controller: String, root: String = "/sys/fs/cgroup") throws -> [FilePath] {
        if version == .v2 {
            let name = controller == "blkio" ? "io" : controller
            guard CgroupMode.usableControllers(mode: .unified, root: root).contains(name) else {
                throw IsolationError("the cgroup v2 '\(name)' controller is not available in \(root)", hint: "check \(root)/cgroup.controllers")
            }
            var level = FilePath(root)
            try enable([name], in: level)
            for part in relativePath.split(separator: "/").dropLast() {
                level.append(String(part))
                try enable([name], in: level)
            }
            return []
        }
        let hierarchy = root + "/" + controller
        guard iso_statfs_type_v1(hierarchy) else {
            throw IsolationError("the cgroup v1 '\(controller)' controller is not mounted at \(hierarchy)",
                                 hint: "mount it: mount -t cgroup -o \(controller) cgroup \(hierarchy)")
        }
        let real = (try? FileSystem.realPath(FilePath(hierarchy)).string) ?? hierarchy
        var level = FilePath(real)
        var made: [FilePath] = []
        let pids = processes()
        do {
            for part in relativePath.split(separator: "/") {
                let above = level
                level.append(String(part))
                guard !FileSystem.exists(level) else { continue }
                try inStage("making the cgroup \(level)") { try FileSystem.makeDirectory(level, mode: 0o755) }
                made.append(level)
                if controller == "cpuset" {
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        let value = try FileSystem.readString(above.appending(file)).trimmingCharacters(in: "\n ")
                        try write(level.appending(file), value)
                    }
                }
            }
            for pid in pids { try write(level.appending("cgroup.procs"), "\(pid)") }
        } catch {
            // Back where they were (the hierarchy's root), and the folders removed again.
            for pid in pids { try? FileSystem.writeFile(FilePath(real).appending("cgroup.procs"), "\(pid)") }
            for folder in made.reversed() { rmdir(folder.string) }
            throw error
        }
        return made.filter { $0 != level }
    }

    /// One file `update` writes: the path, the value, and the flag it comes from.
    struct PlannedWrite {
        var path: FilePath
        var value: String
        var field: String
    }

    /// Changes the limits of a cgroup that has processes in it, as `runc update` does.
    /// Every file is read before it is written; when the kernel refuses a value
    /// (EINVAL for a quota under 1 ms, EBUSY for a v1 memory limit below what is in use),
    /// the files already written get their old values back, and the error names the file.
    public func update(_ update: Update) throws {
        try update.validate()
        guard !update.isEmpty else { throw IsolationError("nothing to update", hint: "give a limit, such as --memory 64M, or -r FILE") }
        let plan = try version == .v2 ? planV2(update) : planV1(update)
        var written: [(path: FilePath, old: String)] = []
        for step in plan {
            let old = try inStage("reading \(step.path)") { try FileSystem.readString(step.path) }
            do {
                try write(step.path, step.value)
                written.append((step.path, old))
            } catch {
                // Back to how it was: the files already written, last first.
                var notRestored: [String] = []
                for (path, old) in written.reversed() {
                    for line in old.split(separator: "\n") where (try? FileSystem.writeFile(path, String(line))) == nil {
                        notRestored.append(path.string)
                    }
                }
                let message = "the kernel refused \(step.field) (\(step.value) into \(step.path)): \(Cgroup.reason(error))"
                throw IsolationError(message + (notRestored.isEmpty ? "; the limits are unchanged" : "; could not restore \(notRestored.joined(separator: ", "))"),
                                     hint: Cgroup.hint(for: error, field: step.field))
            }
        }
    }

    private static func reason(_ error: any Error) -> String {
        if let stage = error as? StageError { return "\(stage.errno) (\(errnoName(stage.errno)))" }
        return "\(error)"
    }

    private static func hint(for error: any Error, field: String) -> String? {
        guard let stage = error as? StageError else { return nil }
        switch stage.errno {
        case .resourceBusy where field.hasPrefix("memory"):
            return "the container uses more memory than that, and the kernel could not reclaim it: give a larger limit"
        case .invalidArgument: return "the value is out of the kernel's range (a CPU quota is at least 1000 µs; CPUs must exist)"
        default: return nil
        }
    }

    private func required(_ controller: String, for field: String) throws -> FilePath {
        guard let directory = version == .v2 ? directories[""] : v1Directory(controller) else {
            throw IsolationError("\(field) needs the cgroup v1 '\(controller)' controller, and the container has no cgroup there",
                                 hint: "the container was created without a \(controller) limit; runc joins every controller, this runtime only those a limit needs")
        }
        return directory
    }

    private func existingFile(_ directory: FilePath, _ file: String, for field: String) throws -> FilePath {
        let path = directory.appending(file)
        guard FileSystem.exists(path) else {
            throw IsolationError("\(field) cannot be changed: this kernel has no \(path)")
        }
        return path
    }

    private func current(_ path: FilePath) -> String {
        ((try? FileSystem.readString(path)) ?? "").trimmingCharacters(in: "\n ")
    }

    /// The v1 files, in runc's order per controller.
    private func planV1(_ update: Update) throws -> [PlannedWrite] {
        var plan: [PlannedWrite] = []
        func add(_ controller: String, _ file: String, _ value: String, _ field: String) throws {
            plan.append(PlannedWrite(path: try existingFile(try required(controller, for: field), file, for: field), value: value, field: field))
        }
        if let shares = update.cpuShares { try add("cpu", "cpu.shares", "\(shares)", "--cpu-share") }
        if let period = update.cpuPeriod { try add("cpu", "cpu.cfs_period_us", "\(period)", "--cpu-period") }
        if let quota = update.cpuQuota { try add("cpu", "cpu.cfs_quota_us", "\(quota)", "--cpu-quota") }
        if let burst = update.cpuBurst { try add("cpu", "cpu.cfs_burst_us", "\(burst)", "--cpu-burst") }
        if let idle = update.cpuIdle { try add("cpu", "cpu.idle", "\(idle)", "--cpu-idle") }
        if let period = update.cpuRealtimePeriod { try add("cpu", "cpu.rt_period_us", "\(period)", "--cpu-rt-period") }
        if let runtime = update.cpuRealtimeRuntime { try add("cpu", "cpu.rt_runtime_us", "\(runtime)", "--cpu-rt-runtime") }
        if let cpus = update.cpusetCPUs { try add("cpuset", "cpuset.cpus", cpus, "--cpuset-cpus") }
        if let mems = update.cpusetMems { try add("cpuset", "cpuset.mems", mems, "--cpuset-mems") }
        // Memory: the kernel keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes at
        // every moment, so the order depends on whether the limit grows past the old
        // memory+swap limit (runc's setMemoryAndSwap). -1 with no swap given lifts both.
        var memorySwap = update.memorySwap
        if update.memory == -1 && memorySwap == nil { memorySwap = -1 }
        if update.memory != nil || memorySwap != nil || update.memoryReservation != nil || update.kernelMemory != nil || update.kernelTCPMemory != nil {
            let directory = try required("memory", for: "--memory")
            var memoryWrites: [PlannedWrite] = []
            if let memory = update.memory {
                memoryWrites.append(PlannedWrite(path: try existingFile(directory, "memory.limit_in_bytes", for: "--memory"), value: "\(memory)", field: "--memory"))
            }
            if let swap = memorySwap {
                let file = directory.appending("memory.memsw.limit_in_bytes")
                if FileSystem.exists(file) {
                    let swapWrite = PlannedWrite(path: file, value: "\(swap)", field: "--memory-swap")
                    let currentSwap = Int64(current(file)) ?? Int64.max
                    let newMemory = update.memory.map { $0 == -1 ? Int64.max : $0 } ?? 0
                    if newMemory > currentSwap { memoryWrites.insert(swapWrite, at: 0) } else { memoryWrites.append(swapWrite) }
                } else if Cgroup.hostHasSwap() {
                    throw Cgroup.noSwapAccounting
                }
            }
            plan += memoryWrites
            if let reservation = update.memoryReservation {
                plan.append(PlannedWrite(path: directory.appending("memory.soft_limit_in_bytes"), value: "\(reservation)", field: "--memory-reservation"))
            }
            if let kernel = update.kernelMemory { plan.append(PlannedWrite(path: try existingFile(directory, "memory.kmem.limit_in_bytes", for: "--kernel-memory"), value: "\(kernel)", field: "--kernel-memory")) }
            if let tcp = update.kernelTCPMemory { plan.append(PlannedWrite(path: try existingFile(directory, "memory.kmem.tcp.limit_in_bytes", for: "--kernel-memory-tcp"), value: "\(tcp)", field: "--kernel-memory-tcp")) }
        }
        if let pids = update.pidsLimit { try add("pids", "pids.max", pids == -1 ? "max" : "\(pids)", "--pids-limit") }
        if let weight = update.blkioWeight {
            let directory = try required("blkio", for: "--blkio-weight")
            let file = FileSystem.exists(directory.appending("blkio.weight")) ? "blkio.weight" : "blkio.bfq.weight"
            plan.append(PlannedWrite(path: try existingFile(directory, file, for: "--blkio-weight"), value: "\(weight)", field: "--blkio-weight"))
        }
        return plan
    }

    /// The v2 files, with runc's conversions (shares to weight, memory+swap to swap).
    private func planV2(_ update: Update) throws -> [PlannedWrite] {
        guard let directory = directories[""] else { throw IsolationError("the cgroup \(relativePath) has no directory") }
        var plan: [PlannedWrite] = []
        func add(_ file: String, _ value: String, _ field: String) throws {
            plan.append(PlannedWrite(path: try existingFile(directory, file, for: field), value: value, field: field))
        }
        if update.cpuRealtimeRuntime != nil || update.cpuRealtimePeriod != nil || update.kernelMemory != nil || update.kernelTCPMemory != nil {
            throw IsolationError("cgroup v2 has no real-time CPU or kernel-memory limits",
                                 hint: "leave out --cpu-rt-runtime, --cpu-rt-period, --kernel-memory and --kernel-memory-tcp")
        }
        if let shares = update.cpuShares {
            let weight = 1 + ((max(2, min(shares, 262_144)) - 2) * 9999) / 262_142
            try add("cpu.weight", "\(weight)", "--cpu-share")
        }
        if update.cpuQuota != nil || update.cpuPeriod != nil {
            // cpu.max holds both ("max 100000"): what is not given stays as it is.
            let now = current(directory.appending("cpu.max")).split(separator: " ").map(String.init)
            let quota = update.cpuQuota.map { $0 == -1 ? "max" : "\($0)" } ?? (now.first ?? "max")
            let period = update.cpuPeriod.map { "\($0)" } ?? (now.count > 1 ? now[1] : "100000")
            try add("cpu.max", "\(quota) \(period)", update.cpuQuota != nil ? "--cpu-quota" : "--cpu-period")
        }
        if let burst = update.cpuBurst { try add("cpu.max.burst", "\(burst)", "--cpu-burst") }
        if let idle = update.cpuIdle { try add("cpu.idle", "\(idle)", "--cpu-idle") }
        if let cpus = update.cpusetCPUs { try add("cpuset.cpus", cpus, "--cpuset-cpus") }
        if let mems = update.cpusetMems { try add("cpuset.mems", mems, "--cpuset-mems") }
        if let swap = update.memorySwap {
            // runc's ConvertMemorySwapToCgroupV2Value: v2 limits swap alone.
            let memory = update.memory ?? Int64(current(directory.appending("memory.max"))) ?? -1
            let value: String
            if swap == -1 { value = "max" } else {
                guard memory > 0 else {
                    throw IsolationError("--memory-swap needs a memory limit on cgroup v2", hint: "give --memory too")
                }
                value = "\(swap - memory)"
            }
            if FileSystem.exists(directory.appending("memory.swap.max")) {
                try add("memory.swap.max", value, "--memory-swap")
            } else if Cgroup.hostHasSwap() {
                throw Cgroup.noSwapAccounting
            }
        } else if update.memory == -1, FileSystem.exists(directory.appending("memory.swap.max")) {
            try add("memory.swap.max", "max", "--memory")
        }
        if let memory = update.memory { try add("memory.max", memory == -1 ? "max" : "\(memory)", "--memory") }
        if let reservation = update.memoryReservation { try add("memory.low", reservation == -1 ? "max" : "\(reservation)", "--memory-reservation") }
        if let pids = update.pidsLimit { try add("pids.max", pids == -1 ? "max" : "\(pids)", "--pids-limit") }
        if let weight = update.blkioWeight {
            if FileSystem.exists(directory.appending("io.bfq.weight")) {
                try add("io.bfq.weight", "\(weight)", "--blkio-weight")
            } else {
                try add("io.weight", "default \(1 + (UInt64(weight) - 10) * 9999 / 990)", "--blkio-weight")
            }
        }
        return plan
    }
}
