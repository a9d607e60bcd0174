// config-linux.md "Control groups": cgroupsPath and linux.resources, read back from the
// cgroup files on the host (v1 or v2, through the library's Cgroup) and, where the
// kernel enforces them, seen from inside.
import Foundation
import Isolation
import SystemPackage
import Testing

let cgroupVersion: Cgroup.Version? = {
    switch CgroupMode.detect() {
    case .unified: return .v2
    case .legacy, .hybrid: return .v1
    case .none: return nil
    }
}()

@Suite("Conformance: config-linux.md#control-groups", .serialized,
       .enabled(if: canProbe && cgroupVersion != nil, "needs root, a static busybox and cgroups"))
struct ConformanceResources {
    @Test("config-linux.md#cgroups-path: the container's processes are in cgroupsPath (parents made); delete removes it")
    func cgroupsPath() throws {
        let path = conformanceCgroup("parent") + "/cg-leaf"
        let bundle = try TestBundle(conformance: "cgpath", args: ["sh", "-c", "sleep 30 & exec sleep 30"]) { $0.linux?.cgroupsPath = "/" + path }
        defer {
            bundle.removeAll()
            if let parent = try? Cgroup.existing(path: conformanceCgroup("parent")) { parent.destroy() }
        }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-cg"]).status == 0)
        let pid = try #require(try bundle.pid("conf-cg"))
        #expect(try bundle.runtime(["start", "conf-cg"]).status == 0)
        let cgroup = try Cgroup.existing(path: path)
        var members: [pid_t] = []
        for _ in 0..<100 {
            members = cgroup.processes()
            if members.count == 2 { break }
            usleep(10_000)
        }
        #expect(members.count == 2 && members.contains(pid), "the init and its child: \(members)")
        let membership = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        for controller in cgroupVersion == .v2 ? [""] : ["memory", "pids", "cpu"] {
            #expect(membership.split(separator: "\n").contains { $0.hasSuffix(":/" + path) && $0.split(separator: ":")[1].split(separator: ",").contains(Substring(controller)) || (controller.isEmpty && $0.hasPrefix("0::/" + path)) },
                    "\(controller): \(membership)")
        }
        #expect(try bundle.runtime(["delete", "--force", "conf-cg"]).status == 0)
        #expect(!cgroupExists(path))
    }

    @Test("config-linux.md#memory: limit, reservation, swap, swappiness and disableOOMKiller in the cgroup's files")
    func memory() throws {
        let limit: Int64 = 96 << 20, reservation: Int64 = 32 << 20, swap: Int64 = 128 << 20
        let bundle = try TestBundle(conformance: "memory", args: ["sleep", "30"]) { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("memory")
            config.linux?.resources = OCIConfig.Resources(memory: OCIConfig.Memory(
                limit: limit, reservation: reservation, swap: swap, swappiness: 7, disableOOMKiller: true))
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-mem"])
        try #require(result.status == 0, "\(result)")
        let path = conformanceCgroup("memory")
        if cgroupVersion == .v1 {
            #expect(cgroupFile(path, controller: "memory", "memory.limit_in_bytes") == "\(limit)")
            #expect(cgroupFile(path, controller: "memory", "memory.soft_limit_in_bytes") == "\(reservation)")
            if let memsw = cgroupFile(path, controller: "memory", "memory.memsw.limit_in_bytes") {
                #expect(memsw == "\(swap)", "OCI's swap is memory plus swap")
            }
            #expect(cgroupFile(path, controller: "memory", "memory.swappiness") == "7")
            #expect(cgroupFile(path, controller: "memory", "memory.oom_control")?.contains("oom_kill_disable 1") == true)
        } else {
            #expect(cgroupFile(path, controller: "memory", "memory.max") == "\(limit)")
            #expect(cgroupFile(path, controller: "memory", "memory.low") == "\(reservation)")
            if let swapMax = cgroupFile(path, controller: "memory", "memory.swap.max") {
                #expect(swapMax == "\(swap - limit)", "v2's swap.max is swap alone")
            }
        }
    }

    @Test("config-linux.md#cpu: shares, quota, period, cpus and mems in the cgroup's files; cpus as the process's affinity")
    func cpu() throws {
        let cpus = ProcessInfo.processInfo.activeProcessorCount > 1 ? "1" : "0"
        let bundle = try TestBundle(conformance: "cpu", args: probeThenSleep) { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("cpu")
            config.linux?.resources = OCIConfig.Resources(cpu: OCIConfig.CPU(shares: 512, quota: 25_000, period: 50_000, cpus: cpus, mems: "0"))
        }
        defer { bundle.removeAll() }
        try bundle.probeExtra("grep Cpus_allowed_list /proc/$$/status | tr -d '\\t' | sed 's/:/=/'\n")
        let (_, seen) = try bundle.startProbe("conf-cpu")
        #expect(seen["Cpus_allowed_list"] == cpus, "\(seen)")
        let path = conformanceCgroup("cpu")
        if cgroupVersion == .v1 {
            #expect(cgroupFile(path, controller: "cpu", "cpu.shares") == "512")
            #expect(cgroupFile(path, controller: "cpu", "cpu.cfs_quota_us") == "25000")
            #expect(cgroupFile(path, controller: "cpu", "cpu.cfs_period_us") == "50000")
            #expect(cgroupFile(path, controller: "cpuset", "cpuset.cpus") == cpus)
            #expect(cgroupFile(path, controller: "cpuset", "cpuset.mems") == "0")
        } else {
            #expect(cgroupFile(path, controller: "cpu", "cpu.max") == "25000 50000")
            // runc's conversion of shares 512 to a weight.
            #expect(cgroupFile(path, controller: "cpu", "cpu.weight") == "\(1 + ((512 - 2) * 9999) / 262_142)")
            #expect(cgroupFile(path, controller: "cpuset", "cpuset.cpus") == cpus)
            #expect(cgroupFile(path, controller: "cpuset", "cpuset.mems") == "0")
        }
    }

    /// A resource this runtime may not apply: the field, how to set it, and where the
    /// kernel shows it once applied (v1 controller and file, v2 file) with its value;
    /// `a|b` lists alternatives (the BFQ scheduler's files, say).
    struct OptionalResource: CustomTestStringConvertible, Sendable {
        var field: String
        var edit: @Sendable (inout OCIConfig.Resources) -> Void
        var v1: (controller: String, file: String, value: String)?
        var v2: (file: String, value: String)?
        var testDescription: String { field }
    }

    static let optionalResources: [OptionalResource] = [
        OptionalResource(field: "linux.resources.blockIO", edit: { $0.blockIO = OCIConfig.BlockIO(weight: 500) },
                         v1: ("blkio", "blkio.weight|blkio.bfq.weight", "500|default 500"), v2: ("io.weight|io.bfq.weight", "default 500")),
        OptionalResource(field: "linux.resources.hugepageLimits", edit: { $0.hugepageLimits = [OCIConfig.HugepageLimit(pageSize: "2MB", limit: 4 << 20)] },
                         v1: ("hugetlb", "hugetlb.2MB.limit_in_bytes", "\(4 << 20)"), v2: ("hugetlb.2MB.max", "\(4 << 20)")),
        OptionalResource(field: "linux.resources.network", edit: { $0.network = OCIConfig.Network(classID: 0x100001) },
                         v1: ("net_cls", "net_cls.classid", "\(0x100001)"), v2: nil),
        OptionalResource(field: "linux.resources.rdma", edit: { $0.rdma = ["mlx5_0": OCIConfig.Rdma(hcaHandles: 3)] },
                         v1: ("rdma", "rdma.max", "mlx5_0 hca_handle=3 hca_object=max"), v2: ("rdma.max", "mlx5_0 hca_handle=3 hca_object=max")),
        // On cgroup v1 the spec requires an error for unified.
        OptionalResource(field: "linux.resources.unified", edit: { $0.unified = ["pids.max": "9"] }, v1: nil, v2: ("pids.max", "9")),
        OptionalResource(field: "linux.resources.cpu.realtimeRuntime", edit: { $0.cpu = OCIConfig.CPU(realtimeRuntime: 1000, realtimePeriod: 100_000) },
                         v1: ("cpu", "cpu.rt_runtime_us", "1000"), v2: nil),
        OptionalResource(field: "linux.resources.cpu.idle", edit: { $0.cpu = OCIConfig.CPU(idle: 1) }, v1: nil, v2: ("cpu.idle", "1")),
        OptionalResource(field: "linux.resources.cpu.burst", edit: { $0.cpu = OCIConfig.CPU(quota: 50_000, burst: 10_000, period: 100_000) },
                         v1: ("cpu", "cpu.cfs_burst_us", "10000"), v2: ("cpu.max.burst", "10000")),
    ]

    @Test("config-linux.md#control-groups: a resource is applied (the kernel's file shows it) or refused with an error naming it — never dropped",
          arguments: optionalResources)
    func appliedOrRefused(_ resource: OptionalResource) throws {
        let path = conformanceCgroup("optional")
        let bundle = try TestBundle(conformance: "optional", args: ["sleep", "30"]) { config in
            config.linux?.cgroupsPath = "/" + path
            var resources = config.linux?.resources ?? OCIConfig.Resources()
            resource.edit(&resources)
            config.linux?.resources = resources
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-optional"])
        guard result.status == 0 else {
            // The error names the field, or the v1 controller this host lacks for it.
            let field = resource.field.split(separator: ".").prefix(3).joined(separator: ".")
            let controller = resource.v1.map { "'\($0.controller)' controller is not mounted" }
            #expect(result.stderr.contains(field) || (cgroupVersion == .v1 && controller.map(result.stderr.contains) == true),
                    "the error must name \(field): \(result)")
            #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-optional"))
            #expect(!cgroupExists(path))
            return
        }
        let directory: String?, files: String?, expected: String?
        if cgroupVersion == .v1 {
            (directory, files, expected) = (resource.v1.map { "/sys/fs/cgroup/\($0.controller)/\(path)" }, resource.v1?.file, resource.v1?.value)
        } else {
            (directory, files, expected) = ("/sys/fs/cgroup/\(path)", resource.v2?.file, resource.v2?.value)
        }
        #expect(expected != nil, "\(resource.field) was accepted where this cgroup version has no such setting")
        let shown = (files ?? "").split(separator: "|").compactMap { file in
            try? String(contentsOfFile: "\(directory ?? "")/\(file)", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let accepted = Set((expected ?? "").split(separator: "|").map(String.init))
        #expect(shown.contains { accepted.contains($0) }, "\(resource.field) accepted but not applied: \(shown)")
    }

    @Test("config-linux.md#cpu: mems alone (no cpus) is written to cpuset.mems, and the process still runs")
    func memsAlone() throws {
        let path = conformanceCgroup("mems")
        let bundle = try TestBundle(conformance: "mems", args: probeThenSleep) { config in
            config.linux?.cgroupsPath = "/" + path
            config.linux?.resources = OCIConfig.Resources(cpu: OCIConfig.CPU(mems: "0"))
        }
        defer { bundle.removeAll() }
        try bundle.probeExtra("grep Mems_allowed_list /proc/$$/status | tr -d '\\t' | sed 's/:/=/'\n")
        let (_, seen) = try bundle.startProbe("conf-mems")
        #expect(seen.complete && seen["Mems_allowed_list"] == "0", "\(seen)")
        #expect(cgroupFile(path, controller: "cpuset", "cpuset.mems") == "0")
    }

    @Test("config-linux.md#pids: pids.max is the limit, and fork fails past it")
    func pids() throws {
        let bundle = try TestBundle(conformance: "pids", args: ["/probe"]) { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("pids")
            config.linux?.resources = OCIConfig.Resources(pids: OCIConfig.Pids(limit: 8))
        }
        defer { bundle.removeAll() }
        // Past the limit the shell cannot fork: only builtins after the child shell.
        try bundle.probeExtra("""
        read max < /sys/fs/cgroup/pids/pids.max 2>/dev/null || read max < /sys/fs/cgroup/pids.max
        echo "pids.max=$max"
        sh -c 'i=0; while [ $i -lt 12 ]; do sleep 30 & echo x >> /tmp/started; i=$((i+1)); done' 2>/dev/null
        echo "child-status=$?"
        kill -9 -1 2>/dev/null
        """)
        let (result, seen) = try bundle.probe("conf-pids", timeout: 30)
        #expect(seen.complete, "\(result)")
        #expect(seen["pids.max"] == "8", "\(seen)")
        #expect(seen["child-status"] != "0", "the child shell could not fork all of them: \(seen)")
        let started = ((try? String(contentsOfFile: bundle.rootfs + "/tmp/started", encoding: .utf8)) ?? "").split(separator: "\n").count
        // 8 tasks: the probe, the child shell and 6 sleeps.
        #expect(started == 6, "sleeps started under a limit of 8 tasks: \(started)")
    }

    @Test("config-linux.md#allowed-device-list: rules in order decide who opens a device; the default devices stay usable",
          .enabled(if: FileManager.default.fileExists(atPath: "/dev/fuse") && FileManager.default.fileExists(atPath: "/dev/loop-control"),
                   "needs the host's /dev/fuse and /dev/loop-control to bind into the container"))
    func deviceRules() throws {
        let bundle = try TestBundle(conformance: "devcg", args: probeThenSleep) { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("devcg")
            // Host nodes bound in: neither a default device nor in linux.devices, so only the rules decide.
            config.mounts! += [
                OCIConfig.Mount(destination: "/dev/bound-fuse", type: "bind", source: "/dev/fuse", options: ["bind"]),
                OCIConfig.Mount(destination: "/dev/bound-loop-control", type: "bind", source: "/dev/loop-control", options: ["bind"]),
            ]
            config.linux?.resources = OCIConfig.Resources(devices: [
                OCIConfig.DeviceRule(allow: false, access: "rwm"),
                OCIConfig.DeviceRule(allow: true, type: .character, major: 10, minor: 229, access: "rw"),
                OCIConfig.DeviceRule(allow: false, type: .character, major: 10, minor: 229, access: "w"),
            ])
        }
        defer { bundle.removeAll() }
        // The open's error, if any (a driver may refuse too, but only the cgroup says EPERM).
        try bundle.probeExtra("""
        r=$( (: < /dev/bound-fuse) 2>&1 ) && echo fuse-read=ok || echo "fuse-read=$r"
        r=$( (: > /dev/bound-fuse) 2>&1 ) && echo fuse-write=ok || echo "fuse-write=$r"
        r=$( (: < /dev/bound-loop-control) 2>&1 ) && echo loop=ok || echo "loop=$r"
        r=$( (echo x > /dev/null) 2>&1 ) && echo null=ok || echo "null=$r"
        """)
        let (_, seen) = try bundle.startProbe("conf-devcg")
        #expect(seen.complete, "\(seen)")
        let refused = "Operation not permitted"
        #expect(seen["fuse-read"]?.contains(refused) == false, "allowed for reading: \(seen)")
        #expect(seen["fuse-write"]?.contains(refused) == true, "the later rule denies writing: \(seen)")
        #expect(seen["loop"]?.contains(refused) == true, "no rule allows it: \(seen)")
        // The spec's default devices stay usable although the first rule denies everything.
        #expect(seen["null"] == "ok", "\(seen)")
        if cgroupVersion == .v1 {
            let list = cgroupFile(conformanceCgroup("devcg"), controller: "devices", "devices.list") ?? ""
            #expect(!list.contains("a *:* rwm"), "\(list)")
            #expect(list.split(separator: "\n").contains("c 10:229 r"), "\(list)")
        }
    }
}
