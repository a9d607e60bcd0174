// The lesson: start a process in new namespaces, and compare what it sees with the host.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

struct Lesson: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson",
        abstract: "The lesson (the default), or run COMMAND inside after --.",
        discussion: "Without a command: the lesson, then a shell inside on a terminal. With `-- COMMAND ARGS...`: run it inside and exit with its status.")

    @OptionGroup var options: ContainerOptions
    @Argument(parsing: .postTerminator, help: "The command to run inside.") var command: [String] = []

    func run() throws {
        continueOnClosedOutput()
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-02") {
            let (namespaces, root, layer) = try options.prepare()
            defer { layer?.remove() }
            blockSignalsForSupervision()  // Ctrl-C goes to the container; we wait for it to end
            if command.isEmpty {
                // The probe's optional `ip` and `awk` are left out: without them the row says so.
                if options.rootfs != nil { try root.requirePrograms(["sh", "hostname", "wc", "tail", "tr", "cut", "id"], for: "the lesson") }
                status = try lesson(namespaces, root)
            } else {
                let (helper, note) = try options.userNetwork(namespaces)
                if let note { printError(style.dim("chapter-02: " + note)) }
                let launch = Launch(root: root, namespaces: namespaces, hostname: options.hostname,
                                    clockOffset: options.clockOffset ?? 0, command: command, userNetwork: helper)
                status = try launch.start().waitForwardingSignals()
            }
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }

    func lesson(_ namespaces: Namespaces, _ root: RootFilesystem) throws -> ExitStatus {
        let offset = options.clockOffset ?? (namespaces.contains(.time) ? 365 * 86400 : 0)
        say(style.bold("Chapter 02 · Namespaces"))
        say("2002: Linux 2.4.19 gets the mount namespace. 2006–2013: uts, ipc, pid, net,")
        say("user. 2008: LXC puts them together; 2013: Docker. 2016: cgroup; 2020: time.")
        say("A namespace gives a process its own copy of one kind of kernel resource.")
        say()
        say("This host supports: \(Namespaces.supportedByKernel())")
        say("We ask for:         \(namespaces)" + (namespaces.contains(.time) ? "  (clocks +\(offset) s)" : ""))
        say("Root filesystem:    \(root.path)")
        say()

        // A System V message queue on the host, to look for from inside (svipc(7)).
        let queue = msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
        defer { if queue >= 0 { var info = msqid_ds(); msgctl(queue, IPC_RMID, &info) } }

        say(style.bold("Step 1 · Start a process in new namespaces") + style.dim("  (this process, PID \(getpid()))"))
        let (helper, networkNote) = try options.userNetwork(namespaces)
        let launch = Launch(root: root, namespaces: namespaces, hostname: options.hostname,
                            clockOffset: offset, command: ["sh", "-c", Probe.script], narrate: true, userNetwork: helper)
        let probe = try Probe.run(launch)
        say()

        say(style.bold("Step 3 · What each side sees"))
        let host = Probe.host(queue: queue)
        let noProc = namespaces.contains(.mount) ? "n/a" : "n/a: no /proc (no mount ns)"
        var early = false
        func inside(_ key: String) -> String {
            if let value = probe.values[key] { return value }
            if let value = probe.values["early." + key] { early = true; return value + " ¹" }
            return noProc
        }
        var rows: [(String, String, String)] = [
            ("hostname", host.hostname, inside("hostname")),
            ("PID of the shell", probe.shellHostPID.map { "\($0)" } ?? "?", inside("pid")),
            ("processes", host.processes, probe.values["ps"].map(Probe.summarizeProcesses) ?? noProc),
            ("network interfaces", host.interfaces, inside("net")),
            ("mounts (mountinfo)", host.mounts, inside("mounts")),
            ("SysV message queues", host.queues, inside("msg").replacingFirstWord { "\($0) queue(s)" }),
            ("uid", host.uid, inside("uid") + (namespaces.contains(.user) ? "  (= \(hostUID(ofInside: 0)) on the host)" : "")),
            ("/proc/self/cgroup", Probe.cgroupPair(host: host.cgroup, inside: inside("cgroup")).host,
             Probe.cgroupPair(host: host.cgroup, inside: inside("cgroup")).inside),
            ("uptime (s)", host.uptime, inside("uptime")),
        ]
        for kind in Namespaces.allKinds {
            let mine = host.namespaces[kind.procName].map { "\($0)" } ?? "-"
            let theirs = probe.namespaces[kind.procName].map { "\($0)" } ?? "-"
            let verdict = mine == theirs ? style.dim("  (shared)") : style.green("  (new)")
            rows.append(("ns/\(kind.procName) inode", mine, theirs + verdict))
        }
        // 80 columns: 2 + 22 + 30 + 26.
        say("  " + pad("", 22) + pad(style.bold("on the host"), 30) + style.bold("in the container"))
        for (what, hostValue, containerValue) in rows {
            say("  " + pad(clip(what, 21), 22) + pad(clip(hostValue, 28), 30) + clip(containerValue, 26))
        }
        if early {
            sayWrapped("¹ read by the container's PID 1 through the host's /proc, before its chroot: without a mount namespace there is no /proc inside",
                       indent: "  ", hanging: "    ", style: style.dim)
        }
        sayWrapped("(namespace inodes are read from outside, /proc/\(probe.initPID)/ns/*: the same inode is the same namespace)",
                   indent: "  ", hanging: "   ", style: style.dim)
        say()
        explain(namespaces, network: probe.network.map { "\($0.helper), a user-mode TCP/IP stack, gave it \($0.interface)" + ($0.gateway.map { " with a default route via \($0)" } ?? "") + ": its connections leave as sockets of a process of yours (no bridge, no root; chapter 07)" } ?? networkNote)
        say()
        // LXC (2008) made the same namespaces from the command line: shown when installed.
        if Command.find(LXC.program) != nil && Identity.isRoot {
            say(style.bold("Step 4 · The same with LXC (2008)") + style.dim("  (lxc-unshare, read by its own process)"))
            let lxc = try LXC.run(namespaces, hostname: options.hostname)
            LXC.compare(host: host.namespaces, ours: probe.namespaces, lxc: lxc, namespaces: namespaces)
            say()
        } else if Identity.isRoot {
            say(style.dim("(LXC, 2008, made these namespaces from the command line: \(LXC.installLine) to compare.)"))
            say()
        }
        guard isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1 else {
            say(style.dim("(not on a terminal: no shell; `chapter-02 -- COMMAND` runs one command inside)"))
            return .exited(0)
        }
        say(style.bold("You are now inside.") + " Try: hostname  ·  ps  ·  ip link  ·  id  ·  cat /proc/self/cgroup  ·  ls -l /proc/self/ns  ·  exit")
        let shell = Launch(root: root, namespaces: namespaces, hostname: options.hostname, clockOffset: offset, userNetwork: helper)
        return try shell.start().waitForwardingSignals()
    }

    func hostUID(ofInside id: UInt32) -> String {
        let map = UserNamespace.forInvokingUser().uidMap
        return map.lazy.compactMap { $0.outsideID(of: id) }.first.map { "\($0)" } ?? "unmapped"
    }

    /// One line per namespace: what it hid here, and what the single-namespace demos lack.
    func explain(_ namespaces: Namespaces, network: String? = nil) {
        let lines: [(Namespaces, String)] = [
            (.uts, "uts: the hostname is ours to set (sethostname); the host keeps its name."),
            (.pid, "pid: the shell is PID 2, under our init (PID 1); host PIDs cannot be seen or signalled."),
            (.mount, "mount: our mounts (/, /proc, /dev) are ours alone; the host's root was detached after pivot_root."),
            (.ipc, "ipc: the host's message queue is not here; a new IPC namespace starts empty."),
            (.network, network.map { "net: lo, which we brought up; " + $0 + "." }
                ?? "net: one device, lo, which we brought up; no route out (as root, chapter 07 plugs in a veth pair and a bridge)."),
            (.user, getuid() == 0
                ? "user: we map 0 to 0 (as root), so files stay root's; but its capabilities count only in namespaces it owns. Without sudo, 0 inside is your uid."
                : "user: uid 0 inside is uid \(getuid()) outside; its capabilities count only in the namespaces it owns."),
            (.cgroup, "cgroup: /proc/self/cgroup shows our cgroup as the root, \"/\" (the row above)."),
            (.time, "time: the monotonic and boot clocks have an offset here; the wall clock is shared."),
        ]
        /// A coloured lead-in, then the text wrapped at 80 (or the terminal's width).
        func note(_ lead: String, _ colored: String, _ text: String) {
            let lines = wrapLines(text, first: terminalWidth() - 2 - lead.count, rest: terminalWidth() - 6)
            say("  " + colored + (lines.first ?? ""))
            for line in lines.dropFirst() { say("      " + line) }
        }
        for (kind, line) in lines where namespaces.contains(kind) { note("new ", style.green("new "), line) }
        let shared = Namespaces.all.subtracting(namespaces)
        if !shared.isEmpty { note("shared with the host: ", style.yellow("shared with the host: "), "\(shared)") }
        if !namespaces.contains(.mount) {
            note("no mount namespace: ", style.yellow("no mount namespace: "),
                 "we used chapter 01's chroot (try `chapter-02 escape --namespaces \(namespaces)`), and mounted no /proc: a mount here would change the host's mount table. Rows marked n/a need it.")
        }
        if namespaces.contains(.pid) && !namespaces.contains(.mount) {
            note("pid without mount: ", style.yellow("pid without mount: "), "$$ is 2, but ps needs a /proc of the new PID namespace — add mount.")
        }
        if namespaces.contains(.mount) && !namespaces.contains(.pid) {
            note("mount without pid: ", style.yellow("mount without pid: "), "our fresh /proc still lists every process of the host.")
        }
    }

    func clip(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }
}

