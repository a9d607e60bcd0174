// isorun update: runc's command for changing a running container's limits, read back from
// the cgroup files on either version, and compared with runc's own update; and kill --all,
// which containerd's CRI uses to stop containers.
import Foundation
import Isolation
import SystemPackage
import Testing

/// A container started by a runtime (isorun or runc) with a known cgroupsPath, and its
/// cgroup files read by name.
private struct UpdatedContainer {
    let folder: TemporaryFolder
    let runtime: String
    let id: String
    var cgroupPath: String { "/\(projectPrefix)/test-update-\(id)" }
    var stateRoot: String { folder.path + "/state" }

    /// A container with cpuset and blkio limits, so that runc and isorun both have those
    /// hierarchies on cgroup v1 (isorun joins only the controllers a limit needs).
    init(runtime: String, id: String, cpusetAndBlockIO: Bool = true) throws {
        self.runtime = runtime
        self.id = id
        folder = try TemporaryFolder("update-\(id)")
        try FileManager.default.createDirectory(atPath: folder.path + "/bundle", withIntermediateDirectories: true)
        var config = OCIConfig.defaultSpec(args: ["sleep", "600"], cgroupNamespace: CgroupMode.detect() == .unified)
        config.root = OCIConfig.Root(path: try builtInRootfs(), readonly: true)
        config.linux?.cgroupsPath = "/\(projectPrefix)/test-update-\(id)"
        var resources = config.linux?.resources ?? OCIConfig.Resources()
        if cpusetAndBlockIO { resources.cpu = OCIConfig.CPU(cpus: "0") }
        if cpusetAndBlockIO, FileManager.default.fileExists(atPath: "/sys/fs/cgroup/blkio") || FileManager.default.fileExists(atPath: "/sys/fs/cgroup/io.stat") {
            resources.blockIO = OCIConfig.BlockIO(weight: 500)
        }
        config.linux?.resources = resources
        try Data(config.encodedJSON()).write(to: URL(fileURLWithPath: folder.path + "/bundle/config.json"))
        let started = try call(["run", "--detach", "--bundle", folder.path + "/bundle", id])
        #expect(started.status == 0, "\(runtime) run: \(started)")
    }

    func call(_ arguments: [String]) throws -> RunResult {
        try runWithOutputInFiles(runtime, ["--root", stateRoot] + arguments, in: folder.path, timeout: 60)
    }

    func update(_ flags: [String]) throws -> RunResult { try call(["update"] + flags + [id]) }

    /// A cgroup file of the container: `memory.limit_in_bytes` is looked up in the memory
    /// hierarchy (v1), any name in the one directory on v2.
    func file(_ name: String) -> String {
        let path: String
        if CgroupMode.detect() == .unified {
            path = "/sys/fs/cgroup\(cgroupPath)/\(name)"
        } else {
            let controller = String(name.split(separator: ".").first!)
            path = "/sys/fs/cgroup/\(controller)\(cgroupPath)/\(name)"
        }
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing \(path)>").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func remove() {
        _ = try? call(["delete", "--force", id])
        folder.remove()
        // runc leaves the parent folder of a cgroupsPath in every hierarchy (the named
        // systemd one too): removed when empty.
        Cleanup.removeEmptyParents()
    }
}

