// Chapter 02 — namespaces (Linux 2.4.19, 2002, to Linux 5.6, 2020).
//
// chroot changed what "/" means and nothing else. A namespace changes what a process
// sees of one kind of kernel resource — hostnames, PIDs, mounts, IPC objects, network
// devices, user IDs, cgroups, clocks — and the kernel makes one with a single clone(2)
// flag each. Put all eight together, pivot_root into a root filesystem, and you have
// what `docker run` makes, minus cgroups (chapter 03) and the locks (chapter 04).
//
//   chapter-02 [--rootfs DIR] [--namespaces uts,pid,...] [--hostname NAME]   the lesson, then a shell
//   chapter-02 [...] -- COMMAND ARGS...                                      run COMMAND inside
//   chapter-02 escape [...]                                                 chapter 01's escape, here
//   chapter-02 lxc [...]                                                    the same with LXC's lxc-unshare
//
// Read next: namespaces(7), clone(2), user_namespaces(7), mount_namespaces(7),
// pid_namespaces(7), pivot_root(2).
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

@main
struct Chapter02: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-02",
        abstract: "Namespaces: a process with its own hostname, PIDs, mounts, IPC, network, users, cgroup root and clocks.",
        subcommands: [Lesson.self, Escape.self, LXCCommand.self, Init.self],
        defaultSubcommand: Lesson.self)
}

/// Options every subcommand shares.
struct ContainerOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A root filesystem to use instead of the built-in one (needs /bin/sh).", valueName: "DIR"))
    var rootfs: String?

    @Option(name: .long, help: ArgumentHelp(
        "The namespaces to create, comma-separated: uts, pid, mount, ipc, net, user, cgroup, time (default: every one this host supports). Give one to see it alone.",
        valueName: "LIST"))
    var namespaces: String?

    @Option(name: .long, help: ArgumentHelp("The hostname inside (with the uts namespace).", valueName: "NAME"))
    var hostname: String = "container"

    @Option(name: .long, help: ArgumentHelp(
        "With the time namespace: seconds added to CLOCK_MONOTONIC and CLOCK_BOOTTIME inside (default 0; the lesson uses one year, to be seen).",
        valueName: "SECONDS"))
    var clockOffset: Int64?

    @Option(name: .long, help: ArgumentHelp(
        "Rootless only (user and net namespaces, without sudo): the user-mode network that takes the container's connections out: auto (pasta, else slirp4netns, else none), pasta, slirp4netns, none.",
        valueName: "HELPER"))
    var userNet: UserNet = .auto

    /// Rootless only: the helper that gives the container outbound network, or nil, with
    /// a sentence saying what the container gets. Root has chapter 07's bridge instead.
    func userNetwork(_ namespaces: Namespaces) throws -> (helper: UserModeNetwork.Helper?, note: String?) {
        guard namespaces.contains(.network) && namespaces.contains(.user) && !Identity.isRoot else {
            if userNet != .auto && userNet != .none {
                throw IsolationError("--user-net \(userNet.rawValue) is for rootless runs: without sudo, with the user and net namespaces",
                                     hint: "as root, chapter 07 plugs a container into a bridge (veth pair, NAT)")
            }
            return (nil, nil)
        }
        switch userNet {
        case .none:
            return (nil, "no outbound network (--user-net none): the container has only lo")
        case .auto:
            guard let helper = UserModeNetwork.installed() else {
                return (nil, "no outbound network: \(UserModeNetwork.noneInstalledHint); the container has only lo")
            }
            if let problem = UserModeNetwork.tunProblem() {
                return (nil, "no outbound network: \(helper) is installed, but \(problem); the container has only lo")
            }
            return (helper, nil)
        case .pasta, .slirp4netns:
            let helper: UserModeNetwork.Helper = userNet == .pasta ? .pasta : .slirp4netns
            guard helper.program() != nil else {
                throw IsolationError("--user-net \(helper): \(helper) is not installed", hint: "sudo apt install \(helper.package), or --user-net none")
            }
            if let problem = UserModeNetwork.tunProblem() {
                throw IsolationError("--user-net \(helper): \(problem)", hint: "or --user-net none")
            }
            return (helper, nil)
        }
    }

    /// The namespaces asked for, checked: a bad name is an error before anything is made.
    func requestedNamespaces() throws -> Namespaces {
        guard let namespaces else { return Namespaces.supportedByKernel() }
        let kinds = try Namespaces(parsing: namespaces)
        if kinds.isEmpty {
            throw IsolationError("--namespaces is empty",
                                 hint: "give one or more of: uts, pid, mount, ipc, net, user, cgroup, time (or leave it out for all)")
        }
        return kinds
    }

    /// The checks this chapter needs, then the namespaces and the root filesystem (the
    /// built-in one under a writable layer of this run's own, which the caller removes).
    /// Nothing is created before the checks pass.
    func prepare() throws -> (Namespaces, RootFilesystem, WritableLayer?) {
        let kinds = try requestedNamespaces()
        try Container.preflight(kinds, rootWhy: "creating \(kinds) namespaces needs CAP_SYS_ADMIN; ask for the user namespace too (--namespaces user,\(kinds)) to run without sudo")
        _ = try userNetwork(kinds)   // an uninstalled helper asked for by name stops us here
        let (root, layer) = try RootFilesystem.forRun(given: rootfs, log: note)
        return (kinds, root, layer)
    }
}

