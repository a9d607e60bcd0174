// Chapter 04: the seccomp compiler against libseccomp. One static prober makes the same
// system calls through each ABI an x86_64 kernel answers (x86_64, x32, i386 via int 0x80)
// inside isorun and inside crun (which compiles profiles with libseccomp), with the same
// bundle and the same profile; the two outputs must be identical, line for line.
import Foundation
import Isolation
import Testing

/// The prober: one line per call, "ABI NAME ok|ERRNO|killed by SIGNAL"; each call runs in
/// its own child, so a call the filter kills shows as a line, not as the end of the run.
private let proberSource = #"""
// Makes each system call through the three ABIs an x86_64 kernel answers, each in its own
// child, and prints one line per call: "<abi> <name> <ok|errno name|killed by signal>".
// With an argument, only the call of that name (`probe getpid`: harmless outside a
// container, where the others would reach the host: kexec_load, acct, ...).
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define X32_BIT 0x40000000L

// Numbers per ABI, from the kernel's tables (arch/x86/entry/syscalls/syscall_{64,32}.tbl;
// the x32 ones are the 64-bit numbers with bit 30 set, 512+ for calls whose x32 form differs).
struct call { const char *name; long n64, nx32, n32; long a[5]; };
static unsigned int socket_unix[3] = {1, 1, 0}, socket_inet[3] = {2, 1, 0};
static const struct call calls[] = {
    {"getpid", 39, 39, 20, {0}},
    {"mkdir", 83, 83, 39, {(long)"/nonexistent/d", 0755}},
    {"chmod", 90, 90, 15, {(long)"/nonexistent", 0644}},
    {"unshare", 272, 272, 310, {0}},
    {"mount", 165, 165, 21, {(long)"none", (long)"/nonexistent", (long)"tmpfs", 0, 0}},
    {"umount2", 166, 166, 52, {(long)"/nonexistent", 0}},
    {"chroot", 161, 161, 61, {(long)"/nonexistent"}},
    {"pivot_root", 155, 155, 217, {(long)"/nonexistent", (long)"/nonexistent"}},
    {"setns", 308, 308, 346, {-1, 0}},
    {"uname", 63, 63, 122, {0}},
    {"socket", 41, 41, 359, {1, 1, 0}},
    {"personality", 135, 135, 136, {0xffffffffL}},
    {"keyctl", 250, 250, 288, {0, -100, 0}},
    {"add_key", 248, 248, 286, {0, 0, 0, 0, 0}},
    {"bpf", 321, 321, 357, {-1, 0, 0}},
    {"io_uring_setup", 425, 425, 425, {0, 0}},
    {"ptrace", 101, 521, 26, {2, 1, 0, 0}},
    {"ioctl", 16, 514, 54, {-1, 0x5412, 0}},
    {"syslog", 103, 103, 103, {10, 0, 0}},
    {"acct", 163, 163, 51, {0}},
    {"reboot", 169, 169, 88, {0, 0, 0, 0}},
    {"kexec_load", 246, 528, 283, {0, 0, 0, 0}},
    {"init_module", 175, 175, 128, {0, 0, (long)""}},
    {"clock_settime", 227, 227, 264, {0, 0}},
    {"open_by_handle_at", 304, 304, 342, {-1, 0, 0}},
    {"getcwd", 79, 79, 183, {0, 0}},
    // i386 only: the multiplexers socketcall(2) and ipc(2), whose first argument is the call
    // (linux/net.h SYS_SOCKET, linux/ipc.h SEMGET); the others' arguments are in memory.
    {"socketcall-socket-unix", -1, -1, 102, {1, (long)socket_unix}},
    {"socketcall-socket-inet", -1, -1, 102, {1, (long)socket_inet}},
    {"ipc-semget", -1, -1, 117, {2, 0, -1, 0}},
    {"semget", 64, 64, 393, {0, -1, 0}},
};

static long via_int80(long n, const long *a) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4]) : "memory");
    return (int)r;
}

int main(int argc, char **argv) {
    const char *abis[] = {"x86_64", "x32", "i386"};
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int abi = 0; abi < 3; abi++) {
        for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
            const struct call *c = &calls[i];
            if ((abi == 0 ? c->n64 : abi == 1 ? c->nx32 : c->n32) < 0) continue;
            if (argc > 1 && strcmp(argv[1], c->name) != 0) continue;
            pid_t pid = fork();
            if (pid == 0) {
                long r;
                if (abi == 0) r = syscall(c->n64, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4]) < 0 ? -errno : 0;
                else if (abi == 1) r = syscall(c->nx32 | X32_BIT, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4]) < 0 ? -errno : 0;
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

