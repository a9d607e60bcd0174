// config-linux.md "Namespaces", "User namespace mappings", "Offset for Time Namespace",
// config.md "Hostname" and "Domainname": namespace identities compared from outside
// (/proc/PID/ns/*), and what the probe sees inside them.
import Foundation
import Isolation
import SystemPackage
import Testing

let namespaceProcNames: [(OCIConfig.NamespaceType, String)] = [
    (.pid, "pid"), (.network, "net"), (.ipc, "ipc"), (.uts, "uts"), (.mount, "mnt"), (.cgroup, "cgroup"), (.user, "user"), (.time, "time"),
]
let hasTimeNamespaces = FileManager.default.fileExists(atPath: "/proc/self/ns/time")
let hasUserNamespaces = ((try? String(contentsOfFile: "/proc/sys/user/max_user_namespaces", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0) > 0

@Suite("Conformance: config-linux.md#namespaces", .serialized, .enabled(if: canProbe, "needs root and a static busybox"))
struct ConformanceNamespaces {
    @Test("config-linux.md#namespaces: each namespace listed is new, each one left out is the runtime's")
    func newOrInherited() throws {
        let all: [OCIConfig.NamespaceType] = [.pid, .network, .ipc, .uts, .mount, .cgroup] + (hasTimeNamespaces ? [.time] : [])
        let bundle = try TestBundle(conformance: "ns-new") { $0.linux?.namespaces = all.map { OCIConfig.Namespace(type: $0) } }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-all"]).status == 0)
        let allPID = try #require(try bundle.pid("conf-all"))
        var only = try OCIConfig.load(bundle: FilePath(bundle.path))
        only.linux?.namespaces = [OCIConfig.Namespace(type: .mount)]
        only.hostname = nil
        try bundle.write(only)
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-mnt-only"]).status == 0)
        let onlyPID = try #require(try bundle.pid("conf-mnt-only"))
        for (type, name) in namespaceProcNames {
            let host = namespaceLink(nil, name)
            if all.contains(type) {
                #expect(namespaceLink(allPID, name) != host, "\(name) was listed but is the host's")
            } else {
                #expect(namespaceLink(allPID, name) == host, "\(name) was not listed but is new")
            }
            if type != .mount {
                #expect(namespaceLink(onlyPID, name) == host, "\(name) was not listed but is new")
            }
        }
        #expect(namespaceLink(onlyPID, "mnt") != namespaceLink(nil, "mnt"))
    }

    @Test("config-linux.md#namespaces: a path joins that namespace (pid, network, ipc, uts, cgroup)")
    func joinByPath() throws {
        let bundle = try TestBundle(conformance: "ns-join") { config in
            config.linux?.namespaces = [.pid, .network, .ipc, .uts, .mount, .cgroup].map { OCIConfig.Namespace(type: $0) }
        }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-first"]).status == 0)
        let first = try #require(try bundle.pid("conf-first"))
        var joiner = try OCIConfig.load(bundle: FilePath(bundle.path))
        let joined: [(OCIConfig.NamespaceType, String)] = [(.pid, "pid"), (.network, "net"), (.ipc, "ipc"), (.uts, "uts"), (.cgroup, "cgroup")]
        joiner.linux?.namespaces = joined.map { OCIConfig.Namespace(type: $0.0, path: "/proc/\(first)/ns/\($0.1)") } + [OCIConfig.Namespace(type: .mount)]
        joiner.hostname = nil
        try bundle.write(joiner)
        let created = try bundle.runtime(["create", "--bundle", bundle.path, "conf-second"])
        #expect(created.status == 0, "\(created)")
        let second = try #require(try bundle.pid("conf-second"))
        for (_, name) in joined {
            #expect(namespaceLink(second, name) == namespaceLink(first, name), "\(name) was not joined")
        }
        #expect(namespaceLink(second, "mnt") != namespaceLink(first, "mnt"))
        // In the first container's PID namespace, the second's init is not PID 1.
        let nspid = procStatus(second)["NSpid"]?.split(separator: " ") ?? []
        #expect(nspid.count == 2 && nspid.last != "1", "\(nspid)")
    }

    @Test("config-linux.md#namespaces: a user namespace given by path is joined, with its mappings",
          .enabled(if: hasUserNamespaces, "this kernel allows no user namespaces"))
    func joinUserByPath() throws {
        let bundle = try TestBundle(conformance: "ns-join-user") { config in
            config.linux?.namespaces?.append(OCIConfig.Namespace(type: .user))
            config.linux?.uidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 210_000, size: 65536)]
            config.linux?.gidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 210_000, size: 65536)]
        }
        defer { bundle.removeAll() }
        let first = try bundle.runtime(["create", "--bundle", bundle.path, "conf-first"])
        try #require(first.status == 0, "\(first)")
        let firstPID = try #require(try bundle.pid("conf-first"))
        var joiner = try OCIConfig.load(bundle: FilePath(bundle.path))
        joiner.linux?.namespaces = [OCIConfig.Namespace(type: .user, path: "/proc/\(firstPID)/ns/user"),
                                    OCIConfig.Namespace(type: .network, path: "/proc/\(firstPID)/ns/net"),
                                    OCIConfig.Namespace(type: .pid), OCIConfig.Namespace(type: .ipc), OCIConfig.Namespace(type: .uts),
                                    OCIConfig.Namespace(type: .mount)]
        joiner.linux?.uidMappings = nil
        joiner.linux?.gidMappings = nil
        try bundle.write(joiner)
        let second = try bundle.runtime(["create", "--bundle", bundle.path, "conf-second"])
        #expect(second.status == 0, "\(second)")
        let secondPID = try #require(try bundle.pid("conf-second"))
        #expect(namespaceLink(secondPID, "user") == namespaceLink(firstPID, "user"))
        #expect(namespaceLink(secondPID, "net") == namespaceLink(firstPID, "net"))
        #expect(namespaceLink(secondPID, "uts") != namespaceLink(firstPID, "uts"))
        // Root inside the joined namespace is its mapped ID on the host.
        #expect(procStatus(secondPID)["Uid"] == "210000 210000 210000 210000", "\(procStatus(secondPID))")
    }

    @Test("config-linux.md#namespaces: a mount namespace given by path is joined: the container sees that namespace's mounts",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), "needs unshare(1) for a namespace holder"))
    func joinMountByPath() throws {
        let bundle = try TestBundle(conformance: "ns-join-mnt", args: probeThenSleep)
        defer { bundle.removeAll() }
        try FileManager.default.createDirectory(atPath: bundle.rootfs + "/srv/held", withIntermediateDirectories: true)
        // A holder with its own mount namespace and, only there, a tmpfs inside the bundle's root.
        let holder = try TestProcess("/usr/bin/unshare", ["--mount", "--propagation", "private", "sh", "-c",
                                                          "mount -t tmpfs -o size=1m held-by-holder \(bundle.rootfs)/srv/held && exec sleep 60"])
        defer { holder.stop() }
        let holderPID = holder.pid
        var ready = false
        for _ in 0..<300 where !ready {
            ready = ((try? MountInfo.table(of: holderPID)) ?? []).contains { $0.source == "held-by-holder" }
            if !ready { usleep(10_000) }
        }
        try #require(ready, "the holder did not mount its tmpfs")
        #expect(mounts(under: bundle.rootfs + "/srv/held").isEmpty, "the holder's mount must not be on the host")

        var config = try OCIConfig.load(bundle: FilePath(bundle.path))
        let namespaces = (config.linux?.namespaces ?? []).map { $0.type == .mount ? OCIConfig.Namespace(type: .mount, path: "/proc/\(holderPID)/ns/mnt") : $0 }
        config.linux?.namespaces = namespaces
        try bundle.write(config)
        // One container only: its pivot_root happens in the joined namespace, for the holder too.
        let (pid, seen) = try bundle.startProbe("conf-joined")
        #expect(namespaceLink(pid, "mnt") == namespaceLink(holderPID, "mnt"), "the mount namespace was not joined")
        #expect(seen.complete, "\(seen)")
        #expect(seen.mount(at: "/srv/held")?.source == "held-by-holder", "the holder's mount, seen inside: \(seen.all("mountinfo"))")
    }

    @Test("config-linux.md#namespaces: a path to a namespace of another type is an error that leaves nothing")
    func wrongTypePath() throws {
        let bundle = try TestBundle(conformance: "ns-wrong") { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("ns-wrong")
            let namespaces = (config.linux?.namespaces ?? []).map { $0.type == .network ? OCIConfig.Namespace(type: .network, path: "/proc/self/ns/uts") : $0 }
            config.linux?.namespaces = namespaces
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-wrong"])
        #expect(result.status != 0 && result.stderr.contains("/proc/self/ns/uts"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-wrong"))
        #expect(!cgroupExists(conformanceCgroup("ns-wrong")))
    }

    @Test("config-linux.md#namespaces: the same type twice is an error")
    func duplicateType() throws {
        let bundle = try TestBundle(conformance: "ns-dup") { config in
            config.linux?.namespaces?.append(OCIConfig.Namespace(type: .network))
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-dup"])
        #expect(result.status != 0 && result.stderr.contains("network"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-dup"))
    }

    @Test("config-linux.md#user-namespace-mappings: uid_map and gid_map as configured; root inside is the mapped ID outside",
          .enabled(if: hasUserNamespaces, "this kernel allows no user namespaces"))
    func userNamespace() throws {
        let bundle = try TestBundle(conformance: "userns", args: probeThenSleep) { config in
            config.linux?.namespaces?.append(OCIConfig.Namespace(type: .user))
            config.linux?.uidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 200_000, size: 65536)]
            config.linux?.gidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 300_000, size: 65536)]
        }
        defer { bundle.removeAll() }
        let (pid, seen) = try bundle.startProbe("conf-userns")
        #expect(seen.complete, "\(seen)")
        #expect(seen["Uid"] == "0 0 0 0" && seen["Gid"] == "0 0 0 0", "\(seen)")
        #expect(seen["ns.user"] != namespaceLink(nil, "user"))
        let uidMap = try String(contentsOfFile: "/proc/\(pid)/uid_map", encoding: .utf8).split(separator: " ")
        let gidMap = try String(contentsOfFile: "/proc/\(pid)/gid_map", encoding: .utf8).split(separator: " ")
        #expect(uidMap.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } == ["0", "200000", "65536"], "\(uidMap)")
        #expect(gidMap.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } == ["0", "300000", "65536"], "\(gidMap)")
        #expect(procStatus(pid)["Uid"] == "200000 200000 200000 200000", "\(procStatus(pid))")
        #expect(procStatus(pid)["Gid"] == "300000 300000 300000 300000")
        let attributes = try FileManager.default.attributesOfItem(atPath: bundle.rootfs + "/tmp/probe.out")
        #expect(attributes[.ownerAccountID] as? Int == 200_000, "a file made by root inside belongs to the mapped ID")
    }

    @Test("config-linux.md#offset-for-time-namespace: timeOffsets in the container's time namespace",
          .enabled(if: hasTimeNamespaces, "time namespaces need Linux 5.6 or later"))
    func timeOffsets() throws {
        let bundle = try TestBundle(conformance: "timens", args: ["/probe"]) { config in
            config.linux?.namespaces?.append(OCIConfig.Namespace(type: .time))
            config.linux?.timeOffsets = ["boottime": OCIConfig.TimeOffset(secs: 1_000_000), "monotonic": OCIConfig.TimeOffset(secs: 2_000_000)]
        }
        defer { bundle.removeAll() }
        // /proc/PID/timens_offsets shows the namespace of PID's children, and a forked
        // cut would read its own clock: the shell reads /proc/uptime itself (a builtin),
        // so the process the runtime started is checked, not only what it forks.
        try bundle.probeExtra("sed 's/^/timens=/' /proc/$$/timens_offsets; read -r up idle < /proc/uptime; echo \"uptime=${up%%.*}\"\n")
        let hostUptime = Int(try String(contentsOfFile: "/proc/uptime", encoding: .utf8).split(separator: ".")[0])!
        let (result, seen) = try bundle.probe("conf-timens")
        #expect(result.status == 0 && seen.complete, "\(result)")
        let offsets = Set(seen.all("timens").map { $0.split(separator: " ").filter { !$0.isEmpty }.joined(separator: " ") })
        #expect(offsets == ["monotonic 2000000 0", "boottime 1000000 0"], "\(seen.all("timens"))")
        let uptime = Int(seen["uptime"] ?? "") ?? 0
        #expect(uptime >= hostUptime + 1_000_000 && uptime < hostUptime + 1_000_100, "uptime \(uptime), host's \(hostUptime)")
        #expect(seen["ns.time"] != namespaceLink(nil, "time"))
    }

    @Test("config-linux.md#offset-for-time-namespace: the container's process and an exec'd one are in its time namespace",
          .enabled(if: hasTimeNamespaces, "time namespaces need Linux 5.6 or later"))
    func timeOffsetsExec() throws {
        let bundle = try TestBundle(conformance: "timens-exec", args: probeThenSleep) { config in
            config.linux?.namespaces?.append(OCIConfig.Namespace(type: .time))
            config.linux?.timeOffsets = ["monotonic": OCIConfig.TimeOffset(secs: 2_000_000)]
        }
        defer { bundle.removeAll() }
        let (pid, _) = try bundle.startProbe("conf-timens-exec")
        let container = namespaceLink(pid, "time")
        #expect(container != nil && container != namespaceLink(nil, "time"), "the process stayed in the host's time namespace")
        let exec = try bundle.runtime(["exec", "conf-timens-exec", "sh", "-c", "readlink /proc/$$/ns/time; grep monotonic /proc/$$/timens_offsets"])
        let lines = exec.stdout.split(separator: "\n").map { $0.split(separator: " ").filter { !$0.isEmpty }.joined(separator: " ") }
        #expect(exec.status == 0 && lines == [container ?? "", "monotonic 2000000 0"], "\(exec)")
    }

    @Test("config-linux.md#namespaces: in a new cgroup namespace the container's own cgroup is its root")
    func cgroupNamespace() throws {
        let bundle = try TestBundle(conformance: "cgroupns", args: probeThenSleep) { config in
            if !(config.linux?.namespaces ?? []).contains(where: { $0.type == .cgroup }) {
                config.linux?.namespaces?.append(OCIConfig.Namespace(type: .cgroup))
            }
            config.linux?.cgroupsPath = "/" + conformanceCgroup("cgroupns")
        }
        defer { bundle.removeAll() }
        let (pid, seen) = try bundle.startProbe("conf-cgns")
        let inside = seen.all("cgroup")
        #expect(!inside.isEmpty && inside.allSatisfy { $0.hasSuffix(":/") }, "\(inside)")
        let outside = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8).split(separator: "\n")
        #expect(outside.contains { $0.hasSuffix(":/" + conformanceCgroup("cgroupns")) }, "\(outside)")
    }

    @Test("config.md#hostname, #domainname: set in the container's UTS namespace; the host's names are unchanged")
    func hostnameAndDomainname() throws {
        let hostName = ProcessInfo.processInfo.hostName
        let hostDomain = try String(contentsOfFile: "/proc/sys/kernel/domainname", encoding: .utf8)
        let bundle = try TestBundle(conformance: "uts", args: ["/probe"]) { config in
            config.hostname = "conformance-host"
            config.domainname = "conformance.example"
        }
        defer { bundle.removeAll() }
        let (result, seen) = try bundle.probe("conf-uts")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen["hostname"] == "conformance-host" && seen["domainname"] == "conformance.example", "\(seen)")
        #expect(seen["ns.uts"] != namespaceLink(nil, "uts"))
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        #expect(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) == hostName)
        #expect(try String(contentsOfFile: "/proc/sys/kernel/domainname", encoding: .utf8) == hostDomain)
    }
}
