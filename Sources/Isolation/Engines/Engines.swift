import Glibc
import SystemPackage

/// Real engines driving this project's runtime, each kept inside one folder so that
/// nothing of the machine's own podman, containerd or Docker is touched: chapter 05 and
/// its tests write these files, run the engines' clients, and remove the folder after.
public enum Engines {
    /// The Debian package that brings a program, for "install it" messages.
    public static func package(for program: String) -> String {
        switch program {
        case "podman", "conmon": return "podman"
        case "containerd", "ctr", "containerd-shim-runc-v2": return "containerd"
        case "dockerd", "docker", "docker-init": return "docker.io"
        default: return program
        }
    }

    /// Where engines' programs are looked for: $PATH (sudo sets a safe one), or the usual folders.
    public static var searchPath: String {
        environmentValue("PATH").flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    }

    /// An engine's program in `searchPath`.
    public static func find(_ program: String) -> FilePath? { Command.find(program, path: searchPath) }

    /// The programs an engine needs that are not installed (empty: all there).
    public static func missing(_ programs: [String]) -> [String] {
        programs.filter { find($0) == nil }
    }

    /// The processes whose command line mentions `text` (an engine's folder: conmon,
    /// podman's clean-up and containerd's shims all name it).
    public static func processes(mentioning text: String) -> [pid_t] {
        let me = getpid()
        return ((try? FileSystem.contentsOfDirectory("/proc")) ?? []).compactMap { pid_t($0) }.filter { pid in
            guard pid != me, let bytes = try? FileSystem.readFile(FilePath("/proc/\(pid)/cmdline")) else { return false }
            return String(decoding: bytes, as: UTF8.self).contains(text)
        }
    }

    /// Waits up to 5 s for what an engine left running in `folder` to end, SIGKILLs the
    /// rest, and unmounts what is still mounted there (deepest first).
    public static func stopProcessesAndMounts(under folder: FilePath) {
        for _ in 0..<50 where !processes(mentioning: folder.string).isEmpty { usleep(100_000) }
        for pid in processes(mentioning: folder.string) { kill(pid, SIGKILL) }
        let points = ((try? MountInfo.table()) ?? []).map(\.mountPoint).filter { $0.hasPrefix(folder.string + "/") }
        for point in points.sorted(by: { $0.count > $1.count }) { try? Mount.unmount(FilePath(point), detach: true) }
    }

    /// The image both engines run: the project's root filesystem, imported as is.
    public static let imageName = "localhost/\(projectPrefix)-rootfs:latest"

    /// podman, told by two files (containers.conf(5), containers-storage.conf(5)) to keep
    /// everything in `folder`, to call `runtime`, and to need nothing this machine lacks.
    public struct Podman: Sendable {
        public let folder: FilePath
        public let runtime: FilePath
        /// The runtime's name in containers.conf: podman passes `--log FILE
        /// --log-format=json` only to runtimes named in `runtime_supports_json`.
        public let runtimeName: String

        /// The name of this podman's cgroup parent, below the project's cgroups.
        public let cgroupName: String
        /// More runtimes by name (`podman run --runtime NAME`), such as gVisor's runsc.
        public var otherRuntimes: [(name: String, path: FilePath)]

        public init(folder: FilePath, runtime: FilePath, runtimeName: String = "isorun", cgroupName: String? = nil,
                    otherRuntimes: [(name: String, path: FilePath)] = []) {
            self.folder = folder
            self.runtime = runtime
            self.runtimeName = runtimeName
            self.otherRuntimes = otherRuntimes
            self.cgroupName = cgroupName ?? "podman-" + (folder.lastComponent?.string.split(separator: "-").last.map(String.init) ?? "\(getpid())")
        }

        public var containersConf: FilePath { folder.appending("containers.conf") }
        public var storageConf: FilePath { folder.appending("storage.conf") }

        /// Every podman call gets these (podman reads no other configuration then).
        public var environment: [String: String] {
            ["CONTAINERS_CONF": containersConf.string, "CONTAINERS_STORAGE_CONF": storageConf.string]
        }

