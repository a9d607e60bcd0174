// The bounds of config.json's values, checked while the file is decoded, before anything
// is made: every number within what the kernel takes for it (a number that does not fit
// would otherwise trap in a conversion, or be cut to another value), and every string
// that becomes a C string free of NUL bytes (the kernel would read it only up to the NUL).
//
//     config.json: process.ioPriority.priority: 9999999999 is out of range (0 to 7)
//       → the level within the class: 0 (highest) to 7 (lowest) (line 12, …)

/// The kernel's device numbers: 12 bits of major, 20 of minor (MINORBITS, kdev_t.h).
let deviceMajors: ClosedRange<Int64> = 0...4095
let deviceMinors: ClosedRange<Int64> = 0...((1 << 20) - 1)

extension OCIConfig {
    /// The ranges and the NUL bytes; called by `checkRules`.
    func checkBounds() throws(OCIFieldError) {
        let top = JSONPath()
        try refuseNUL(root.path, top.appending("root").appending("path"))
        try refuseNUL(hostname, top.appending("hostname"))
        try refuseNUL(domainname, top.appending("domainname"))
        for (index, mount) in (mounts ?? []).enumerated() {
            let here = top.appending("mounts").appending(index)
            try refuseNUL(mount.destination, here.appending("destination"))
            try refuseNUL(mount.source, here.appending("source"))
            try refuseNUL(mount.type, here.appending("type"))
            try refuseNUL(mount.options, here.appending("options"))
            for (name, list) in [("uidMappings", mount.uidMappings), ("gidMappings", mount.gidMappings)] {
                try checkMappings(list, here.appending(name))
            }
        }
        for (name, list) in hooks?.all ?? [] {
            for (index, hook) in (list ?? []).enumerated() {
                let here = top.appending("hooks").appending(name).appending(index)
                try refuseNUL(hook.path, here.appending("path"))
                try refuseNUL(hook.args, here.appending("args"))
                try refuseNUL(hook.env, here.appending("env"))
            }
        }
        if let process { try process.checkBounds(at: top.appending("process")) }
        if let linux { try linux.checkBounds(at: top.appending("linux")) }
    }
}

extension OCIConfig.Process {
    func checkBounds(at path: JSONPath) throws(OCIFieldError) {
        try refuseNUL(args, path.appending("args"))
        try refuseNUL(env, path.appending("env"))
        try refuseNUL(cwd, path.appending("cwd"))
        try refuseNUL(apparmorProfile, path.appending("apparmorProfile"))
        try refuseNUL(selinuxLabel, path.appending("selinuxLabel"))
        if let size = consoleSize {
            // TIOCSWINSZ takes unsigned shorts.
            try within(size.height, 0...UInt(UInt16.max), path.appending("consoleSize").appending("height"), "rows of a terminal")
            try within(size.width, 0...UInt(UInt16.max), path.appending("consoleSize").appending("width"), "columns of a terminal")
        }
        try within(user.umask, 0...0o777, path.appending("user").appending("umask"), "permission bits to clear, in decimal (18 is 022)")
        if let sets = capabilities {
            for (name, list) in [("bounding", sets.bounding), ("effective", sets.effective), ("inheritable", sets.inheritable),
                                 ("permitted", sets.permitted), ("ambient", sets.ambient)] {
                try refuseNUL(list, path.appending("capabilities").appending(name))
            }
        }
        for (index, rlimit) in (rlimits ?? []).enumerated() where rlimit.soft > rlimit.hard {
            throw OCIFieldError(path: path.appending("rlimits").appending(index).appending("soft"),
                                problem: .invalid("\(rlimit.soft) is above the hard limit \(rlimit.hard)"),
                                hint: "setrlimit(2) takes a soft limit up to the hard one")
        }
        try within(oomScoreAdj, -1000...1000, path.appending("oomScoreAdj"), "-1000 (never killed) to 1000 (killed first)")
        if let io = ioPriority {
            try within(io.priority, 0...7, path.appending("ioPriority").appending("priority"), "the level within the class: 0 (highest) to 7 (lowest)")
        }
        if let scheduler {
            let here = path.appending("scheduler")
            try within(scheduler.nice, -20...19, here.appending("nice"), "a nice value: -20 (favoured) to 19")
            try within(scheduler.priority, 0...99, here.appending("priority"), "a static priority: 0, or 1 to 99 for SCHED_FIFO and SCHED_RR")
        }
    }
}

