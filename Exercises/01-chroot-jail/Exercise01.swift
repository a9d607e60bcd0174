// Exercise 01 — the chroot jail. Your steps are in Steps.swift; this file is the rest
// of chapter 01, written with the Isolation library, so you can see where they fit.
//
//   sudo .build/debug/exercise-01 [--rootfs DIR] -- COMMAND ARGS...   run COMMAND in your jail
//   swift run check 01                                                 check it from outside
//
// The solution is chapter 01 itself: Chapters/01-chroot-jail/Init.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise01: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-01",
        abstract: "Exercise 01: jail a command with chroot(2) (your steps: Steps.swift).",
        subcommands: [Jail.self, Init.self],
        defaultSubcommand: Jail.self)
}

/// The parent: starts a fresh copy of this program (`init`) that jails itself and
/// execs the command, and waits for it. Forking is done in C (iso_spawn): no Swift runs
/// between fork and exec.
struct Jail: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run COMMAND in the jail (the default).")

    @Option(help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR")) var rootfs: String?
    @Argument(parsing: .postTerminator, help: "The command to run in the jail (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("01") {
            let root = try exerciseRootfs(rootfs, why: "chroot(2) needs CAP_SYS_CHROOT")
            blockSignalsForSupervision()
            var options = SpawnOptions()
            options.parentDeathSignal = SIGKILL
            let child = try ChildProcess.spawn(
                "/proc/self/exe", arguments: ["exercise-01", "init", "--rootfs", root.path.string, "--"] + command,
                environment: exerciseEnvironment(), options: options)
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The child (hidden): your two steps, then execve(2) of the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) jail this process, then exec COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        runExercise("01") {
            // Your steps (Steps.swift): after them, "/" is ROOTFS and so is ".".
            try changeRoot(FilePath(rootfs))
            try moveIntoJail()
            // The command is looked up in PATH *inside* the jail: /bin/sh is the jail's.
            let program = try Exec.resolve(command.first ?? "/bin/sh")
            try Exec.replaceProcess(program, arguments: command.isEmpty ? ["sh"] : command, environment: exerciseEnvironment())
        }
    }
}
