import CIsolation
import Glibc
import SystemPackage

/// An OCI runtime: the lifecycle of runtime-spec runtime.md, over `ContainerStore`.
///
///     create → (created) → start → (running) → the process exits → (stopped) → delete
///
/// `create` clones the container's init in its new namespaces, joins it to its cgroup
/// before the init sets anything up, and returns once the init has set everything up and
/// waits on the exec FIFO; `start` opens the FIFO, and the init execs the process. Each command is
/// a separate, short process: all that lasts is the init and the container's folder.
public struct Runtime {
    public var store: ContainerStore
    /// Hears the parent's steps (the lesson narrates them).
    public var narrate: (String, String) -> Void
    /// The parent's timings of the last `create`.
    public private(set) var timings: [(stage: String, seconds: Double)] = []

    public init(store: ContainerStore = ContainerStore(), narrate: @escaping (String, String) -> Void = { _, _ in }) {
        self.store = store
        self.narrate = narrate
    }

    public struct CreateOptions {
        public var bundle: FilePath
        public var pidFile: FilePath?
        public var consoleSocket: FilePath?
        public var preserveFDs: Int = 0
        /// The init narrates its own steps (to the container's stdout).
        public var narrateInit = false
        /// The container gets a session keyring of its own (runc's default); false keeps
        /// the caller's (`--no-new-keyring`), whose keys the container can then read.
        public var newKeyring = true
        /// Set to the command's name (`run`) when a config without `process` is an error
        /// (start would refuse it): create then refuses before it makes anything.
        public var requireProcess: String?
        public init(bundle: FilePath) { self.bundle = bundle }
    }