extension OCIConfig.Linux {
    func checkBounds(at path: JSONPath) throws(OCIFieldError) {
        for (index, namespace) in (namespaces ?? []).enumerated() {
            try refuseNUL(namespace.path, path.appending("namespaces").appending(index).appending("path"))
        }
        try checkMappings(uidMappings, path.appending("uidMappings"))
        try checkMappings(gidMappings, path.appending("gidMappings"))
        for (clock, offset) in timeOffsets ?? [:] {
            let here = path.appending("timeOffsets").appending(clock)
            // time_namespaces(7): the kernel refuses more than KTIME_SEC_MAX either way (ERANGE).
            try within(offset.secs, -9_223_372_036...9_223_372_036, here.appending("secs"), "seconds added to the clock (at most about 292 years either way)")
            try within(offset.nanosecs, 0...999_999_999, here.appending("nanosecs"), "nanoseconds besides secs: less than one second")
        }
        for (index, device) in (devices ?? []).enumerated() {
            let here = path.appending("devices").appending(index)
            try refuseNUL(device.path, here.appending("path"))
            try within(device.major, deviceMajors, here.appending("major"), "a major number (12 bits, makedev(3))")
            try within(device.minor, deviceMinors, here.appending("minor"), "a minor number (20 bits, makedev(3))")
            try within(device.fileMode, 0...0o7777, here.appending("fileMode"), "mode bits in decimal (438 is 0666)")
        }
        try refuseNUL(cgroupsPath, path.appending("cgroupsPath"))
        if let resources { try resources.checkBounds(at: path.appending("resources")) }
        for (key, value) in sysctl ?? [:] {
            try refuseNUL(key, path.appending("sysctl").appending(key))
            try refuseNUL(value, path.appending("sysctl").appending(key))
        }
        if let seccomp {
            let here = path.appending("seccomp")
            try refuseNUL(seccomp.listenerPath, here.appending("listenerPath"))
            // SECCOMP_RET_DATA: the errno (or the tracer's message) is 16 bits.
            try within(seccomp.defaultErrnoRet, 0...0xffff, here.appending("defaultErrnoRet"), "an errno number, such as 1 (EPERM)")
            for (index, rule) in (seccomp.syscalls ?? []).enumerated() {
                let rulePath = here.appending("syscalls").appending(index)
                try refuseNUL(rule.names, rulePath.appending("names"))
                try within(rule.errnoRet, 0...0xffff, rulePath.appending("errnoRet"), "an errno number, such as 1 (EPERM)")
                for (number, argument) in (rule.args ?? []).enumerated() {
                    try within(argument.index, 0...5, rulePath.appending("args").appending(number).appending("index"), "a system call argument: 0 to 5")
                }
            }
        }
        for (name, list) in [("maskedPaths", maskedPaths), ("readonlyPaths", readonlyPaths)] { try refuseNUL(list, path.appending(name)) }
        try refuseNUL(mountLabel, path.appending("mountLabel"))
    }
}

