// cgroup limits, enforced: observed through the cgroup's own accounting and the
// workload's fate, on whichever cgroup version this host has (v1 here, v2 in the VM lane).
import Foundation
import Glibc
import SystemPackage
import Testing
@testable import Isolation

@Suite("Limits as people write them")
struct ResourceLimitParsingTests {
    @Test("zero weights are unset, as runc reads them: Docker writes blockIO.weight 0 and cpu.shares 0 for every container")
    func zeroWeights() {
        let docker = OCIConfig.Resources(cpu: .init(shares: 0), blockIO: .init(weight: 0, leafWeight: 0, weightDevice: [.init(major: 8, minor: 0, weight: 0, leafWeight: 0)]))
        let limits = ResourceLimits(oci: docker)
        #expect(limits.blockIO == nil && limits.cpuShares == nil && limits.isEmpty, "\(limits)")
        #expect(!Cgroup.controllerNeeded("blkio", limits))
        let mixed = ResourceLimits(oci: OCIConfig.Resources(blockIO: .init(weight: 0, weightDevice: [.init(major: 8, minor: 0, weight: 0), .init(major: 8, minor: 16, weight: 300)])))
        #expect(mixed.blockIO == OCIConfig.BlockIO(weightDevice: [.init(major: 8, minor: 16, weight: 300)]), "\(String(describing: mixed.blockIO))")
        let set = ResourceLimits(oci: OCIConfig.Resources(blockIO: .init(weight: 500)))
        #expect(set.blockIO == OCIConfig.BlockIO(weight: 500))
    }

    @Test func sizes() throws {
        #expect(try ResourceLimits.parseSize("64M") == 64 << 20)
        #expect(try ResourceLimits.parseSize("1.5G") == 3 << 29)
        #expect(try ResourceLimits.parseSize("512k") == 512 << 10)
        #expect(try ResourceLimits.parseSize("64MiB") == 64 << 20)
        #expect(try ResourceLimits.parseSize("100000") == 100_000)
        for bad in ["", "M", "64X", "-1M", "1e400", "12"] {
            #expect(throws: IsolationError.self, "\(bad) was accepted") { try ResourceLimits.parseSize(bad) }
        }
    }

    @Test func cpusPidsAndCPUSets() throws {
        #expect(try ResourceLimits.parseCPUs("0.5") == 0.5)
        #expect(ResourceLimits(cpus: 0.5).cpuQuotaMicroseconds == 50_000)
        #expect(ResourceLimits(cpus: 1.25).cpuQuotaMicroseconds == 125_000)
        #expect(throws: IsolationError.self) { try ResourceLimits.parseCPUs("half") }
        #expect(throws: IsolationError.self) { try ResourceLimits.parseCPUs("0") }
        #expect(try ResourceLimits.parsePids("32") == 32)
        #expect(throws: IsolationError.self) { try ResourceLimits.parsePids("0") }
        #expect(try ResourceLimits.parseCPUSet("0,2-3") == "0,2-3")
        #expect(throws: IsolationError.self) { try ResourceLimits.parseCPUSet("0-") }
        #expect(formatBytes(64 << 20) == "64 MiB")
        #expect(formatBytes(3 << 29) == "1.5 GiB")
    }

    @Test("device rules: the last match decides, a rule for every device resets the default")
    func deviceRules() throws {
        typealias Rule = DeviceAccess.Rule
        let rules = DeviceAccess([
            Rule(allow: true, kind: .character, major: 1, minor: 3),        // forgotten: the next line resets
            Rule(allow: false),                                              // deny everything
            Rule(allow: true, kind: .character, major: 1, minor: 5, access: DeviceAccess.Access("r")!),
            Rule(allow: true, kind: .character, major: 136),
            Rule(allow: false, kind: .character, major: 136, minor: 7),
        ])
        #expect(!rules.defaultAllow && rules.rules.count == 3)
        #expect(!rules.allows(.character, 1, 3, .read), "the rule before the wildcard no longer counts")
        #expect(rules.allows(.character, 1, 5, .read))
        #expect(!rules.allows(.character, 1, 5, [.read, .write]), "asked for more than the rule gives")
        #expect(!rules.allows(.block, 1, 5, .read), "a block device is not a character device")
        #expect(rules.allows(.character, 136, 0, .all))
        #expect(!rules.allows(.character, 136, 7, .read), "the later deny wins")
        #expect(DeviceAccess.Access("") == .all && DeviceAccess.Access("rx") == nil)
        #expect(Rule(allow: true, kind: .character, major: 136, access: DeviceAccess.Access("rw")!).v1Line == "c 136:* rw")
    }
}