/// What the container sees, collected by a small shell script inside, plus what we read
/// about it from outside (its namespace inodes) while the script waits for us.
struct Probe {
    var values: [String: String] = [:]
    var namespaces: [String: UInt64] = [:]
    var initPID: pid_t = 0
    var shellHostPID: pid_t?
    /// The rootless container's user-mode network, as it was while the probe ran.
    var network: (helper: UserModeNetwork.Helper, interface: String, gateway: IPv4Address?)?

    /// Prints `@key=value` lines, then waits on stdin until the parent has looked at it
    /// from outside. Built-ins only where it matters: `read c < comm` forks nothing, so
    /// the process list is the container's, not the probe's own helpers.
    static let script = """
        p() { echo "@$1=$2"; }
        p hostname "$(hostname)"
        p pid "$$"
        if [ -d /proc/self ]; then
          ps=""; for d in /proc/[0-9]*; do read c < $d/comm; ps="$ps${d#/proc/} $c, "; done; p ps "$ps"
          p mounts "$(wc -l < /proc/self/mountinfo)"
          p msg "$(tail -n +2 /proc/sysvipc/msg | wc -l)"
          p cgroup "$(tr '\\n' ' ' < /proc/self/cgroup)"
          p uptime "$(cut -d' ' -f1 /proc/uptime)"
        fi
        p net "$(ip -o link 2>/dev/null | awk -F': ' '{ s = ($3 ~ /[<,]UP[,>]/) ? "up" : "down"; printf "%s %s, ", $2, s }')"
        p uid "$(id -u)"
        echo @done
        read x || true
        """

