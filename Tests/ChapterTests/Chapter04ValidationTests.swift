// Chapter 04: behaviours the OCI runtime-tools validation suite found missing or wrong,
// each observed from outside (/proc, cgroup files, state) or by a probe inside.
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("chapter-04: what the OCI validation suite checks", .serialized, .enabled(if: isRoot, "a runtime needs root"))
struct Chapter04ValidationTests {
    @Test("a user namespace whose root is not the host's root: the init becomes it, and keeps its capabilities")
    func userNamespaceRootIsMapped() throws {
        let bundle = try TestBundle("userns") { config in
            config.linux?.namespaces?.append(OCIConfig.Namespace(type: .user))
            config.linux?.uidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 100_000, size: 65_536)]
            config.linux?.gidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 100_000, size: 65_536)]
        }
        defer { _ = try? bundle.runtime(["delete", "--force", "userns"]); bundle.remove() }
        let run = try bundle.runtime(["run", "--detach", "--bundle", bundle.path, "userns"])
        #expect(run.status == 0, "\(run)")
        let pid = try #require(try bundle.state("userns")?["pid"] as? Int)
        // Seen from the host: the process is host uid/gid 100000 (the namespace's 0), with
        // the config's capabilities (runc spec: AUDIT_WRITE, KILL, NET_BIND_SERVICE).
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let fields = Dictionary(status.split(separator: "\n").map { line -> (String, String) in
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }, uniquingKeysWith: { a, _ in a })
        #expect(fields["Uid"]?.split(separator: "\t").map(String.init) == ["100000", "100000", "100000", "100000"], "\(status)")
        #expect(fields["Gid"]?.split(separator: "\t").first == "100000", "\(status)")
        #expect(fields["CapEff"] == "0000000020000420", "\(status)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/user")
                != FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user"))
        #expect(try bundle.runtime(["delete", "--force", "userns"]).status == 0)
        #expect(containerCgroups("userns").isEmpty)
    }

    @Test("process.cwd is entered before a seccomp profile that denies getcwd(2) is installed")
    func cwdBeforeSeccomp() throws {
        let bundle = try TestBundle("cwd-seccomp", args: ["sh", "-c", "echo cwd=$(readlink /proc/self/cwd)"]) { config in
            config.process?.cwd = "/tmp"
            config.process?.noNewPrivileges = false
            config.linux?.seccomp = OCIConfig.Seccomp(defaultAction: .allow, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                                                      syscalls: [OCIConfig.Syscall(names: ["getcwd"], action: .errno, errnoRet: 1)])
        }
        defer { bundle.remove() }
        let result = try bundle.runtime(["run", "--bundle", bundle.path, "cwd-seccomp"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "cwd=/tmp\n", "\(result)")
    }

    @Test("poststart hooks see the container running, with its PID, even when the process has already ended")
    func poststartState() throws {
        let folder = try TemporaryFolder("ch04-poststart")
        defer { folder.remove() }
        let log = folder.path + "/poststart.json"
        let bundle = try TestBundle("poststart", args: ["true"]) { config in
            config.hooks = OCIConfig.Hooks(poststart: [OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "sleep 0.2; cat > \(log)"])])
        }
        defer { _ = try? bundle.runtime(["delete", "--force", "poststart"]); bundle.remove() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "poststart"]).status == 0)
        let pid = try #require(try bundle.state("poststart")?["pid"] as? Int)
        #expect(try bundle.runtime(["start", "poststart"]).status == 0)
        #expect(try bundle.waitFor("poststart", "stopped"))
        let state = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: log))) as? [String: Any])
        #expect(state["status"] as? String == "running", "\(state)")
        #expect(state["pid"] as? Int == pid, "\(state)")
        #expect(state["id"] as? String == "poststart")
        #expect(try bundle.runtime(["delete", "poststart"]).status == 0)
    }

    @Test("a cpuset below new parent cgroups: each v1 level gets its parent's cpus and mems first")
    func nestedCpuset() throws {
        let path = "\(projectPrefix)/ch04-cpuset/level/leaf"
        let bundle = try TestBundle("cpuset") { config in
            config.linux?.cgroupsPath = path
            config.linux?.resources = OCIConfig.Resources(cpu: OCIConfig.CPU(cpus: "0"))
        }
        defer {
            bundle.remove()
            _ = try? bundle.runtime(["delete", "--force", "cpuset"])
            for parent in Cleanup.cgroupParents() {
                _ = Cleanup.removeCgroupTree(parent.appending("ch04-cpuset"), report: { _ in })
                rmdir(parent.string)  // our isolation/ too, unless other cgroups of ours are in it
            }
        }
        let create = try bundle.runtime(["create", "--bundle", bundle.path, "cpuset"])
        #expect(create.status == 0, "\(create)")
        let v1 = "/sys/fs/cgroup/cpuset/\(path)/cpuset.cpus", v2 = "/sys/fs/cgroup/\(path)/cpuset.cpus"
        let file = FileManager.default.fileExists(atPath: v1) ? v1 : v2
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "0\n")
        let pid = try #require(try bundle.state("cpuset")?["pid"] as? Int)
        #expect(try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8).contains("Cpus_allowed_list:\t0\n"))
        #expect(try bundle.runtime(["delete", "--force", "cpuset"]).status == 0)
    }

    @Test("no mount namespace in the config: the container shares the host's mount table, chroots, and delete takes its mounts away")
    func withoutMountNamespace() throws {
        let rootfs = try builtInRootfs()
        let bundle = try TestBundle("nomnt") { config in
            let namespaces = config.linux?.namespaces ?? []
            config.linux?.namespaces = namespaces.filter { $0.type != .mount }
        }
        defer { _ = try? bundle.runtime(["delete", "--force", "nomnt"]); bundle.remove() }
        #expect(mounts(under: rootfs).isEmpty)
        let create = try bundle.runtime(["create", "--bundle", bundle.path, "nomnt"])
        #expect(create.status == 0, "\(create)")
        let pid = try #require(try bundle.state("nomnt")?["pid"] as? Int)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
                == FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/root") == rootfs)
        // Its /proc, /dev … are host mounts below the root filesystem, as runc makes them.
        #expect(mounts(under: rootfs).contains(rootfs + "/proc"), "\(mounts(under: rootfs))")
        #expect(try bundle.runtime(["start", "nomnt"]).status == 0)
        let probe = try bundle.runtime(["exec", "nomnt", "sh", "-c", "test -e /etc/isolation-rootfs && echo in-rootfs; echo pid=$$"])
        #expect(probe.stdout == "in-rootfs\npid=2\n", "exec enters the container's root: \(probe)")
        #expect(try bundle.runtime(["delete", "--force", "nomnt"]).status == 0)
        #expect(mounts(under: rootfs).isEmpty, "delete must unmount what create mounted on the host")
        #expect(containerCgroups("nomnt").isEmpty)
    }

    @Test("linux.resources memory extras and block I/O: written to the cgroup files, a clear error where the kernel or cgroup version has no such limit")
    func moreResources() throws {
        // A whole disk (throttling needs one): a real one first, else a loop device.
        let disk = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? [])
            .filter { !$0.hasPrefix("zram") && !$0.hasPrefix("ram") }.sorted { ($0.hasPrefix("loop") ? 1 : 0, $0) < ($1.hasPrefix("loop") ? 1 : 0, $1) }
            .compactMap { try? String(contentsOfFile: "/sys/block/\($0)/dev", encoding: .utf8) }.first?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let numbers = disk.map { $0.split(separator: ":").compactMap { Int64($0) } } ?? []
        let throttle = numbers.count == 2
            ? OCIConfig.BlockIO(throttleReadBpsDevice: [OCIConfig.ThrottleDevice(major: numbers[0], minor: numbers[1], rate: 1 << 20)]) : nil
        func read(_ controller: String, _ id: String, _ file: String) -> String? {
            let path = CgroupMode.detect() == .unified ? "/sys/fs/cgroup/\(projectPrefix)/\(id)/\(file)" : "/sys/fs/cgroup/\(controller)/\(projectPrefix)/\(id)/\(file)"
            return (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let bundle = try TestBundle("resources") { config in
            config.linux?.resources = OCIConfig.Resources(
                memory: OCIConfig.Memory(limit: 64 << 20, reservation: 32 << 20, kernelTCP: 16 << 20, swappiness: 10, disableOOMKiller: true),
                blockIO: throttle)
        }
        defer { _ = try? bundle.runtime(["delete", "--force", "resources"]); bundle.remove() }
        let create = try bundle.runtime(["create", "--bundle", bundle.path, "resources"])
        if CgroupMode.detect() == .unified {
            // v2 has no TCP memory limit: refused, by name, and nothing made. (No swappiness
            // or oom_control either: those are ignored, as runc does.)
            #expect(create.status != 0 && create.stderr.contains("memory.kernelTCP") && !create.stderr.contains("swappiness"), "\(create)")
            #expect(containerCgroups("resources").isEmpty)
            // What v2 has: memory.low for the reservation, io.max for a throttle.
            let v2 = try TestBundle("resources-v2") { config in
                config.linux?.resources = OCIConfig.Resources(memory: OCIConfig.Memory(limit: 64 << 20, reservation: 32 << 20), blockIO: throttle)
            }
            defer { v2.remove(); _ = try? v2.runtime(["delete", "--force", "v2"]) }
            let created = try v2.runtime(["create", "--bundle", v2.path, "v2"])
            #expect(created.status == 0, "\(created)")
            #expect(read("memory", "v2", "memory.low") == "\(32 << 20)")
            if let disk, throttle != nil { #expect(read("io", "v2", "io.max")?.hasPrefix("\(disk) rbps=\(1 << 20) ") == true, "\(read("io", "v2", "io.max") ?? "")") }
            #expect(try v2.runtime(["delete", "--force", "v2"]).status == 0)
            return
        }
        #expect(create.status == 0, "\(create)")
        #expect(read("memory", "resources", "memory.soft_limit_in_bytes") == "\(32 << 20)")
        #expect(read("memory", "resources", "memory.swappiness") == "10")
        #expect(read("memory", "resources", "memory.oom_control")?.hasPrefix("oom_kill_disable 1") == true)
        #expect(read("memory", "resources", "memory.kmem.tcp.limit_in_bytes") == "\(16 << 20)")
        if let disk, throttle != nil { #expect(read("blkio", "resources", "blkio.throttle.read_bps_device") == "\(disk) \(1 << 20)") }
        #expect(try bundle.runtime(["delete", "--force", "resources"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/blkio/\(projectPrefix)/resources"), "delete removes the blkio cgroup too")

        // A kernel memory limit this kernel accepts but ignores (Linux 5.4 on) is an error, not a silent no-op.
        let kernel = try TestBundle("kmem") { config in
            config.linux?.resources = OCIConfig.Resources(memory: OCIConfig.Memory(limit: 64 << 20, kernel: 64 << 20))
        }
        defer { kernel.remove() }
        let refused = try kernel.runtime(["create", "--bundle", kernel.path, "kmem"])
        if refused.status == 0 {
            // An older kernel that still applies kernel memory limits.
            #expect(read("memory", "kmem", "memory.kmem.limit_in_bytes") == "\(64 << 20)")
            #expect(try kernel.runtime(["delete", "--force", "kmem"]).status == 0)
        } else {
            #expect(refused.stderr.contains("memory.kernel") && refused.stderr.contains("ignores it"), "\(refused)")
            #expect(containerCgroups("kmem").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: kernel.stateRoot + "/kmem"))
        }
    }

    @Test("linux.resources.network on cgroup v1: classid and ifpriomap in a net_cls,net_prio hierarchy mounted as one",
          .enabled(if: CgroupMode.detect() != .unified, "net_cls and net_prio are cgroup v1 controllers"))
    func networkClassAndPriority() throws {
        let bundle = try TestBundle("netcls") { config in
            config.linux?.resources = OCIConfig.Resources(network: OCIConfig.Network(classID: 0x100001, priorities: [OCIConfig.InterfacePriority(name: "lo", priority: 7)]))
        }
        defer { bundle.remove() }
        // The host may not mount these controllers: in a private mount namespace of a
        // child shell, /sys/fs/cgroup is rebuilt on a tmpfs with the host's hierarchies
        // bound back and net_cls,net_prio mounted together (the usual layout).
        let script = """
        set -e
        saved=\(bundle.folder.path)/cgroup
        mkdir -p $saved
        mount --rbind /sys/fs/cgroup $saved
        mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
        for h in $(ls $saved); do
          if [ -L $saved/$h ]; then ln -s $(readlink $saved/$h) /sys/fs/cgroup/$h; else mkdir /sys/fs/cgroup/$h; mount --rbind $saved/$h /sys/fs/cgroup/$h; fi
        done
        if [ ! -e /sys/fs/cgroup/net_cls ]; then
          mkdir /sys/fs/cgroup/net_cls,net_prio
          mount -t cgroup -o net_cls,net_prio cgroup /sys/fs/cgroup/net_cls,net_prio
          ln -s net_cls,net_prio /sys/fs/cgroup/net_cls; ln -s net_cls,net_prio /sys/fs/cgroup/net_prio
        fi
        rc=0
        \(product("chapter-04")) --root \(bundle.stateRoot) create --bundle \(bundle.path) netcls || rc=$?
        echo classid=$(cat /sys/fs/cgroup/net_cls/\(projectPrefix)/netcls/net_cls.classid)
        echo prio=$(grep '^lo ' /sys/fs/cgroup/net_prio/\(projectPrefix)/netcls/net_prio.ifpriomap)
        \(product("chapter-04")) --root \(bundle.stateRoot) delete --force netcls || rc=$?
        test -e /sys/fs/cgroup/net_cls/\(projectPrefix)/netcls && echo left-behind
        rmdir /sys/fs/cgroup/net_cls/\(projectPrefix) 2>/dev/null || true
        exit $rc
        """
        let result = try run("/usr/bin/unshare", ["-m", "--propagation", "private", "sh", "-c", script])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("classid=\(0x100001)\n"), "\(result)")
        #expect(result.stdout.contains("prio=lo 7\n"), "\(result)")
        #expect(!result.stdout.contains("left-behind"), "\(result)")
    }

    /// A capability the test process (root, as the runtime will be) lacks in its bounding set, if any.
    static let missingCapability: String? = {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapBnd:") }),
              let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
        let last = Int32((try? String(contentsOfFile: "/proc/sys/kernel/cap_last_cap", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 40
        return (0...last).first { mask & (1 << UInt64($0)) == 0 }.map { Capability(rawValue: $0).description.uppercased() }
    }()

    @Test("a capability the runtime's own bounding set lacks: an error that names it, and nothing left",
          .enabled(if: missingCapability != nil, "every capability is in this process's bounding set"))
    func capabilityOutsideBoundingSet() throws {
        let name = try #require(Self.missingCapability)
        let bundle = try TestBundle("capbnd") { config in
            config.process?.capabilities?.bounding?.append(name)
            config.process?.capabilities?.permitted?.append(name)
            config.process?.capabilities?.effective?.append(name)
        }
        defer { bundle.remove(); _ = try? bundle.runtime(["delete", "--force", "capbnd"]) }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "capbnd"])
        #expect(result.status != 0 && result.stderr.contains(name) && result.stderr.contains("bounding set lacks"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/capbnd"))
        #expect(containerCgroups("capbnd").isEmpty)
    }
}
