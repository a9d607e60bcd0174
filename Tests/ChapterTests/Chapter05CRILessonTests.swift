// Chapter 05's CRI act (`chapter-05 cri`): the kubelet's calls, one line each, and the
// isorun commands each one caused, read from its output; at 80 columns; and nothing left
// of its containerd, pod, network namespace, cgroups, mounts or leases after.
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("chapter-05 cri: the lesson's CRI act", .serialized, .enabled(if: isRoot, "containerd and its runtimes need root"))
struct Chapter05CRILessonTests {
    @Test("the kubelet's calls, each followed by the isorun commands it caused, at 80 columns; nothing left",
          .enabled(if: containerdInstalled, "containerd is not installed: apt-get install containerd"),
          .enabled(if: pythonWithGRPC != nil, "the CRI client needs Python's grpcio: pip install grpcio"),
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/loopback"), "apt-get install containernetworking-plugins"))
    func act() throws {
        let netnsMountedBefore = mounts(under: "/run/netns").contains("/run/netns")
        _ = try builtInRootfs()
        let folder = try TemporaryFolder("ch05-cri-lesson")
        defer { folder.remove() }
        let runDirectoryExisted = FileManager.default.fileExists(atPath: "/run/containerd")
        let linksBefore = Set((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [])
        // python3 with grpcio first in PATH, as a user's virtual environment would be.
        let python = URL(fileURLWithPath: pythonWithGRPC!).deletingLastPathComponent().path
        let result = try runEngine(product("chapter-05"), ["cri"], environment: ["PATH": "\(python):/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1",
                                                                                 "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/root"],
                                   in: folder.path, timeout: 300)
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for line in lines { #expect(line.count <= 80, "wider than 80 columns: \(line)") }

        // "  Method about → answer", then "      isorun …" (continued lines indented deeper).
        var calls: [(call: String, commands: [String])] = []
        for line in lines {
            if line.hasPrefix("  "), let first = line.dropFirst(2).first, first.isUppercase, line.contains(" → ") {
                calls.append((line.trimmingCharacters(in: .whitespaces), []))
            } else if line.hasPrefix("      isorun "), !calls.isEmpty {
                calls[calls.count - 1].commands.append(String(line.dropFirst(6)))
            } else if line.hasPrefix("          "), let last = calls.indices.last, !calls[last].commands.isEmpty {
                calls[last].commands[calls[last].commands.count - 1] += " " + line.trimmingCharacters(in: .whitespaces)
            }
        }
        func commands(_ prefix: String) -> [String] {
            calls.first { $0.call.hasPrefix(prefix) }?.commands ?? ["(no call \(prefix) in \(calls.map(\.call)))"]
        }
        func verbs(_ prefix: String) -> [String] { commands(prefix).map { String($0.split(separator: " ")[1]) } }
        let order = ["Version v1", "RunPodSandbox web-pod, handler isorun", "PodSandboxStatus web-pod", "CreateContainer server",
                     "StartContainer server", "CreateContainer client", "StartContainer client", "ExecSync server",
                     "UpdateContainerResources server", "StopContainer client", "StopContainer server",
                     "RemoveContainer client", "RemoveContainer server", "StopPodSandbox web-pod", "RemovePodSandbox web-pod"]
        let seen = order.compactMap { name in calls.firstIndex { $0.call.hasPrefix(name + " → ") } }
        #expect(seen.count == order.count && seen == seen.sorted(), "the kubelet's calls in order: \(calls.map(\.call))")
        // The sandbox is a container of its own: created and started by RunPodSandbox.
        #expect(verbs("RunPodSandbox") == ["create", "start"], "\(commands("RunPodSandbox"))")
        let sandboxID = calls.first { $0.call.hasPrefix("RunPodSandbox") }?.call.split(separator: " ").last.map(String.init) ?? "?"
        #expect(commands("RunPodSandbox").allSatisfy { $0.contains(sandboxID) }, "the pod's ID \(sandboxID): \(commands("RunPodSandbox"))")
        // containerd 1.6 creates the runtime's container when the kubelet starts it.
        let serverID = calls.first { $0.call.hasPrefix("CreateContainer server") }?.call.split(separator: " ").last.map(String.init) ?? "?"
        #expect(verbs("CreateContainer server").isEmpty && verbs("StartContainer server") == ["create", "start"], "\(calls)")
        #expect(commands("StartContainer server").allSatisfy { $0.contains(serverID) }, "server \(serverID): \(commands("StartContainer server"))")
        #expect(calls.first { $0.call.hasPrefix("ExecSync server") }?.call.hasSuffix("→ exit 0: web-pod busybox") == true, "\(calls)")
        #expect(verbs("ExecSync server") == ["exec"] && commands("ExecSync server").first?.contains(serverID) == true, "\(commands("ExecSync server"))")
        #expect(commands("UpdateContainerResources server") == ["isorun update --resources - \(serverID)…"], "\(commands("UpdateContainerResources server"))")
        #expect(verbs("StopContainer client").first == "kill" && commands("StopContainer client").contains { $0.hasSuffix(" 15") },
                "SIGTERM first: \(commands("StopContainer client"))")
        #expect(verbs("StopPodSandbox").contains("kill"), "\(commands("StopPodSandbox"))")
        for status in ["PodSandboxStatus", "ContainerStatus server", "RemoveContainer client"] {
            #expect(verbs(status).isEmpty, "\(status) causes no runtime command: \(commands(status))")
        }
        // Every container the runtime created was deleted.
        let all = calls.flatMap(\.commands)
        let created = Set(all.filter { $0.hasPrefix("isorun create ") }.compactMap { $0.split(separator: " ").last })
        let deleted = Set(all.filter { $0.hasPrefix("isorun delete ") }.compactMap { $0.split(separator: " ").last })
        #expect(created.count == 3 && created == deleted, "created \(created), deleted \(deleted)")
        #expect(result.stdout.contains("ListContainers → 0 left") && result.stdout.contains("ListPodSandbox → 0 left"))

        // Nothing left: its folder (the CRI state, leases, call log), its mounts, processes,
        // network namespace, cgroups, links on this machine.
        let where_ = lines.first { $0.contains("(config.toml in /tmp/") }.map { String($0.split(separator: " ").last!.dropLast()) } ?? ""
        let engineFolder = String(where_.split(separator: "/").prefix(2).map { "/" + $0 }.joined())
        #expect(engineFolder.hasPrefix("/tmp/\(projectPrefix)-engines-"), "\(where_)")
        #expect(!FileManager.default.fileExists(atPath: engineFolder), "\(engineFolder) left")
        #expect(mounts(under: engineFolder).isEmpty && Engines.processes(mentioning: engineFolder).isEmpty)
        let namespace = lines.first { $0.contains("network namespace \(projectPrefix)-lesson05-") }?.split(separator: " ").last.map(String.init) ?? "?"
        #expect(namespace.hasPrefix("\(projectPrefix)-lesson05-") && !FileManager.default.fileExists(atPath: "/run/netns/\(namespace)"), "netns \(namespace) left")
        #expect(mounts(under: "/run/netns").contains("/run/netns") == netnsMountedBefore, "ip netns add's /run/netns mount was left")
        let cgroups = Cleanup.cgroupParents().flatMap { parent in
            ((try? FileManager.default.contentsOfDirectory(atPath: parent.string)) ?? []).filter { $0.hasPrefix("cri-lesson-") }
        }
        #expect(cgroups.isEmpty, "\(cgroups)")
        let linksAfter = Set((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [])
        #expect(linksAfter.filter { $0.hasPrefix("isopod") || $0.hasPrefix("veth") }.subtracting(linksBefore).isEmpty,
                "the pod's bridge and veth stay in the lesson's namespace: \(linksAfter.subtracting(linksBefore))")
        if !runDirectoryExisted { #expect(!FileManager.default.fileExists(atPath: "/run/containerd"), "/run/containerd left") }
    }

    @Test("Ctrl-C while the pod runs: the act stops, says so, and leaves nothing",
          .enabled(if: containerdInstalled, "containerd is not installed: apt-get install containerd"),
          .enabled(if: pythonWithGRPC != nil, "the CRI client needs Python's grpcio: pip install grpcio"),
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/loopback"), "apt-get install containernetworking-plugins"))
    func interrupted() throws {
        _ = try builtInRootfs()
        let folder = try TemporaryFolder("ch05-cri-interrupt")
        defer { folder.remove() }
        let python = URL(fileURLWithPath: pythonWithGRPC!).deletingLastPathComponent().path
        let output = folder.path + "/out"
        // Its own process group, as a shell gives a foreground job: SIGINT to the group is Ctrl-C.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigemptyset(&all)
        sigaddset(&all, SIGINT)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let program = product("chapter-05")
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(program), strdup("cri"), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=\(python):/usr/sbin:/usr/bin:/sbin:/bin"), strdup("NO_COLOR=1"),
                                                    strdup("HOME=\(ProcessInfo.processInfo.environment["HOME"] ?? "/root")"), nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        try #require(posix_spawn(&pid, program, &actions, &attributes, argv, envp) == 0)
        var status: Int32 = 0
        var ended = false
        func waitFor(_ seconds: Double, until done: () -> Bool) {
            let deadline = Date().addingTimeInterval(seconds)
            while !done(), Date() < deadline, !ended {
                if waitpid(pid, &status, WNOHANG) == pid { ended = true }
                usleep(50_000)
            }
        }
        func text() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        func engineFolder() -> String? {
            text().split(separator: "\n").first { $0.contains("(config.toml in /tmp/") }
                .map { "/" + $0.split(separator: " ").last!.dropLast().split(separator: "/").prefix(2).joined(separator: "/") }
        }
        // The sandbox's `start` in isorun's call log: the pod is there.
        waitFor(120) {
            guard let engine = engineFolder() else { return false }
            let log = (try? String(contentsOfFile: engine + "/cri/handlers/isorun/k8s.io/calls.log", encoding: .utf8)) ?? ""
            return log.contains(" start ")
        }
        let engine = engineFolder() ?? "?"
        #expect(!ended, "the act ended before the pod started: \(text())")
        kill(-pid, SIGINT)
        waitFor(120) { false }
        if !ended { kill(-pid, SIGKILL); waitpid(pid, &status, 0) }
        #expect(ended && status & 0x7f == 0 && (status >> 8) & 0xff == 1, "exit status \(status): \(text())")
        #expect(text().contains("chapter-05: interrupted") && text().contains("what the lesson made was removed"), "\(text())")
        #expect(text().contains("  RunPodSandbox web-pod, handler isorun → "), "the calls made are shown: \(text())")
        #expect(engine.hasPrefix("/tmp/\(projectPrefix)-engines-") && !FileManager.default.fileExists(atPath: engine), "\(engine) left")
        #expect(mounts(under: engine).isEmpty && Engines.processes(mentioning: engine).isEmpty, "mounts or processes of \(engine) left")
        #expect(!FileManager.default.fileExists(atPath: "/run/netns/\(projectPrefix)-lesson05-\(pid)"), "network namespace left")
        let cgroups = Cleanup.cgroupParents().filter { FileManager.default.fileExists(atPath: $0.string + "/cri-lesson-\(pid)") }
        #expect(cgroups.isEmpty, "cgroups left: \(cgroups)")
    }

    @Test("without python3 (or grpcio) the act says what to install, skips, and makes nothing",
          .enabled(if: containerdInstalled, "containerd is not installed: apt-get install containerd"))
    func withoutGRPC() throws {
        _ = try builtInRootfs()
        let folder = try TemporaryFolder("ch05-cri-nopython")
        defer { folder.remove() }
        let bin = folder.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for program in ["containerd", "ctr", "containerd-shim-runc-v2", "ip", "nsenter", "tar", "sha256sum"] {
            if let path = Command.find(program) { try FileManager.default.createSymbolicLink(atPath: bin + "/" + program, withDestinationPath: path.string) }
        }
        let netnsBefore = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        let result = try runEngine(product("chapter-05"), ["cri"], environment: ["PATH": bin, "NO_COLOR": "1"], in: folder.path)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("\nCRI act skipped: the CRI client needs Python's grpcio: pip install grpcio\n"), "\(result)")
        for line in result.stdout.split(separator: "\n") { #expect(line.count <= 80, "wider than 80 columns: \(line)") }
        #expect(!result.stdout.contains(" → "), "no call was made: \(result.stdout)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { !netnsBefore.contains($0) && $0.contains("lesson05") }.isEmpty)
    }
}
