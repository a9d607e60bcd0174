import Glibc
import SystemPackage

/// A container, as the kernel sees it: a process started in new namespaces (clone(2)),
/// then set up from the inside — mounts, root directory, hostname, loopback — before it
/// runs anything. Chapter 02 builds it; later chapters add cgroups, capabilities and
/// seccomp around the same two halves:
///
/// - `start(...)` (the parent): clone in new namespaces, write the uid/gid maps while
///   the child waits, release it;
/// - `setUpInside(...)` (the child, a fresh `/proc/self/exe init`): the mount sequence
///   and the rest, in the order the kernel needs.
public struct Container: Sendable {
    /// The directory that becomes `/`.
    public var rootfs: FilePath
    /// The namespaces the container was started in.
    public var namespaces: Namespaces
    /// The hostname to set when `namespaces` has `.uts` (never set without it: that
    /// would rename the host).
    public var hostname: String?

    public init(rootfs: FilePath, namespaces: Namespaces, hostname: String? = nil) {
        self.rootfs = rootfs
        self.namespaces = namespaces
        self.hostname = hostname
    }

    /// Device nodes a shell expects. In a user namespace mknod(2) is refused, so every
    /// runtime bind-mounts the host's nodes instead, as we do (for root as well).
    public static let devices = ["null", "zero", "full", "random", "urandom", "tty"]

    /// How the container got its /proc.
    public enum ProcMount: Sendable, Equatable {
        /// A new proc mount: with a PID namespace, it lists only the container's processes.
        case fresh
        /// A recursive bind of the host's /proc: a user namespace without a PID
        /// namespace may not mount a new proc (it does not own the PID namespace).
        case hostBind
        /// None: without a mount namespace, a mount would land in the host's mount table.
        case none
    }

    /// What `setUpInside` did, for lessons to explain.
    public struct Report: Sendable {
        public var proc: ProcMount = .none
        /// Chapter 01's chroot(2), because there was no mount namespace for pivot_root.
        public var usedChroot = false
        public var devices: [String] = []
        public var loopback: InterfaceFlags?
    }

    // MARK: - The parent's half

    /// Checks, before anything is created, that this process may make `namespaces`:
    /// the kernel has them (time: Linux 5.6+), and either we are root or a user namespace
    /// is asked for and the host lets unprivileged users make one.
    public static func preflight(_ namespaces: Namespaces, rootWhy: String) throws {
        var checks = [Preflight.kernel()]
        if namespaces.contains(.time) {
            let (major, minor) = Preflight.kernelVersion()
            if (major, minor) < (5, 6) {
                throw IsolationError(
                    "the time namespace needs Linux 5.6 or newer; this is Linux \(Preflight.kernelRelease())",
                    hint: "leave time out: --namespaces \(namespaces.subtracting(.time))")
            }
        }
        checks += namespaces.kinds.map(Preflight.namespace)
        if !Identity.isRoot {
            if namespaces.contains(.user) {
                let check = Preflight.unprivilegedUserNamespaces()
                if check.status != .ok {
                    throw IsolationError("\(check.name): \(check.detail)",
                                         hint: (check.fix.map { $0 + "\n  → " } ?? "") + "or run: \(Identity.sudoCommandLine())")
                }
            } else {
                checks.append(Preflight.root(why: rootWhy))
            }
        }
        try Preflight.require(checks)
    }

