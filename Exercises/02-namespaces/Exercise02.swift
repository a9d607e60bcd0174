// Exercise 02 — namespaces. Your steps are in Steps.swift; this file is the rest of
// chapter 02, written with the Isolation library, so you can see where they fit.
//
//   sudo .build/debug/exercise-02 [--rootfs DIR] [--hostname NAME] -- COMMAND ARGS...
//   swift run check 02
//
// The solution is chapter 02 itself: Chapters/02-namespaces/ and Container.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise02: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-02",
        abstract: "Exercise 02: run a command in new namespaces (your steps: Steps.swift).",
        subcommands: [Start.self, Init.self],
        defaultSubcommand: Start.self)
}

/// The parent: clone(2) with your flags, then wait.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run COMMAND in new namespaces (the default).")

    @Option(help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR")) var rootfs: String?
    @Option(help: "The hostname inside.") var hostname = "exercise-02"
    @Argument(parsing: .postTerminator, help: "The command to run inside (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("02") {
            let root = try exerciseRootfs(rootfs, why: "creating namespaces needs CAP_SYS_ADMIN")
            let namespaces = try namespacesToCreate()  // your step "clone-flags"
            blockSignalsForSupervision()
            // clone(2) with those flags, in C; the child execs `/proc/self/exe init …`.
            // It is told our UTS and mount namespaces, to see whether it has its own.
            let host = Namespaces.identity()
            let child = try Container.start(
                arguments: ["exercise-02", "init", "--rootfs", root.path.string, "--namespaces", namespaces.description,
                            "--hostname", hostname, "--host-uts", "\(host["uts"] ?? 0)", "--host-mnt", "\(host["mnt"] ?? 0)", "--"] + command,
                environment: exerciseEnvironment(), namespaces: namespaces)
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The container's first process (hidden): set the inside up, then run the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the inside, then run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Option var namespaces: String
    @Option var hostname: String
    @Option var hostUts: UInt64
    @Option var hostMnt: UInt64
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("02") {
            let kinds = try Namespaces(parsing: namespaces)
            let root = FilePath(rootfs)

            // 1. The hostname (your step). A guard first: sethostname(2) outside a new UTS
            //    namespace would rename the host, so we refuse to call your step then.
            guard Namespaces.identity()["uts"] != hostUts else {
                throw IsolationError("not calling your setHostname: this process shares the host's UTS namespace, so it would rename the host",
                                     hint: "add .uts (CLONE_NEWUTS) to namespacesToCreate() in Steps.swift")
            }
            try setHostname(hostname)

            // 2. Mounts: nothing we mount may reach the host, and pivot_root(2) needs the
            //    root filesystem to be a mount point. Without CLONE_NEWNS this changes the
            //    host's mount table, so we refuse.
            guard Namespaces.identity()["mnt"] != hostMnt else {
                throw IsolationError("not mounting anything: this process shares the host's mount namespace",
                                     hint: "add .mount (CLONE_NEWNS) to namespacesToCreate() in Steps.swift")
            }
            try Mount.mount(source: "none", target: "/", flags: [.recursive, .private])
            try Mount.mount(source: root.string, target: root, flags: [.bind, .recursive])

            // 3. /proc for the new PID namespace (your step).
            try mountProc(at: root.appending("proc"))

            // 4. pivot_root(".", "."), then detach the host's root (chapter 04's exercise
            //    does this one itself).
            try FileSystem.changeDirectory(root)
            try Mount.pivotRoot(newRoot: ".", putOld: ".")
            try Mount.unmount(".", detach: true)
            try FileSystem.changeDirectory("/")
            if kinds.contains(.network) { _ = try Network.bringUpLoopback() }

            // 5. The command. With a PID namespace we are PID 1: fork it, reap orphans and
            //    pass signals on (Container.runCommand); without one, become it.
            let container = Container(rootfs: root, namespaces: kinds, hostname: hostname)
            status = try container.runCommand(command, environment: exerciseEnvironment())
        }
        throw ExitCode(status.shellCode)
    }
}
