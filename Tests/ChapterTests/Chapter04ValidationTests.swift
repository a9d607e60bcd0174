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
        defer { bundle.remove(); _ = try? bundle.runtime(["delete", "--force", "userns"]) }
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
        defer { bundle.remove(); _ = try? bundle.runtime(["delete", "--force", "poststart"]) }
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
            for parent in Cleanup.cgroupParents() { _ = Cleanup.removeCgroupTree(parent.appending("ch04-cpuset"), report: { _ in }) }
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
}
