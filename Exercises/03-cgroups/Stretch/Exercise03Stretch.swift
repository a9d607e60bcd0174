// Exercise 03, stretch — a memory limit that throttles instead of killing, and a limit
// changed while the workload runs (what `runc update` does). Your steps are in
// Steps.swift; this file is the rest, written with the Isolation library.
//
//   sudo .build/debug/exercise-03-stretch run --memory 24M --name web -- COMMAND...
//   sudo .build/debug/exercise-03-stretch update --pid PID --memory 256M   (from another terminal)
//   swift run check 03 --stretch
//
// The solution is in Solution/; chapter 03's notes, "Slowed, killed, refused", explain it.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise03Stretch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-03-stretch",
        abstract: "Exercise 03, stretch: throttle, not kill; change a limit while it runs (your steps: Steps.swift).",
        subcommands: [Start.self, Update.self, Init.self],
        defaultSubcommand: Start.self)
}

/// The chapter 02 container the command runs in (as in exercise 03).
let containerNamespaces: Namespaces = [.uts, .pid, .mount, .ipc, .network]

/// Where the memory controller's hierarchy is mounted: with v2 the one hierarchy, with
/// v1 the memory controller's own (the library's convention: ROOT/memory).
func memoryHierarchy(_ version: Cgroup.Version, root: String = "/sys/fs/cgroup") -> FilePath {
    version == .v2 ? FilePath(root) : FilePath(root).appending("memory")
}

/// The parent: the cgroup, your throttle in it, the container joined before it execs.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run COMMAND under a memory throttle (the default).")

    @Option(help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR")) var rootfs: String?
    @Option(help: ArgumentHelp("Where the workload is slowed (v2) or paused (v1) instead of killed, e.g. 24M.", valueName: "SIZE")) var memory = "24M"
    @Option(help: ArgumentHelp("The cgroup's name under isolation/ (default: exercise-03-stretch-PID).", valueName: "NAME")) var name: String?
    @Argument(parsing: .postTerminator, help: "The command to run (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("03-stretch") {
            let bytes = try ResourceLimits.parseSize(memory)
            let root = try exerciseRootfs(rootfs, why: "cgroups and namespaces need root")
            try Preflight.require([Preflight.cgroups()])
            let cgroup = try Cgroup.create(name: name ?? "exercise-03-stretch-\(getpid())", limits: ResourceLimits())
            defer { cgroup.destroy() }  // kill what is left, rmdir: also when your step fails
            guard let folder = cgroup.directory(for: "memory") else {
                throw IsolationError("this host has no memory cgroup controller", hint: "run `swift run doctor`")
            }
            say("cgroup \(cgroup.version): \(folder)")

            // Your step "throttle".
            try throttleMemory(MemoryCgroup(version: cgroup.version, folder: folder), bytes: bytes)

            // Exercise 03's lesson, done for you: joined while held, then released.
            blockSignalsForSupervision()
            var options = SpawnOptions()
            options.namespaces = containerNamespaces
            options.waitForRelease = true
            options.parentDeathSignal = SIGKILL
            let child = try ChildProcess.spawn(
                "/proc/self/exe", arguments: ["exercise-03-stretch", "init", "--rootfs", root.path.string, "--"] + command,
                environment: exerciseEnvironment(), options: options)
            do {
                try cgroup.addProcess(child.pid)
                try child.release()
            } catch {
                _ = try? child.signal(SIGKILL)
                _ = try? child.wait()
                throw error
            }
            say("container PID on the host: \(child.pid) (for: exercise-03-stretch update --pid \(child.pid) --memory SIZE)")
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// `update`: a running container's memory throttle, changed from outside, as
/// `runc update --memory` does. Only cgroups this project made under isolation/ are touched.
struct Update: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Change the memory throttle of the container that PID is in, while it runs.")

    @Option(help: ArgumentHelp("A process of the running container (its PID on the host).", valueName: "PID")) var pid: Int32
    @Option(help: ArgumentHelp("The new throttle, e.g. 256M.", valueName: "SIZE")) var memory: String

    func run() throws {
        runExercise("03-stretch") {
            let bytes = try ResourceLimits.parseSize(memory)
            try Preflight.require([Preflight.root(why: "a cgroup's files belong to root")])
            guard kill(pid, 0) == 0 || errno == EPERM else {
                throw IsolationError("there is no process \(pid)", hint: "give the PID `exercise-03-stretch run` printed")
            }
            let version: Cgroup.Version = CgroupMode.detect() == .unified ? .v2 : .v1
            let hierarchy = memoryHierarchy(version)

            // Your step "find".
            let folder = try memoryFolder(of: pid, version: version, hierarchy: hierarchy)

            // Never the host's own cgroups: only one this project made.
            let ours = hierarchy.appending(projectPrefix).string + "/"
            guard folder.string.hasPrefix(ours), FileSystem.isDirectory(folder) else {
                throw IsolationError("process \(pid)'s memory cgroup is \(folder), not one this project made under \(ours): nothing changed",
                                     hint: "give the PID of a container that `exercise-03-stretch run` started")
            }
            // Your step "update".
            try updateThrottle(MemoryCgroup(version: version, folder: folder), bytes: bytes)
            say("\(folder): the throttle is now \(bytes) bytes")
        }
    }
}

/// The container's first process (hidden): chapter 02's set-up, then the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the container, then run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("03-stretch") {
            let container = Container(rootfs: FilePath(rootfs), namespaces: containerNamespaces, hostname: "exercise-03s")
            _ = try container.setUpInside()
            status = try container.runCommand(command, environment: exerciseEnvironment())
        }
        throw ExitCode(status.shellCode)
    }
}

/// The folder with a cgroup's memory controller files, and which cgroup version it is.
struct MemoryCgroup {
    var version: Cgroup.Version
    var folder: FilePath
}