/// What each update writes, as (flags, file, expected value) on this machine's cgroup version.
private func updateCases() -> [(flags: [String], file: String, expected: String)] {
    if CgroupMode.detect() == .unified {
        return [
            (["--memory", "64M"], "memory.max", "67108864"),
            (["--memory-reservation", "32M"], "memory.low", "33554432"),
            (["--cpu-share", "512"], "cpu.weight", "20"),
            (["--cpu-quota", "50000", "--cpu-period", "200000"], "cpu.max", "50000 200000"),
            (["--cpu-period", "100000"], "cpu.max", "50000 100000"),
            (["--cpu-quota", "-1"], "cpu.max", "max 100000"),
            (["--pids-limit", "20"], "pids.max", "20"),
            (["--pids-limit", "-1"], "pids.max", "max"),
            (["--cpuset-cpus", "0"], "cpuset.cpus", "0"),
            (["--memory", "-1"], "memory.max", "max"),
        ]
    }
    return [
        (["--memory", "64M"], "memory.limit_in_bytes", "67108864"),
        (["--memory", "64M", "--memory-swap", "128M"], "memory.memsw.limit_in_bytes", "134217728"),
        // Past the old memory+swap limit: memsw must grow first (the kernel refuses otherwise).
        (["--memory", "256M", "--memory-swap", "512M"], "memory.limit_in_bytes", "268435456"),
        (["--memory-reservation", "32M"], "memory.soft_limit_in_bytes", "33554432"),
        (["--cpu-share", "512"], "cpu.shares", "512"),
        (["--cpu-quota", "50000", "--cpu-period", "200000"], "cpu.cfs_quota_us", "50000"),
        (["--cpu-period", "100000"], "cpu.cfs_period_us", "100000"),
        (["--cpu-quota", "-1"], "cpu.cfs_quota_us", "-1"),
        (["--pids-limit", "20"], "pids.max", "20"),
        (["--pids-limit", "-1"], "pids.max", "max"),
        (["--cpuset-cpus", "0"], "cpuset.cpus", "0"),
        (["--blkio-weight", "300"], "blkio.bfq.weight", "300"),
        (["--memory", "-1"], "memory.limit_in_bytes", "9223372036854771712"),
    ]
}

@Suite("isorun update: a running container's limits changed, as runc's update does", .serialized, .enabled(if: isRoot, "cgroups need root"))
struct IsorunUpdateTests {
    @Test("each flag is read back from the cgroup files; runc's update writes the same values")
    func flagsAgainstRunc() throws {
        let ours = try UpdatedContainer(runtime: product("isorun"), id: "iso\(getpid())")
        defer { ours.remove() }
        let runc = Command.find("runc").map(\.string)
        let theirs = try runc.map { try UpdatedContainer(runtime: $0, id: "runc\(getpid())") }
        defer { theirs?.remove() }
        for (flags, file, expected) in updateCases() {
            let result = try ours.update(flags)
            #expect(result.status == 0, "isorun update \(flags): \(result)")
            #expect(ours.file(file) == expected, "isorun update \(flags.joined(separator: " ")): \(file)")
            if let theirs {
                let reference = try theirs.update(flags)
                #expect(reference.status == 0, "runc update \(flags): \(reference)")
                #expect(ours.file(file) == theirs.file(file), "\(flags.joined(separator: " ")): \(file) isorun \(ours.file(file)), runc \(theirs.file(file))")
            }
        }
    }

