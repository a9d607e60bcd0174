// Chapter 01 — the chroot jail (Unix V7, 1979; BSD, 1982).
//
// The oldest isolation there is: change the root directory of a process, so that "/"
// means a folder we chose. That is all chroot(2) does — this chapter shows what it
// hides, what it does not, and how a root process walks out of it.
//
//   chapter-01 [--rootfs DIR]                 the lesson, then a jailed shell
//   chapter-01 [--rootfs DIR] -- COMMAND ...  run COMMAND in the jail
//   chapter-01 escape [--rootfs DIR]          a root process leaves the jail
//
// Read next: chroot(2), chdir(2), path_resolution(7).
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

@main
struct Chapter01: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-01",
        abstract: "The chroot jail: change a process's root directory, and nothing else.",
        subcommands: [Lesson.self, Escape.self, Init.self, EscapeInit.self],
        defaultSubcommand: Lesson.self)
}

/// Options every subcommand shares.
struct RootfsOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A root filesystem to use instead of the built-in one (needs /bin/sh).", valueName: "DIR"))
    var rootfs: String?

    /// The checks this chapter needs, then the root filesystem: the given one, validated,
    /// or the built-in one (built on first use) under a writable layer of this run's own,
    /// which the caller removes. Nothing is created before the checks pass.
    func prepare() throws -> (RootFilesystem, WritableLayer?) {
        try Preflight.require([Preflight.kernel(), Preflight.root(why: "chroot(2) needs CAP_SYS_CHROOT, and mounting /proc needs CAP_SYS_ADMIN")])
        return try RootFilesystem.forRun(given: rootfs, log: note)
    }
}

/// The environment of a jailed process: nothing from the host but the terminal type.
func jailEnvironment() -> [String] {
    ["PATH=\(Exec.containerPath)", "HOME=/root", "TERM=\(environmentValue("TERM") ?? "xterm")", "PS1=(jail) \\w # "]
}

/// Mount a fresh /proc inside the jail, so that ps and friends work there — which is
/// also what makes it plain that the jail sees every process of the host. Returns the
/// mount point to unmount afterwards, or nil when the root filesystem has no /proc.
func mountJailProc(_ root: RootFilesystem, narrate: Bool) throws -> FilePath? {
    let target = root.path.appending("proc")
    guard FileSystem.isDirectory(target) else { return nil }
    if narrate {
        lessonStep("mount(\"proc\", \"\(target)\", \"proc\", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)",
                   "give the jail a /proc, as every chroot guide does (we unmount it when we leave)")
    }
    try inStage("mounting proc on \(target)") {
        try Mount.mount(source: "proc", target: target, type: "proc", flags: [.noSetuid, .noDevices, .noExec])
    }
    return target
}

func unmountJailProc(_ target: FilePath?) {
    guard let target else { return }
    // MNT_DETACH: a shell still running in the jail must not make this fail.
    try? Mount.unmount(target, detach: true)
}

/// Starts `/proc/self/exe init --rootfs ROOT -- COMMAND...`: a fresh copy of this
/// program that makes the jail and execs the command. The clone(2)…execve(2) window is
/// in C (iso_spawn): a Swift process must not run Swift code between fork and exec.
func spawnJailed(_ root: RootFilesystem, _ command: [String], narrate: Bool, stdout: FileDescriptor? = nil) throws -> ChildProcess {
    var options = SpawnOptions()
    options.parentDeathSignal = SIGKILL  // if we die, the jailed process goes too
    options.standardOutput = stdout
    let arguments = ["chapter-01", "init", "--rootfs", root.path.string] + (narrate ? ["--narrate"] : []) + ["--"] + command
    return try ChildProcess.spawn("/proc/self/exe", arguments: arguments, environment: jailEnvironment(), options: options)
}

/// Runs a command in the jail and returns what it printed (for the side-by-side views).
func captureJailed(_ root: RootFilesystem, _ command: [String], narrate: Bool = false) throws -> String {
    let pipe = try makePipe()
    let child = try spawnJailed(root, command, narrate: narrate, stdout: FileDescriptor(rawValue: pipe.write))
    close(pipe.write)
    let output = readAll(pipe.read)
    close(pipe.read)
    try child.wait()
    return output
}

let style = Style.standardOutput
