// Exercise 01, stretch — a jail that survives the chroot escape. Your steps are in
// Steps.swift; this file is the rest: the parent clones the jail's first process into a
// new mount namespace, the child calls your steps, then (with --escape-target) tries
// chapter 01's escape itself, and execs the command wherever the escape left it.
//
//   sudo .build/debug/exercise-01-stretch [--rootfs DIR] [--escape-target FILE] -- COMMAND...
//   swift run check 01 --stretch
//
// The solution is chapter 02's mount sequence: mountSequence in
// Sources/Isolation/Namespaces/Container.swift (and `chapter-02 escape`).
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise01Stretch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-01-stretch",
        abstract: "Exercise 01, stretch: a jail the chroot escape cannot leave (your steps: Steps.swift).",
        subcommands: [Jail.self, Init.self],
        defaultSubcommand: Jail.self)
}

/// The parent: clone(CLONE_NEWNS) a fresh copy of this program (`init`), and wait for it.
struct Jail: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run COMMAND in the jail (the default).")

    @Option(help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR")) var rootfs: String?
    @Option(help: ArgumentHelp("Before COMMAND, try chapter 01's escape and then to read FILE (a host path).", valueName: "FILE"))
    var escapeTarget: String?
    @Argument(parsing: .postTerminator, help: "The command to run in the jail (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("01-stretch") {
            let root = try exerciseRootfs(rootfs, why: "mount namespaces, mount(2) and pivot_root(2) need CAP_SYS_ADMIN")
            blockSignalsForSupervision()
            var options = SpawnOptions()
            // A mount namespace of its own: the mount table your steps change is a copy,
            // and the host's stays as it is (mount_namespaces(7)).
            options.namespaces = [.mount]
            options.parentDeathSignal = SIGKILL
            let child = try ChildProcess.spawn(
                "/proc/self/exe",
                arguments: ["exercise-01-stretch", "init", "--rootfs", root.path.string]
                    + (escapeTarget.map { ["--escape-target", $0] } ?? []) + ["--"] + command,
                environment: exerciseEnvironment(), options: options)
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The child (hidden), in its new mount namespace: your three steps, the escape if
/// asked for, then execve(2) of the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) jail this process, then exec COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Option var escapeTarget: String?
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        runExercise("01-stretch") {
            // Your steps (Steps.swift): after them "/" is ROOTFS, the host's root is gone
            // from this mount namespace, and the host's mount table never changed.
            try keepMountsPrivate()
            try makeMountPoint(FilePath(rootfs))
            try pivotInto(FilePath(rootfs))
            if let escapeTarget {
                // We are root in here, and root may chroot: chapter 01's escape, for real.
                let outcome = ChrootEscape.attempt(target: FilePath(escapeTarget)) { call, _ in printError("escape: \(call)") }
                printError("escape: " + (outcome.escaped ? "ESCAPED: the host file was read" : "contained: the host file is out of reach"))
            }
            let program = try Exec.resolve(command.first ?? "/bin/sh")
            try Exec.replaceProcess(program, arguments: command.isEmpty ? ["sh"] : command, environment: exerciseEnvironment())
        }
    }
}
