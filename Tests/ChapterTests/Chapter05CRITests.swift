// Chapter 05, the kubelet's path: a pod of two containers through containerd's CRI
// plugin, with isorun and then runc as the runtime handler, driven by the calls a kubelet
// makes (Chapters/05-engines/cri_pod.py, a gRPC client over Python's grpcio) and observed from the
// host. containerd runs inside a network namespace the test made, so the CNI bridge and
// the pod's veth are made there and nothing reaches this machine's interfaces.
import Foundation
import Isolation
import SystemPackage
import Testing

/// python3 with grpcio (`pip install grpcio`; .ci/run installs it): the one on PATH
/// first (a virtual environment, pyenv), then the system's.
let pythonWithGRPC: String? = {
    let candidates = [Command.find("python3", path: ProcessInfo.processInfo.environment["PATH"] ?? ""), Command.find("python3")]
    for case let python? in candidates {
        if let result = try? run(python.string, ["-c", "import grpc"], timeout: 30), result.status == 0 { return python.string }
    }
    return nil
}()

/// The client script, in chapter 05's folder (its lesson runs the same file).
let criClientScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Chapters/05-engines/cri_pod.py").path

/// containerd with the CRI plugin in a temporary folder, its daemon in the network
/// namespace `net` made, two runtime handlers (isorun, runc), the isolation-cni network,
/// and two images imported with ctr: the pause image (the project's busybox root
/// filesystem with `sleep` as its command: a pause process only has to hold the pod's
/// namespaces open) and the same root filesystem as the containers' image.
final class CRIUnderTest {
    let folder: TemporaryFolder
    let engine: Engines.Containerd
    let net: TestNetwork
    let hostNamespace: String
    var daemon: ChildProcess? = nil
    let runDirectoryExisted = Engines.Containerd.runDirectoryExists()
    let bridge: String
    let ipamDirectory: String
    static let pauseImage = "localhost/\(projectPrefix)-pause:1"
    static let subnet = "10.213.0.0/24"

    init() throws {
        net = try TestNetwork("cri")
        folder = try TemporaryFolder("ch05-cri")
        engine = Engines.Containerd(folder: FilePath(folder.path))
        bridge = "isocri\(net.tag.prefix(8))"
        ipamDirectory = folder.path + "/ipam"
        hostNamespace = try net.namespace("host")
        do {
            // No masquerade: the pods' network is the test namespace's bridge, and nothing more.
            let network = """
                {"cniVersion": "1.0.0", "name": "\(projectPrefix)-pods", "type": "isolation-cni", "bridge": "\(bridge)",
                 "isGateway": true, "ipMasq": false, "mtu": 1500,
                 "ipam": {"subnet": "\(Self.subnet)", "dataDir": "\(ipamDirectory)"}}

                """
            try engine.writeCRIConfiguration(
                handlers: [("isorun", FilePath(product("isorun"))), ("runc", Command.find("runc") ?? "/usr/sbin/runc")],
                sandboxImage: Self.pauseImage, cniPlugins: [FilePath(product("isolation-cni")), "/usr/lib/cni/loopback"], network: network)
            // The call log of isorun: the shim passes --root <handler root>/k8s.io.
            try FileManager.default.createDirectory(atPath: engine.handlerRoot("isorun").string + "/k8s.io", withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: callLog, contents: nil)
            daemon = try engine.startDaemon(networkNamespace: FilePath(net.path(hostNamespace)))
            try waitForDaemon()
            let rootfs = FilePath(try builtInRootfs())
            for (name, command) in [(Self.pauseImage, ["sleep", "2147483647"]), (Engines.imageName, ["sh"])] {
                let archive = try Engines.Docker.writeImageArchive(of: rootfs, name: name, in: FilePath(folder.path + "/image"), command: command)
                let imported = try ctr(["images", "import", archive.string])
                try #require(imported.status == 0, "ctr images import \(name): \(imported)")
                try FileManager.default.removeItem(atPath: archive.string)
            }
        } catch {
            remove()
            throw error
        }
    }

    var callLog: String { engine.handlerRoot("isorun").string + "/k8s.io/calls.log" }