    /// Creates container `id` from a bundle. The init is our child until we exit; then
    /// it is re-parented to our parent if that is a subreaper (conmon, containerd's shim).
    public mutating func create(id: String, options: CreateOptions) throws -> ChildProcess {
        timings = []
        var start = monotonicNow()
        func lap(_ stage: String) { let now = monotonicNow(); timings.append((stage, now - start)); start = now }

        try Preflight.require([Preflight.root(why: "namespaces, mounts and cgroups need root")])
        // The cgroup join below waits for an RCU grace period: start one now, while the
        // config is read and the cgroup made (see Cgroup.warmMigration).
        let warmer = Cgroup.warmMigration()
        defer { if let warmer { _ = waitpid(warmer, nil, 0) } }
        // The init starts before it is told to go on: if it dies first, writing to it
        // must fail with EPIPE, not kill create before it cleans up (signal(7)).
        let sigpipe = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, sigpipe) }
        try ContainerStore.validate(id: id)
        let bundle: FilePath
        do {
            bundle = try FileSystem.realPath(options.bundle)
        } catch let errno as Errno where errno == .noSuchFileOrDirectory || errno == .notDirectory {
            throw IsolationError("create: the bundle \(options.bundle) does not exist",
                                 hint: "--bundle names a directory holding config.json and the root filesystem (usually rootfs/); the default is the current directory")
        } catch let errno as Errno {
            throw StageError(stage: "create: resolving the bundle path \(options.bundle)", errno: errno)
        }
        let (config, configBytes) = try OCIConfig.read(bundle: bundle)
        let rootfs = try BundleSetup.rootfs(of: config, bundle: bundle)
        // `process` is optional at create and required by start (config.md "Process"):
        // without it everything else is set up, and `start` refuses. What concerns only the
        // process (its terminal, AppArmor profile, SELinux label) is then not checked.
        let process = config.process
        if process == nil, let command = options.requireProcess {
            throw IsolationError("cannot \(command) container '\(id)': it has no process (its config.json has no `process`), so there is nothing to start",
                                 hint: "give config.json a process with args; create works without one, start and run do not")
        }
        // --preserve-fds N passes descriptors 3 … 3+N-1: a count, and a sane one.
        guard (0...1024).contains(options.preserveFDs) else {
            throw IsolationError("--preserve-fds \(options.preserveFDs) is not a number of descriptors", hint: "give 0 (the default) to 1024")
        }
        if process?.terminal == true && options.consoleSocket == nil {
            throw IsolationError("process.terminal is true, but no --console-socket was given", hint: "pass --console-socket PATH, or set terminal to false")
        }
        if process?.terminal != true && options.consoleSocket != nil {
            throw IsolationError("--console-socket was given, but \(process == nil ? "config.json has no process" : "process.terminal is false")",
                                 hint: process == nil ? "leave --console-socket out: without a process there is no terminal" : "set process.terminal to true, or leave --console-socket out")
        }
        // systemd's form, "slice:prefix:name" (runc --systemd-cgroup; podman and containerd
        // send it with their systemd cgroup manager), names a unit, not a folder.
        if let path = config.linux?.cgroupsPath, !path.hasPrefix("/"), path.split(separator: ":", omittingEmptySubsequences: false).count == 3 {
            throw IsolationError("linux.cgroupsPath '\(path)' is systemd's slice:prefix:name form, which this runtime does not support",
                                 hint: "use cgroupfs paths: cgroup_manager = \"cgroupfs\" in containers.conf, SystemdCgroup = false in containerd")
        }
        let namespaces = config.linux?.namespaces ?? []
        // A mount namespace given by path is joined by the init itself (see containerInit):
        // if we joined it here, the bundle, the state folder and /proc/self/exe would be
        // looked up in the other namespace.
        let joined = namespaces.filter { $0.path != nil && $0.type != .mount }
        if let mount = namespaces.first(where: { $0.type == .mount && $0.path != nil }), newKinds(namespaces).contains(.user) {
            throw IsolationError("linux.namespaces: joining the mount namespace \(mount.path!) from a new user namespace is not possible",
                                 hint: "setns(2) needs CAP_SYS_ADMIN in the user namespace that owns it: join the user namespace too, or create the mount namespace")
        }
        let newKinds = newKinds(namespaces)
        if newKinds.contains(.user) && (config.linux?.uidMappings ?? []).isEmpty {
            throw IsolationError("a new user namespace needs linux.uidMappings and linux.gidMappings")
        }
        // ID-mapped mounts need mount_setattr(2) with a user namespace of their own: not
        // made here, and a mount without its mapping would show the wrong owners.
        for (index, mount) in (config.mounts ?? []).enumerated()
        where mount.uidMappings != nil || mount.gidMappings != nil || (mount.options ?? []).contains(where: { $0 == "idmap" || $0 == "ridmap" }) {
            throw IsolationError("mounts[\(index)] (\(mount.destination)) is an ID-mapped mount (uidMappings, gidMappings, idmap or ridmap), which this runtime does not support",
                                 hint: "remove the mapping and give the files the owners the container needs")
        }
        if let field = Runtime.unsupportedResource(config.linux) {
            throw IsolationError("\(field) is set, but this runtime does not apply it", hint: "remove it from config.json: the container would run without it")
        }
        // Before anything is written: a sysctl outside the container's own namespaces
        // would change the host's value.
        try Sysctls.check(config.linux?.sysctl, namespaces: namespaces)
        if let profile = process?.apparmorProfile, !profile.isEmpty { try AppArmor.requireEnabled(for: profile) }
        // SELinux labels mean something only where SELinux is on (runc ignores them
        // elsewhere too); there this runtime would run the container unlabelled: refuse.
        if FileSystem.exists("/sys/fs/selinux/enforce"), let field = [("process.selinuxLabel", process?.selinuxLabel), ("linux.mountLabel", config.linux?.mountLabel)].first(where: { !($0.1 ?? "").isEmpty })?.0 {
            throw IsolationError("\(field) is set and SELinux is on, but this runtime does not apply SELinux labels",
                                 hint: "remove the label from config.json (podman: --security-opt label=disable)")
        }
        var limits = ResourceLimits(oci: config.linux?.resources)
        limits.devices = try Runtime.deviceAccess(config.linux)
        lap("parse")

        // Nothing was created before this line; from here, a failure undoes what was done.
        let directory = try store.reserve(id)
        var cgroup: Cgroup? = nil
        var child: ChildProcess? = nil
        // Another container's init joined our cgroup too (see below): it is theirs to remove.
        var sharedCgroup = false
        // No mount namespace: the init's mounts land in the host's table, on top of the
        // root filesystem. How many were there before is kept, so `delete` removes ours only.
        let sharesHostMounts = !(config.linux?.namespaceKinds ?? []).contains(.mount)
        let mountPoint = (try? FileSystem.realPath(rootfs).string) ?? rootfs.string  // as mountinfo spells it
        let mountsBefore = sharesHostMounts ? Runtime.hostMounts(at: mountPoint) : 0
        do {
            if sharesHostMounts { try FileSystem.writeFile(directory.appending(Runtime.hostMountsFile), "\(mountsBefore) \(mountPoint)") }
            // The config as it was at create: `exec` reads it later, whatever the bundle becomes.
            try store.saveConfig(config, bytes: configBytes, id: id)
            let fifo = store.fifo(id)
            narrate("mkfifo(\"\(fifo)\", 0622)", "the init will wait on this FIFO until `start`")
            try pathCall(fifo) { mkfifo($0, 0o622) }
            // 0622 despite the umask: the init may open it after it has become another user.
            try pathCall(fifo) { chmod($0, 0o622) }

            // The cgroup's place (and the controllers it needs) now; it is made after the
            // clone, while the init starts and reads its config.
            let cgroupPath = config.linux?.cgroupsPath.flatMap { $0.isEmpty ? nil : $0 } ?? "\(projectPrefix)/\(id)"
            let narrate = self.narrate
            cgroup = try Cgroup.locate(path: cgroupPath, limits: limits, log: { path, value in
                // The join (cgroup.procs, in every hierarchy) is narrated once, below.
                guard path.lastComponent?.string != "cgroup.procs" else { return }
                narrate("echo \"\(value)\" > \(path)", "linux.resources")
            })
            // A cgroup with processes in it is another container's: the same ID under
            // another --root (the default path is isolation/ID), or one cgroupsPath given
            // twice. Joining it would put both under one set of limits, and the first
            // `delete` would kill the other's processes (a waiting init: "it is stopped,
            // not created" at its start). Refused, and left alone by the clean-up below.
            if case let users = cgroup!.processes(), !users.isEmpty {
                cgroup!.keep()  // released without keep(), the object would remove it
                cgroup = nil
                throw IsolationError("the cgroup \(cgroupPath) is in use: \(users.count) process(es) of another container are in it",
                                     hint: "a container with ID '\(id)' under another --root, or the same linux.cgroupsPath twice: choose another ID or cgroupsPath")
            }
            func makeCgroup() throws {
                narrate("mkdir …/\(cgroup!.relativePath)", "the container's cgroup, in every hierarchy (chapter 03), its limits written before any process is in it")
                try cgroup!.make(limits: limits)
                // The parents it made (cgroupsPath /x/a/b/c may need x, x/a, x/a/b), for `delete`.
                if !cgroup!.madeParents.isEmpty {
                    try FileSystem.writeFile(directory.appending(Runtime.cgroupParentsFile), cgroup!.madeParents.map { $0.string + "\n" }.joined())
                }
                lap("cgroup")
            }
            // Except after joining a user namespace, which leaves us no capability over the
            // host's cgroups (device rules need CAP_SYS_ADMIN there): then it is made first.
            let cgroupBeforeNamespaces = joined.contains { $0.type == .user }
            if cgroupBeforeNamespaces { try makeCgroup() }

            // CVE-2019-5736: the init is a process of the container (its PID namespace)
            // from its clone until its execve of the user's program. A process there may
            // open its /proc/PID/exe, and through it, once nothing runs it, write to the
            // runtime's executable on the host. So the init runs a copy nobody can write,
            // made now (open_tree needs our capabilities over the host's mounts, which a
            // joined user namespace takes away), and we are not dumpable, nor is the clone
            // that inherits it: without CAP_SYS_PTRACE nobody opens our /proc/PID/exe.
            let executable = try RuntimeExecutable.protectedCopy()
            defer { try? executable.descriptor.close() }
            narrate(executable.kind == .sealedMemory ? "memfd_create(\"isorun\"); sendfile(/proc/self/exe); fcntl(F_ADD_SEALS, seal|shrink|grow|write)"
                        : "open_tree(\"/proc/self/exe\", OPEN_TREE_CLONE); mount_setattr(MOUNT_ATTR_RDONLY)",
                    "the init will run a copy of this runtime that the container cannot write (CVE-2019-5736)")
            narrate("prctl(PR_SET_DUMPABLE, 0)", "the container's processes may not open ours or the init's /proc/PID/exe (until the init execs)")
            try RuntimeExecutable.becomeNonDumpable()

            // Namespaces given by path are joined here, by this short-lived process, so
            // the init is cloned into them (a PID namespace is entered by children only).
            for namespace in joined.sorted(by: { $0.type == .user && $1.type != .user }) {
                narrate("setns(open(\"\(namespace.path!)\"), \(namespace.type.kind.cloneFlagName))", "join an existing \(namespace.type.rawValue) namespace")
                try Namespaces.join(path: FilePath(namespace.path!), kind: namespace.type.kind)
            }

            // The init inherits what it needs at fixed, high descriptors (the process's own
            // 3… are --preserve-fds): dup(2) to 100 or above, the original closed.
            func forInit(_ fd: Int32, _ what: String) throws -> Int32 {
                let high = fcntl(fd, F_DUPFD, 100)
                let error = currentErrno()
                close(fd)
                guard high >= 0 else { throw StageError(stage: "dup \(what)", errno: error) }
                return high
            }
            // The init reports "ready" or "error …" through a pipe.
            let sync = try makePipe()
            defer { close(sync.read) }
            let syncFD = try forInit(sync.write, "the sync pipe")
            // And the other way: "joined", and "go on" after the runtime's hooks.
            let proceed = try makePipe()
            defer { close(proceed.write) }
            let proceedFD = try forInit(proceed.read, "the continue pipe")
            // The config as create checked and kept it: a descriptor, because the bundle's
            // may change meanwhile, and in a user namespace the init could not open our state
            // folder (it is that namespace's root by then).
            let configFD = open(directory.appending(OCIConfig.fileName).string, O_RDONLY)
            guard configFD >= 0 else { throw StageError(stage: "open the kept config.json", errno: currentErrno()) }
            let initConfigFD = try forInit(configFD, "the kept config.json")
            defer { close(initConfigFD) }
            // With a terminal, the engine listens on --console-socket for the pty's master:
            // we connect now, on the host; the init sends the master once it made the pty.
            var consoleFD: Int32 = -1
            if let socket = options.consoleSocket {
                consoleFD = try forInit(try PseudoTerminal.connect(socket), "the console socket")
            }
            defer { if consoleFD >= 0 { close(consoleFD) } }
            // Only 0, 1, 2, the sync pipes, the console and --preserve-fds (3 … 3+N-1) reach the init.
            FileSystem.closeOnExecAll(except: Set([syncFD, proceedFD, initConfigFD, consoleFD] + (0..<Int32(options.preserveFDs)).map { 3 + $0 }))
            var spawn = SpawnOptions()
            // A cgroup namespace's root is the cgroup its creator is in: the init makes it
            // itself (unshare), once we have moved it into the container's cgroup.
            spawn.namespaces = newKinds.subtracting(.cgroup)
            // The maps need not cover our own IDs (host root's, also in a user namespace we
            // joined): the init becomes the namespace's root before execve, which would
            // otherwise drop its capabilities. So it waits for the maps we write after the
            // clone. Otherwise it starts at once: the program start of the init overlaps
            // with the cgroup join below (whose first write waits for an RCU grace period,
            // about 7 ms on cgroup v1), and the init waits for "joined" before its setup.
            spawn.becomeNamespaceRoot = newKinds.contains(.user) || joined.contains { $0.type == .user }
            spawn.waitForRelease = spawn.becomeNamespaceRoot
            if let offsets = config.linux?.timeOffsets {
                spawn.monotonicOffset = offsets["monotonic"]?.secs ?? 0
                spawn.boottimeOffset = offsets["boottime"]?.secs ?? 0
            }
            var arguments = ["init", "--bundle", bundle.string, "--state-dir", directory.string, "--sync-fd", "\(syncFD)", "--continue-fd", "\(proceedFD)",
                             "--config-fd", "\(initConfigFD)"]
            for (controller, path) in cgroup!.directories.sorted(by: { $0.key < $1.key }) { arguments += ["--cgroup", "\(controller)=\(path)"] }
            if consoleFD >= 0 { arguments += ["--console-fd", "\(consoleFD)"] }
            if options.narrateInit { arguments.append("--narrate") }
            if !options.newKeyring { arguments.append("--no-new-keyring") }
            spawn.executableDescriptor = executable.descriptor
            narrate("clone(\(newKinds.subtracting(.time).cloneFlagName)|SIGCHLD) → execveat(the read-only copy, [\"init\", …])",
                    spawn.waitForRelease ? "the container's first process, in its new namespaces, held before exec until it may become the user namespace's root"
                        : "the container's first process, in its new namespaces: it starts the init at once, which waits for the cgroup join")
            do {
                child = try ChildProcess.spawn("/proc/self/exe", arguments: [CommandLine.arguments.first ?? "runtime"] + arguments,
                                               environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], options: spawn)
            } catch {
                close(syncFD)
                close(proceedFD)
                throw error
            }
            close(syncFD)
            close(proceedFD)
            lap("namespaces")
            if newKinds.contains(.user), let linux = config.linux {
                let map = UserNamespace(
                    uidMap: (linux.uidMappings ?? []).map { IDMapping(inside: $0.containerID, outside: $0.hostID, count: $0.size) },
                    gidMap: (linux.gidMappings ?? []).map { IDMapping(inside: $0.containerID, outside: $0.hostID, count: $0.size) })
                try map.write(to: child!.pid, narrate: narrate)
            }
            if !cgroupBeforeNamespaces { try makeCgroup() }
            narrate("echo \(child!.pid) > …/\(cgroup!.relativePath)/cgroup.procs", "join the cgroup before the init sets anything up: every mount and the program run inside the limits")
            do {
                try cgroup!.addProcess(child!.pid)
            } catch {
                // An init that failed while we made its cgroup (its config unreadable, say)
                // has said why on the sync pipe: that, not "no such process", is the error.
                let ended = ProcessInfoStat(pid: child!.pid).map { $0.state == "Z" } ?? true  // never wait for a live one
                if ended, let status = try? child!.wait(), case let message = readLine(sync.read), message.hasPrefix("error ") {
                    throw IsolationError(String(message.dropFirst(6)), hint: "the container's init \(status) before it joined its cgroup")
                }
                throw error
            }
            // Ours alone? Another create of the same cgroup may have passed the check above
            // at the same moment: each looks after it joined, and one that sees the other's
            // process gives way (both may, never neither).
            if case let others = cgroup!.processes().filter({ $0 != child!.pid }), !others.isEmpty {
                sharedCgroup = true
                throw IsolationError("the cgroup \(cgroupPath) is in use: \(others.count) process(es) of another container joined it meanwhile",
                                     hint: "a container with ID '\(id)' under another --root, or the same linux.cgroupsPath twice: choose another ID or cgroupsPath")
            }
            try child!.release()
            // The init may have died meanwhile: then this write fails with EPIPE (SIGPIPE is
            // ignored while create runs, see above), and "ready" below reports what happened.
            let joinedLine = Array("joined\n".utf8)
            _ = joinedLine.withUnsafeBufferPointer { write(proceed.write, $0.baseAddress, $0.count) }
            lap("cgroup join")

            // The init's words: "hooks" once its mounts are made (before pivot_root), when the
            // runtime's prestart and createRuntime hooks run; then "ready", or what failed.
            var message = readLine(sync.read)
            if message == "hooks" {
                let state = OCIState(id: id, status: .creating, pid: child!.pid, bundle: bundle.string, annotations: config.annotations)
                // prestart is the deprecated hook of the spec before createRuntime existed,
                // when it ran "after start, before the program": its hooks (and runtime-tools'
                // validation, and crun) expect the state of a container that is `created`.
                var prestartState = state
                prestartState.status = .created
                try Hooks.run(config.hooks?.prestart, stage: "prestart", state: prestartState, narrate: narrate)
                try Hooks.run(config.hooks?.createRuntime, stage: "createRuntime", state: state, narrate: narrate)
                let go = Array("\(child!.pid)\n".utf8)
                _ = go.withUnsafeBufferPointer { write(proceed.write, $0.baseAddress, $0.count) }
                message = readLine(sync.read)
            }
            if message.hasPrefix("error exec: "), let error = ExecError(parsing: String(message.dropFirst(12))) {
                _ = try? child!.wait()
                throw error  // the shell's status (126, 127) for `run`; runc's words for engines
            }
            if message != "ready" {
                let status = try? child!.wait()
                let detail = message.hasPrefix("error ") ? String(message.dropFirst(6)) : "the container's init \(status.map { "\($0)" } ?? "ended") before it was ready"
                throw IsolationError(detail)
            }
            lap("container setup")
            guard let info = ProcessInfoStat(pid: child!.pid) else { throw IsolationError("the container's init \(child!.pid) vanished") }
            let record = ContainerRecord(
                ociVersion: config.ociVersion, id: id, bundle: bundle.string, rootfs: rootfs.string,
                pid: child!.pid, startTime: info.startTime, created: Double(time(nil)),
                cgroupPath: cgroup!.relativePath, annotations: config.annotations, noNewKeyring: options.newKeyring ? nil : true)
            try store.save(record)
            if let pidFile = options.pidFile {
                let temporary = FilePath(pidFile.string + ".tmp")
                try FileSystem.writeFile(temporary, "\(child!.pid)")
                try pathCall(temporary) { rename($0, pidFile.string) }
            }
            cgroup!.keep()
            return child!
        } catch {
            if let child { _ = try? child.signal(SIGKILL); _ = try? child.wait() }
            if sharesHostMounts { Runtime.unmountHostMounts(at: mountPoint, keeping: mountsBefore) }
            if sharedCgroup, let cgroup {
                // Our init is gone (killed and reaped above); the other container's is not:
                // its folders go only if it has left them too (rmdir(2) refuses otherwise).
                cgroup.keep()
                for directory in cgroup.directories.values { rmdir(directory.string) }
            } else {
                cgroup?.destroy()
            }
            try? store.remove(id)
            throw error
        }
    }

    /// The device rules for the container's cgroup: the config's `linux.resources.devices`
    /// in order, then what every container needs (runc's defaults) and the config's own
    /// `linux.devices`, so that a "deny all" first still leaves /dev/null working.
    /// nil when the config has no device rules (the controller is left alone).
    static func deviceAccess(_ linux: OCIConfig.Linux?) throws -> DeviceAccess? {
        guard let list = linux?.resources?.devices else { return nil }
        var rules: [DeviceAccess.Rule] = []
        for (index, rule) in list.enumerated() {
            guard let access = DeviceAccess.Access(rule.access ?? "") else {
                throw IsolationError("linux.resources.devices[\(index)].access is '\(rule.access ?? "")'", hint: "write any of r (read), w (write) and m (mknod), such as \"rwm\"")
            }
            let kind: DeviceAccess.Rule.Kind = switch rule.type { case .character: .character; case .block: .block; default: .all }
            rules.append(DeviceAccess.Rule(allow: rule.allow, kind: kind, major: rule.major.flatMap { $0 < 0 ? nil : $0 },
                                           minor: rule.minor.flatMap { $0 < 0 ? nil : $0 }, access: access))
        }
        rules += DeviceAccess.containerDefaults
        for device in linux?.devices ?? [] where device.type != .fifo {
            rules.append(DeviceAccess.Rule(allow: true, kind: device.type == .block ? .block : .character, major: device.major, minor: device.minor))
        }
        return DeviceAccess(rules)
    }

    /// The namespaces the container gets new (those without a path).
    func newKinds(_ namespaces: [OCIConfig.Namespace]) -> Namespaces {
        Namespaces(namespaces.filter { $0.path == nil }.map(\.type.kind))
    }

    /// The first field of linux.resources (or linux.intelRdt) that this runtime would
    /// otherwise drop: they are refused, so nobody believes a limit holds that does not.
    /// (blockIO, hugepageLimits and network are Cgroup's: applied, or refused there.)
    static func unsupportedResource(_ linux: OCIConfig.Linux?) -> String? {
        guard let linux else { return nil }
        if linux.intelRdt != nil { return "linux.intelRdt" }
        for (clock, offset) in (linux.timeOffsets ?? [:]).sorted(by: { $0.key < $1.key }) where (offset.nanosecs ?? 0) != 0 {
            return "linux.timeOffsets.\(clock).nanosecs (this runtime sets whole seconds)"
        }
        guard let resources = linux.resources else { return nil }
        if !(resources.rdma ?? [:]).isEmpty { return "linux.resources.rdma" }
        if !(resources.unified ?? [:]).isEmpty { return "linux.resources.unified" }
        if let cpu = resources.cpu {
            if (cpu.realtimeRuntime ?? 0) != 0 || (cpu.realtimePeriod ?? 0) != 0 { return "linux.resources.cpu.realtimeRuntime/realtimePeriod" }
            if (cpu.idle ?? 0) != 0 { return "linux.resources.cpu.idle" }
            if (cpu.burst ?? 0) != 0 { return "linux.resources.cpu.burst" }
        }
        return nil
    }

    /// Lets a created container's init exec its process.
    public func start(id: String) throws {
        let record = try store.load(id)
        let status = store.status(of: record)
        guard status == .created else {
            throw IsolationError("cannot start container '\(id)': it is \(status.rawValue), not created")
        }
        // runtime.md "start": an error if `process` was not set. Checked before the FIFO
        // is touched, so the container stays created and its init keeps waiting.
        if let config = try? createdConfig(id: id), config.process == nil {
            throw IsolationError("cannot start container '\(id)': it has no process (its config.json has no `process`), so there is nothing to start",
                                 hint: "remove it with delete --force, or kill ID KILL then delete; create it again from a config.json with process.args")
        }
        let fifo = store.fifo(id)
        // O_NONBLOCK: the open must not hang if the init died; poll for its byte instead.
        let fd = open(fifo.string, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw StageError(stage: "open \(fifo)", errno: currentErrno()) }
        defer { close(fd) }
        var byte: UInt8 = 0
        for _ in 0..<2000 {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 10)
            if read(fd, &byte, 1) == 1 {
                unlink(fifo.string)
                if let hooks = (try? createdConfig(id: id))?.hooks?.poststart {
                    // The state of the moment start made: running, with the process's PID,
                    // even if a short process has already ended by the time the hook runs.
                    var state = store.state(of: record)
                    state.status = .running
                    state.pid = record.pid
                    for warning in Hooks.runWarning(hooks, stage: "poststart", state: state) {
                        printError("warning: \(warning)")
                    }
                }
                return
            }
            if store.status(of: record) == .stopped {
                unlink(fifo.string)
                throw IsolationError("container '\(id)' stopped before it could start")
            }
        }
        throw IsolationError("container '\(id)' did not start within 20 s")
    }

    public func state(id: String) throws -> OCIState {
        store.state(of: try store.load(id))
    }

    /// kill(2) to the container's init, when it is created, running or paused.
    ///
    /// `all` (runc's `kill --all`): every process in the container's cgroup, also after
    /// its init has ended, when what the init started may still run; a stopped container
    /// with an empty cgroup is no error then. containerd's CRI stops containers this way.
    public func kill(id: String, signal: Int32, all: Bool = false) throws {
        let record = try store.load(id)
        let status = store.status(of: record)
        if all {
            guard let cgroup = try? Cgroup.existing(path: record.cgroupPath) else {
                if status == .stopped { return }
                throw IsolationError("cannot signal container '\(id)': its cgroup \(record.cgroupPath) is gone")
            }
            // As runc: frozen while the list is read and signalled, so that no process forks
            // a child the signal misses; thawed after, so that the signal is acted on (a
            // frozen process does not die of SIGKILL until it thaws: a paused container is
            // thawed too).
            try? cgroup.setFrozen(true)
            defer { try? cgroup.setFrozen(false) }
            let pids = cgroup.processes()
            if status == .stopped && pids.isEmpty { return }
            for pid in pids { Glibc.kill(pid, signal) }  // one that ended meanwhile (ESRCH) is no error
            return
        }
        guard status != .stopped else {
            // runc's words: containerd's shim reads "container not running" as "the
            // process had already ended", any other text as a failed kill.
            throw IsolationError("cannot signal container '\(id)': container not running (it is stopped)")
        }
        try valueOrErrno { Glibc.kill(record.pid, signal) }
    }

    /// Removes a stopped container: its cgroup and its folder. A container that is not
    /// stopped is an error that changes nothing (runtime.md), unless `force`, which
    /// SIGKILLs it first.
    public func delete(id: String, force: Bool) throws {
        let record: ContainerRecord
        do { record = try store.load(id) } catch {
            // With force, as runc: a half-made container (a folder, no record yet: its
            // create was killed) is removed, with the cgroup that create made and what runs
            // in it; one that does not exist is already gone. Engines rely on it: podman
            // calls `delete --force` after a `create` that failed.
            guard force else { throw error }
            try ContainerStore.validate(id: id)
            if FileSystem.isDirectory(store.directory(id)) {
                if let config = try? OCIConfig.load(bundle: store.directory(id)) {
                    let path = config.linux?.cgroupsPath.flatMap { $0.isEmpty ? nil : $0 } ?? "\(projectPrefix)/\(id)"
                    if let cgroup = try? Cgroup.existing(path: path) { cgroup.destroy() }
                }
                removeCgroupParents(id)
                try store.remove(id)
            }
            return
        }
        var status = store.status(of: record)
        if status != .stopped {
            guard force else {
                throw IsolationError("cannot delete container '\(id)': it is \(status.rawValue)", hint: "stop it first with `kill \(id) KILL` (a plain kill sends SIGTERM, which a PID 1 without a handler for it ignores), or use delete --force")
            }
            let cgroup = try? Cgroup.existing(path: record.cgroupPath)
            if status == .paused { try? cgroup?.setFrozen(false) }
            _ = Glibc.kill(record.pid, SIGKILL)
            for _ in 0..<500 where status != .stopped {
                usleep(10_000)
                status = store.status(of: record)
            }
        }
        if let text = try? FileSystem.readString(store.directory(id).appending(Runtime.hostMountsFile)),
           let space = text.firstIndex(of: " "), let keep = Int(text[..<space]) {
            Runtime.unmountHostMounts(at: String(text[text.index(after: space)...]), keeping: keep)
        }
        if let cgroup = try? Cgroup.existing(path: record.cgroupPath) { cgroup.destroy() }
        removeCgroupParents(id)
        let poststop = (try? createdConfig(id: id))?.hooks?.poststop
        let state = store.state(of: record)
        try store.remove(id)
        for warning in Hooks.runWarning(poststop, stage: "poststop", state: state) {
            printError("warning: \(warning)")
        }
    }

    public func pause(id: String, frozen: Bool) throws {
        let record = try store.load(id)
        let status = store.status(of: record)
        guard frozen ? status == .running : status == .paused else {
            throw IsolationError("cannot \(frozen ? "pause" : "resume") container '\(id)': it is \(status.rawValue)")
        }
        try Cgroup.existing(path: record.cgroupPath).setFrozen(frozen)
    }

    /// Changes the limits of a created, running or paused container (runc's `update`):
    /// its cgroup's files, each read back by the kernel's rules (see `Cgroup.update`).
    public func update(id: String, _ update: Cgroup.Update) throws {
        let record = try store.load(id)
        let status = store.status(of: record)
        guard status != .stopped else {
            throw IsolationError("cannot update container '\(id)': it is stopped", hint: "a stopped container's cgroup has no process to limit")
        }
        // cpuset and blkio join the cgroup now if create did not need them; the parent
        // folders that makes are added to those delete removes.
        var cgroup = try Cgroup.existing(path: record.cgroupPath)
        for controller in Cgroup.controllersToJoin(for: update) where !cgroup.manages(controller) {
            let made = try cgroup.join(controller)
            if !made.isEmpty {
                let file = store.directory(id).appending(Runtime.cgroupParentsFile)
                let before = (try? FileSystem.readString(file)) ?? ""
                try FileSystem.writeFile(file, before + made.map { $0.string + "\n" }.joined())
            }
            cgroup = try Cgroup.existing(path: record.cgroupPath)
        }
        try cgroup.update(update)
    }

    /// The PIDs (host view) of every process in the container's cgroup.
    public func processes(id: String) throws -> [pid_t] {
        let record = try store.load(id)
        return try Cgroup.existing(path: record.cgroupPath).processes()
    }

    // MARK: exec

    public struct ExecOptions {
        public var process: OCIConfig.Process
        public var pidFile: FilePath?
        /// Where the engine listens for the terminal's master (with `process.terminal`).
        public var consoleSocket: FilePath?
        public var preserveFDs = 0
        public init(process: OCIConfig.Process) { self.process = process }
    }

    /// The config a container was created with (kept in its state folder).
    public func createdConfig(id: String) throws -> OCIConfig {
        _ = try store.load(id)
        return try store.config(id)
    }

    /// Starts another process in a running container. This short-lived process joins
    /// the container's cgroup (while host paths resolve), then all its namespaces
    /// (setns(2): user first, mount last), takes on the process's user, capabilities and
    /// limits itself (as the container's init did), and spawns the program, which
    /// inherits all of it. (Re-executing ourselves inside would need our shared
    /// libraries in the container's root filesystem.) Returns the process, our child.
    public func exec(id: String, options: ExecOptions) throws -> ChildProcess {
        // CVE-2019-5736: our child is the container's process from its fork until its
        // execve, and a `#!/proc/self/exe` program would make the kernel run our executable
        // inside the container: it must be a copy the container cannot write.
        guard RuntimeExecutable.isProtected else {
            throw IsolationError("exec must run from a copy of the runtime the container cannot write",
                                 hint: "call RuntimeExecutable.reexecuteProtected() first (isorun's main does)")
        }
        // We join the container's cgroup below: start the grace period that waits for now.
        let warmer = Cgroup.warmMigration()
        defer { if let warmer { _ = waitpid(warmer, nil, 0) } }
        let record = try store.load(id)
        let status = store.status(of: record)
        guard status == .running else { throw IsolationError("cannot exec in container '\(id)': it is \(status.rawValue), not running") }
        let config = try createdConfig(id: id)
        let wantsTerminal = options.process.terminal == true
        if wantsTerminal != (options.consoleSocket != nil) {
            throw IsolationError(wantsTerminal ? "a terminal (--tty, process.terminal) needs --console-socket" : "--console-socket was given, but no terminal (--tty, process.terminal) was asked for",
                                 hint: wantsTerminal ? "pass --console-socket PATH, where the engine listens for the terminal's master" : "add --tty, or leave --console-socket out")
        }
        // The pid file is opened now, as root, on the host: later neither holds.
        var pidFD: Int32 = -1
        if let pidFile = options.pidFile {
            pidFD = open(pidFile.string, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard pidFD >= 0 else { throw StageError(stage: "open \(pidFile)", errno: currentErrno()) }
        }
        defer { if pidFD >= 0 { close(pidFD) } }
        // The console socket is a host path too: connect before entering the container.
        let console = try options.consoleSocket.map { try PseudoTerminal.connect($0) } ?? -1
        defer { if console >= 0 { close(console) } }
        narrate("prctl(PR_SET_DUMPABLE, 0)", "the container's processes may not open our child's /proc/PID/exe before its execve")
        try RuntimeExecutable.becomeNonDumpable()
        narrate("echo \(getpid()) > …/\(record.cgroupPath)/cgroup.procs", "join the container's cgroup; the process inherits it")
        try Cgroup.existing(path: record.cgroupPath).addProcess(getpid())

        // Before setns: our /proc/self/fd is listed through the host's /proc. A descriptor
        // inherited from our caller would keep a caller waiting for our end waiting for
        // the exec'd process instead (a detached exec would never look detached).
        FileSystem.closeOnExecAll(except: Set((0..<Int32(options.preserveFDs)).map { 3 + $0 }))
        // AppArmor's request is written to our own /proc entry, which the container's
        // /proc (another PID namespace) does not have: ask now. The spawned process
        // inherits the request and is confined at its execve.
        var process = options.process
        if let profile = process.apparmorProfile, !profile.isEmpty {
            narrate("echo \"exec \(profile)\" > /proc/self/attr/apparmor/exec", "process.apparmorProfile, asked for before we leave the host's /proc")
            try AppArmor.changeOnExec(profile)
            process.apparmorProfile = nil
        }
        // The OOM score too: once we joined the PID namespace, the container's /proc has
        // no entry for us (we are not in it; only our children will be), and
        // /proc/self/oom_score_adj is ENOENT there. The spawned process inherits it.
        if let score = process.oomScoreAdj {
            narrate("echo \(score) > /proc/self/oom_score_adj", "process.oomScoreAdj, written while /proc/self is still ours")
            do { try FileSystem.writeFile("/proc/self/oom_score_adj", "\(score)") } catch let error as Errno {
                throw StageError(stage: "oom_score_adj \(score)", errno: error,
                                 detail: error == .permissionDenied ? "lowering the score below the caller's needs CAP_SYS_RESOURCE" : nil)
            }
            process.oomScoreAdj = nil
        }
        if console >= 0 { _ = fcntl(console, F_SETFD, FD_CLOEXEC) }
        let kinds = config.linux?.namespaceKinds ?? []
        // The init's root, held open: setns(CLONE_NEWNS) puts us at the top of the mount
        // namespace's "/", which is the container's root only when the runtime was not
        // itself in a chroot. Entering the init's own root afterwards always is (nsenter -r).
        let initRoot = open("/proc/\(record.pid)/root", 0o10000000 /* O_PATH */ | O_DIRECTORY | O_CLOEXEC)
        guard initRoot >= 0 else { throw StageError(stage: "open /proc/\(record.pid)/root", errno: currentErrno()) }
        defer { close(initRoot) }
        // Whether the init's user namespace denies setgroups(2): read on the host now. In
        // the container's /proc we have no /proc/self (we are not in its PID namespace).
        let setgroupsDenied = kinds.contains(.user)
            && (try? FileSystem.readString(FilePath("/proc/\(record.pid)/setgroups")))?.hasPrefix("deny") == true
        let order: [Namespaces] = [.user, .ipc, .uts, .network, .pid, .cgroup, .time, .mount]
        for kind in order where kinds.contains(kind) {
            narrate("setns(open(\"/proc/\(record.pid)/ns/\(kind.procName)\"), \(kind.cloneFlagName))", "join the container's \(kind.shortName) namespace")
            try Namespaces.join(path: FilePath("/proc/\(record.pid)/ns/\(kind.procName)"), kind: kind)
        }
        if record.noNewKeyring != true {
            // The caller's session keyring stays outside, as for the init (keyrings(7)).
            narrate("keyctl(KEYCTL_JOIN_SESSION_KEYRING, \"_ses.\(id)\")", "a session keyring of the process's own, not the caller's")
            try SessionKeyring.join(name: "_ses.\(id)")
        }
        narrate("fchdir(/proc/\(record.pid)/root); chroot(\".\")", "the container's root directory, as its init sees it")
        guard fchdir(initRoot) == 0, chroot(".") == 0 else { throw StageError(stage: "chroot to the container's root", errno: currentErrno()) }
        // After setns(CLONE_NEWNS) our root is the container's: /dev/ptmx is its devpts,
        // so the terminal is numbered and owned inside, as the init's is.
        var terminal: PseudoTerminal? = nil
        if console >= 0 {
            narrate("open(\"/dev/ptmx\"); sendmsg(console socket, SCM_RIGHTS master)", "exec --tty: the engine gets the terminal's master end")
            terminal = try PseudoTerminal.open(sendingMasterTo: console, size: options.process.consoleSize,
                                               owner: (options.process.user.uid, options.process.user.gid))
        }
        defer { if let terminal { close(terminal.slave) } }
        var request = config
        request.process = process
        request.hostname = nil
        request.domainname = nil
        let setup = BundleSetup(config: request, bundle: "/", namespaces: kinds, narrate: narrate)
        setup.makesWorkingDirectory = false
        setup.setgroupsDenied = setgroupsDenied
        try setup.applyProcess()
        // The filter binds us too: the profile must allow clone and wait4, as any does.
        try setup.installPendingSeccomp()
        let environment = options.process.env ?? []
        let path = environment.first(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) } ?? Exec.containerPath
        let program = try Exec.resolve(options.process.args[0], path: path)
        var spawn = SpawnOptions()
        if let terminal {
            // The slave is the process's 0, 1, 2; in a new session it becomes its controlling terminal.
            let slave = FileDescriptor(rawValue: terminal.slave)
            spawn.standardInput = slave
            spawn.standardOutput = slave
            spawn.standardError = slave
            spawn.newSession = true
            spawn.controllingTerminal = true
        }
        let child = try ChildProcess.spawn(program, arguments: options.process.args, environment: environment, options: spawn)
        if pidFD >= 0 {
            let text = Array("\(child.pid)".utf8)
            _ = text.withUnsafeBufferPointer { write(pidFD, $0.baseAddress, $0.count) }
        }
        return child
    }
}