    /// Starts `executable arguments` in new `namespaces`. With `.user`, the child waits
    /// while we write its maps (`userNamespace`, default `forInvokingUser()`), then execs.
    /// `beforeRelease`, when given, also runs in that window, after the maps (chapter 03
    /// moves the child into its cgroup there, so it never runs unlimited).
    /// `narrate` hears each system call the parent makes.
    public static func start(
        _ executable: FilePath = "/proc/self/exe",
        arguments: [String],
        environment: [String],
        namespaces: Namespaces,
        userNamespace: UserNamespace? = nil,
        clockOffset: Int64 = 0,
        standardInput: FileDescriptor? = nil,
        standardOutput: FileDescriptor? = nil,
        standardError: FileDescriptor? = nil,
        beforeRelease: ((pid_t) throws -> Void)? = nil,
        narrate: (String, String) -> Void = { _, _ in }
    ) throws -> ChildProcess {
        var options = SpawnOptions()
        options.namespaces = namespaces
        options.parentDeathSignal = SIGKILL   // if we die, the container goes too
        options.waitForRelease = namespaces.contains(.user) || beforeRelease != nil
        options.standardInput = standardInput
        options.standardOutput = standardOutput
        options.standardError = standardError
        if namespaces.contains(.time) {
            options.monotonicOffset = clockOffset
            options.boottimeOffset = clockOffset
        }
        let cloneable = namespaces.subtracting(.time)
        narrate("clone(\(cloneable.isEmpty ? "" : cloneable.cloneFlagName + "|")SIGCHLD)",
                cloneable.isEmpty ? "a plain fork: no namespace asked for"
                                  : "one system call makes the child and its new namespaces (clone(2), namespaces(7))")
        if namespaces.contains(.time) {
            narrate("  child: unshare(CLONE_NEWTIME); write /proc/self/timens_offsets \"monotonic \(clockOffset) 0\"; setns(time_for_children)",
                    "clone(2) has no room for CLONE_NEWTIME; offsets can be set only before a process enters; unshare moves only children (time_namespaces(7))")
        }
        let child = try ChildProcess.spawn(executable, arguments: arguments, environment: environment, options: options)
        if options.waitForRelease {
            do {
                if namespaces.contains(.user) {
                    try (userNamespace ?? UserNamespace.forInvokingUser()).write(to: child.pid, narrate: narrate)
                }
                try beforeRelease?(child.pid)
            } catch {
                _ = try? child.signal(SIGKILL)
                _ = try? child.wait()
                throw error
            }
            narrate("write(release pipe) → child: execve(\"\(executable)\", …)",
                    namespaces.contains(.user)
                        ? "only now may the child exec: with its maps in place it is uid 0 there, with every capability of that namespace"
                        : "only now may the child exec")
            try child.release()
        } else {
            narrate("  child: execve(\"\(executable)\", …)", "a fresh copy of this program, already inside the namespaces")
        }
        return child
    }

    // MARK: - The child's half

    /// Sets up the inside of the container, in the order the kernel needs. Runs in the
    /// container's first process, after exec (so in Swift, but in a process of its own).
    /// Changes this process for good: its mounts, its root, its hostname.
    public func setUpInside(narrate: (String, String) -> Void = { _, _ in }) throws -> Report {
        var report = Report()

        // UTS (uts_namespaces(7)): our own hostname. Only in a new UTS namespace —
        // sethostname(2) without one would rename the host.
        if namespaces.contains(.uts), let hostname {
            narrate("sethostname(\"\(hostname)\")", "our UTS namespace has its own hostname; the host keeps its name")
            do { try Identity.setHostname(hostname) } catch let error as Errno {
                throw StageError(stage: "sethostname(\"\(hostname)\")", errno: error)
            }
        }

        if namespaces.contains(.mount) {
            try mountSequence(&report, narrate: narrate)
        } else {
            // No mount namespace: pivot_root(2) would move the host's root. Chapter 01's
            // chroot(2) still puts us in the root filesystem (and can be escaped).
            narrate("chroot(\"\(rootfs)\") + chdir(\"/\")",
                    "no mount namespace: fall back to chapter 01's jail; no /proc inside, since mounting one would change the host's mount table")
            do { try FileSystem.changeRoot(rootfs) } catch let error as Errno {
                throw StageError(stage: "chroot(\"\(rootfs)\")", errno: error)
            }
            try FileSystem.changeDirectory("/")
            report.usedChroot = true
        }

        // Network (network_namespaces(7)): a new namespace has only `lo`, and it is down.
        if namespaces.contains(.network) {
            narrate("ioctl(socket, SIOCSIFFLAGS, {\"lo\", IFF_UP})", "a new network namespace has one device, lo, and it is down (netdevice(7))")
            report.loopback = try Network.bringUpLoopback()
        }
        return report
    }

