// gVisor, the talk's answer to "a container shares the host's kernel": its runtime,
// runsc, has runc's command line, so an engine registers it like any other runtime. What
// changes is who answers the container's system calls: a kernel written in Go and run in
// user space (the Sentry), which the real kernel sees as a few sandboxed processes.
//
// Read next: gVisor's architecture guide (gvisor.dev/docs/architecture_guide), runsc's
// --platform (ptrace here: it needs no KVM; KVM is faster where /dev/kvm works).
import Glibc
import Isolation
import SystemPackage

extension Lesson {
    /// runsc, when installed: podman gets it as a second runtime.
    static var runsc: FilePath? { Engines.find("runsc") }

    /// The flags runsc needs here, given on podman's command line (`--runtime-flag`, which
    /// podman passes to every runtime call): the ptrace platform (no KVM needed), and no
    /// network stack of its own (podman gives the container none).
    static let runscFlags = ["--runtime-flag", "platform=ptrace", "--runtime-flag", "network=none"]

    /// The same image, the same podman, two runtimes: what each kernel says about itself.
    func gvisor(_ engine: Engines.Podman) throws {
        guard Lesson.runsc != nil else {
            sayWrapped("(gVisor's runsc registers the same way: apt-get install runsc to see it run here.)", hanging: " ", style: { style.dim($0) })
            say()
            return
        }
        heading("Another runtime beside isorun · gVisor's runsc", "(containers.conf: runsc = [\"\(Lesson.runsc!)\"])")
        sayNote("The same image and the same podman; only --runtime changes. Ask each kernel who it is:")
        let probe = "uname -sr; dmesg 2>&1 | head -n 2"
        let ours = try podman(engine, ["run", "--rm", "--cgroup-parent", engine.cgroupParent, Engines.imageName, "sh", "-c", probe])
        let theirs = try podman(engine, Lesson.runscFlags + ["run", "--rm", "--runtime", "runsc", "--cgroup-parent", engine.cgroupParent,
                                                              Engines.imageName, "sh", "-c", probe])
        let host = Preflight.kernelRelease()
        let ourRelease = ours.standardOutput.split(separator: "\n").first.map(String.init) ?? "?"
        let theirRelease = theirs.standardOutput.split(separator: "\n").first.map(String.init) ?? "?"
        say("  " + style.bold("→ ") + "isorun: \(ourRelease)\(ourRelease.hasSuffix(host) ? "" : " (the host: \(host))"), the host's own kernel;")
        say("    its dmesg is refused (CAP_SYSLOG is not in the container's set).")
        sayWrapped("runsc: \(theirRelease), gVisor's Sentry, a kernel in user space that boots with the container and "
                   + "answers its system calls; the host's kernel sees only the Sentry and its file proxy (the gofer), "
                   + "under a tight seccomp filter of their own.", indent: "    ", hanging: "    ")
        sayNote("The price: each start boots that kernel (Benchmarks/run.sh measures it), and every system call goes "
                + "through it (with --platform=ptrace, two context switches).")
        say()
    }
}