private let crun = ["/usr/bin/crun", "/usr/sbin/crun"].first { FileManager.default.isExecutableFile(atPath: $0) }
private let compiler = ["/usr/bin/cc", "/usr/bin/gcc"].first { FileManager.default.isExecutableFile(atPath: $0) }
#if arch(x86_64)
private let onX86_64 = true
#else
private let onX86_64 = false
#endif

/// A bundle whose root holds the prober, run by both runtimes.
private struct SeccompLab {
    let folder: TemporaryFolder
    var rootfs: String { folder.path + "/rootfs" }
    var bundle: String { folder.path + "/bundle" }
    var ids: [String] = []

    init() throws {
        folder = try TemporaryFolder("seccomp")
        try FileManager.default.createDirectory(atPath: rootfs + "/tmp", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        let source = folder.path + "/probe.c"
        try proberSource.write(toFile: source, atomically: false, encoding: .utf8)
        let built = try run(compiler!, ["-static", "-O1", "-o", rootfs + "/probe", source])
        try #require(built.status == 0, "cc -static probe.c: \(built)")
    }

    func write(_ profile: OCIConfig.Seccomp) throws {
        var config = OCIConfig.defaultSpec(args: ["/probe"], cgroupNamespace: CgroupMode.detect() == .unified)
        config.ociVersion = "1.0.2"   // crun 1.8 (Debian 12) knows no later one
        config.root = OCIConfig.Root(path: rootfs, readonly: true)
        config.linux?.seccomp = profile
        try Data(config.encodedJSON()).write(to: URL(fileURLWithPath: bundle + "/config.json"))
    }

    /// The prober's output under isorun and under crun.
    mutating func outputs(_ profile: OCIConfig.Seccomp, _ name: String) throws -> (isorun: String, crun: String) {
        try write(profile)
        let id = "isolation-seccomp-\(getpid())-\(name)"
        ids.append(id)
        let ours = try run(product("isorun"), ["--root", folder.path + "/isorun-state", "run", "--bundle", bundle, id])
        #expect(ours.status == 0, "isorun: \(ours)")
        // crun 1.8 refuses a hybrid cgroup host (v1 controllers plus a cgroup2 at
        // /sys/fs/cgroup/unified): there it runs in a mount namespace without that mount.
        var command = "exec \(crun!) --root \(folder.path)/crun-state run --bundle \(bundle) \(id)"
        if mounts(under: "/sys/fs/cgroup/unified").contains("/sys/fs/cgroup/unified") {
            command = "umount /sys/fs/cgroup/unified && " + command
        }
        let theirs = try run("/usr/bin/unshare", ["-m", "/bin/sh", "-c", command])
        #expect(theirs.status == 0, "crun: \(theirs)")
        return (ours.stdout, theirs.stdout)
    }

    /// Whether this kernel runs x32 system calls at all: the prober's own answer outside
    /// any container, getpid only ("x32 getpid ok"), not a guess from its version. Debian's kernels have
    /// the x32 ABI built in but off unless booted with `syscall.x32=y` (the VM lane is);
    /// where it is off, every x32 row the filter lets through says ENOSYS.
    func kernelRunsX32() throws -> Bool {
        let direct = try run(rootfs + "/probe", ["getpid"])
        try #require(direct.status == 0, "the prober outside any container: \(direct)")
        let lines = Set(direct.stdout.split(separator: "\n").map(String.init))
        try #require(lines.contains("x32 getpid ok") || lines.contains("x32 getpid ENOSYS"), "\(direct.stdout)")
        return lines.contains("x32 getpid ok")
    }

    func removeAll() {
        for id in ids {
            _ = try? run(product("isorun"), ["--root", folder.path + "/isorun-state", "delete", "--force", id])
            _ = try? run(crun!, ["--root", folder.path + "/crun-state", "delete", "--force", id])
        }
        folder.remove()
    }
}

/// The lines where two outputs differ, for the failure message.
private func difference(_ ours: String, _ theirs: String) -> String {
    let a = ours.split(separator: "\n"), b = theirs.split(separator: "\n")
    var lines: [String] = []
    for index in 0..<max(a.count, b.count) {
        let x = index < a.count ? String(a[index]) : "-", y = index < b.count ? String(b[index]) : "-"
        if x != y { lines.append("isorun: \(x)  |  crun: \(y)") }
    }
    return lines.joined(separator: "\n")
}

@Suite("Chapter 04: seccomp through every ABI, isorun against crun (libseccomp)", .serialized,
       .enabled(if: isRoot && onX86_64 && crun != nil && compiler != nil,
                "needs root, x86_64, crun and a C compiler (cc -static) for the prober"))
struct Chapter04SeccompDifferentialTests {
    static let denied = OCIConfig.Syscall(names: ["mkdir", "chmod", "unshare"], action: .errno)
    static let allABIs = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]

