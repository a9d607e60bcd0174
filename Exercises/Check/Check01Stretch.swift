// Exercise 01, stretch: a jail the chroot escape cannot leave. Two runs: a probe that
// shows where "/" and "." are and what the mount table holds, then the same jail with
// chapter 01's escape tried inside it before the probe. Observed from outside: the
// root directory's device and inode (stat(2) through /proc/PID/root), /proc/PID/mountinfo,
// the mount namespace's inode, and the host's own mount table.
import Glibc
import Isolation
import SystemPackage

/// The device and inode of a directory, as stat(2) sees it: what tells two roots apart,
/// whatever their paths read like from another mount namespace.
private func identity(_ path: String) -> (dev: UInt64, ino: UInt64)? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return (UInt64(info.st_dev), UInt64(info.st_ino))
}

private func describe(_ id: (dev: UInt64, ino: UInt64)?) -> String {
    id.map { "device \($0.dev >> 8):\($0.dev & 0xff), inode \($0.ino)" } ?? "(unreadable)"
}

func checkChrootJailStretch(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("01-stretch")
        let rootfs = try context.rootfs(in: folder)
        let token = "isolation-check-\(getpid())-\(monotonicNow())"
        try FileSystem.writeFile(rootfs.appending("isolation-check-marker"), token + "\n")
        let secret = folder.appending("host-secret")
        try FileSystem.writeFile(secret, "host secret\n")
        let jail = identity(rootfs.string)
        let hostRoot = identity("/")
        let hostMountsBefore = ((try? MountInfo.table()) ?? []).count
        defer {
            let left = context.unmountLeftovers(under: folder)
            report.check("nothing it mounted is left on the host", left.isEmpty,
                         observed: left.isEmpty ? "no mount under \(folder) in the host's mount table" : "left mounted (now removed): " + left.joined(separator: ", "),
                         expected: "none: its mounts live and die with its mount namespace",
                         hint: "step \"propagation\": the new namespace's mounts are copies that stay shared with the host's until made private (MS_REC|MS_PRIVATE on /)")
        }
        let probe = "echo \"pid=$$\"; echo \"marker=$(cat /isolation-check-marker 2>&1)\"; echo \"secret=$(cat \(secret) 2>&1)\"; echo ready; read x; echo done"

        // Run 1: the jail itself.
        guard let running = startProbe(report, "01-stretch", program, ["--rootfs", rootfs.string, "--", "sh", "-c", probe], environment: context.environment()) else { return }
        defer { running.finish(timeout: 10) }
        let values = running.stdout.probeValues
        guard let pid = values["pid"].flatMap(pid_t.init) else {
            report.fail("the probe says its PID", observed: running.stdout, expected: "pid=N", hint: "the jail must run the command it is given")
            return
        }
        checkNamespaceIdentity(report, pid: pid, kinds: [.mount], who: "the jail") { _ in "the starter clones with CLONE_NEWNS: is the exercise-01-stretch you run built from the starter?" }
        let root = identity("/proc/\(pid)/root/")
        report.check("the command's root directory is the jail", root != nil && root?.dev == jail?.dev && root?.ino == jail?.ino,
                     observed: "stat /proc/\(pid)/root/ → \(describe(root)); the jail \(rootfs) → \(describe(jail))",
                     expected: "the jail's device and inode",
                     hint: "step \"pivot_root\": the new root must be rootfs, and \".\" must be inside it afterwards")
        let mounts = (try? MountInfo.table(of: pid)) ?? []
        let rootMount = mounts.last(where: { $0.mountPoint == "/" })
        let rootLink = Proc.link("/proc/\(pid)/root")
        report.check("its mount namespace's root is the jail (pivot_root, not chroot)",
                     !rootLink.hasSuffix("/01-stretch/rootfs") && rootMount?.root.hasSuffix("/01-stretch/rootfs") == true,
                     observed: "/proc/\(pid)/root → \(rootLink); \"/\" in its mountinfo is \(rootMount.map { "\($0.source) \($0.root)" } ?? "missing")",
                     expected: "\"/\", the bind mount of \(rootfs)",
                     hint: "step \"mount-point\" makes rootfs a mount (a bind onto itself), step \"pivot_root\" makes it the namespace's root. After a mere chroot(2), /proc/PID/root reads as the rootfs path")
        let others = mounts.filter { $0.mountPoint != "/" }
        let roots = mounts.filter { $0.mountPoint == "/" }
        report.check("the host's root and mounts are gone from its mount table", others.isEmpty && roots.count == 1,
                     observed: "\(mounts.count) mounts in /proc/\(pid)/mountinfo" + (others.isEmpty ? "" : ", e.g. " + others.prefix(4).map(\.mountPoint).joined(separator: " "))
                        + (roots.count > 1 ? "; \(roots.count) mounts stacked at /" : ""),
                     expected: "one: the jail's root (the checker's own has \(hostMountsBefore))",
                     hint: "step \"pivot_root\": pivot_root(2) keeps the old root mounted (stacked on \".\" with pivot_root(\".\", \".\")); unmount it, with MNT_DETACH since it is busy")
        report.check("it sees the jail's files as /", values["marker"] == token,
                     observed: "cat /isolation-check-marker → \(values["marker"] ?? "nothing")", expected: token,
                     hint: "the checker wrote that file at the jail's top: \"/\" must mean the root filesystem")
        let status = running.finish(timeout: 10)
        report.check("the exercise ends with the command's status", status == .exited(0), observed: "exercise-01-stretch \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))

        // Run 2: chapter 01's escape, tried inside the jail before the probe runs.
        report.note("now with chapter 01's escape tried inside the jail (--escape-target \(secret))")
        guard let escaped = startProbe(report, "01-stretch", program, ["--rootfs", rootfs.string, "--escape-target", secret.string, "--", "sh", "-c", probe],
                                       environment: context.environment()) else { return }
        defer { escaped.finish(timeout: 10) }
        let after = escaped.stdout.probeValues
        guard let escapedPID = after["pid"].flatMap(pid_t.init) else {
            report.fail("the probe says its PID", observed: escaped.stdout, expected: "pid=N", hint: "the jail must run the command it is given")
            return
        }
        let rootAfter = identity("/proc/\(escapedPID)/root/")
        let onHost = rootAfter != nil && rootAfter?.dev == hostRoot?.dev && rootAfter?.ino == hostRoot?.ino
        report.check("after the escape, its root is still the jail", rootAfter != nil && rootAfter?.dev == jail?.dev && rootAfter?.ino == jail?.ino,
                     observed: "chroot(\"tmp\"), chdir(\"..\") × 64, chroot(\".\"), then stat /proc/\(escapedPID)/root/ → \(describe(rootAfter))"
                        + (onHost ? ": the host's /" : ""),
                     expected: "the jail's \(describe(jail)), not the host's / (\(describe(hostRoot)))",
                     hint: "step \"pivot_root\": `..` stops at the root of the mount namespace; with the host's root detached from it, there is nothing above the jail to climb to")
        let secretSeen = after["secret"] ?? ""
        report.check("after the escape, it cannot open the host file", !secretSeen.contains("host secret"),
                     observed: "cat \(secret) → \(secretSeen.isEmpty ? "nothing" : secretSeen)", expected: "No such file or directory",
                     hint: "step \"pivot_root\": the host file is reachable only while the host's root is in the jail's mount namespace")
        let escapeStatus = escaped.finish(timeout: 10)
        report.check("the exercise ends with the command's status", escapeStatus == .exited(0), observed: "exercise-01-stretch \(escapeStatus)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(escaped.stderr))
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a root filesystem copy in /tmp", hint: "run `swift run doctor`")
    }
}

/// `check 01 --stretch --hint`: level 1 the API, level 2 the shape of the answer.
let chrootJailStretchHints: [StepHint] = [
    StepHint(step: "propagation",
             api: "mount(2) with only a propagation flag changes a mount's propagation type: Mount.mount(source: \"none\", target: \"/\", flags: …) with MountFlags .private and .recursive (MS_PRIVATE, MS_REC).",
             shape: "One call: try Mount.mount(source: \"none\", target: \"/\", flags: [.recursive, .private]). It must come before any mount you make."),
    StepHint(step: "mount-point",
             api: "A bind mount: Mount.mount(source: rootfs.string, target: rootfs, flags: [.bind, …]) is mount(2) with MS_BIND (and MS_REC for the mounts below it).",
             shape: "One call: the folder bound onto itself, try Mount.mount(source: rootfs.string, target: rootfs, flags: [.bind, .recursive])."),
    StepHint(step: "pivot_root",
             api: "FileSystem.changeDirectory(_:) is chdir(2), Mount.pivotRoot(newRoot:putOld:) is pivot_root(2) (put_old may be \".\" itself), Mount.unmount(_:detach: true) is umount2(2) with MNT_DETACH.",
             shape: "Four calls: chdir(rootfs); pivot_root(\".\", \".\"); umount2(\".\", MNT_DETACH) (the old root is stacked on top of \".\"); chdir(\"/\")."),
]