/// Starts `script` under `/bin/sh` held before exec, puts it in `cgroup`, then lets it exec.
func spawnInto(_ cgroup: Cgroup, _ script: String, stdout: FileDescriptor? = nil) throws -> ChildProcess {
    var options = SpawnOptions()
    options.waitForRelease = true
    options.standardOutput = stdout
    options.parentDeathSignal = SIGKILL
    let child = try ChildProcess.spawn("/bin/sh", arguments: ["sh", "-c", script],
                                       environment: Command.defaultEnvironment, options: options)
    try cgroup.addProcess(child.pid)
    try child.release()
    return child
}

func uniqueName(_ purpose: String) -> String { "test-\(purpose)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

/// CPUs used over `seconds` of wall time, from the cgroup's own usage counter.
func measureCPU(_ cgroup: Cgroup, seconds: Double) -> Double {
    let start = cgroup.stats().cpuUsageMicroseconds ?? 0
    let began = DispatchTime.now().uptimeNanoseconds
    usleep(UInt32(seconds * 1_000_000))
    let end = cgroup.stats().cpuUsageMicroseconds ?? 0
    let wall = Double(DispatchTime.now().uptimeNanoseconds - began) / 1000
    return Double(end - start) / wall
}

@Suite("cgroup enforcement", .serialized, .enabled(if: getuid() == 0 && CgroupMode.detect() != .none, "creating cgroups needs root"))
struct CgroupEnforcementTests {
    // What the kernel did, not how fast this machine is: a hog under a 0.5 CPU quota never
    // gets more than 0.5 (+ 0.1 for the measurement), and when it gets near its quota it is
    // throttled (cpu.stat's nr_throttled counts the periods it was stopped in); the same hog
    // without a quota is never throttled. On a machine so busy that the hog gets less than
    // its quota anyway, nothing may throttle it: then only the ceiling is checked.
    @Test("a CPU hog under 0.5 CPU uses at most 0.5 (± 0.1) CPU and is throttled; without a quota it is never throttled")
    func cpuQuota() throws {
        let limited = try Cgroup.create(name: uniqueName("cpu"), limits: ResourceLimits(cpus: 0.5))
        defer { limited.destroy() }
        let hog = try spawnInto(limited, "while :; do :; done")
        usleep(300_000)  // settle into the quota
        let used = measureCPU(limited, seconds: 2.5)
        try hog.signal(SIGKILL)
        try hog.wait()
        let throttled = limited.stats().throttledPeriods ?? 0
        #expect(used <= 0.6, "used \(used) CPU under a 0.5 CPU limit")
        #expect(used > 0.05, "the hog hardly ran (\(used) CPU)")
        #expect(throttled > 0 || used < 0.5, "\(used) CPU, yet no throttled periods recorded")

        let free = try Cgroup.create(name: uniqueName("cpu-free"), limits: ResourceLimits())
        defer { free.destroy() }
        let freeHog = try spawnInto(free, "while :; do :; done")
        usleep(300_000)
        let freeUsed = measureCPU(free, seconds: 2.0)
        try freeHog.signal(SIGKILL)
        try freeHog.wait()
        #expect(freeUsed > 0.05, "the unlimited hog hardly ran (\(freeUsed) CPU)")
        #expect((free.stats().throttledPeriods ?? 0) == 0, "a cgroup without a quota was throttled")
    }

    @Test("allocating past the memory limit ends in SIGKILL and an OOM event; below it succeeds")
    func memoryLimit() throws {
        let cgroup = try Cgroup.create(name: uniqueName("memory"), limits: ResourceLimits(memoryBytes: 32 << 20, swapBytes: 0))
        defer { cgroup.destroy() }
        let below = try spawnInto(cgroup, "x=$(head -c 8M /dev/zero | tr '\\0' a); echo ${#x}")
        #expect(try below.wait() == .exited(0))
        #expect((cgroup.stats().oomKills ?? 0) == 0)

        let past = try spawnInto(cgroup, "x=$(head -c 200M /dev/zero | tr '\\0' a); echo ${#x}")
        let status = try past.wait()
        let stats = cgroup.stats()
        #expect(status == .signaled(SIGKILL), "the hog \(status)")
        #expect((stats.oomKills ?? 0) >= 1, "no oom_kill event: \(stats)")
        #expect((stats.memoryPeakBytes ?? 0) <= 32 << 20, "peak \(String(describing: stats.memoryPeakBytes)) above the limit")
    }

    @Test("a fork bomb never exceeds pids.max and the refusals are counted")
    func pidsLimit() throws {
        let cgroup = try Cgroup.create(name: uniqueName("pids"), limits: ResourceLimits(pids: 16))
        defer { cgroup.destroy() }
        let bomb = try spawnInto(cgroup, "bomb() { bomb | bomb & }; bomb; sleep 5")
        var highest: UInt64 = 0
        for _ in 0..<100 {
            highest = max(highest, cgroup.stats().pids ?? 0)
            usleep(10_000)
        }
        let refused = cgroup.stats().pidsRefused ?? 0
        cgroup.destroy()
        _ = try? bomb.wait()
        #expect(highest <= 16, "pids.current reached \(highest)")
        #expect(highest >= 8, "the bomb never got going (\(highest) pids)")
        #expect(refused > 0, "no refused fork recorded")
    }

    @Test("the process is in the cgroup before its first instruction")
    func limitsBeforeExec() throws {
        let cgroup = try Cgroup.create(name: uniqueName("early"), limits: ResourceLimits(pids: 5))
        defer { cgroup.destroy() }
        // pipe2(O_CLOEXEC): a program another test starts meanwhile must not inherit the write end.
        let pipe = try makePipe()
        let child = try spawnInto(cgroup, "cat /proc/self/cgroup", stdout: FileDescriptor(rawValue: pipe.write))
        close(pipe.write)
        let text = readAll(pipe.read)
        close(pipe.read)
        #expect(try child.wait() == .exited(0))
        // Each hierarchy line names our cgroup: the exec'd sh already ran inside it.
        let lines = text.split(separator: "\n").filter { cgroup.version == .v2 ? $0.hasPrefix("0::") : $0.contains(":pids:") || $0.contains(":memory:") }
        #expect(!lines.isEmpty && lines.allSatisfy { $0.hasSuffix("/" + cgroup.relativePath) }, "\(text)")
    }

    @Test("device rules: /dev/null opens, /dev/zero is refused with EPERM, whatever our capabilities")
    func deviceRulesEnforced() throws {
        var limits = ResourceLimits()
        limits.devices = DeviceAccess([DeviceAccess.Rule(allow: false), DeviceAccess.Rule(allow: true, kind: .character, major: 1, minor: 3)])
        let cgroup = try Cgroup.create(name: uniqueName("devices"), limits: limits)
        defer { cgroup.destroy() }
        let pipe = try makePipe()
        let child = try spawnInto(cgroup, "exec 2>&1; (exec 3</dev/null) && echo null-opened; (exec 3</dev/zero) || echo zero-refused",
                                  stdout: FileDescriptor(rawValue: pipe.write))
        close(pipe.write)
        let text = readAll(pipe.read)
        close(pipe.read)
        _ = try child.wait()
        #expect(text.contains("null-opened"), "\(text)")
        #expect(text.contains("zero-refused") && text.contains("not permitted"), "root, but the device controller says no: \(text)")
        // And outside the cgroup the same open works: it is the rule, not the device.
        let zero = open("/dev/zero", O_RDONLY | O_CLOEXEC)
        #expect(zero >= 0)
        close(zero)
    }

    @Test("a wrong value is an error that creates nothing; destroy leaves no cgroup")
    func cleanUp() throws {
        let name = uniqueName("bad")
        #expect(throws: (any Error).self) {
            _ = try Cgroup.create(name: name, limits: ResourceLimits(cpuset: "999"))
        }
        let leftovers = Cleanup.cgroupParents().flatMap { parent in
            ((try? FileSystem.contentsOfDirectory(parent)) ?? []).filter { $0 == name }
        }
        #expect(leftovers.isEmpty)
        let cgroup = try Cgroup.create(name: uniqueName("gone"), limits: ResourceLimits(cpus: 1, memoryBytes: 64 << 20, pids: 10))
        let sleeper = try spawnInto(cgroup, "sleep 60")
        let directories = cgroup.directories.values
        cgroup.destroy()
        #expect(try sleeper.wait() == .signaled(SIGKILL))
        for directory in directories { #expect(!FileSystem.exists(directory), "\(directory) is still there") }
    }
}