    func waitForDaemon() throws {
        for _ in 0..<100 {
            if FileManager.default.fileExists(atPath: engine.address.string), try ctr(["version"], timeout: 5).status == 0 { return }
            usleep(100_000)
        }
        let text = (try? String(contentsOfFile: engine.log.string, encoding: .utf8)) ?? ""
        throw IsolationError("containerd did not answer on \(engine.address) within 10 s", hint: String(text.suffix(2000)))
    }

    /// ctr in the CRI plugin's namespace (k8s.io), with the snapshotter the plugin uses.
    func ctr(_ arguments: [String], timeout: TimeInterval = 60) throws -> RunResult {
        var environment = ProcessInfo.processInfo.environment
        environment["CONTAINERD_ADDRESS"] = engine.address.string
        environment["CONTAINERD_NAMESPACE"] = "k8s.io"
        environment["CONTAINERD_SNAPSHOTTER"] = "native"
        return try runEngine(Command.find("ctr")!.string, arguments, environment: environment, in: folder.path, timeout: timeout)
    }

    /// The kubelet's calls for one pod with `handler`; the client's JSON report.
    func pod(handler: String) throws -> (report: [String: Any], result: RunResult) {
        let logs = folder.path + "/pods/\(handler)"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let result = try runEngine(pythonWithGRPC!, [criClientScript, "--socket", engine.address.string, "--handler", handler,
                                                     "--pause", Self.pauseImage, "--image", Engines.imageName,
                                                     "--cgroup-parent", engine.podCgroupParent, "--log-dir", logs,
                                                     "--daemon-pid", "\(daemon!.pid)"],
                                   environment: ProcessInfo.processInfo.environment, in: folder.path, timeout: 300)
        let report = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
        return (report, result)
    }

    /// What is left of the pods: cgroups below the pods' parent, mounts in the folder,
    /// network namespaces, interfaces besides lo and the bridge in the daemon's namespace,
    /// address leases, the handlers' container records.
    func leftovers() throws -> [String] {
        var left: [String] = []
        let pods = engine.podCgroupParent
        for parent in Cleanup.cgroupParents() {
            let directory = parent.string + pods.dropFirst(projectPrefix.count + 1)
            let children = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
                var isDirectory: ObjCBool = false
                return FileManager.default.fileExists(atPath: directory + "/" + $0, isDirectory: &isDirectory) && isDirectory.boolValue
            }
            left += children.map { "cgroup \(directory)/\($0)" }
        }
        left += mounts(under: folder.path).map { "mount \($0)" }
        let netns = engine.folder.string + "/state/io.containerd.grpc.v1.cri/netns"
        left += ((try? FileManager.default.contentsOfDirectory(atPath: netns)) ?? []).map { "netns \($0)" }
        left += try net.links(hostNamespace).filter { $0 != "lo" && $0 != bridge }.map { "link \($0)" }
        let leases = ipamDirectory + "/\(projectPrefix)-pods"
        left += ((try? FileManager.default.contentsOfDirectory(atPath: leases)) ?? []).filter { $0.split(separator: ".").count == 4 }.map { "lease \($0)" }
        for handler in ["isorun", "runc"] {
            let root = engine.handlerRoot(handler).string + "/k8s.io"
            left += ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0 != "calls.log" }.map { "\(handler) state \($0)" }
        }
        return left
    }

    func remove() {
        if let daemon {
            _ = try? daemon.signal(SIGTERM)
            _ = try? daemon.wait()
        }
        // A shim names our folder on its command line; what the pods mounted is there too.
        Engines.stopProcessesAndMounts(under: FilePath(folder.path))
        engine.removeCgroups()
        Engines.Containerd.removeRunDirectory(existedBefore: runDirectoryExisted)
        net.remove()
        folder.remove()
    }
}

@Suite("chapter-05: a pod through containerd's CRI, as a kubelet asks for it", .serialized,
       .enabled(if: isRoot, "containerd and its runtimes need root"),
       .enabled(if: containerdInstalled, "containerd is not installed: apt-get install containerd"),
       .enabled(if: pythonWithGRPC != nil, "the CRI client needs Python's grpcio: pip install grpcio"),
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/loopback"), "the CRI plugin needs the loopback CNI plugin: apt-get install containernetworking-plugins"),
       .enabled(if: Command.find("runc") != nil, "the comparison needs runc: apt-get install runc"))