    @Test("-r FILE and -r - (standard input) take runc's linux.resources JSON, as containerd's shim sends it")
    func resourcesJSON() throws {
        let container = try UpdatedContainer(runtime: product("isorun"), id: "json\(getpid())")
        defer { container.remove() }
        let v2 = CgroupMode.detect() == .unified
        // containerd sends the whole object: zeros for "unset", empty cpusets, the device list.
        let json = #"{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":100663296},"cpu":{"shares":256,"quota":0,"period":0,"cpus":"","mems":""},"pids":{"limit":42}}"#
        let file = container.folder.path + "/resources.json"
        try Data(json.utf8).write(to: URL(fileURLWithPath: file))
        let fromFile = try container.update(["-r", file])
        #expect(fromFile.status == 0, "\(fromFile)")
        #expect(container.file(v2 ? "memory.max" : "memory.limit_in_bytes") == "100663296")
        #expect(container.file(v2 ? "cpu.weight" : "cpu.shares") == (v2 ? "10" : "256"))
        #expect(container.file("pids.max") == "42")
        #expect(container.file(v2 ? "cpu.max" : "cpu.cfs_quota_us") == (v2 ? "max 100000" : "-1"), "a zero quota is no change")

        let stdin = try run("/bin/sh", ["-c", "echo '{\"memory\":{\"limit\":83886080}}' | \"$0\" --root \"$1\" update -r - \"$2\"",
                                        product("isorun"), container.stateRoot, container.id], timeout: 60)
        #expect(stdin.status == 0, "\(stdin)")
        #expect(container.file(v2 ? "memory.max" : "memory.limit_in_bytes") == "83886080")

        // A field update cannot change, a malformed value, flags beside -r: errors, no change.
        for (label, contents) in [("hugepages", #"{"hugepageLimits":[{"pageSize":"2MB","limit":0}],"memory":{"limit":4194304}}"#),
                                  ("type", #"{"memory":{"limit":"lots"}}"#)] {
            try Data(contents.utf8).write(to: URL(fileURLWithPath: file))
            let refused = try container.update(["-r", file])
            #expect(refused.status != 0 && refused.stderr.contains(label == "hugepages" ? "hugepageLimits" : "linux.resources.memory.limit"), "\(label): \(refused)")
        }
        let both = try container.update(["-r", file, "--memory", "8M"])
        #expect(both.status != 0 && both.stderr.contains("not both"), "\(both)")
        #expect(container.file(v2 ? "memory.max" : "memory.limit_in_bytes") == "83886080", "refused updates changed nothing")
    }

    @Test("--cpuset-cpus and --blkio-weight on a container created without them: the controller joins the cgroup, delete removes it")
    func joinLater() throws {
        let container = try UpdatedContainer(runtime: product("isorun"), id: "join\(getpid())", cpusetAndBlockIO: false)
        defer { container.remove() }
        let v2 = CgroupMode.detect() == .unified
        let cpuset = v2 ? "/sys/fs/cgroup\(container.cgroupPath)/cpuset.cpus" : "/sys/fs/cgroup/cpuset\(container.cgroupPath)/cpuset.cpus"
        // (On v2 a parent may hand cpuset on already, for another cgroup of the project.)
        if !v2 { #expect(!FileManager.default.fileExists(atPath: cpuset), "created without a cpuset limit") }
        let initPID = try #require(try JSONSerialization.jsonObject(with: Data(container.call(["state", container.id]).stdout.utf8)) as? [String: Any])["pid"] as? Int
        let result = try container.update(["--cpuset-cpus", "0"])
        #expect(result.status == 0, "\(result)")
        #expect(container.file("cpuset.cpus") == "0")
        let membership = (try? String(contentsOfFile: "/proc/\(initPID ?? 0)/cgroup", encoding: .utf8)) ?? ""
        if !v2 {
            #expect(membership.split(separator: "\n").contains { $0.hasSuffix(":cpuset:\(container.cgroupPath)") }, "the init moved into the new cpuset: \(membership)")
            let allowed = (try? String(contentsOfFile: "/proc/\(initPID ?? 0)/status", encoding: .utf8))?.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
            #expect(allowed?.hasSuffix("\t0") == true, "the kernel applies it: \(allowed ?? "")")
        }
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/blkio") {
            let weight = try container.update(["--blkio-weight", "300"])
            #expect(weight.status == 0 && container.file("blkio.bfq.weight") == "300", "\(weight)")
        }
        #expect(try container.call(["delete", "--force", container.id]).status == 0)
        for hierarchy in ["cpuset", "blkio"] {
            #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(hierarchy)\(container.cgroupPath)"), "delete removed the \(hierarchy) folder")
        }
    }

    @Test("a value the kernel refuses leaves every file as it was and names the file; bad input changes nothing")
    func refusedValues() throws {
        let container = try UpdatedContainer(runtime: product("isorun"), id: "ref\(getpid())")
        defer { container.remove() }
        let v2 = CgroupMode.detect() == .unified
        let shares = v2 ? "cpu.weight" : "cpu.shares", pids = "pids.max"
        #expect(try container.update(["--cpu-share", "1024", "--pids-limit", "50"]).status == 0)
        let before = (container.file(shares), container.file(pids), container.file(v2 ? "cpu.max" : "cpu.cfs_quota_us"))
        // The shares are written first, then the kernel refuses a quota under 1 ms (EINVAL).
        let quota = try container.update(["--cpu-share", "300", "--cpu-quota", "500", "--pids-limit", "7"])
        #expect(quota.status != 0 && quota.stderr.contains("the kernel refused --cpu-quota") && quota.stderr.contains("EINVAL")
                && quota.stderr.contains("unchanged"), "\(quota)")
        #expect((container.file(shares), container.file(pids), container.file(v2 ? "cpu.max" : "cpu.cfs_quota_us")) == before)
        // CPUs that do not exist.
        let cpus = try container.update(["--cpuset-cpus", "4095"])
        #expect(cpus.status != 0 && cpus.stderr.contains("cpuset.cpus"), "\(cpus)")
        #expect(container.file("cpuset.cpus") == "0")
        if !v2 {
            // v1 refuses a limit below what the container uses (EBUSY) after trying to reclaim.
            let memory = container.file("memory.limit_in_bytes")
            let tight = try container.update(["--memory", "4K"])
            #expect(tight.status != 0 && tight.stderr.contains("EBUSY"), "\(tight)")
            #expect(container.file("memory.limit_in_bytes") == memory)
        }
        for (flags, words) in [(["--memory", "lots"], "unknown unit"), (["--memory-swap", "-5"], "not a size"), (["--pids-limit", "-5"], "negative"),
                               (["--cpuset-cpus", "0-"], "not a CPU list"), (["--blkio-weight", "5"], "10 to 1000"), ([], "nothing to update")] {
            let bad = try container.update(flags)
            #expect(bad.status != 0 && bad.stderr.contains(words), "\(flags): \(bad)")
        }
        #expect((container.file(shares), container.file(pids)) == (before.0, before.1))
        let missing = try runWithOutputInFiles(product("isorun"), ["--root", container.stateRoot, "update", "--memory", "8M", "no-such"],
                                               in: container.folder.path, timeout: 30)
        #expect(missing.status != 0 && missing.stderr.contains("no-such"), "\(missing)")
    }
}

@Suite("isorun kill --all: every process in the container's cgroup, as runc's, for containerd's CRI", .serialized,
       .enabled(if: isRoot, "a runtime needs root"))
struct IsorunKillAllTests {
    @Test("--all reaches the exec'd processes too; on a stopped container it is no error, without --all runc's words")
    func killAll() throws {
        let container = try UpdatedContainer(runtime: product("isorun"), id: "kall\(getpid())")
        defer { container.remove() }
        let pidFile = container.folder.path + "/exec.pid"
        #expect(try container.call(["exec", "--detach", "--pid-file", pidFile, container.id, "sleep", "300"]).status == 0)
        let execPID = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let initPID = try #require(try JSONSerialization.jsonObject(with: Data(container.call(["state", container.id]).stdout.utf8)) as? [String: Any])["pid"] as? Int
        #expect(try container.call(["kill", "--all", container.id, "KILL"]).status == 0)
        for _ in 0..<200 where !(processEnded(execPID) && processEnded(pid_t(initPID ?? 0))) { usleep(10_000) }
        #expect(processEnded(execPID) && processEnded(pid_t(initPID ?? 0)), "both the init and the exec'd process got SIGKILL")
        for _ in 0..<200 where try container.call(["state", container.id]).stdout.contains("running") { usleep(10_000) }
        let again = try container.call(["kill", "--all", container.id, "KILL"])
        #expect(again.status == 0, "a stopped container with an empty cgroup: nothing to signal, no error: \(again)")
        let plain = try container.call(["kill", container.id, "KILL"])
        #expect(plain.status != 0 && plain.stderr.contains("container not running"), "containerd's shim reads runc's words: \(plain)")
    }

    @Test("--all on a paused container: the processes are thawed and end, as with runc")
    func killAllPaused() throws {
        let container = try UpdatedContainer(runtime: product("isorun"), id: "kpau\(getpid())")
        defer { container.remove() }
        let initPID = try #require(try JSONSerialization.jsonObject(with: Data(container.call(["state", container.id]).stdout.utf8)) as? [String: Any])["pid"] as? Int
        #expect(try container.call(["pause", container.id]).status == 0)
        #expect(try container.call(["kill", "--all", container.id, "KILL"]).status == 0)
        for _ in 0..<200 where !processEnded(pid_t(initPID ?? 0)) { usleep(10_000) }
        #expect(processEnded(pid_t(initPID ?? 0)), "a frozen process acts on SIGKILL once thawed")
    }
}