    static func run(_ launch: Launch) throws -> Probe {
        let input = try makePipe()
        let output = try makePipe()
        var launch = launch
        launch.standardInput = FileDescriptor(rawValue: input.read)
        launch.standardOutput = FileDescriptor(rawValue: output.write)
        let child: StartedContainer
        do {
            child = try launch.start(narrateParent: true)
        } catch {
            for fd in [input.read, input.write, output.read, output.write] { close(fd) }
            throw error
        }
        close(input.read)
        close(output.write)
        say()
        say(style.bold("Step 2 · Inside: set it up, in the order the kernel needs") + style.dim("  (the child narrates)"))
        var probe = Probe()
        probe.initPID = child.pid
        probe.network = child.network.map { ($0.helper, $0.interface, $0.gateway) }
        // Read line by line: narration is printed as it comes, `@key=value` collected.
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var done = false
        while !done {
            let n = read(output.read, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += buffer[0..<n]
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                if line == "@done" { done = true; break }
                if line.hasPrefix("@"), let eq = line.firstIndex(of: "=") {
                    let key = String(line[line.index(after: line.startIndex)..<eq])
                    var value = String(line[line.index(after: eq)...]).trimmingSpaces
                    if value.hasSuffix(",") { value.removeLast() }
                    probe.values[key] = value
                } else {
                    say(line)
                }
            }
        }
        // The shell is waiting on stdin: look at it from outside while it is alive.
        probe.namespaces = Namespaces.identity(of: child.pid)
        if launch.namespaces.contains(.pid) {
            let children = (try? FileSystem.readString(FilePath("/proc/\(child.pid)/task/\(child.pid)/children"))) ?? ""
            probe.shellHostPID = children.split(separator: " ").first.flatMap { pid_t($0) }
        } else {
            probe.shellHostPID = child.pid
        }
        close(input.write)
        _ = readAll(output.read)
        close(output.read)
        let status = try child.wait()
        if !done || status != .exited(0) {
            throw IsolationError("the probe inside the container \(status)", hint: "run `chapter-02 --namespaces \(launch.namespaces) -- sh` to look around")
        }
        return probe
    }