extension OCIConfig.Resources {
    func checkBounds(at path: JSONPath) throws(OCIFieldError) {
        for (index, rule) in (devices ?? []).enumerated() {
            // Absent or -1 is every number (runc's wildcard); any other negative would be
            // read as a wildcard too, or refused by the kernel.
            let here = path.appending("devices").appending(index)
            try within(rule.major, -1...deviceMajors.upperBound, here.appending("major"), "a major number (12 bits), or -1 or absent for all")
            try within(rule.minor, -1...deviceMinors.upperBound, here.appending("minor"), "a minor number (20 bits), or -1 or absent for all")
        }
        if let memory {
            let here = path.appending("memory")
            for (name, value) in [("limit", memory.limit), ("reservation", memory.reservation), ("swap", memory.swap),
                                  ("kernel", memory.kernel), ("kernelTCP", memory.kernelTCP)] {
                try within(value, -1...Int64.max, here.appending(name), "bytes, or -1 for no limit")
            }
            // Docker writes -1, as an unsigned number, for the kernel's default.
            if let swappiness = memory.swappiness, swappiness > 100 && swappiness != UInt64.max {
                throw OCIFieldError(path: here.appending("swappiness"), problem: .invalid("\(swappiness) is out of range (0 to 100)"),
                                    hint: "how readily the kernel swaps: 0 to 100, as vm.swappiness")
            }
        }
        if let cpu {
            let here = path.appending("cpu")
            // cpu.shares in the kernel: 2 to 262144 (MIN_SHARES, MAX_SHARES); 0 is unset.
            if let shares = cpu.shares, shares == 1 || shares > 262_144 {
                throw OCIFieldError(path: here.appending("shares"), problem: .invalid("\(shares) is out of range (2 to 262144)"),
                                    hint: "a relative weight: 1024 is the default, 0 or absent leaves it")
            }
            // The CFS bandwidth limits (kernel/sched/core.c): a period of 1 ms to 1 s, and a
            // quota of at least 1 ms and less than 2^44 µs, or -1 for none (0 leaves it).
            if let period = cpu.period, period != 0 && !(1000...1_000_000).contains(period) {
                throw OCIFieldError(path: here.appending("period"), problem: .invalid("\(period) is out of range (1000 to 1000000)"),
                                    hint: "the CFS period in microseconds: 1 ms to 1 s (100000 is the default)")
            }
            if let quota = cpu.quota, quota != -1 && quota != 0 && !(1000...((1 << 44) - 1)).contains(quota) {
                throw OCIFieldError(path: here.appending("quota"), problem: .invalid("\(quota) is out of range (1000 to \((1 << 44) - 1), or -1)"),
                                    hint: "CPU time in microseconds per period, at least 1 ms; -1 for no limit")
            }
            try refuseNUL(cpu.cpus, here.appending("cpus"))
            try refuseNUL(cpu.mems, here.appending("mems"))
        }
        try within(pids?.limit, -1...Int64.max, path.appending("pids").appending("limit"), "the most tasks, or -1 for no limit")
        if let io = blockIO {
            let here = path.appending("blockIO")
            try within(io.weight, 0...1000, here.appending("weight"), "a weight: 1 to 1000 (BFQ; CFQ took 10 to 1000); 0 leaves it, as Docker writes")
            try within(io.leafWeight, 0...1000, here.appending("leafWeight"), "a weight: 1 to 1000 (BFQ; CFQ took 10 to 1000); 0 leaves it")
            for (index, device) in (io.weightDevice ?? []).enumerated() {
                let entry = here.appending("weightDevice").appending(index)
                try within(device.major, deviceMajors, entry.appending("major"), "a block device's major number (12 bits)")
                try within(device.minor, deviceMinors, entry.appending("minor"), "a block device's minor number (20 bits)")
                try within(device.weight, 0...1000, entry.appending("weight"), "a weight: 1 to 1000 (BFQ; CFQ took 10 to 1000); 0 leaves it")
                try within(device.leafWeight, 0...1000, entry.appending("leafWeight"), "a weight: 1 to 1000 (BFQ; CFQ took 10 to 1000); 0 leaves it")
            }
            for (name, list) in [("throttleReadBpsDevice", io.throttleReadBpsDevice), ("throttleWriteBpsDevice", io.throttleWriteBpsDevice),
                                 ("throttleReadIOPSDevice", io.throttleReadIOPSDevice), ("throttleWriteIOPSDevice", io.throttleWriteIOPSDevice)] {
                for (index, device) in (list ?? []).enumerated() {
                    let entry = here.appending(name).appending(index)
                    try within(device.major, deviceMajors, entry.appending("major"), "a block device's major number (12 bits)")
                    try within(device.minor, deviceMinors, entry.appending("minor"), "a block device's minor number (20 bits)")
                }
            }
        }
        for (index, limit) in (hugepageLimits ?? []).enumerated() {
            try refuseNUL(limit.pageSize, path.appending("hugepageLimits").appending(index).appending("pageSize"))
        }
        for (index, priority) in (network?.priorities ?? []).enumerated() {
            try refuseNUL(priority.name, path.appending("network").appending("priorities").appending(index).appending("name"))
        }
        for (key, value) in unified ?? [:] {
            try refuseNUL(key, path.appending("unified").appending(key))
            try refuseNUL(value, path.appending("unified").appending(key))
        }
    }
}

/// ID mappings: at least one ID each, and no range past 2^32 (the kernel's uid_t).
private func checkMappings(_ mappings: [OCIConfig.IDMapping]?, _ path: JSONPath) throws(OCIFieldError) {
    for (index, mapping) in (mappings ?? []).enumerated() {
        let here = path.appending(index)
        if mapping.size == 0 {
            throw OCIFieldError(path: here.appending("size"), problem: .invalid("0 maps no ID"), hint: "a mapping covers at least one ID")
        }
        let end = UInt64(max(mapping.containerID, mapping.hostID)) + UInt64(mapping.size)
        if end > UInt64(UInt32.max) + 1 {
            throw OCIFieldError(path: here.appending("size"), problem: .invalid("\(mapping.size) IDs from \(max(mapping.containerID, mapping.hostID)) go past 4294967295"),
                                hint: "IDs are 32-bit: containerID + size and hostID + size are at most 4294967296")
        }
    }
}

/// A number outside `range` is an error naming the field, the range and what it means.
private func within<T: BinaryInteger>(_ value: T?, _ range: ClosedRange<T>, _ path: JSONPath, _ meaning: String) throws(OCIFieldError) {
    guard let value, !range.contains(value) else { return }
    throw OCIFieldError(path: path, problem: .invalid("\(value) is out of range (\(range.lowerBound) to \(range.upperBound))"), hint: meaning)
}

/// A string the kernel reads as a C string may not hold a NUL byte: everything after it
/// would be cut off, silently.
private func refuseNUL(_ text: String?, _ path: JSONPath) throws(OCIFieldError) {
    guard let text, text.utf8.contains(0) else { return }
    throw OCIFieldError(path: path, problem: .invalid("contains a NUL byte"),
                        hint: "a C string ends at its first NUL (\\u0000): the rest would be cut off; remove it")
}

private func refuseNUL(_ list: [String]?, _ path: JSONPath) throws(OCIFieldError) {
    for (index, text) in (list ?? []).enumerated() { try refuseNUL(text, path.appending(index)) }
}