struct Chapter05CRITests {
    @Test("isorun and runc as runtime handlers: shared net, IPC and UTS namespaces, HTTP over the pod's loopback, ExecSync, UpdateContainerResources, nothing left")
    func podWithBothHandlers() throws {
        let cri = try CRIUnderTest()
        defer { cri.remove() }
        var shapes: [String: [String: Bool]] = [:]
        for handler in ["isorun", "runc"] {
            let (report, result) = try cri.pod(handler: handler)
            #expect(report["ok"] as? Bool == true, "\(handler): \(result)\n--- containerd's log\n\(String(((try? String(contentsOfFile: cri.engine.log.string, encoding: .utf8)) ?? "").suffix(3000)))")
            guard report["ok"] as? Bool == true else { continue }
            #expect(report["podHandler"] as? String == handler)
            #expect((report["podIP"] as? String)?.hasPrefix("10.213.0.") == true, "\(handler): the pod's address comes from isolation-cni: \(report["podIP"] ?? "")")
            let namespaces = report["namespaces"] as? [String: [String: String]] ?? [:]
            let server = namespaces["server"] ?? [:], client = namespaces["client"] ?? [:]
            let sandbox = namespaces["sandbox"] ?? [:], host = namespaces["host"] ?? [:]
            for kind in ["net", "ipc", "uts"] {
                #expect(server[kind] != nil && server[kind] == client[kind] && server[kind] == sandbox[kind], "\(handler): \(kind) is the pod's: \(namespaces)")
                #expect(server[kind] != host[kind], "\(handler): the pod's \(kind) namespace is not the host's")
            }
            #expect(server["mnt"] != client["mnt"] && server["mnt"] != host["mnt"] && client["mnt"] != host["mnt"], "\(handler): each container has its own mount namespace: \(namespaces)")
            #expect(server["pid"] != client["pid"] && server["pid"] != host["pid"], "\(handler): PID namespace per container: \(namespaces)")
            #expect(report["clientFetched"] as? String == "hello from the pod\n", "\(handler): the client fetched from 127.0.0.1:8080 in the pod")
            let exec = report["exec"] as? [String: Any] ?? [:]
            #expect(exec["stdout"] as? String == "web-pod busybox\n" && exec["exitCode"] as? Int == 0, "\(handler): ExecSync in the server: \(exec)")
            #expect(report["memoryAfter"] as? String == "100663296" && report["memoryBefore"] as? String != "100663296",
                    "\(handler): UpdateContainerResources wrote \(report["memoryFile"] ?? ""): \(report["memoryBefore"] ?? "") → \(report["memoryAfter"] ?? "")")
            #expect((report["memoryFile"] as? String)?.contains(cri.engine.podCgroupParent) == true, "\(handler): the container's cgroup is below the pod's parent")
            let links = report["links"] as? [String: [String]] ?? [:]
            #expect(links["daemon"]?.contains(cri.bridge) == true && links["daemon"]?.count == 3, "\(handler): lo, the bridge and the pod's veth, in the test's namespace: \(links)")
            #expect(links["host"]?.contains(cri.bridge) == false, "\(handler): nothing of the pod's network on this machine's interfaces")
            #expect(links["pod"]?.sorted() == ["eth0", "lo"], "\(handler): the pod's own namespace: \(links)")
            #expect(report["containersLeft"] as? Int == 0 && report["sandboxesLeft"] as? Int == 0)
            #expect(try cri.leftovers() == [], "\(handler): after RemovePodSandbox")
            shapes[handler] = ["netShared": server["net"] == client["net"], "ipcShared": server["ipc"] == client["ipc"],
                               "utsShared": server["uts"] == client["uts"], "mntShared": server["mnt"] == client["mnt"],
                               "pidShared": server["pid"] == client["pid"]]
        }
        #expect(shapes["isorun"] != nil && shapes["isorun"] == shapes["runc"], "the same observations with both handlers: \(shapes)")
        // What the kubelet's calls made containerd's shim ask of isorun.
        let calls = ((try? String(contentsOfFile: cri.callLog, encoding: .utf8)) ?? "").split(separator: "\n").map { line in
            line.split(separator: " ").drop { $0 != "json" }.dropFirst().first.map(String.init) ?? "?"
        }
        for command in ["create", "start", "exec", "update", "kill", "delete"] {
            #expect(calls.contains(command), "isorun's call log has \(command): \(calls)")
        }
    }
}
