// Exercise 08, stretch: a seccomp filter by hand. A static probe in the container makes
// the same calls through the three ABIs an x86_64 kernel answers (x86_64; x32, the number
// with __X32_SYSCALL_BIT; i386, through int 0x80), each in a child of its own, and prints
// what each got: ok, an errno, or the signal that killed it. Then chapter 08's nested
// escape runs under the same filter. With crun installed, the same probe under crun and
// the same rules as a JSON profile (libseccomp compiles them), side by side.
//
// What the answers tell apart: EPERM or death by SIGSYS is the filter; ok is the kernel
// running the call; ENOSYS through x32 is the kernel too, on one that has x32 off (asked
// of the probe outside any container, not guessed), where the same call would run on one
// that has it on.
import Glibc
import Isolation
import SystemPackage

func checkSeccompStretch(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    #if !arch(x86_64)
    report.skipped("exercise 08 stretch: the i386 and x32 doors are x86_64's (this machine is not)")
    return
    #else
    do {
        let folder = try context.folder("08-stretch")
        let bundle = folder.appending("bundle")
        try FileSystem.makeDirectories(bundle)
        let rootfs = try context.rootfs(in: bundle)
        guard let compiler = ["cc", "gcc", "clang"].lazy.compactMap({ Command.find($0) }).first else {
            report.fail("a C compiler builds the probe", observed: "no cc, gcc or clang on PATH", expected: "a C compiler",
                        hint: "sudo apt-get install -y gcc libc6-dev")
            return
        }
        let probeSource = folder.appending("probe.c")
        try FileSystem.writeFile(probeSource, seccompProbeSource)
        func build(_ source: FilePath, _ binary: String) throws -> Bool {
            let built = try Command.run(compiler, ["-static", "-O1", "-o", rootfs.appending(binary).string, source.string])
            return report.check("\(compiler.lastComponent?.string ?? "cc") -static builds the \(binary)", built.status == .exited(0),
                                observed: "\(source) \(built.status)", expected: "exited 0",
                                hint: "static linking needs libc.a (sudo apt-get install -y libc6-dev):\n" + indent(built.standardError))
        }
        guard try build(probeSource, "probe") else { return }
        // Outside any container (getpid only: harmless): does this kernel run x32 at all?
        let direct = try Command.run(rootfs.appending("probe"), ["getpid"])
        let kernelRunsX32 = direct.standardOutput.contains("x32 getpid ok")
        report.note("this kernel runs x32 calls: \(kernelRunsX32 ? "yes" : "no (x32 built in but off, or left out: its calls get ENOSYS)")")

        func writeConfig(_ args: [String], seccomp: OCIConfig.Seccomp? = nil) throws {
            var config = OCIConfig.defaultSpec(args: args, cgroupNamespace: false)
            config.ociVersion = "1.0.2"   // crun 1.8 (Debian 12) knows no later one
            config.root = OCIConfig.Root(path: "rootfs", readonly: false)
            config.hostname = "isolation-ex08s"
            config.mounts = (config.mounts ?? []).filter { $0.type != "cgroup" }
            config.linux?.seccomp = seccomp
            try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
        }
        defer {
            let left = context.unmountLeftovers(under: folder)
            report.check("nothing it mounted is left on the host", left.isEmpty,
                         observed: left.isEmpty ? "no mount under \(folder) in the host's mount table" : "left mounted (now removed): " + left.joined(separator: ", "),
                         expected: "none", hint: "the container has its own mount namespace; did the exercise crash?")
        }

        // Run 1: the probe under the learner's filter.
        try writeConfig(["/probe"])
        let run = try Running(program, ["--bundle", bundle.string], environment: context.environment())
        let status = run.finish(timeout: 60)
        let answers = ProbeAnswers(run.stdout)
        let todos = run.stderr.todoSteps
        guard report.check("exercise-08-stretch runs the probe under your filter", status == .exited(0) && answers.complete,
                           observed: "exercise-08-stretch --bundle \(bundle) \(status)"
                            + (todos.isEmpty ? ", \(answers.count) of \(ProbeAnswers.expectedCount) answers" : ", at a TODO: " + todos.map { "step \"\($0)\"" }.joined(separator: ", ")),
                           expected: "exited 0, with one answer per call and ABI",
                           hint: (todos.isEmpty ? "a filter that kills or refuses what execve(2) and the C library need stops the probe before it prints; what it said:\n"
                                                : "write that step in Exercises/08-breaking-out/Stretch/Steps.swift:\n") + indent(run.stderr + run.stdout)) else { return }
        // With crun: the same probe, the same rules as a profile libseccomp compiles.
        try writeConfig(["/probe"], seccomp: OCIConfig.Seccomp(defaultAction: .allow, architectures: ["SCMP_ARCH_X86_64"],
                                                               syscalls: [OCIConfig.Syscall(names: ["unshare"], action: .errno)]))
        let crun = crunAnswers(bundle: bundle, folder: folder, environment: context.environment())
        var table = ["the probe's answers, each call in a child of its own:",
                     "  " + "call".padded(16) + "your filter".padded(18) + (crun.answers == nil ? "" : "crun (libseccomp)")]
        for abi in ProbeAnswers.abis {
            for call in ProbeAnswers.calls {
                table.append("  " + "\(abi) \(call)".padded(16) + answers[abi, call].padded(18) + (crun.answers?[abi, call] ?? ""))
            }
        }
        report.note((table + crun.notes).joined(separator: "\n  "))

        report.check("ordinary calls still run (x86_64 write and getpid)", answers["x86_64", "write"] == "ok" && answers["x86_64", "getpid"] == "ok",
                     observed: "x86_64 write: \(answers["x86_64", "write"]), x86_64 getpid: \(answers["x86_64", "getpid"])",
                     expected: "ok, ok",
                     hint: "step \"deny\": everything but unshare must reach SECCOMP_RET_ALLOW; is the number compared with the accumulator loaded from seccomp_data.nr (offset 0)?")
        let native = answers["x86_64", "unshare"]
        report.check("unshare through x86_64 gets EPERM", native == "EPERM",
                     observed: "x86_64 unshare: \(native)\(native == "ok" ? " (it ran)" : "")", expected: "EPERM",
                     hint: "step \"deny\": compare seccomp_data.nr with x86_64's number for unshare, and return SECCOMP_RET_ERRNO | EPERM")
        let i386 = answers["i386", "unshare"]
        report.check("unshare through i386 (int 0x80) is refused by the filter", ProbeAnswers.refused(i386),
                     observed: "i386 unshare: \(i386)" + (ProbeAnswers.refused(i386) ? "" : i386 == "ok"
                        ? " — it ran: through int 0x80 the call arrives with AUDIT_ARCH_I386, and unshare is number 310 there, not 272; a filter that compares only numbers lets it by"
                        : " — it reached the kernel, past the filter"),
                     expected: "killed by SIGSYS, or EPERM (your choice), because seccomp_data.arch is not x86_64's",
                     hint: "step \"arch\": load seccomp_data.arch (offset 4) first, and refuse any value but AUDIT_ARCH_X86_64")
        let x32 = answers["x32", "unshare"]
        let x32Reached: String
        switch x32 {
        case "ENOSYS" where !kernelRunsX32:
            x32Reached = " — the x32 call reached the kernel (ENOSYS only because this kernel has x32 off; with x32 on it would have run)"
        case "ok": x32Reached = " — the x32 call reached the kernel, and ran"
        default: x32Reached = ProbeAnswers.refused(x32) ? "" : " — it reached the kernel, past the filter"
        }
        report.check("unshare through x32 is refused by the filter, not by the kernel", ProbeAnswers.refused(x32),
                     observed: "x32 unshare: \(x32)\(x32Reached)",
                     expected: "EPERM (or killed by SIGSYS) from the filter: x32's number for unshare is 272 | 0x40000000",
                     hint: "step \"x32\": x32 calls carry AUDIT_ARCH_X86_64 too, so the arch test lets them by; refuse any number with __X32_SYSCALL_BIT (0x40000000) set")

        // Run 2: chapter 08's nested escape under the same filter; its verdict goes to
        // the root filesystem's /tmp, which the host reads.
        // The checker's own catalogue (as check 08 runs its own chapter-08), from the
        // sources it was built from; else the checked package's.
        let catalogue = "Chapters/08-breaking-out/escapes.c"
        let escapes = [FilePath(#filePath).removingLastComponent().removingLastComponent().removingLastComponent().appending(catalogue),
                       context.package.appending(catalogue)].first(where: { FileSystem.exists($0) }) ?? context.package.appending(catalogue)
        guard try build(escapes, "escape") else { return }
        let verdictFile = rootfs.appending("tmp/isolation-verdict")
        try writeConfig(["/escape", "/tmp/isolation-verdict", "nested"])
        let escape = try Running(program, ["--bundle", bundle.string], environment: context.environment())
        let escapeStatus = escape.finish(timeout: 60)
        let verdict = ((try? FileSystem.readString(verdictFile)) ?? "").trimmed
        report.check("chapter 08's nested escape is stopped by your filter", verdict.hasPrefix("blocked EPERM unshare"),
                     observed: verdict.isEmpty ? "no verdict in \(verdictFile) (exercise-08-stretch \(escapeStatus)): \(escape.stderr.trimmed.prefix(200))" : "nested: \(verdict)",
                     expected: "blocked EPERM unshare(NEWUSER|NEWNS)",
                     hint: "step \"deny\": the escape calls unshare(CLONE_NEWUSER | CLONE_NEWNS) through x86_64; with no capability needed, only the filter stops it")

    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a bundle in /tmp", hint: "run `swift run doctor`")
    }
    #endif
}

/// The probe under crun, with the bundle's config as written (its profile in
/// linux.seccomp), and what to say about it; nil answers where crun is missing or failed.
private func crunAnswers(bundle: FilePath, folder: FilePath, environment: [String]) -> (answers: ProbeAnswers?, notes: [String]) {
    guard let crun = ["/usr/bin/crun", "/usr/sbin/crun"].map({ FilePath($0) }).first(where: { FileSystem.exists($0) }) else {
        return (nil, ["(crun is not installed: no comparison with libseccomp)"])
    }
    let id = "isolation-check-08s-\(getpid())", state = folder.appending("crun-state")
    defer { _ = try? Command.run(crun, ["--root", state.string, "delete", "--force", id]) }
    // crun 1.8 refuses a hybrid cgroup host (v1 controllers and a cgroup2 at
    // /sys/fs/cgroup/unified): there it runs in a mount namespace without that mount.
    var command = "exec \(crun) --root \(state) run --bundle \(bundle) \(id)"
    if ((try? MountInfo.table()) ?? []).contains(where: { $0.mountPoint == "/sys/fs/cgroup/unified" }) {
        command = "umount /sys/fs/cgroup/unified && " + command
    }
    guard let running = try? Running("/usr/bin/unshare", ["-m", "/bin/sh", "-c", command], environment: environment) else {
        return (nil, ["(crun could not be started: no comparison)"])
    }
    let status = running.finish(timeout: 60)
    let answers = ProbeAnswers(running.stdout)
    guard answers.complete else {
        return (nil, ["(crun \(status), no comparison: \(running.stderr.trimmed.prefix(120)))"])
    }
    return (answers, ["crun's profile: defaultAction SCMP_ACT_ALLOW, architectures",
                      "[SCMP_ARCH_X86_64], unshare → SCMP_ACT_ERRNO; libseccomp kills a call",
                      "from an ABI the profile does not list (SIGSYS): x32 and i386 here"])
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}

/// The probe's lines, "ABI CALL ANSWER", by ABI and call.
struct ProbeAnswers {
    static let abis = ["x86_64", "x32", "i386"]
    static let calls = ["write", "getpid", "unshare"]
    static var expectedCount: Int { abis.count * calls.count }
    private var answers: [String: String] = [:]

    init(_ output: String) {
        for line in output.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 2).map(String.init)
            if words.count == 3, Self.abis.contains(words[0]), Self.calls.contains(words[1]) { answers["\(words[0]) \(words[1])"] = words[2] }
        }
    }

    subscript(abi: String, call: String) -> String { answers["\(abi) \(call)"] ?? "?" }
    var count: Int { answers.count }
    var complete: Bool { count == Self.expectedCount }
    /// The filter's own answers: EPERM, or death by SIGSYS (SECCOMP_RET_KILL_*).
    static func refused(_ answer: String) -> Bool { answer == "EPERM" || answer == "killed by SIGSYS" }
}

