// Exercise 01: is the command's root the jail, and its working directory inside it?
import Glibc
import Isolation
import SystemPackage

func checkChrootJail(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("01")
        let rootfs = try context.rootfs(in: folder)
        let token = "isolation-check-\(getpid())-\(monotonicNow())"
        try FileSystem.writeFile(rootfs.appending("isolation-check-marker"), token + "\n")
        let secret = folder.appending("host-secret")
        try FileSystem.writeFile(secret, "host secret\n")
        let probe = "echo \"pid=$$\"; echo \"marker=$(cat /isolation-check-marker 2>&1)\"; echo \"secret=$(cat \(secret) 2>&1)\"; echo ready; read x; echo done"
        guard let running = startProbe(report, "01", program, ["--rootfs", rootfs.string, "--", "sh", "-c", probe], environment: context.environment()) else { return }
        defer { running.finish(timeout: 10) }
        let values = running.stdout.probeValues
        guard let pid = values["pid"].flatMap(pid_t.init) else {
            report.fail("the probe says its PID", observed: running.stdout, expected: "pid=N", hint: "the jail must run the command it is given")
            return
        }
        let root = Proc.link("/proc/\(pid)/root")
        report.check("the command's root directory is the jail", root == rootfs.string,
                     observed: "/proc/\(pid)/root → \(root)", expected: rootfs.string,
                     hint: "step \"chroot\": chroot(2) the init into the root filesystem it was given, before it execs the command")
        let cwd = Proc.link("/proc/\(pid)/cwd")
        report.check("its working directory is inside the jail", cwd == rootfs.string || cwd.hasPrefix(rootfs.string + "/"),
                     observed: "/proc/\(pid)/cwd → \(cwd)", expected: "\(rootfs) (\"/\" in the jail)",
                     hint: "step \"chdir\": chroot(2) does not move the working directory. A \".\" outside the jail is the first step of the classic escape (chapter-01 escape): chdir(\"/\") after chroot")
        report.check("it sees the jail's files as /", values["marker"] == token,
                     observed: "cat /isolation-check-marker → \(values["marker"] ?? "nothing")", expected: token,
                     hint: "the checker wrote that file at the jail's top: \"/\" must mean the root filesystem")
        let secretSeen = values["secret"] ?? ""
        report.check("it cannot open a host file by its host path", !secretSeen.contains("host secret"),
                     observed: "cat \(secret) → \(secretSeen.isEmpty ? "nothing" : secretSeen)", expected: "No such file or directory",
                     hint: "inside the jail, \(secret) resolves below the root filesystem, where it does not exist")
        let status = running.finish(timeout: 10)
        report.check("the exercise ends with the command's status", status == .exited(0), observed: "exercise-01 \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a root filesystem copy in /tmp", hint: "run `swift run doctor`")
    }
}

/// `check 01 --hint`: level 1 the API, level 2 the shape of the answer.
let chrootJailHints: [StepHint] = [
    StepHint(step: "chroot",
             api: "chroot(2). The library has it as FileSystem.changeRoot(_:), which throws; Glibc's chroot(path) returns -1 and sets errno (throw Errno(rawValue: errno) then). It needs CAP_SYS_CHROOT, which root has.",
             shape: "One line: try FileSystem.changeRoot(rootfs). Nothing else changes: the same PIDs, hostname and network, and the same working directory (that is the next step)."),
    StepHint(step: "chdir",
             api: "chdir(2): FileSystem.changeDirectory(_:), or Glibc's chdir(path). After the chroot, every absolute path you give it is resolved inside the jail.",
             shape: "One line, after the chroot: try FileSystem.changeDirectory(\"/\"), the jail's top. Not chdir(rootfs): after the chroot that path is looked up inside the jail, where it does not exist."),
]