    /// Each profile, by name: a deny list over the three ABIs, the same with only the
    /// native one listed, and an allow list (deny by default) with argument rules.
    static let profiles: [String: OCIConfig.Seccomp] = [
        "deny-list": .init(defaultAction: .allow, architectures: allABIs, syscalls: [denied, .init(
            names: ["socket", "semget"], action: .errno, errnoRet: 13, args: [.init(index: 0, value: 10, op: .equal)])]),
        "native-only": .init(defaultAction: .allow, syscalls: [denied]),
        "x86-without-x32": .init(defaultAction: .allow, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], syscalls: [denied]),
        "allow-list": .init(defaultAction: .errno, defaultErrnoRet: 38, architectures: allABIs, syscalls: [
            .init(names: allowed, action: .allow),
            .init(names: ["personality"], action: .allow, args: [.init(index: 0, value: 0xffff_ffff, op: .equal)]),
            .init(names: ["socket"], action: .allow, args: [.init(index: 0, value: 1, op: .equal)]),
            .init(names: ["keyctl"], action: .errno, errnoRet: 13, args: [.init(index: 1, value: 0xffff_ffff_ffff_ff9c, op: .equal)]),
            .init(names: ["add_key"], action: .errno, errnoRet: 14, args: [.init(index: 3, value: 0, op: .lessOrEqual)]),
            // libseccomp: a rule without argument tests wins over one with, whatever the order.
            .init(names: ["ptrace"], action: .errno, errnoRet: 13, args: [.init(index: 0, value: 0, op: .greaterThan)]),
            .init(names: ["ptrace"], action: .allow),
        ]),
        // Chapter 08's ladder: the project's own default (a deny list, clone's namespace flags).
        "isolation-default": .containerDefault,
    ]
    /// What a static C program and both runtimes' last steps before execve need.
    static let allowed = [
        "execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64", "readlink",
        "mprotect", "mmap", "munmap", "getrandom", "fork", "clone", "clone3", "wait4", "write", "writev", "exit",
        "exit_group", "fstat", "newfstatat", "getpid", "uname", "getcwd", "close", "close_range", "fcntl",
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "futex", "capget", "capset", "prctl", "ioctl",
        "getuid", "geteuid", "getgid", "getegid", "setresuid", "setresgid", "setgroups", "statx",
    ]

    @Test(arguments: ["deny-list", "native-only", "x86-without-x32", "allow-list", "isolation-default"])
    func sameAnswersAsCrun(profile name: String) throws {
        var lab = try SeccompLab()
        defer { lab.removeAll() }
        let x32 = try lab.kernelRunsX32()
        let cmdline = (try? String(contentsOfFile: "/proc/cmdline", encoding: .utf8)) ?? ""
        #expect(x32 || !cmdline.contains("syscall.x32=y"), "booted with syscall.x32=y, and still no x32: \(cmdline)")
        let (ours, theirs) = try lab.outputs(Self.profiles[name]!, name)
        let lines = Set(theirs.split(separator: "\n").map(String.init))
        #expect(lines.count == 84, "crun's prober output: \(theirs)")
        // What the filter lets through reaches the kernel: through x32 too, where it has x32.
        if name == "deny-list" || name == "isolation-default" {
            #expect(lines.contains("x32 getpid \(x32 ? "ok" : "ENOSYS")"), "x32 \(x32 ? "on" : "off"): \(theirs)")
        }
        if name != "isolation-default" { #expect(lines.contains("x86_64 mkdir \(name == "allow-list" ? "ENOSYS" : "EPERM")"), "\(theirs)") }
        if name == "deny-list" {
            #expect(lines.isSuperset(of: ["x32 mkdir EPERM", "i386 mkdir EPERM", "i386 mount ENOENT", "x86_64 socket ok", "i386 semget EINVAL",
                                          "i386 socketcall-socket-unix EACCES", "i386 ipc-semget EACCES"]), "\(theirs)")
        }
        if name == "allow-list" { #expect(lines.isSuperset(of: ["x86_64 ptrace ESRCH", "i386 keyctl EACCES", "x86_64 semget ENOSYS"]), "\(theirs)") }
        if name == "isolation-default" {
            #expect(lines.isSuperset(of: ["x86_64 unshare EPERM", "x32 unshare EPERM", "i386 unshare EPERM", "i386 mount EPERM",
                                          "x86_64 getpid ok", "i386 getpid ok"]), "\(theirs)")
        }
        if name == "native-only" { #expect(lines.isSuperset(of: ["x32 getpid killed by SIGSYS", "i386 getpid killed by SIGSYS"]), "\(theirs)") }
        #expect(ours == theirs, "\(name): isorun and crun differ:\n\(difference(ours, theirs))")
    }

    /// The profile podman and Docker use (containers-common's seccomp.json, Docker's format),
    /// turned into config.json's form as podman does for this machine and the bundle's
    /// capabilities: an entry counts when its `includes` hold (arches has amd64, every
    /// capability held) and its `excludes` do not.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: containersCommonProfile), "needs \(containersCommonProfile) (apt install podman)"))
    func containersCommonProfileSameAnswersAsCrun() throws {
        var lab = try SeccompLab()
        defer { lab.removeAll() }
        let profile = try Self.ociProfile(dockerProfile: containersCommonProfile,
                                          capabilities: OCIConfig.defaultSpec().process?.capabilities?.bounding ?? [])
        let (ours, theirs) = try lab.outputs(profile, "containers-common")
        let lines = Set(theirs.split(separator: "\n").map(String.init))
        #expect(lines.count == 84, "crun's prober output: \(theirs)")
        #expect(lines.isSuperset(of: ["x86_64 unshare ok", "x86_64 chroot EPERM", "i386 chroot EPERM", "i386 getpid ok"]), "\(theirs)")
        #expect(ours == theirs, "containers-common: isorun and crun differ:\n\(difference(ours, theirs))")
    }

    struct DockerProfile: Decodable {
        struct Filter: Decodable { var arches: [String]?; var caps: [String]? }
        struct Entry: Decodable {
            var names: [String]
            var action: OCIConfig.SeccompAction
            var errnoRet: UInt32?
            var args: [OCIConfig.SyscallArgument]?
            var includes: Filter?
            var excludes: Filter?
        }
        struct ArchMap: Decodable { var architecture: String; var subArchitectures: [String]? }
        var defaultAction: OCIConfig.SeccompAction
        var defaultErrnoRet: UInt32?
        var archMap: [ArchMap]?
        var syscalls: [Entry]
    }

    static func ociProfile(dockerProfile path: String, capabilities: [String]) throws -> OCIConfig.Seccomp {
        let docker = try JSONDecoder().decode(DockerProfile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        let held = Set(capabilities)
        let rules = docker.syscalls.filter { entry in
            if let arches = entry.includes?.arches, !arches.isEmpty, !arches.contains("amd64") { return false }
            if let caps = entry.includes?.caps, !caps.allSatisfy(held.contains) { return false }
            if let arches = entry.excludes?.arches, arches.contains("amd64") { return false }
            if let caps = entry.excludes?.caps, caps.contains(where: held.contains) { return false }
            return true
        }.map { OCIConfig.Syscall(names: $0.names, action: $0.action, errnoRet: $0.errnoRet, args: $0.args?.isEmpty == true ? nil : $0.args) }
        let native = docker.archMap?.first { $0.architecture == "SCMP_ARCH_X86_64" }
        return .init(defaultAction: docker.defaultAction, defaultErrnoRet: docker.defaultErrnoRet,
                     architectures: native.map { [$0.architecture] + ($0.subArchitectures ?? []) }, syscalls: rules)
    }
}

private let containersCommonProfile = "/usr/share/containers/seccomp.json"
