// The classic escape: a root process inside a chroot walks back out.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

struct Escape: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a root process escaping the chroot jail and reading a host file.",
        discussion: "Exit status 0 when the escape reached the host file, 2 when it was contained, 1 when an error stopped it first (the same for `chapter-02 escape`).")

    @OptionGroup var options: RootfsOption
    @Option(help: ArgumentHelp("The host file to read after escaping (default: one made for the demo).", valueName: "FILE"))
    var target: String?

    func run() throws {
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-01") {
            let (root, layer) = try options.prepare()
            defer { layer?.remove() }
            say(style.bold("Chapter 01 · Escaping the chroot jail"))
            // A file on the host, outside the root filesystem: the jail must not see it.
            var madeFolder: FilePath? = nil
            let secret: FilePath
            if let target {
                secret = FilePath(target)
            } else {
                let folder = try FileSystem.makeTemporaryDirectory(purpose: "escape")
                madeFolder = folder
                secret = folder.appending("host-secret.txt")
                try FileSystem.writeFile(secret, "host secret: this file lives on the host, outside the jail\n")
            }
            defer { if let madeFolder { try? FileSystem.removeTree(madeFolder) } }
            say("On the host: \(secret)")
            say()
            blockSignalsForSupervision()
            let child = try ChildProcess.spawn(
                "/proc/self/exe",
                arguments: ["chapter-01", "escape-init", "--rootfs", root.path.string, "--target", secret.string],
                environment: jailEnvironment(),
                options: { var o = SpawnOptions(); o.parentDeathSignal = SIGKILL; return o }())
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// Hidden: the jailed process that escapes. Exit status: `ChrootEscape.Outcome.exitStatus`.
struct EscapeInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "escape-init", abstract: "(internal) chroot into ROOTFS, then escape.", shouldDisplay: false)

    @Option var rootfs: String
    @Option var target: String

    func run() throws {
        var status = ChrootEscape.Outcome.containedStatus
        reportingErrors("chapter-01") {
            say(style.bold("In the jail"))
            lessonStep("chroot(\"\(rootfs)\")", "jail this process, as chapter-01 always does")
            try FileSystem.changeRoot(FilePath(rootfs))
            lessonStep("chdir(\"/\")", "and move into the jail")
            try FileSystem.changeDirectory("/")
            let before = (try? FileSystem.readString(FilePath(target))) == nil
            lessonStep("open(\"\(target)\")", before ? "→ ENOENT: from in here, the host file does not exist" : "→ readable?! this root filesystem contains that path")
            say()
            say(style.bold("The escape") + " (we are still root, and root may call chroot)")
            let outcome = ChrootEscape.attempt(target: FilePath(target), narrate: lessonStep)
            status = outcome.exitStatus
            say()
            if outcome.escaped, let contents = outcome.targetContents {
                say(style.red("ESCAPED") + ": the jailed process read the host file:")
                say("  " + contents.trimmingPrefixSpaces)
                sayWrapped("and `/` is the host's again: " + outcome.rootEntries.joined(separator: " "), hanging: "  ")
                say()
                say("chroot is not a security boundary against root. Chapter 02 runs the same")
                say("escape after pivot_root(2) in a new mount namespace, where it fails.")
            } else {
                say(style.green("CONTAINED") + ": the escape ended inside; the host file stays out of reach.")
            }
        }
        if status != 0 { throw ExitCode(status) }
    }
}
