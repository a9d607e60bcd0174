// Chapter 01's escape, tried again inside a mount namespace after pivot_root.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

struct Escape: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Try chapter 01's chroot escape inside the pivot_root'ed mount namespace, and watch it fail.",
        discussion: "Exit status 0 when the escape reached the host file (as it does with --namespaces uts: no mount namespace, so chroot), 2 when it was contained, 1 when an error stopped it first (the same for `chapter-01 escape`).")

    @OptionGroup var options: ContainerOptions

    func run() throws {
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-02") {
            let (namespaces, root, layer) = try options.prepare()
            defer { layer?.remove() }
            say(style.bold("Chapter 02 · Chapter 01's escape, inside namespaces"))
            // A file on the host, outside the root filesystem. World-readable on purpose:
            // if the escape fails, it is because the file is not *there*, not because the
            // container's (mapped) uid may not read it.
            let folder = try FileSystem.makeTemporaryDirectory(purpose: "escape")
            defer { try? FileSystem.removeTree(folder) }
            chmod(folder.string, 0o755)
            let secret = folder.appending("host-secret.txt")
            try FileSystem.writeFile(secret, "host secret: this file lives on the host, outside the container\n", mode: 0o644)
            say("On the host: \(secret)")
            say("Namespaces: \(namespaces)")
            say()
            blockSignalsForSupervision()
            let launch = Launch(root: root, namespaces: namespaces, hostname: options.hostname,
                                narrate: true, escapeTarget: secret)
            status = try launch.start(narrateParent: true).waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}
