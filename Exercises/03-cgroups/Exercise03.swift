// Exercise 03 — cgroup limits. Your steps are in Steps.swift; this file is the rest of
// chapter 03, written with the Isolation library, so you can see where they fit.
//
//   sudo .build/debug/exercise-03 [--memory 32M] [--pids 16] -- COMMAND ARGS...
//   swift run check 03
//
// The solution is chapter 03 itself: Chapters/03-cgroups/ and Cgroup.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise03: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-03",
        abstract: "Exercise 03: run a command in a container under memory and pids limits (your steps: Steps.swift).",
        subcommands: [Start.self, Init.self],
        defaultSubcommand: Start.self)
}

/// The chapter 02 container the command runs in (no cgroup namespace: see chapter 03's notes).
let containerNamespaces: Namespaces = [.uts, .pid, .mount, .ipc, .network]

/// The cgroup's folders, as the kernel shows them: with v2 one folder for everything,
/// with v1 one per controller (its own hierarchy).
struct CgroupFolders {
    var version: Cgroup.Version
    /// The folder with the memory controller's files.
    var memory: FilePath
    /// The folder with the pids controller's files.
    var pids: FilePath
}

/// The parent: make the cgroup, clone the container held before exec, and your steps.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run COMMAND under the limits (the default).")

    @Option(help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR")) var rootfs: String?
    @Option(help: ArgumentHelp("Memory limit, e.g. 32M.", valueName: "SIZE")) var memory = "32M"
    @Option(help: ArgumentHelp("Most processes at once.", valueName: "N")) var pids = "16"
    @Option(help: ArgumentHelp("The cgroup's name under isolation/ (default: exercise-03-PID).", valueName: "NAME")) var name: String?
    @Argument(parsing: .postTerminator, help: "The command to run (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("03") {
            // Every value is checked before anything is created.
            let memoryBytes = try ResourceLimits.parseSize(memory)
            let pidsLimit = try ResourceLimits.parsePids(pids)
            let root = try exerciseRootfs(rootfs, why: "cgroups and namespaces need root")
            try Preflight.require([Preflight.cgroups()])

            // The cgroup's folders, made by the library, with no limits in them yet:
            // /sys/fs/cgroup/isolation/NAME (v2) or /sys/fs/cgroup/{memory,pids,…}/isolation/NAME (v1).
            let cgroup = try Cgroup.create(name: name ?? "exercise-03-\(getpid())", limits: ResourceLimits())
            defer { cgroup.destroy() }  // kill what is left, rmdir: also when your step fails
            guard let memoryFolder = cgroup.directory(for: "memory"), let pidsFolder = cgroup.directory(for: "pids") else {
                throw IsolationError("this host has no memory or pids cgroup controller", hint: "run `swift run doctor`")
            }
            let folders = CgroupFolders(version: cgroup.version, memory: memoryFolder, pids: pidsFolder)
            say("cgroup \(cgroup.version): " + Set([memoryFolder.string, pidsFolder.string]).sorted().joined(separator: " "))

            // Your step "limits": the limits, in the cgroup's files.
            try writeLimits(folders, memoryBytes: memoryBytes, pids: pidsLimit)

            // clone(2) the container; in C, the child blocks on a pipe before execve(2).
            blockSignalsForSupervision()
            var options = SpawnOptions()
            options.namespaces = containerNamespaces
            options.waitForRelease = true
            options.parentDeathSignal = SIGKILL
            let child = try ChildProcess.spawn(
                "/proc/self/exe", arguments: ["exercise-03", "init", "--rootfs", root.path.string, "--"] + command,
                environment: exerciseEnvironment(), options: options)
            let held = HeldProcess(child)

            // Your step "join": put it in the cgroup, and release it.
            do { try joinThenRelease(held, folders) } catch {
                _ = try? held.signal(SIGKILL)
                _ = try? child.wait()
                throw error
            }
            status = try held.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The container's first process (hidden): chapter 02's set-up, then the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the container, then run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("03") {
            let container = Container(rootfs: FilePath(rootfs), namespaces: containerNamespaces, hostname: "exercise-03")
            _ = try container.setUpInside()
            status = try container.runCommand(command, environment: exerciseEnvironment())
        }
        throw ExitCode(status.shellCode)
    }
}
