// Exercise 02, stretch — a rootless container with a full sub-uid range. Your steps are in
// Steps.swift; this file is the rest. Run it as YOURSELF, not as root: the parent finds
// your subordinate IDs, clones the container's first process into new namespaces (a user
// namespace among them), and while that child waits on a pipe it has the setuid helpers
// newuidmap(1) and newgidmap(1) write the child's maps; then the child (`init`) becomes
// root of its user namespace, sets up the inside as chapter 02 does, and runs the command.
//
//   .build/debug/exercise-02-stretch [--rootfs DIR] [--hostname NAME] -- COMMAND ARGS...
//   swift run check 02 --stretch
//
// The base exercise and chapter 02 map one ID (`0 <your uid> 1`), the only map an
// unprivileged process may write itself. Here the container gets 65537: 0 is you, 1…65536
// are your range from /etc/subuid and /etc/subgid.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise02Stretch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-02-stretch",
        abstract: "Exercise 02, stretch: a rootless container with a full sub-uid range (your steps: Steps.swift).",
        subcommands: [Start.self, Init.self],
        defaultSubcommand: Start.self)
}

/// A range of subordinate IDs: one line of /etc/subuid or /etc/subgid, `name:start:count`.
struct SubordinateRange: Equatable, CustomStringConvertible {
    var start: UInt32
    var count: UInt32
    var description: String { "\(start)–\(UInt64(start) + UInt64(count) - 1) (\(count) IDs)" }
}

/// IDs 1…65536 inside are the subordinate range: what a container image's files expect
/// (system users below 1000, the first user at 1000, nobody at 65534).
let containerRangeSize: UInt32 = 65536

/// The namespaces: the user namespace, and chapter 02's five, which it owns.
let containerNamespaces: Namespaces = [.user, .uts, .pid, .mount, .ipc, .network]

/// The parent: runs as the user who started it.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run COMMAND in a rootless container (the default).")

    @Option(help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR")) var rootfs: String?
    @Option(help: "The hostname inside.") var hostname = "exercise-02-stretch"
    @Argument(parsing: .postTerminator, help: "The command to run inside (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("02-stretch") {
            // Rootless is the point: as root, there is nothing for the helpers to check.
            guard !Identity.isRoot else {
                throw IsolationError("run this exercise as yourself, not as root: a rootless container is started by an unprivileged user",
                                     hint: "without sudo: .build/debug/exercise-02-stretch -- id; `sudo check 02 --stretch` runs it as an unprivileged user for you")
            }
            try Preflight.require([Preflight.kernel(), Preflight.unprivilegedUserNamespaces()])
            let uid = getuid(), gid = getgid()
            guard let user = Identity.userName(of: uid) else {
                throw IsolationError("uid \(uid) has no name in the user database: newuidmap(1) looks the caller up by name")
            }

            // 1. Your step "subid-range", once per file: the IDs the administrator gave you.
            let subuids = try subordinateRange(in: "/etc/subuid", user: user, uid: uid)
            let subgids = try subordinateRange(in: "/etc/subgid", user: user, uid: uid)
            guard subuids.count >= containerRangeSize, subgids.count >= containerRangeSize else {
                throw IsolationError("your ranges are too small for IDs 1…\(containerRangeSize): subuid \(subuids), subgid \(subgids)",
                                     hint: "ask for \(containerRangeSize) of each: \(usermodSuggestion(for: user))")
            }

            let root: RootFilesystem
            if let rootfs { root = try RootFilesystem.validate(FilePath(rootfs)) } else {
                root = try RootFilesystem.builtIn(log: { say(Style.standardOutput.dim("  (\($0))")) })
            }
            blockSignalsForSupervision()

            // 2. clone(2) with CLONE_NEWUSER and the rest; the child blocks on a pipe
            //    before execve(2) (waitForRelease): until its maps exist its IDs are the
            //    overflow IDs (65534) and an execve would leave it without capabilities.
            var options = SpawnOptions()
            options.namespaces = containerNamespaces
            options.waitForRelease = true
            options.parentDeathSignal = SIGKILL
            let child = try ChildProcess.spawn(
                "/proc/self/exe",
                arguments: ["exercise-02-stretch", "init", "--rootfs", root.path.string, "--hostname", hostname, "--"] + command,
                environment: exerciseEnvironment(), options: options)

            // 3. Your step "id-maps", while the child waits; then the release.
            do {
                try writeIDMaps(for: child.pid, uid: uid, gid: gid, subuids: subuids, subgids: subgids)
            } catch {
                _ = try? child.signal(SIGKILL)
                _ = try? child.wait()
                throw error
            }
            try child.release()
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The container's first process (hidden): root of its user namespace, then chapter 02's
/// inside, then the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the inside, then run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Option var hostname: String
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("02-stretch") {
            // 4. Your step "become-root": who this process is in its user namespace.
            try becomeRoot()

            // 5. Chapter 02's inside (Container.setUpInside): hostname, private mounts,
            //    /proc, a small /dev, pivot_root, lo. Every mount is allowed because this
            //    user namespace owns the mount namespace (user_namespaces(7)).
            let container = Container(rootfs: FilePath(rootfs), namespaces: containerNamespaces, hostname: hostname)
            _ = try container.setUpInside()

            // 6. The command, with PID 1 reaping and forwarding signals.
            status = try container.runCommand(command, environment: exerciseEnvironment())
        }
        throw ExitCode(status.shellCode)
    }
}

/// The line that gives `user` a range of `containerRangeSize` IDs in both files, starting
/// after every range already given (and at 100000 at least, as useradd(8) does).
func usermodSuggestion(for user: String) -> String {
    var next: UInt64 = 100_000
    for file in ["/etc/subuid", "/etc/subgid"] {
        for line in ((try? FileSystem.readString(FilePath(file))) ?? "").split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count == 3, let start = UInt64(fields[1]), let count = UInt64(fields[2]) { next = max(next, start + count) }
        }
    }
    let range = "\(next)-\(next + UInt64(containerRangeSize) - 1)"
    return "sudo usermod --add-subuids \(range) --add-subgids \(range) \(user)"
}
