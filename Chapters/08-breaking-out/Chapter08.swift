// Chapter 08 — breaking out (the shocker, 2014; runc's CVE-2019-5736; Leaky Vessels, 2024).
//
// A container is a process of the host, on the host's kernel. Chapters 01 to 04 built
// the layers around it one at a time; this chapter takes the attacker's side. A ladder
// of six configurations, each adding one layer to the one before, and a catalogue of
// escapes, each a few system calls in C, run for real inside every rung. The table
// shows what each layer stops, what it does not, and the errno the escape met.
//
//   chapter-08                                  the whole table, then what stopped what
//   chapter-08 --rung 2 --rung 3 --escape disk  part of it
//
// Read next: capabilities(7), seccomp(2), user_namespaces(7), proc(5) (core_pattern,
// sysrq-trigger, kcore), open_by_handle_at(2), and the notes (README.md) for each CVE.
import ArgumentParser
import Glibc
import Isolation
import RuntimeCLI
import SystemPackage

@main
struct Chapter08: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-08",
        abstract: "Breaking out: every escape against every layer, and the layer that stops it.",
        subcommands: [Lesson.self, ChrootRun.self, Marker.self],
        defaultSubcommand: Lesson.self)

    /// Rungs 2 to 6 run in chapter 04's runtime, whose container init is this program
    /// again (`init …`): it runs before ArgumentParser reads anything.
    static func main() {
        ContainerInitCommand.runIfRequested()
        main(nil)
    }
}

/// Hidden: rung 1, chapter 01's jail. chroot(2) into ROOTFS, chdir("/"), exec the escape.
struct ChrootRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chroot-run", abstract: "(internal) chroot into ROOTFS and run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Argument(parsing: .captureForPassthrough) var command: [String]

    func run() throws {
        reportingErrors("chapter-08") {
            try FileSystem.changeRoot(FilePath(rootfs))
            try FileSystem.changeDirectory("/")
            try Exec.replaceProcess(FilePath(command[0]), arguments: command, environment: ["PATH=/"])
        }
        throw ExitCode(1)
    }
}

/// Hidden: a process of the host for the escapes to aim at (signal, ptrace). It waits
/// to be killed; its parent's death kills it too (PR_SET_PDEATHSIG).
struct Marker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "marker", abstract: "(internal) wait to be killed.", shouldDisplay: false)

    func run() throws {
        while true { pause() }
    }
}
