// Exercise 02: new namespaces, observed from outside (inodes, NSpid, hostname, /proc).
import Glibc
import Isolation
import SystemPackage

func checkNamespaces(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("02")
        let rootfs = try context.rootfs(in: folder)
        let hostnameBefore = Identity.hostname()
        let wanted = "isolation-ex02"
        let probe = "echo \"pid=$$\"; echo \"hostname=$(hostname)\"; echo \"procs=$(cd /proc && echo [0-9]*)\"; echo ready; read x; echo done"
        defer {
            // The exercise refuses to rename the host; if the host's name changed anyway, put it back.
            if Identity.hostname() != hostnameBefore { try? Identity.setHostname(hostnameBefore) }
            let left = context.unmountLeftovers(under: folder)
            report.check("nothing it mounted is left on the host", left.isEmpty,
                         observed: left.isEmpty ? "no mount under \(folder) in the host's mount table" : "left mounted (now removed): " + left.joined(separator: ", "),
                         expected: "none: its mounts live and die with its mount namespace",
                         hint: "mount only after clone(CLONE_NEWNS), and make / private first (the starter does)")
        }
        let hostProcesses = Proc.allPIDs().count
        guard let running = startProbe(report, "02", program, ["--rootfs", rootfs.string, "--hostname", wanted, "--", "sh", "-c", probe],
                                       environment: context.environment()) else { return }
        defer { running.finish(timeout: 10) }
        let values = running.stdout.probeValues
        guard let shell = Proc.waitForDescendant(of: running.child.pid, named: "sh", timeout: 5) else {
            report.fail("find the probe's shell on the host", observed: "no process named sh below exercise-02 (PID \(running.child.pid))",
                        expected: "the probe running as a descendant", hint: "the command must run in the container the exercise started")
            return
        }
        checkNamespaceIdentity(report, pid: shell, kinds: [.uts, .pid, .mount, .ipc, .network], who: "the command (host PID \(shell))") { kind in
            "step \"clone-flags\": add .\(kind == .mount ? "mount" : kind == .network ? "network" : kind.procName) (\(kind.cloneFlagName)) to namespacesToCreate(); clone(2) makes a namespace only for the flags it is given"
        }
        let inside = values["hostname"] ?? ""
        report.check("the hostname inside is the one asked for", inside == wanted,
                     observed: "hostname inside → \(inside)", expected: wanted,
                     hint: "step \"sethostname\": sethostname(2) with the name passed in, in the new UTS namespace")
        report.check("the host's hostname did not change", Identity.hostname() == hostnameBefore,
                     observed: "host → \(Identity.hostname())", expected: hostnameBefore,
                     hint: "sethostname(2) without CLONE_NEWUTS renames the host")
        let nspid = Proc.namespacePIDs(shell)
        let insidePID = values["pid"] ?? "?"
        report.check("the command has a PID of its own inside (a nested PID namespace)", nspid.count >= 2 && "\(nspid.last!)" == insidePID,
                     observed: "/proc/\(shell)/status NSpid: \(nspid.map(String.init).joined(separator: " ")); $$ inside → \(insidePID)",
                     expected: "two PIDs: the host's (\(shell)) and a small one inside, equal to $$",
                     hint: "step \"clone-flags\": CLONE_NEWPID (.pid) gives the container PIDs of its own, starting at 1")
        let parent = Proc.parent(of: shell) ?? 0
        let parentPIDs = Proc.namespacePIDs(parent)
        report.check("PID 1 inside is the exercise's init, the command's parent", parentPIDs.last == 1 && Proc.cmdline(parent).dropFirst().first == "init",
                     observed: "the command's parent: host PID \(parent), NSpid \(parentPIDs.map(String.init).joined(separator: " ")), running \(Proc.cmdline(parent).prefix(2).joined(separator: " "))",
                     expected: "NSpid ending in 1: exercise-02 init",
                     hint: "the first process in a new PID namespace is its PID 1 (pid_namespaces(7)): with CLONE_NEWPID that is the init clone(2) made")
        let procs = (values["procs"] ?? "").split(separator: " ").compactMap { Int($0) }
        report.check("/proc inside lists only the container's processes", !procs.isEmpty && procs.count <= 5 && procs.contains(1),
                     observed: "ls /proc inside → \(procs.count) PIDs (\(procs.prefix(8).map(String.init).joined(separator: " "))\(procs.count > 8 ? " …" : "")); the host has \(hostProcesses)",
                     expected: "PID 1 (the exercise's init) and the probe, a handful at most",
                     hint: "step \"mount-proc\": mount a *new* proc (type \"proc\") after clone(CLONE_NEWPID); proc shows the PID namespace of whoever mounts it, and a bind of the host's /proc shows the host")
        let mounts = (try? MountInfo.table(of: shell)) ?? []
        let proc = mounts.first(where: { $0.mountPoint == "/proc" })
        report.check("its mount table has its own proc at /proc", proc?.fileSystemType == "proc",
                     observed: "/proc/\(shell)/mountinfo: " + (proc.map { "\($0.fileSystemType) at /proc (\($0.options))" } ?? "no mount at /proc"),
                     expected: "a proc mount at /proc",
                     hint: "step \"mount-proc\": Mount.mount(source: \"proc\", target: …/proc, type: \"proc\", …)")
        let status = running.finish(timeout: 10)
        report.check("the exercise ends with the command's status", status == .exited(0), observed: "exercise-02 \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a root filesystem copy in /tmp", hint: "run `swift run doctor`")
    }
}

/// `check 02 --hint`: level 1 the API, level 2 the shape of the answer.
let namespacesHints: [StepHint] = [
    StepHint(step: "clone-flags",
             api: "Namespaces (Sources/Isolation/Namespaces/Namespaces.swift) is an OptionSet with one member per CLONE_NEW* flag: .uts, .pid, .mount, .ipc, .network, .user, .cgroup, .time. The starter passes what you return to clone(2).",
             shape: "Return an option set literal with five members, one per resource the checker looks at: hostname, PIDs, mount table, IPC objects, network. Leave .user out: we are root already."),
    StepHint(step: "sethostname",
             api: "sethostname(2): Identity.setHostname(_:), which throws; or Glibc's sethostname(name, name.utf8.count), -1 and errno on failure.",
             shape: "One line: try Identity.setHostname(name). It runs in the child, after clone(CLONE_NEWUTS): only the container's copy of the name changes."),
    StepHint(step: "mount-proc",
             api: "mount(2): Mount.mount(source:target:type:flags:data:). A proc mount's source is only a name (\"proc\"), its type is \"proc\"; the flags are a MountFlags option set (.noSetuid, .noDevices, .noExec).",
             shape: "One call in the child: Mount.mount(source: \"proc\", target: target, type: \"proc\", flags: [.noSetuid, .noDevices, .noExec]). It shows the PID namespace of the process that mounts it: this one, after clone(2)."),
]
