import CIsolation
import Glibc
import SystemPackage

extension Runtime {
    /// The container's init: the hidden `init` command that `create` clones. Sets the
    /// container up from the inside (`BundleSetup`), says "ready" on the sync pipe,
    /// waits on the exec FIFO for `start`, and execs the process. Returns only by exiting.
    ///
    /// `narrate` hears each step (the lesson prints them with their timings).
    public static func containerInit(
        bundle: FilePath, stateDirectory: FilePath, syncFD: Int32, continueFD: Int32, configFD: Int32, consoleFD: Int32 = -1,
        cgroupDirectories: [String: FilePath], newKeyring: Bool = true, narrate: @escaping (String, String) -> Void,
        timings: ([(stage: String, seconds: Double)]) -> Void = { _ in }
    ) -> Never {
        // The sync pipe must not reach the container's process.
        _ = fcntl(syncFD, F_SETFD, FD_CLOEXEC)
        _ = fcntl(continueFD, F_SETFD, FD_CLOEXEC)
        if consoleFD >= 0 { _ = fcntl(consoleFD, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(configFD, F_SETFD, FD_CLOEXEC)
        func report(_ line: String) {
            let bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeBufferPointer { write(syncFD, $0.baseAddress, $0.count) }
        }
        var ready = false
        do {
            // execve made us dumpable again; until our own execve we are a process of the
            // container that runs the runtime (from a read-only copy, see create). Between
            // that execve and this line we still held every capability, which a process
            // with fewer may not ptrace or open /proc/PID/exe of either.
            try RuntimeExecutable.becomeNonDumpable()
            // The copy create checked and kept, byte for byte (the bundle's may have changed).
            let configBytes = try FileSystem.readAll(FileDescriptor(rawValue: configFD))
            close(configFD)
            let config = try OCIConfig.decode(json: configBytes, source: "config.json (as create kept it)")
            // No process (config.md: optional at create): everything else is set up, and we
            // wait as any created container does; `start` refuses without touching the FIFO.
            let process = config.process
            let setup = BundleSetup(config: config, bundle: bundle, namespaces: config.linux?.namespaceKinds ?? [],
                                    cgroupDirectories: cgroupDirectories, narrate: narrate)
            // The runtime moves us into the container's cgroup while we start and read the
            // config; nothing is set up before it says so.
            guard readLine(continueFD) == "joined" else { throw IsolationError("the runtime did not move the init into the container's cgroup") }
            let id = stateDirectory.lastComponent?.string ?? ""
            if newKeyring {
                // Our session keyring is the caller's (a shell's, a service's): its keys would
                // be the container's to read. runc's name for the container's own.
                narrate("keyctl(KEYCTL_JOIN_SESSION_KEYRING, \"_ses.\(id)\")", "a new session keyring: the caller's keys stay outside (keyrings(7))")
                try SessionKeyring.join(name: "_ses.\(id)")
            }
            if let mount = (config.linux?.namespaces ?? []).first(where: { $0.type == .mount && $0.path != nil }), let path = mount.path {
                // We were cloned into our parent's mount namespace; the config's is joined
                // here, and from now on every path (the rootfs, the mounts) is looked up in it.
                narrate("setns(open(\"\(path)\"), CLONE_NEWNS)", "join an existing mount namespace: the rootfs and mounts are set up there")
                try Namespaces.join(path: FilePath(path), kind: .mount)
            }
            if (config.linux?.namespaces ?? []).contains(where: { $0.type == .cgroup && $0.path == nil }) {
                narrate("unshare(CLONE_NEWCGROUP)", "now that we are in the container's cgroup, it becomes the root we see (cgroup_namespaces(7))")
                if iso_unshare(Namespaces.cgroup.rawValue) != 0 { throw StageError(stage: "unshare(CLONE_NEWCGROUP)", errno: currentErrno()) }
            }
            try setup.prepareRoot()
            // Hooks, in the spec's order: the runtime's prestart and createRuntime (it runs
            // them while we wait), then our createContainer, in the container's namespaces
            // but before pivot_root, so their paths resolve on the host.
            let hooks = config.hooks
            // Our own hooks' state needs our PID as the runtime sees it (getpid() is 1 in
            // our PID namespace): the runtime sends it with its "go on".
            var hostPID = getpid()
            let runtimeHooks = (hooks?.prestart ?? []) + (hooks?.createRuntime ?? [])
            if !(runtimeHooks + (hooks?.createContainer ?? []) + (hooks?.startContainer ?? [])).isEmpty {
                report("hooks")
                guard let pid = Int32(readLine(continueFD)) else { throw IsolationError("the runtime did not answer after its hooks") }
                hostPID = pid
            }
            try Hooks.run(hooks?.createContainer, stage: "createContainer",
                          state: OCIState(id: id, status: .creating, pid: hostPID, bundle: bundle.string, annotations: config.annotations),
                          narrate: narrate)
            close(continueFD)
            // The state folder is on the host: keep a descriptor to it across pivot_root, to
            // open the exec FIFO from inside later (openat(2) resolves from the descriptor).
            let state = open(stateDirectory.string, 0o10000000 /* O_PATH */ | O_DIRECTORY | O_CLOEXEC)
            guard state >= 0 else { throw StageError(stage: "open \(stateDirectory)", errno: currentErrno()) }
            try setup.enterRoot()
            if let process, process.terminal == true {
                // The container's own pty, from its own devpts (so it is numbered and owned
                // inside): the master goes to the engine, the slave becomes our 0, 1, 2
                // and, in a new session, our controlling terminal.
                guard consoleFD >= 0 else { throw IsolationError("process.terminal is true, but there is no console socket") }
                narrate("open(\"/dev/ptmx\"); unlockpt; open(ptsname); sendmsg(console socket, SCM_RIGHTS master)", "process.terminal: the engine gets the terminal's master end")
                let terminal = try PseudoTerminal.open(sendingMasterTo: consoleFD, size: process.consoleSize, owner: (process.user.uid, process.user.gid))
                close(consoleFD)
                // config-linux.md "Default Devices": with a terminal, /dev/console is that pty.
                narrate("mount(\"\(terminal.name)\", \"/dev/console\", NULL, MS_BIND, NULL)", "the terminal is the container's /dev/console too")
                do {
                    if !FileSystem.exists("/dev/console", followSymlinks: false) { try FileSystem.writeFile("/dev/console", "", mode: 0o600) }
                    try Mount.mount(source: terminal.name, target: "/dev/console", flags: [.bind])
                } catch let error as Errno {
                    throw StageError(stage: "bind \(terminal.name) on /dev/console", errno: error)
                }
                guard setsid() >= 0, iso_set_controlling_terminal(terminal.slave) == 0 else { throw StageError(stage: "setsid and TIOCSCTTY", errno: currentErrno()) }
                for target in Int32(0)...2 where dup2(terminal.slave, target) < 0 { throw StageError(stage: "dup2 the terminal", errno: currentErrno()) }
                close(terminal.slave)
            }
            try setup.applyProcess()
            let environment = process?.env ?? []
            let path = environment.first(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) } ?? Exec.containerPath
            let program = try process.map { try Exec.resolve($0.args[0], path: path) }
            timings(setup.timings)
            narrate("open(\"exec.fifo\", O_WRONLY)", "created: wait here until `start` opens the other end")
            report("ready")
            close(syncFD)
            ready = true
            let fifo = openat(state, "exec.fifo", O_WRONLY | O_CLOEXEC)
            guard fifo >= 0 else {
                printError("container init: open exec.fifo: \(currentErrno())")
                exit(1)
            }
            guard let process, let program else {
                // Opened anyway (not by our `start`, which refuses): no byte, so whoever
                // opened it sees EOF and a stopped container, not a started one.
                printError("container init: config.json has no process: nothing to start")
                exit(1)
            }
            var go: UInt8 = 0x30
            _ = write(fifo, &go, 1)
            close(fifo)
            close(state)
            // startContainer: in the container, after start, before the process (its path
            // resolves in the container). A failure stops the container here.
            try Hooks.run(hooks?.startContainer, stage: "startContainer",
                          state: OCIState(id: id, status: .created, pid: hostPID, bundle: bundle.string, annotations: config.annotations),
                          narrate: narrate)
            narrate("execve(\"\(program)\", \(process.args))", "start: the init becomes the container's process; PID 1 is now your program")
            try setup.installPendingSeccomp()
            try Exec.replaceProcess(program, arguments: process.args, environment: environment)
        } catch let error as ExecError {
            if ready { printError("container init: \(error)") } else { report("error exec: \(error.description)") }
            exit(error.status)
        } catch {
            // Before "ready" the runtime reports it; after, nobody listens on the pipe.
            if ready { printError("container init: \(error)") } else {
                report("error \(String(describing: error).split(separator: "\n").joined(separator: " "))")
            }
            exit(1)
        }
    }
}
