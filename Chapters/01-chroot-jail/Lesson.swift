// The lesson: jail a process, look at what it sees, and at what it still sees.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

struct Lesson: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson",
        abstract: "The lesson (the default), or run COMMAND in the jail after --.",
        discussion: "Without a command: the lesson, then a jailed shell on a terminal. With `-- COMMAND ARGS...`: run it in the jail and exit with its status.")

    @OptionGroup var options: RootfsOption
    @Argument(parsing: .postTerminator, help: "The command to run in the jail.") var command: [String] = []

    func run() throws {
        continueOnClosedOutput()
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-01") {
            let (root, layer) = try options.prepare()
            defer { layer?.remove() }
            blockSignalsForSupervision()  // Ctrl-C goes to the jailed process; we clean up after
            if command.isEmpty {
                if options.rootfs != nil { try root.requirePrograms(Lesson.programs, for: "the lesson") }
                status = try lesson(root)
            } else {
                let proc = try mountJailProc(root, narrate: false)
                defer { unmountJailProc(proc) }
                status = try spawnJailed(root, command, narrate: false).waitForwardingSignals()
            }
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }

    /// What the lesson runs in the jail.
    static let programs = ["sh", "ls", "hostname", "wc", "tail", "cut", "tr", "id"]

    func lesson(_ root: RootFilesystem) throws -> ExitStatus {
        say(style.bold("Chapter 01 · The chroot jail"))
        say("1979: Unix V7 gets chroot(2). 1982: BSD. 2000: FreeBSD wraps it into jails.")
        say("chroot changes one thing about a process: the directory that \"/\" means.")
        say()
        say("Root filesystem: \(root.path)")
        say()
        say(style.bold("Step 1 · Build the jail"))
        let proc = try mountJailProc(root, narrate: true)
        defer {
            unmountJailProc(proc)
            if let proc { say(style.dim("left the jail; unmounted \(proc)")) }
        }
        say()
        say(style.bold("Step 2 · Start a process and jail it"))
        lessonStep("clone(SIGCHLD) → execve(\"/proc/self/exe\", [\"chapter-01\", \"init\", …])",
                   "a fresh copy of this program, so the chroot affects the child only")
        let inside = try captureJailedNarrated(root, ["ls", "/"])
        say()
        let host = (try? FileSystem.contentsOfDirectory("/")) ?? []
        say(sideBySide(style.bold("the host: ls /"), host, style.bold("the jail: ls /"), words(inside)))
        say()
        say(style.bold("Step 3 · What chroot does NOT hide"))
        let hostPID = getpid()
        let jailHostname = try captureJailed(root, ["hostname"]).trimmed
        let jailProcesses = try captureJailed(root, ["sh", "-c", "ls -d /proc/[0-9]* | wc -l"]).trimmed
        let jailSignal = try captureJailed(root, ["sh", "-c", "kill -0 \(hostPID) && echo yes || echo no"]).trimmed
        let jailInterfaces = try captureJailed(root, ["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' '"]).trimmed
        let jailMounts = try captureJailed(root, ["sh", "-c", "wc -l < /proc/1/mounts"]).trimmed
        let jailUser = try captureJailed(root, ["id", "-u"]).trimmed
        let rows: [(String, String, String)] = [
            ("hostname", jailHostname, Identity.hostname()),
            ("processes (/proc)", "\(jailProcesses) processes", "\(countProcesses()) processes"),
            ("signal host PID \(hostPID)", jailSignal == "yes" ? "kill -0 works" : "refused", "it is us"),
            ("network interfaces", jailInterfaces, "(the same devices)"),
            ("mounts (/proc/1/mounts)", "\(jailMounts) mounts", "\(((try? MountInfo.table(of: 1)) ?? []).count) mounts"),
            ("user id", "uid \(jailUser)", "uid \(getuid()): the same root"),
        ]
        say("  " + pad("", 24) + pad(style.bold("inside the jail"), 34) + style.bold("on the host"))
        for (what, jail, hostValue) in rows {
            say("  " + pad(what, 24) + pad(jail, 34) + hostValue)
        }
        say()
        say("The jail has its own files, and nothing else of its own: it shares the hostname,")
        say("the processes (it can signal them), the network, the mounts and root itself.")
        say("Next: `chapter-01 escape` (a root process walks out), then chapter 02.")
        say()
        guard isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1 else {
            say(style.dim("(not on a terminal: no jailed shell; `chapter-01 -- COMMAND` runs one command)"))
            return .exited(0)
        }
        say(style.bold("You are now in the jail.") + " Try: ls /  ·  ps  ·  hostname  ·  cat /proc/1/cmdline  ·  exit")
        return try spawnJailed(root, ["sh"], narrate: false).waitForwardingSignals()
    }

    /// The first jailed run narrates its own system calls as it makes them.
    func captureJailedNarrated(_ root: RootFilesystem, _ command: [String]) throws -> String {
        let output = try captureJailed(root, command, narrate: true)
        // The narration went to the child's stdout before execve; the program's output follows.
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let narration = lines.prefix(while: { $0.hasPrefix("  ") })
        for line in narration { say(String(line)) }
        return lines.dropFirst(narration.count).joined(separator: "\n")
    }

    func words(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "\n" || $0 == " " }).map(String.init)
    }

    func countProcesses() -> Int {
        ((try? FileSystem.contentsOfDirectory("/proc")) ?? []).filter { $0.allSatisfy(\.isNumber) }.count
    }
}

extension String {
    var trimmed: String { split(whereSeparator: \.isNewline).joined(separator: " ").trimmingPrefixSpaces }
    var trimmingPrefixSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