extension Runtime {
    /// The file in a container's folder that lists the cgroup parents create made, one a line.
    static let cgroupParentsFile = "cgroup-parents"

    /// Removes the cgroup parents create made for `id` (those still empty), as listed in
    /// its folder; only folders below /sys/fs/cgroup are touched.
    func removeCgroupParents(_ id: String) {
        guard let text = try? FileSystem.readString(store.directory(id).appending(Runtime.cgroupParentsFile)) else { return }
        let parents = text.split(separator: "\n").map(String.init)
            .filter { $0.hasPrefix("/sys/fs/cgroup/") && !$0.split(separator: "/").contains("..") }
        Cgroup.removeParents(parents.map { FilePath($0) })
    }

    /// The file in a container's folder that says how many mounts its root filesystem had
    /// before create, and where it is mounted (only for a container without a mount namespace).
    static let hostMountsFile = "host-mounts"

    /// How many mounts are stacked at `path` in our mount table.
    static func hostMounts(at path: String) -> Int {
        ((try? MountInfo.table()) ?? []).filter { $0.mountPoint == path }.count
    }

    /// Detaches the topmost mounts at `path` (each with all that is mounted below it:
    /// umount2(2) MNT_DETACH) until `keeping` are left.
    static func unmountHostMounts(at path: String, keeping: Int) {
        for _ in 0..<16 where hostMounts(at: path) > keeping {
            if (try? Mount.unmount(FilePath(path), detach: true)) == nil { return }
        }
    }
}

/// One line from a pipe, read byte by byte so nothing after it is consumed.
func readLine(_ fd: Int32) -> String {
    var bytes: [UInt8] = []
    var byte: UInt8 = 0
    while true {
        let n = read(fd, &byte, 1)
        if n == 1 { if byte == 10 { break }; bytes.append(byte) } else if n < 0 && Glibc.errno == EINTR { continue } else { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