/// One line per call and ABI: "<abi> <call> <ok|errno name|killed by SIGNAL>", each call in
/// a child of its own, so that a call the filter kills is a line, not the end of the run.
/// With an argument, only that call (outside a container: `probe getpid`).
private let seccompProbeSource = #"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define X32_BIT 0x40000000L

/* Numbers per ABI: arch/x86/entry/syscalls/syscall_64.tbl and syscall_32.tbl. */
struct call { const char *name; long n64, n32; long a[3]; };
static const struct call calls[] = {
    {"write", 1, 4, {1, (long)"", 0}},
    {"getpid", 39, 20, {0}},
    {"unshare", 272, 310, {0}},
};

static long via_int80(long n, const long *a) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a[0]), "c"(a[1]), "d"(a[2]) : "memory");
    return (int)r;
}

int main(int argc, char **argv) {
    const char *abis[] = {"x86_64", "x32", "i386"};
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int abi = 0; abi < 3; abi++) {
        for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
            const struct call *c = &calls[i];
            if (argc > 1 && strcmp(argv[1], c->name) != 0) continue;
            pid_t pid = fork();
            if (pid == 0) {
                long r;
                if (abi == 0) r = syscall(c->n64, c->a[0], c->a[1], c->a[2]) < 0 ? -errno : 0;
                else if (abi == 1) r = syscall(c->n64 | X32_BIT, c->a[0], c->a[1], c->a[2]) < 0 ? -errno : 0;
                else r = via_int80(c->n32, c->a);
                _exit(r < 0 && r > -4096 ? (int)-r : 0);
            }
            int status = 0;
            if (pid < 0 || waitpid(pid, &status, 0) < 0) { printf("%s %s fork/wait: %s\n", abis[abi], c->name, strerror(errno)); continue; }
            if (WIFSIGNALED(status)) printf("%s %s killed by SIG%s\n", abis[abi], c->name, sigabbrev_np(WTERMSIG(status)));
            else if (WEXITSTATUS(status) == 0) printf("%s %s ok\n", abis[abi], c->name);
            else printf("%s %s %s\n", abis[abi], c->name, strerrorname_np(WEXITSTATUS(status)));
        }
    }
    return 0;
}
"""#

/// `check 08 --stretch --hint`: level 1 the API, level 2 the shape of the answer.
let seccompStretchHints: [StepHint] = [
    StepHint(step: "arch",
             api: "SeccompFilter.Instruction.statement(code, k) and .jump(code, k, jt, jf) are BPF_STMT and BPF_JUMP; SeccompFilter.loadWord with SeccompFilter.offsetArch loads seccomp_data.arch; SeccompFilter.jumpEqual compares it with SeccompFilter.Architecture.x86_64.auditArch; SeccompFilter.returnConstant with returnKillProcess or returnErrno(.notPermitted) answers.",
             shape: "Three instructions: load arch; if equal to x86_64's, skip one (jt 1, jf 0); return kill (or EPERM). Anything after it sees only x86_64 and x32 calls."),
    StepHint(step: "x32",
             api: "SeccompFilter.loadWord with SeccompFilter.offsetNumber loads seccomp_data.nr; SeccompFilter.jumpGreaterEqual (or jumpSet) against SeccompFilter.x32Bit (0x40000000, __X32_SYSCALL_BIT); returnErrno(.notPermitted).",
             shape: "Three instructions: load nr; if nr >= 0x40000000 go on to the next (jt 0), else skip it (jf 1); return EPERM. x86_64 numbers are all below the bit."),
    StepHint(step: "deny",
             api: "SeccompFilter.Architecture.x86_64.number(\"unshare\") is unshare's number (272); jumpEqual; returnErrno(.notPermitted) and returnAllow (SECCOMP_RET_ALLOW).",
             shape: "Four instructions: load nr again (this step must not rely on the accumulator an earlier step left); if nr == unshare's number, fall to the next (jt 0, jf 1); return EPERM; return ALLOW."),
]