/// The environment of the container's processes: nothing from the host but the terminal type.
func containerEnvironment() -> [String] {
    ["PATH=\(Exec.containerPath)", "HOME=/root", "TERM=\(environmentValue("TERM") ?? "xterm")", "PS1=\\u@\\h:\\w # "]
}

/// `--user-net`: how a rootless container reaches the outside.
enum UserNet: String, ExpressibleByArgument, CaseIterable {
    case auto, pasta, slirp4netns, none
}

/// What the container's first process is asked to do.
struct Launch {
    var root: RootFilesystem
    var namespaces: Namespaces
    var hostname: String
    var clockOffset: Int64 = 0
    var command: [String] = []
    var narrate = false
    var escapeTarget: FilePath? = nil
    var standardInput: FileDescriptor? = nil
    var standardOutput: FileDescriptor? = nil
    /// Rootless: the user-mode network helper started for the container (nil: only lo).
    var userNetwork: UserModeNetwork.Helper? = nil

    /// Starts `/proc/self/exe init …` in the new namespaces: a fresh copy of this program
    /// that sets the inside up and runs the command. The clone(2)…execve(2) window is in C
    /// (iso_spawn); the parent's side (uid/gid maps, the user-mode network) is narrated
    /// when `narrateParent`.
    func start(narrateParent: Bool = false) throws -> StartedContainer {
        var arguments = ["chapter-02", "init", "--rootfs", root.path.string,
                         "--namespaces", namespaces.description, "--hostname", hostname]
        if narrate { arguments.append("--narrate") }
        if let escapeTarget { arguments += ["--escape-target", escapeTarget.string] }
        arguments += ["--"] + command
        var network: UserModeNetwork?
        // While the child waits before execve, after its maps: the helper joins its user
        // and network namespaces and plugs a TAP device in, as rootless engines do.
        let plugIn: ((pid_t) throws -> Void)? = userNetwork.map { helper in
            { pid in
                if narrateParent {
                    lessonStep(helper == .pasta ? "pasta --config-net --ns-ifname tap0 \(pid)" : "slirp4netns --configure \(pid) tap0",
                               "a process of ours joins the container's user and network namespaces, opens a TAP device there and runs a TCP/IP stack in user space: the container's connections leave as ordinary sockets of ours (no bridge, no veth, no root)")
                }
                do { network = try UserModeNetwork.start(helper, for: pid) } catch {
                    throw IsolationError("the container's network (\(helper)): \(error)", hint: "--user-net none runs it with only lo")
                }
            }
        }
        let child = try Container.start(
            arguments: arguments, environment: containerEnvironment(), namespaces: namespaces,
            clockOffset: clockOffset, standardInput: standardInput, standardOutput: standardOutput,
            beforeRelease: plugIn, narrate: narrateParent ? lessonStep : { _, _ in })
        return StartedContainer(child: child, network: network)
    }
}

/// A started container, and the user-mode network helper serving it (stopped when the
/// container has ended).
final class StartedContainer {
    let child: ChildProcess
    let network: UserModeNetwork?
    var pid: pid_t { child.pid }

    init(child: ChildProcess, network: UserModeNetwork?) {
        self.child = child
        self.network = network
    }

    func waitForwardingSignals() throws -> ExitStatus {
        defer { network?.stop() }
        return try child.waitForwardingSignals()
    }

    func wait() throws -> ExitStatus {
        defer { network?.stop() }
        return try child.wait()
    }
}

let style = Style.standardOutput

extension String {
    var trimmed: String { split(whereSeparator: \.isNewline).joined(separator: " ").trimmingSpaces }
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
