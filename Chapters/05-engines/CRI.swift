// The lesson's CRI act: what a kubelet asks containerd for, and what that makes
// containerd's shim ask of isorun.
import Glibc
import Isolation
import SystemPackage

extension Lesson {
    /// The kubelet's client, beside this file: Python with grpcio, the protobuf messages
    /// written by hand from the CRI API's definition (the chapter's test runs it too).
    static let criClient: FilePath = {
        var path = FilePath(#filePath)
        path.removeLastComponent()
        return path.appending("cri_pod.py")
    }()

    /// The pause image: the root filesystem again, with `sleep` as its command. A pause
    /// process only has to exist: it holds the pod's namespaces open.
    static let pauseImage = "localhost/\(projectPrefix)-pause:1"

    /// What the CRI act needs that is not here (a line saying what to install), or nil.
    func criMissing() -> String? {
        let containerd = Engines.missing(["containerd", "ctr", "containerd-shim-runc-v2"])
        if !containerd.isEmpty {
            return "containerd is not installed (\(containerd.joined(separator: ", ")) missing): apt-get install containerd"
        }
        if Engines.missing(["ip", "nsenter"]).count > 0 { return "ip or nsenter is missing: apt-get install iproute2 util-linux" }
        guard Lesson.python() != nil else { return "the CRI client needs Python's grpcio: pip install grpcio" }
        guard FileSystem.exists(Lesson.loopbackPlugin) else {
            return "the CRI plugin needs the loopback CNI plugin: apt-get install containernetworking-plugins"
        }
        guard FileSystem.exists(cniPlugin) else { return "\(cniPlugin) is missing: swift build --product isolation-cni" }
        guard FileSystem.exists(Lesson.criClient) else { return "\(Lesson.criClient) is missing: run the lesson from its source tree" }
        return nil
    }

    static let loopbackPlugin: FilePath = "/usr/lib/cni/loopback"

    /// Chapter 07's network as a CNI plugin, built beside the runtime.
    var cniPlugin: FilePath { runtime.removingLastComponent().appending("isolation-cni") }

    /// A Python that can `import grpc`: python3 on PATH (a virtual environment, pyenv's
    /// shim, the system's); the interpreter itself (sys.executable), so that it runs with
    /// the lesson's plain environment.
    static func python() -> FilePath? {
        guard let python = Engines.find("python3"),
              let probe = try? Command.run(python, ["-c", "import grpc, sys; print(sys.executable)"], environment: pythonEnvironment(python)),
              probe.status == .exited(0), let path = probe.standardOutput.split(separator: "\n").first, path.hasPrefix("/") else { return nil }
        return FilePath(String(path))
    }

    /// The plain environment with `python`'s folder first in PATH (Python finds its
    /// packages from argv[0], looked up in PATH), and HOME (pip's `--user` packages).
    static func pythonEnvironment(_ python: FilePath) -> [String] {
        ["PATH=\(python.removingLastComponent()):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "LC_ALL=C", "HOME=\(environmentValue("HOME") ?? "/root")"]
    }

    /// containerd with its CRI plugin, in a network namespace of its own → the runc v2
    /// shim → isorun; the kubelet's calls for one pod of two containers.
    func cri(in folder: FilePath) throws {
        say(style.bold("Step 11 · A pod through containerd's CRI") + "  (what a kubelet asks for)")
        if let missing = criMissing() {
            sayWrapped("CRI act skipped: \(missing)", hanging: "  ", style: { style.yellow($0) })
            say()
            return
        }
        try FileSystem.makeDirectories(folder)
        let engine = Engines.Containerd(folder: folder, cgroupName: "cri-lesson-\(getpid())")
        let ip = Engines.find("ip")!
        // The pod network's "host": a network namespace made here. The CNI plugin makes
        // its bridge and the pod's veth there, and nothing reaches this machine's interfaces.
        let namespace = "\(projectPrefix)-lesson05-\(getpid())"
        let runDirectoryExisted = Engines.Containerd.runDirectoryExists()
        // `ip netns add` makes /run/netns a mount point (and the folder) the first time;
        // both go again at the end if they were not there before.
        let netnsFolderExisted = FileSystem.exists("/run/netns")
        let netnsFolderMounted = ((try? MountInfo.table()) ?? []).contains { $0.mountPoint == "/run/netns" }
        var daemon: ChildProcess? = nil
        defer {
            if let daemon {
                _ = try? daemon.signal(SIGTERM)
                _ = try? daemon.wait()
            }
            // The shims name the folder; the pods' mounts and network namespaces are in it;
            // the containers' cgroups are below the engine's.
            Engines.stopProcessesAndMounts(under: folder)
            engine.removeCgroups()
            Engines.Containerd.removeRunDirectory(existedBefore: runDirectoryExisted)
            _ = try? Command.run(ip, ["netns", "delete", namespace])
            if (try? FileSystem.contentsOfDirectory("/run/netns"))?.isEmpty == true {
                if !netnsFolderMounted { try? Mount.unmount("/run/netns", detach: true) }
                if !netnsFolderExisted { rmdir("/run/netns") }
            }
        }
        try check(Command.run(ip, ["netns", "add", namespace]), "ip netns add \(namespace)")
        try check(Command.run(ip, ["-n", namespace, "link", "set", "lo", "up"]), "ip -n \(namespace) link set lo up")
        let network = """
            {"cniVersion": "1.0.0", "name": "\(projectPrefix)-pods", "type": "isolation-cni",
             "bridge": "isopod\(getpid() % 100_000)", "isGateway": true, "ipMasq": false,
             "ipam": {"subnet": "10.214.0.0/24", "dataDir": "\(folder.appending("ipam"))"}}

            """
        try engine.writeCRIConfiguration(handlers: [("isorun", runtime)], sandboxImage: Lesson.pauseImage,
                                         cniPlugins: [cniPlugin, Lesson.loopbackPlugin], network: network)
        say("  containerd, its CRI plugin on, a handler for isorun")
        say(style.dim("  (config.toml in \(folder))"))
        for line in try FileSystem.readString(engine.config).split(separator: "\n")
        where line.contains("runtimes.isorun]") || line.contains("BinaryName") || line.contains("sandbox_image") {
            say(style.dim("  │ ") + fit(line.drop(while: { $0 == " " }), 76))
        }
        say(style.dim("  │ ") + "the network: isolation-cni, in network namespace \(namespace)")
        // The shim gives isorun --root <handler root>/k8s.io: its call log is there.
        let calls = engine.handlerRoot("isorun").appending("k8s.io/calls.log")
        try FileSystem.makeDirectories(engine.handlerRoot("isorun").appending("k8s.io"), mode: 0o711)
        try FileSystem.writeFile(calls, "")
        daemon = try engine.startDaemon(networkNamespace: FilePath("/run/netns/\(namespace)"))
        var ready = false
        for _ in 0..<100 where !ready {
            ready = FileSystem.exists(engine.address) && (try? criCtr(engine, ["version"]))?.status == .exited(0)
            if !ready { usleep(100_000) }
        }
        guard ready else { throw IsolationError("containerd did not answer on \(engine.address) within 10 s", hint: "see \(engine.log)") }
        for (name, command) in [(Lesson.pauseImage, ["sleep", "2147483647"]), (Engines.imageName, ["sh"])] {
            let archive = try Engines.Docker.writeImageArchive(of: rootfs, name: name, in: folder.appending("image"), command: command)
            try check(criCtr(engine, ["images", "import", archive.string]), "ctr images import \(name)")
            try? FileSystem.removeTree(folder.appending("image"))
        }
        say("  images imported with ctr: \(Engines.imageName)")
        say("  and the pause image \(Lesson.pauseImage): the same files, `sleep`")
        say("  as its command (the pause process only holds the pod's namespaces open)")
        say()

        say(style.bold("  the kubelet's calls") + style.dim("  (\(Lesson.criClient.lastComponent!), gRPC runtime.v1)")
            + style.dim(", and what isorun did"))
        let trace = folder.appending("trace")
        let logs = folder.appending("pods")
        try FileSystem.makeDirectories(logs)
        let python = Lesson.python()!
        let output = try Command.run(python, [
            Lesson.criClient.string, "--socket", engine.address.string, "--handler", "isorun",
            "--pause", Lesson.pauseImage, "--image", Engines.imageName, "--cgroup-parent", engine.podCgroupParent,
            "--log-dir", logs.string, "--daemon-pid", "\(daemon!.pid)", "--trace", trace.string, "--call-log", calls.string,
        ], environment: Lesson.pythonEnvironment(python))
        showTrace(trace, calls: calls)
        var pending = sigset_t()
        sigpending(&pending)
        if forwardedSignals.contains(where: { sigismember(&pending, $0) == 1 }) {
            throw IsolationError("interrupted", hint: "what the lesson made was removed")
        }
        guard output.standardOutput.contains("\"ok\": true") else {
            let error = output.standardOutput.split(separator: "\n").first { $0.contains("\"error\"") } ?? Substring(output.standardError.suffix(500))
            throw IsolationError("the CRI pod failed: \(error.drop(while: { $0 == " " }))", hint: "see \(engine.log)")
        }
        say()
        say("  The sandbox is a container too (the pause process); each container joins its")
        say("  network, IPC and UTS namespaces by path (linux.namespaces[].path). Status")
        say("  and Remove calls cause no command: containerd answers from its own records.")
        say()
    }

    /// Each call of the trace on one line, then the runtime's calls logged meanwhile.
    func showTrace(_ trace: FilePath, calls: FilePath) {
        let log = (try? FileSystem.readFile(calls)) ?? []
        var offset = 0
        for line in ((try? FileSystem.readString(trace)) ?? "").split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 4, let end = Int(fields[3]) else { continue }
            let call = fields[0] + (fields[1].isEmpty ? "" : " " + fields[1])
            say("  " + style.bold(call) + style.dim(fit(" → " + fields[2], 78 - call.count)))
            let caused = String(decoding: log[min(offset, log.count)..<min(max(end, offset), log.count)], as: UTF8.self)
            offset = max(end, offset)
            for entry in caused.split(separator: "\n") {
                guard let arrow = entry.range(of: " → ") else { continue }
                sayWrapped(runtimeCommand(entry[arrow.upperBound...]), indent: "      ", hanging: "          ",
                           style: { style.cyan($0) })
            }
        }
    }

    /// A logged call, shorter: "isorun" and its command, without the options every call
    /// of the shim has (--root, --log, --log-format), 64-hex IDs cut to 12.
    func runtimeCommand(_ arguments: Substring) -> String {
        var words = arguments.split(separator: " ").map(String.init)
        while let first = words.first, ["--root", "--log", "--log-format"].contains(first) { words.removeFirst(min(2, words.count)) }
        return "isorun " + words.map { word in
            var word = Substring(word)
            if word.hasPrefix("/"), word.count > 40, let last = word.split(separator: "/").last { word = "…/" + last }
            // A 64-hex ID, alone or at the start of a name (ID.pid): its first 12.
            let start = word.hasPrefix("…/") ? word.index(word.startIndex, offsetBy: 2) : word.startIndex
            let hex = word[start...].prefix { $0.isHexDigit }
            return hex.count == 64 ? word[..<start] + hex.prefix(12) + "…" + word[hex.endIndex...] : String(word)
        }.joined(separator: " ")
    }

    /// `text` cut to `width` characters, with "…" when cut.
    func fit<S: StringProtocol>(_ text: S, _ width: Int) -> String {
        text.count <= width ? String(text) : String(text.prefix(max(width - 1, 0))) + "…"
    }

    /// ctr in the CRI plugin's namespace (k8s.io), with the snapshotter the plugin uses.
    func criCtr(_ engine: Engines.Containerd, _ arguments: [String]) throws -> CommandOutput {
        let environment = Command.defaultEnvironment + ["CONTAINERD_ADDRESS=\(engine.address)", "CONTAINERD_NAMESPACE=k8s.io",
                                                        "CONTAINERD_SNAPSHOTTER=native"]
        return try client("ctr", arguments, environment: environment, show: false)
    }
}