        /// The cgroup parent of this folder's containers, below the project's cgroups:
        /// podman would use /libpod_parent otherwise, and puts conmon in `<parent>/conmon`.
        public var cgroupParent: String { "/\(projectPrefix)/\(cgroupName)" }

        /// Writes containers.conf and storage.conf.
        ///
        /// - `netns = "none"`: no network setup (netavark, iptables) for these lessons.
        /// - `cgroup_manager = "cgroupfs"`: podman writes cgroup paths itself; the
        ///   systemd manager needs a running systemd (and the runtime's --systemd-cgroup).
        /// - `events_logger = "file"`, `log_driver = "k8s-file"`: no journald.
        /// - `default_ulimits`: podman asks for 1048576 open files and processes unless
        ///   told otherwise; without CAP_SYS_RESOURCE no runtime can raise a hard limit,
        ///   so ask for what podman itself may have (it runs with at most 32768 processes).
        /// - `network_config_dir`: podman's network files (and their lock) here, not in
        ///   /etc/containers/networks, which may be read-only.
        /// - `static_dir` stays unset: podman derives it from the storage's graphroot.
        public func writeConfiguration() throws {
            for name in ["storage", "run", "tmp", "volumes", "networks"] { try FileSystem.makeDirectories(folder.appending(name)) }
            var limit = rlimit()
            getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            let files = min(UInt64(limit.rlim_max), 1_048_576)
            getrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &limit)
            let processes = min(UInt64(limit.rlim_max), 32768)
            let containers = """
                # podman for the Isolation workshop: everything in \(folder), runtime \(runtimeName).
                [containers]
                netns = "none"
                default_ulimits = ["nofile=\(files):\(files)", "nproc=\(processes):\(processes)"]

                log_driver = "k8s-file"

                [engine]
                cgroup_manager = "cgroupfs"
                events_logger = "file"
                events_logfile_path = "\(folder.appending("events.log"))"
                tmp_dir = "\(folder.appending("tmp"))"
                volume_path = "\(folder.appending("volumes"))"
                runtime = "\(runtimeName)"
                runtime_supports_json = ["\(runtimeName)"]

                [engine.runtimes]
                \(runtimeName) = ["\(runtime)"]
                \(otherRuntimes.map { "\($0.name) = [\"\($0.path)\"]\n" }.joined())
                [network]
                network_config_dir = "\(folder.appending("networks"))"

                """
            let storage = """
                # vfs: plain copies, works on any file system (overlay may not, nested).
                [storage]
                driver = "vfs"
                graphroot = "\(folder.appending("storage"))"
                runroot = "\(folder.appending("run"))"

                """
            try FileSystem.writeFile(containersConf, containers)
            try FileSystem.writeFile(storageConf, storage)
        }