    struct Host {
        var hostname, processes, interfaces, mounts, queues, uid, cgroup, uptime: String
        var namespaces: [String: UInt64]
    }

    static func host(queue: Int32) -> Host {
        let pids = ((try? FileSystem.contentsOfDirectory("/proc")) ?? []).filter { $0.allSatisfy(\.isNumber) }
        let interfaces = Network.interfaceNames().map { name in
            "\(name) \(((try? Network.flags(of: name)) ?? []).contains(.up) ? "up" : "down")"
        }
        let queues = max(0, ((try? FileSystem.readString("/proc/sysvipc/msg")) ?? "").split(separator: "\n").count - 1)
        return Host(
            hostname: Identity.hostname(),
            processes: "\(pids.count) processes",
            interfaces: interfaces.joined(separator: ", "),
            mounts: "\(((try? MountInfo.table()) ?? []).count)",
            queues: "\(queues) queue(s)" + (queue >= 0 ? ", ours is id \(queue)" : ""),
            uid: "\(getuid())",
            cgroup: (try? FileSystem.readString("/proc/self/cgroup")) ?? "?",
            uptime: ((try? FileSystem.readString("/proc/uptime")) ?? "?").split(separator: " ").first.map(String.init) ?? "?",
            namespaces: Namespaces.identity())
    }

    /// The /proc/self/cgroup row: on cgroup v2 its one line (`0::/path`) on each side; on
    /// a v1 or hybrid host (a line per hierarchy) the line that differs between host and
    /// container, the memory controller's when it does, without its hierarchy number,
    /// and how many lines there are besides.
    static func cgroupPair(host hostText: String, inside insideText: String) -> (host: String, inside: String) {
        func lines(_ text: String) -> [String] {
            text.split(whereSeparator: { $0 == "\n" || $0 == " " }).map(String.init).filter { $0.contains(":") }
        }
        let marker = insideText.hasSuffix("¹") ? " ¹" : ""
        let hostLines = lines(hostText), insideLines = lines(insideText)
        guard hostLines.count > 1 || insideLines.count > 1 else {
            return (hostLines.first ?? hostText, (insideLines.first ?? insideText.split(separator: " ").filter { $0 != "¹" }.joined(separator: " ")) + marker)
        }
        /// "4:memory:/a/b" → ("memory", "memory:/a/b"); "0::/x" → ("", "0::/x").
        func keyed(_ lines: [String]) -> [String: String] {
            var table: [String: String] = [:]
            for line in lines {
                let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 3 else { continue }
                table[parts[1]] = parts[1].isEmpty ? line : parts[1] + ":" + parts[2]
            }
            return table
        }
        let hostByKey = keyed(hostLines), insideByKey = keyed(insideLines)
        let differing = Set(insideByKey.keys.filter { hostByKey[$0] != insideByKey[$0] })
        let key = differing.contains("memory") ? "memory"
            : differing.sorted().first ?? (insideByKey["memory"] != nil ? "memory" : insideByKey.keys.sorted().first ?? "")
        func shown(_ table: [String: String], _ count: Int) -> String {
            let line = table[key] ?? "?"
            return (line.count > 16 ? String(line.prefix(15)) + "…" : line) + " (+\(count - 1) more)"
        }
        return (shown(hostByKey, hostLines.count), shown(insideByKey, insideLines.count) + marker)
    }

    /// "1 chapter-02, 2 sh" — or a count and the first few when /proc is the host's.
    static func summarizeProcesses(_ list: String) -> String {
        let entries = list.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
        if entries.count <= 5 { return entries.joined(separator: ", ") }
        return "\(entries.count) processes: " + entries.prefix(3).joined(separator: ", ") + ", …"
    }

}

extension String {
    /// "0 ¹" → "0 queue(s) ¹": rewrites the first word when it is a number.
    func replacingFirstWord(_ transform: (String) -> String) -> String {
        let words = split(separator: " ", maxSplits: 1).map(String.init)
        guard let first = words.first, Int(first) != nil else { return self }
        return ([transform(first)] + words.dropFirst()).joined(separator: " ")
    }
}
