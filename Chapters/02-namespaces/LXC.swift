// LXC, the talk's 2008 milestone: the first tool that put the namespaces (and cgroups)
// together into "Linux containers". Its `lxc-unshare` does what Step 1 of this chapter
// does, one clone(2)/unshare(2) flag per namespace, from the command line. Running both
// side by side shows that there is one kernel feature and many front ends: the same
// kinds come out new, the same ones stay shared.
//
// Read next: lxc-unshare(1), lxc.container.conf(5), namespaces(7).
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

enum LXC {
    static let program = "lxc-unshare"
    static let installLine = "sudo apt-get install lxc"

    /// lxc-unshare's names for the kinds it can make: six of the eight (it has no flag
    /// for the cgroup and time namespaces, which came in 2016 and 2020).
    static let flags: [(Namespaces, String)] = [
        (.mount, "MOUNT"), (.pid, "PID"), (.uts, "UTSNAME"), (.ipc, "IPC"), (.user, "USER"), (.network, "NETWORK"),
    ]

    /// What one lxc-unshare run saw.
    struct Result {
        var namespaces: [String: UInt64] = [:]
        var hostname = "?"
        var uid = "?"
        var command: [String] = []
    }

    /// Runs `lxc-unshare -s FLAGS -H HOSTNAME -- sh -c SCRIPT` on the host and collects
    /// the namespace inodes its process reads from /proc/self/ns.
    static func run(_ namespaces: Namespaces, hostname: String) throws -> Result {
        guard let lxcUnshare = Command.find(program) else {
            throw IsolationError("\(program) is not installed", hint: installLine)
        }
        let asked = flags.filter { namespaces.contains($0.0) }.map(\.1)
        guard !asked.isEmpty else {
            throw IsolationError("lxc-unshare can make none of \(namespaces)", hint: "it knows mount, pid, uts, ipc, user and net")
        }
        // stat -L prints the inode of what the link points at, as Namespaces.identity does.
        let script = "for n in \(Namespaces.allKinds.map(\.procName).joined(separator: " ")); do "
            + "[ -e /proc/self/ns/$n ] && echo \"@$n=$(stat -L -c %i /proc/self/ns/$n)\"; done; "
            + "echo \"@hostname=$(hostname)\"; echo \"@uid=$(id -u)\""
        var arguments = ["-s", asked.joined(separator: "|")]
        if namespaces.contains(.uts) { arguments += ["-H", hostname] }
        arguments += ["--", "/bin/sh", "-c", script]
        let output = try Command.run(lxcUnshare, arguments)
        guard output.status == .exited(0) else {
            let message = output.standardError.split(separator: "\n").last.map(String.init) ?? "no message"
            throw IsolationError("lxc-unshare \(output.status): \(message)", hint: "run it by hand: lxc-unshare -s \(asked.joined(separator: "|")) -- sh")
        }
        var result = Result(command: [program, "-s", asked.joined(separator: "|")] + (namespaces.contains(.uts) ? ["-H", hostname] : []) + ["--", "sh"])
        for line in output.standardOutput.split(separator: "\n") where line.hasPrefix("@") {
            let parts = line.dropFirst().split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "hostname": result.hostname = parts[1]
            case "uid": result.uid = parts[1]
            default: if let inode = UInt64(parts[1]) { result.namespaces[parts[0]] = inode }
            }
        }
        return result
    }

    /// One line per namespace kind: the host's inode, ours, LXC's, and new or shared.
    static func compare(host: [String: UInt64], ours: [String: UInt64], lxc: Result, namespaces: Namespaces) {
        func cell(_ inode: UInt64?, _ hostInode: UInt64?) -> String {
            guard let inode else { return "-" }
            return "\(inode) " + (inode == hostInode ? style.dim("shared") : style.green("new"))
        }
        say("  " + style.syscall(lxc.command.map(shellQuote).joined(separator: " ")))
        say("  " + pad("", 8) + pad(style.bold("host"), 13) + pad(style.bold("chapter 02"), 20) + style.bold("lxc-unshare"))
        var agree = 0
        for kind in Namespaces.allKinds where host[kind.procName] != nil {
            let name = kind.procName
            let hostInode = host[name]
            let oursNew = ours[name] != nil && ours[name] != hostInode
            let lxcNew = lxc.namespaces[name] != nil && lxc.namespaces[name] != hostInode
            if oursNew == lxcNew { agree += 1 }
            var note = ""
            if namespaces.contains(kind) && !flags.contains(where: { $0.0 == kind }) { note = style.dim(" (no flag)") }
            say("  " + pad(name, 8) + pad(hostInode.map { "\($0)" } ?? "-", 13) + pad(cell(ours[name], hostInode), 20)
                + cell(lxc.namespaces[name], hostInode) + note)
        }
        say("  inside lxc-unshare: hostname \(lxc.hostname), uid \(lxc.uid)"
            + (namespaces.contains(.user) && lxc.uid == "65534" ? style.dim(" (no uid map: unmapped)") : ""))
        say(style.dim("  (inode numbers are reused once a namespace is gone: compare with the host)"))
        let total = Namespaces.allKinds.filter { host[$0.procName] != nil }.count
        say("  " + style.bold("→ ") + "\(agree) of \(total) kinds agree, new or shared: one kernel feature, two front ends.")
    }
}

/// `chapter-02 lxc`: our container and lxc-unshare's, side by side.
struct LXCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lxc",
        abstract: "The same namespaces made by LXC's lxc-unshare (apt: lxc), compared with this chapter's.")

    @OptionGroup var options: ContainerOptions

    func run() throws {
        continueOnClosedOutput()
        reportingErrors("chapter-02") {
            guard Identity.isRoot else {
                throw IsolationError("lxc-unshare makes namespaces other than user only as root", hint: "run it as root (sudo, or leave sudo out when you are root)")
            }
            guard Command.find(LXC.program) != nil else {
                throw IsolationError("\(LXC.program) is not installed", hint: LXC.installLine)
            }
            let (namespaces, root, layer) = try options.prepare()
            defer { layer?.remove() }
            blockSignalsForSupervision()
            let host = Namespaces.identity()
            let launch = Launch(root: root, namespaces: namespaces, hostname: options.hostname, command: ["sh", "-c", Probe.script])
            say(style.bold("This chapter's container") + style.dim("  (Step 1 and 2 of the lesson)"))
            let probe = try Probe.run(launch)
            say()
            say(style.bold("LXC (2008): the same namespaces with lxc-unshare"))
            let lxc = try LXC.run(namespaces, hostname: options.hostname)
            LXC.compare(host: host, ours: probe.namespaces, lxc: lxc, namespaces: namespaces)
        }
    }
}