        /// Removes this podman's cgroups (conmon's and any container's left behind).
        public func removeCgroups() {
            for parent in Cleanup.cgroupParents() where FileSystem.isDirectory(parent.appending(cgroupName)) {
                _ = Cleanup.removeCgroupTree(parent.appending(cgroupName), report: { _ in })
            }
            Cleanup.removeEmptyParents()
        }
    }

    /// containerd on its own socket, with its root and state in `folder`.
    public struct Containerd: Sendable {
        public let folder: FilePath
        /// The name of this containerd's cgroup parent, below the project's cgroups.
        public let cgroupName: String

        public init(folder: FilePath, cgroupName: String? = nil) {
            self.folder = folder
            self.cgroupName = cgroupName ?? "containerd-" + (folder.lastComponent?.string.split(separator: "-").last.map(String.init) ?? "\(getpid())")
        }

        public var config: FilePath { folder.appending("config.toml") }
        public var address: FilePath { folder.appending("containerd.sock") }
        /// The runc shim's `--root` is `<runc root>/<namespace>`: our runtime's state folder.
        public var runcRoot: FilePath { folder.appending("runc") }
        public var log: FilePath { folder.appending("containerd.log") }

        /// The cgroup parent of this folder's containers (`ctr run --cgroup PARENT/ID`),
        /// below the project's cgroups; ctr would use /<namespace>/<id> otherwise.
        public var cgroupParent: String { "/\(projectPrefix)/\(cgroupName)" }

        /// Removes this containerd's cgroups (what a runtime left behind, and the parent).
        public func removeCgroups() {
            for parent in Cleanup.cgroupParents() where FileSystem.isDirectory(parent.appending(cgroupName)) {
                _ = Cleanup.removeCgroupTree(parent.appending(cgroupName), report: { _ in })
            }
            Cleanup.removeEmptyParents()
        }

        /// Starts `containerd --config …` with its output in `log`, in a cgroup of its own
        /// below ours (`<cgroupParent>/daemon`): its shims inherit it. With
        /// `networkNamespace` (a /run/netns file), it runs there (nsenter(1) --net): what
        /// its CRI plugin's CNI plugins make on "the host", bridges and veths, is made there.
        public func startDaemon(networkNamespace: FilePath? = nil) throws -> ChildProcess {
            guard let program = Engines.find("containerd") else {
                throw IsolationError("containerd is not installed", hint: "apt-get install containerd")
            }
            if let networkNamespace {
                guard let nsenter = Engines.find("nsenter") else { throw IsolationError("nsenter is missing", hint: "apt-get install util-linux") }
                return try Engines.startDaemon(nsenter, ["nsenter", "--net=\(networkNamespace)", "--", program.string, "--config", config.string],
                                               log: log, cgroupPath: cgroupParent + "/daemon")
            }
            return try Engines.startDaemon(program, ["containerd", "--config", config.string], log: log, cgroupPath: cgroupParent + "/daemon")
        }

        /// The cgroup parent a kubelet would give its pods (`cgroup_parent` of a
        /// RunPodSandbox), below this containerd's.
        public var podCgroupParent: String { cgroupParent + "/pods" }
        /// Where the CRI plugin looks for CNI plugins and network configurations.
        public var cniBinDirectory: FilePath { folder.appending("cni/bin") }
        public var cniConfigDirectory: FilePath { folder.appending("cni/net.d") }
        /// A runtime handler's state (the shim's `--root`, with the namespace `k8s.io` below).
        public func handlerRoot(_ name: String) -> FilePath { folder.appending("handlers/\(name)") }

        /// Writes config.toml with the CRI plugin on, the service a kubelet talks to:
        /// - one runtime handler per entry (`[…runtimes.NAME]`, the runc v2 shim calling
        ///   `binary`, its state in `handlerRoot(NAME)`): a RuntimeClass's `handler` names one;
        /// - cgroupfs paths (`SystemdCgroup = false`), as this runtime needs;
        /// - `sandboxImage`, the pause image every pod starts with;
        /// - the CNI plugins (`loopback` is required: the CRI plugin sets up `lo` with it)
        ///   linked into `cniBinDirectory`, and `network` (a CNI configuration) as the one
        ///   network in `cniConfigDirectory`;
        /// - no AppArmor profile loaded into the kernel (`disable_apparmor`), pod network
        ///   namespaces under the state folder rather than /run/netns, the native
        ///   snapshotter (plain copies, any file system), and `restrict_oom_score_adj`: the
        ///   pause container asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE;
        ///   restricted, nothing goes below containerd's own score.
        public func writeCRIConfiguration(handlers: [(name: String, binary: FilePath)], sandboxImage: String,
                                          cniPlugins: [FilePath], network: String) throws {
            for name in ["root", "state"] { try FileSystem.makeDirectories(folder.appending(name)) }
            try FileSystem.makeDirectories(cniBinDirectory)
            try FileSystem.makeDirectories(cniConfigDirectory)
            for plugin in cniPlugins {
                guard let name = plugin.lastComponent else { continue }
                let link = cniBinDirectory.appending(name)
                if !FileSystem.exists(link, followSymlinks: false) {
                    try valueOrErrno { symlink(plugin.string, link.string) }
                }
            }
            try FileSystem.writeFile(cniConfigDirectory.appending("10-isolation.conf"), network)
            var runtimes = ""
            for handler in handlers {
                try FileSystem.makeDirectories(handlerRoot(handler.name))
                runtimes += """
                        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.\(handler.name)]
                          runtime_type = "io.containerd.runc.v2"
                          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.\(handler.name).options]
                            BinaryName = "\(handler.binary)"
                            Root = "\(handlerRoot(handler.name))"
                            SystemdCgroup = false

                    """
            }
            let text = """
                # containerd with its CRI plugin for the Isolation workshop: everything in \(folder).
                version = 2
                root = "\(folder.appending("root"))"
                state = "\(folder.appending("state"))"

                [grpc]
                  address = "\(address)"

                [ttrpc]
                  address = "\(address).ttrpc"

                [debug]
                  address = ""

                [metrics]
                  address = ""

                [plugins."io.containerd.grpc.v1.cri"]
                  sandbox_image = "\(sandboxImage)"
                  disable_apparmor = true
                  restrict_oom_score_adj = true
                  netns_mounts_under_state_dir = true
                  tolerate_missing_hugetlb_controller = true
                  stream_server_address = "127.0.0.1"
                  stream_server_port = "0"
                  [plugins."io.containerd.grpc.v1.cri".containerd]
                    snapshotter = "native"
                    default_runtime_name = "\(handlers.first?.name ?? "runc")"
                \(runtimes)
                  [plugins."io.containerd.grpc.v1.cri".cni]
                    bin_dir = "\(cniBinDirectory)"
                    conf_dir = "\(cniConfigDirectory)"
                    max_conf_num = 1

                """
            try FileSystem.writeFile(config, text)
        }

        /// ctr and the shims make /run/containerd/fifo and /run/containerd/s whatever the
        /// configuration says. Whether /run/containerd was there before we started.
        public static func runDirectoryExists() -> Bool { FileSystem.exists("/run/containerd") }

        /// Removes /run/containerd when we made it (rmdir(2): only what is empty).
        public static func removeRunDirectory(existedBefore: Bool) {
            guard !existedBefore else { return }
            for path in ["/run/containerd/fifo", "/run/containerd/s", "/run/containerd"] { rmdir(path) }
        }

        /// Writes config.toml (containerd-config.toml(5)): no CRI plugin (no kubelet
        /// here), no debug or metrics listeners, sockets in the folder.
        public func writeConfiguration() throws {
            for name in ["root", "state", "runc"] { try FileSystem.makeDirectories(folder.appending(name)) }
            let text = """
                # containerd for the Isolation workshop: everything in \(folder).
                version = 2
                root = "\(folder.appending("root"))"
                state = "\(folder.appending("state"))"
                disabled_plugins = ["io.containerd.grpc.v1.cri"]

                [grpc]
                  address = "\(address)"

                [ttrpc]
                  address = "\(address).ttrpc"

                [debug]
                  address = ""

                [metrics]
                  address = ""

                """
            try FileSystem.writeFile(config, text)
        }
    }

    /// Starts a daemon with its output in `log`, in a cgroup of its own below the
    /// project's (`cgroupPath`, joined before it runs): what it starts (containerd, its
    /// shims) inherits that cgroup, so even if whoever started it dies, `doctor --clean`
    /// finds and stops them.
    static func startDaemon(_ program: FilePath, _ arguments: [String], log path: FilePath, cgroupPath: String) throws -> ChildProcess {
        let log = try FileDescriptor.open(path, .writeOnly, options: [.create, .append, .closeOnExec], permissions: [.ownerReadWrite])
        defer { try? log.close() }
        var options = SpawnOptions()
        options.standardOutput = log
        options.standardError = log
        options.newSession = true  // Ctrl-C at a terminal is for the lesson, which stops the daemon in order
        options.waitForRelease = true
        let cgroup = try Cgroup.create(path: cgroupPath, limits: ResourceLimits())
        let daemon = try ChildProcess.spawn(program, arguments: arguments, environment: Command.defaultEnvironment, options: options)
        do {
            try cgroup.addProcess(daemon.pid)
            try daemon.release()
        } catch {
            _ = try? daemon.signal(SIGKILL)
            _ = try? daemon.wait()
            throw error
        }
        cgroup.keep()  // removed with the engine's cgroups
        return daemon
    }

    /// dockerd with everything in `folder`: its data (`--data-root`), its state and the
    /// containerd it starts itself (`--exec-root`), its socket and configuration file; no
    /// networking (no bridge, no iptables rules, no IP forwarding), containers below the
    /// project's cgroups, and `runtime` registered with `--add-runtime`.
    public struct Docker: Sendable {
        public let folder: FilePath
        public let runtime: FilePath
        public let runtimeName: String
        /// The name of this dockerd's cgroup parent, below the project's cgroups.
        public let cgroupName: String

        public init(folder: FilePath, runtime: FilePath, runtimeName: String = "isorun", cgroupName: String? = nil) {
            self.folder = folder
            self.runtime = runtime
            self.runtimeName = runtimeName
            self.cgroupName = cgroupName ?? "docker-" + (folder.lastComponent?.string.split(separator: "-").last.map(String.init) ?? "\(getpid())")
        }

        public var configFile: FilePath { folder.appending("daemon.json") }
        public var dataRoot: FilePath { folder.appending("data") }
        public var execRoot: FilePath { folder.appending("exec") }
        public var socket: FilePath { folder.appending("docker.sock") }
        public var pidFile: FilePath { folder.appending("docker.pid") }
        public var log: FilePath { folder.appending("dockerd.log") }
        /// The client's own configuration folder (DOCKER_CONFIG): not ~/.docker.
        public var clientConfig: FilePath { folder.appending("client") }

        /// `--cgroup-parent`: containers go to `<parent>/<ID>` (Docker's default is /docker).
        public var cgroupParent: String { "/\(projectPrefix)/\(cgroupName)" }

        /// The `--root` the runc shim gives every runtime dockerd 20.10 registers:
        /// `<exec-root>/runtime-runc/<namespace>`, Docker's containerd namespace being `moby`.
        /// Our runtime's call log lives there.
        public var runtimeRoot: FilePath { execRoot.appending("runtime-runc/moby") }

        /// What the docker client needs to talk to this dockerd only.
        public var clientEnvironment: [String] { ["DOCKER_HOST=unix://\(socket)", "DOCKER_CONFIG=\(clientConfig)"] }

        /// dockerd's command line (dockerd(8)). `native.cgroupdriver=cgroupfs`: on a
        /// cgroup v2 host with systemd, dockerd 20.10 would pick the systemd driver, pass
        /// runtimes `--systemd-cgroup` (which isorun refuses) and want a slice as parent.
        public var arguments: [String] {
            [
                "dockerd", "--config-file", configFile.string,
                "--data-root", dataRoot.string, "--exec-root", execRoot.string,
                "--pidfile", pidFile.string, "--host", "unix://\(socket)",
                "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
                "--storage-driver", "vfs", "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", cgroupParent,
                "--add-runtime", "\(runtimeName)=\(runtime)",
            ]
        }

        /// Writes daemon.json (dockerd reads /etc/docker/daemon.json unless told another file).
        ///
        /// - `deprecated-key-path`: dockerd 20.10 writes an identity key to
        ///   /etc/docker/key.json otherwise; there is no command-line flag for it.
        /// - `shutdown-timeout`: at SIGTERM dockerd stops what still runs, waiting this
        ///   long (15 s by default) before SIGKILL.
        public func writeConfiguration() throws {
            for path in [dataRoot, execRoot, clientConfig] { try FileSystem.makeDirectories(path, mode: 0o700) }
            let text = """
                {
                  "deprecated-key-path": "\(folder.appending("key.json"))",
                  "shutdown-timeout": 2
                }

                """
            try FileSystem.writeFile(configFile, text)
        }

        /// Starts dockerd in `<cgroupParent>/daemon`; dockerd starts its own containerd
        /// (no `--containerd` given), with its socket in `<exec-root>/containerd`.
        public func startDaemon() throws -> ChildProcess {
            guard let program = Engines.find("dockerd") else {
                throw IsolationError("dockerd is not installed", hint: "apt-get install docker.io")
            }
            return try Engines.startDaemon(program, arguments, log: log, cgroupPath: cgroupParent + "/daemon")
        }

        /// Removes this dockerd's cgroups (its daemon's, what containers left, the parent).
        public func removeCgroups() {
            for parent in Cleanup.cgroupParents() where FileSystem.isDirectory(parent.appending(cgroupName)) {
                _ = Cleanup.removeCgroupTree(parent.appending(cgroupName), report: { _ in })
            }
            Cleanup.removeEmptyParents()
        }

        /// dockerd makes /run/docker/plugins (where plugins' sockets are looked for)
        /// whatever its exec-root, and its containerd's shims make /run/containerd. Which
        /// of them were there before we started.
        public static func runDirectoriesExisting() -> [String: Bool] {
            ["/run/docker": FileSystem.exists("/run/docker"), "/run/containerd": FileSystem.exists("/run/containerd")]
        }

        /// Removes what of those we made (rmdir(2): only what is empty).
        public static func removeRunDirectories(existedBefore: [String: Bool]) {
            if existedBefore["/run/docker"] == false { for path in ["/run/docker/plugins", "/run/docker"] { rmdir(path) } }
            Containerd.removeRunDirectory(existedBefore: existedBefore["/run/containerd"] ?? true)
        }

        /// A `docker save` archive of `rootfs` as an image of one layer, for `docker load`
        /// (no registry needed), written in `folder`:
        ///
        /// - `layer.tar`: the root filesystem, every file owned by root;
        /// - `config.json`: the image's configuration, naming the layer by its "diff ID",
        ///   the SHA-256 of the layer's bytes (Docker computes it again and compares);
        /// - `manifest.json`: which config, which layers, which name.
        public static func writeImageArchive(of rootfs: FilePath, name: String, in folder: FilePath, command: [String] = ["sh"]) throws -> FilePath {
            guard let tar = Command.find("tar"), let sha256sum = Command.find("sha256sum") else {
                throw IsolationError("tar or sha256sum is missing", hint: "apt-get install tar coreutils")
            }
            try FileSystem.makeDirectories(folder)
            let layer = folder.appending("layer.tar")
            let packed = try Command.run(tar, ["--owner=0", "--group=0", "--numeric-owner", "-C", rootfs.string, "-cf", layer.string, "."])
            guard packed.status == .exited(0) else { throw IsolationError("tar of \(rootfs) failed: \(packed.standardError)") }
            let summed = try Command.run(sha256sum, [layer.string])
            guard summed.status == .exited(0), let digest = summed.standardOutput.split(separator: " ").first, digest.count == 64 else {
                throw IsolationError("sha256sum \(layer) failed: \(summed.standardError)")
            }
            var machine = utsname()
            uname(&machine)
            let hardware = withUnsafeBytes(of: machine.machine) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            let architecture = ["x86_64": "amd64", "aarch64": "arm64"][hardware] ?? hardware
            // The command as a JSON array: its words are the caller's, escaped character by character.
            let cmd = "[" + command.map { word in
                "\"" + word.map { character in
                    character == "\"" || character == "\\" ? "\\" + String(character) : String(character)
                }.joined() + "\""
            }.joined(separator: ",") + "]"
            let config = """
                {"architecture":"\(architecture)","os":"linux",\
                "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":\(cmd),"WorkingDir":"/"},\
                "rootfs":{"type":"layers","diff_ids":["sha256:\(digest)"]},\
                "history":[{"created_by":"\(projectPrefix): tar of the built-in root filesystem"}]}

                """
            try FileSystem.writeFile(folder.appending("config.json"), config)
            try FileSystem.writeFile(folder.appending("manifest.json"), "[{\"Config\":\"config.json\",\"RepoTags\":[\"\(name)\"],\"Layers\":[\"layer.tar\"]}]\n")
            let archive = folder.appending("image.tar")
            let bundled = try Command.run(tar, ["-C", folder.string, "-cf", archive.string, "manifest.json", "config.json", "layer.tar"])
            guard bundled.status == .exited(0) else { throw IsolationError("tar of the image failed: \(bundled.standardError)") }
            try? FileSystem.removeTree(layer)
            return archive
        }
    }
}