    /// mount_namespaces(7), pivot_root(2): private propagation, the root filesystem as a
    /// mount point, /proc and /dev inside it, then pivot_root and detach the old root.
    func mountSequence(_ report: inout Report, narrate: (String, String) -> Void) throws {
        // 1. Hosts with systemd mount / as *shared*, and our new namespace copied that:
        //    any mount we make would propagate back to the host. Make every mount private.
        narrate("mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE, NULL)",
                "systemd mounts / shared; without this our mounts would appear on the host (mount_namespaces(7))")
        try stage("make / recursively private") {
            try Mount.mount(source: "none", target: "/", flags: [.recursive, .private])
        }

        // 2. pivot_root(2) needs new_root to be a mount point: bind it onto itself.
        narrate("mount(\"\(rootfs)\", \"\(rootfs)\", NULL, MS_BIND|MS_REC, NULL)",
                "pivot_root(2) wants the new root to be a mount point; a bind mount onto itself makes one")
        try stage("bind-mount \(rootfs) onto itself") {
            try Mount.mount(source: rootfs.string, target: rootfs, flags: [.bind, .recursive])
        }

        // 3. /proc: a new proc mount shows the PID namespace of the process that mounts
        //    it — ours, now that clone(2) made it — so it must come after clone, not before.
        let proc = rootfs.appending("proc")
        if FileSystem.isDirectory(proc) {
            narrate("mount(\"proc\", \"\(proc)\", \"proc\", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)",
                    namespaces.contains(.pid) ? "a proc for our PID namespace: ps sees only the container (proc(5))"
                                              : "no PID namespace: this /proc still lists every process of the host")
            do {
                try Mount.mount(source: "proc", target: proc, type: "proc", flags: [.noSetuid, .noDevices, .noExec])
                report.proc = .fresh
            } catch let error as Errno where error == .notPermitted && !namespaces.contains(.pid) {
                // A user namespace may mount proc only for a PID namespace it owns.
                narrate("  → EPERM; mount(\"/proc\", \"\(proc)\", NULL, MS_BIND|MS_REC, NULL)",
                        "our user namespace does not own the host's PID namespace, so it may not mount a new proc: bind the host's")
                try stage("bind-mount /proc") { try Mount.mount(source: "/proc", target: proc, flags: [.bind, .recursive]) }
                report.proc = .hostBind
            } catch let error as Errno {
                throw StageError(stage: "mount proc on \(proc)", errno: error)
            }
        }

        // 3b. /sys, read-only, as runc mounts it: programs count CPUs there (stress-ng
        //     does). sysfs shows the network devices of the mounter's network namespace,
        //     so the kernel allows it only with a network namespace we own; without one
        //     the container simply has no /sys.
        let sys = rootfs.appending("sys")
        if FileSystem.isDirectory(sys) && namespaces.contains(.network) {
            narrate("mount(\"sysfs\", \"\(sys)\", \"sysfs\", MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)",
                    "a read-only /sys (sysfs(5)): CPUs and memory are visible, nothing is writable")
            do {
                try Mount.mount(source: "sysfs", target: sys, type: "sysfs", flags: [.readOnly, .noSetuid, .noDevices, .noExec])
            } catch {
                narrate("  → \(error): no /sys in this container", "sysfs may be refused in a user namespace; nothing needs it here")
            }
        }

        // 4. /dev: a small tmpfs with the usual nodes, bind-mounted from the host
        //    (mknod(2) is refused in a user namespace), instead of the host's whole /dev.
        let dev = rootfs.appending("dev")
        if FileSystem.isDirectory(dev) {
            narrate("mount(\"tmpfs\", \"\(dev)\", \"tmpfs\", MS_NOSUID, \"mode=755\") + MS_BIND of /dev/{\(Container.devices.joined(separator: ","))}",
                    "a /dev of our own with the few nodes programs expect, not the host's disks")
            try stage("mount tmpfs on \(dev)") {
                try Mount.mount(source: "tmpfs", target: dev, type: "tmpfs", flags: [.noSetuid, .strictAccessTime], data: "mode=755,size=1024k")
            }
            for name in Container.devices where FileSystem.exists(FilePath("/dev/\(name)")) {
                let node = dev.appending(name)
                try stage("create \(node)") { try FileSystem.writeFile(node, "", mode: 0o666) }
                do {
                    try Mount.mount(source: "/dev/\(name)", target: node, flags: [.bind])
                    report.devices.append(name)
                } catch {
                    unlink(node.string)  // e.g. /dev/tty without a terminal: leave it out
                }
            }
            for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
                try? FileSystem.symlink(target: target, at: dev.appending(link))
            }
        }

        // 5. pivot_root(".", "."): the new root becomes /, the old root is stacked on top
        //    of it, and umount2(".", MNT_DETACH) takes the old one away. No put_old
        //    directory is needed, so nothing is written into a root filesystem that other
        //    containers share (pivot_root(2), NOTES).
        narrate("chdir(\"\(rootfs)\"); pivot_root(\".\", \".\")",
                "the root filesystem becomes this mount namespace's root; the host's root is stacked on top of it")
        try stage("chdir(\"\(rootfs)\")") { try FileSystem.changeDirectory(rootfs) }
        try stage("pivot_root(\".\", \".\")") { try Mount.pivotRoot(newRoot: ".", putOld: ".") }
        narrate("umount2(\".\", MNT_DETACH); chdir(\"/\")",
                "detach the old root: the host's files are no longer in this namespace at all, so no chroot trick can reach them")
        try stage("umount2(old root, MNT_DETACH)") { try Mount.unmount(".", detach: true) }
        try stage("chdir(\"/\")") { try FileSystem.changeDirectory("/") }
    }

    private func stage(_ name: String, _ body: () throws -> Void) throws {
        do { try body() } catch let error as Errno { throw StageError(stage: name, errno: error) }
    }
}
