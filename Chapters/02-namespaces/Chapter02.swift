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
        let (root, layer) = try RootFilesystem.forRun(given: rootfs, log: note)
        return (kinds, root, layer)
    }
}

/// The environment of the container's processes: nothing from the host but the terminal type.
func containerEnvironment() -> [String] {
    ["PATH=\(Exec.containerPath)", "HOME=/root", "TERM=\(environmentValue("TERM") ?? "xterm")", "PS1=\\u@\\h:\\w # "]
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

    /// Starts `/proc/self/exe init …` in the new namespaces: a fresh copy of this program
    /// that sets the inside up and runs the command. The clone(2)…execve(2) window is in C
    /// (iso_spawn); the parent's side (uid/gid maps) is narrated when `narrateParent`.
    func start(narrateParent: Bool = false) throws -> ChildProcess {
        var arguments = ["chapter-02", "init", "--rootfs", root.path.string,
                         "--namespaces", namespaces.description, "--hostname", hostname]
        if narrate { arguments.append("--narrate") }
        if let escapeTarget { arguments += ["--escape-target", escapeTarget.string] }
        arguments += ["--"] + command
        return try Container.start(
            arguments: arguments, environment: containerEnvironment(), namespaces: namespaces,
            clockOffset: clockOffset, standardInput: standardInput, standardOutput: standardOutput,
            narrate: narrateParent ? lessonStep : { _, _ in })
    }
}

let style = Style.standardOutput

extension String {
    var trimmed: String { split(whereSeparator: \.isNewline).joined(separator: " ").trimmingSpaces }
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
