// The container's first process: set up the inside, then run the command.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

/// Hidden: the child that `chapter-02` starts in new namespaces. A fresh process (we
/// were exec'd), so everything it changes — mounts, root, hostname — is its own.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "(internal) set up the inside of the namespaces, then run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Option var namespaces: String
    @Option var hostname: String?
    @Option var escapeTarget: String?
    @Flag var narrate = false
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-02") {
            let kinds = try Namespaces(parsing: namespaces)
            // We were exec'd as /proc/self/exe, so the kernel named us "exe"; ps inside
            // should say what PID 1 is: /proc/self/comm is writable by ourselves (proc(5)).
            if let comm = try? FileDescriptor.open("/proc/self/comm", .writeOnly, options: .closeOnExec) {
                _ = try? comm.writeAll("chapter-02".utf8)
                try? comm.close()
            }
            if narrate {
                let who = "getpid() = \(getpid())" + (kinds.contains(.pid) ? " (PID 1 of a new PID namespace)" : "")
                    + ", getuid() = \(getuid())" + (kinds.contains(.user) ? " (root, in our own user namespace)" : "")
                let lines = wrapLines(who, first: terminalWidth() - 10, rest: terminalWidth() - 10)
                say(style.bold("  inside: ") + (lines.first ?? ""))
                for line in lines.dropFirst() { say("          " + line) }
            }

            // The lesson's probe: without a mount namespace there will be no /proc inside,
            // so PID 1 reads what it can of its namespaces now, through the host's /proc,
            // which shows the *reader's* IPC, cgroup and time namespaces (proc(5)).
            // (Not for the escape: its output is read by a person, not by the lesson.)
            if narrate && escapeTarget == nil && !kinds.contains(.mount) { earlyReport() }

            // 1–6. The order the kernel needs: hostname; mounts made private, the root
            //      filesystem bound, /proc and /dev, pivot_root (or chroot without a mount
            //      namespace); loopback up. See Container.setUpInside for each WHY.
            let container = Container(rootfs: FilePath(rootfs), namespaces: kinds, hostname: hostname)
            _ = try container.setUpInside(narrate: narrate ? lessonStep : { _, _ in })

            // IPC, cgroup and time need nothing here: a new IPC namespace starts empty,
            // the cgroup namespace's root is the cgroup we were in at clone(2), and the
            // clock offsets were written before execve (in C, iso_spawn).

            if let escapeTarget {
                status = escape(FilePath(escapeTarget))
                return
            }

            // 7. The command, looked up in PATH *inside* the new root. In a new PID
            //    namespace we are PID 1: we fork it, reap orphans and pass signals on
            //    (pid_namespaces(7)); see Container.runCommand.
            let shown = command.count > 2 && command[1] == "-c" && command[2].count > 40 ? "[\"sh\", \"-c\", <the lesson's probe script>]" : nil
            status = try container.runCommand(command, environment: containerEnvironment(), shown: shown,
                                              narrate: narrate ? lessonStep : { _, _ in })
        }
        throw ExitCode(status.shellCode)
    }

    /// `@early.KEY=value` lines for the lesson's table (see Probe in Lesson.swift).
    func earlyReport() {
        func first(_ path: String) -> String? { try? FileSystem.readString(FilePath(path)) }
        if let msg = first("/proc/sysvipc/msg") { say("@early.msg=\(max(0, msg.split(separator: "\n").count - 1))") }
        if let cgroup = first("/proc/self/cgroup") { say("@early.cgroup=" + cgroup.split(separator: "\n").joined(separator: " ")) }
        if let uptime = first("/proc/uptime") { say("@early.uptime=" + (uptime.split(separator: " ").first.map(String.init) ?? "")) }
    }

    /// `chapter-02 escape`: chapter 01's escape, from inside the container. Exit status
    /// as chapter 01's: `ChrootEscape.Outcome.exitStatus` (0 escaped, 2 contained).
    func escape(_ target: FilePath) -> ExitStatus {
        say()
        say(style.bold("The escape") + " (we are root in here, and root may call chroot)")
        let before = (try? FileSystem.readString(target)) == nil
        lessonStep("open(\"\(target)\")", before ? "→ ENOENT: from in here, the host file does not exist" : "→ readable?! this root filesystem contains that path")
        let outcome = ChrootEscape.attempt(target: target, narrate: lessonStep)
        say()
        if outcome.escaped, let contents = outcome.targetContents {
            say(style.red("ESCAPED") + ": the process read the host file:")
            say("  " + contents.trimmed)
            sayWrapped("and `/` is the host's again: " + outcome.rootEntries.joined(separator: " "), hanging: "  ")
            say("Without a mount namespace this is chapter 01's jail: add `mount` to --namespaces")
            return .exited(outcome.exitStatus)
        }
        say(style.green("CONTAINED") + ": the climb ended at the container's own root:")
        sayWrapped(outcome.rootEntries.joined(separator: " "), indent: "  ", hanging: "  ")
        say("pivot_root(2) moved the host's root out of this mount namespace and we detached")
        say("it: no directory is left above `/`, so chroot tricks have nowhere to go.")
        return .exited(outcome.exitStatus)
    }
}
