// config-linux.md "Devices", "Default Devices", "Sysctl", "Seccomp": device nodes as
// stat(1) shows them inside, kernel parameters in the container's namespaces, and
// system calls the filter refuses, seen inside and in /proc/PID/status.
import CIsolation
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("Conformance: config-linux.md devices, sysctl, seccomp", .serialized,
       .enabled(if: canProbe, "needs root and a static busybox"))
struct ConformanceDevicesAndSecurity {
    @Test("config-linux.md#default-devices: null, zero, full, random, urandom, tty with their numbers and 0666; the /dev links; devpts and ptmx")
    func defaultDevices() throws {
        let bundle = try TestBundle(conformance: "defdev", args: ["/probe"])
        defer { bundle.removeAll() }
        try bundle.probeExtra("""
        for d in null zero full random urandom tty; do echo "dev.$d=$(stat -c '%F %t:%T %a' /dev/$d)"; done
        for l in fd stdin stdout stderr ptmx; do echo "link.$l=$(readlink /dev/$l)"; done
        echo "pts=$(stat -c %F /dev/pts/ptmx)"
        """)
        let (result, seen) = try bundle.probe("conf-defdev")
        #expect(result.status == 0 && seen.complete, "\(result)")
        // stat's %t:%T are hexadecimal.
        let expected = ["null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9", "tty": "5:0"]
        for (name, numbers) in expected {
            #expect(seen["dev.\(name)"] == "character special file \(numbers) 666", "\(name): \(String(describing: seen["dev.\(name)"]))")
        }
        #expect(seen["link.fd"] == "/proc/self/fd" && seen["link.stdin"] == "/proc/self/fd/0"
                && seen["link.stdout"] == "/proc/self/fd/1" && seen["link.stderr"] == "/proc/self/fd/2", "\(seen)")
        #expect(seen["link.ptmx"] == "pts/ptmx", "\(seen)")
        #expect(seen["pts"] == "character special file")
        #expect(seen.mount(at: "/dev/pts")?.fileSystemType == "devpts")
    }

    @Test("config-linux.md#devices: each device with its type, major and minor, fileMode, uid and gid")
    func devices() throws {
        let bundle = try TestBundle(conformance: "devices", args: ["/probe"]) { config in
            config.linux?.devices = [
                OCIConfig.Device(type: .character, path: "/dev/conformance-char", major: 1, minor: 5, fileMode: 0o624, uid: 1234, gid: 2345),
                OCIConfig.Device(type: .block, path: "/dev/sub/conformance-block", major: 7, minor: 200, fileMode: 0o600, uid: 0, gid: 6),
                OCIConfig.Device(type: .fifo, path: "/dev/conformance-fifo", fileMode: 0o640),
                // One of the defaults, given again with another mode: the config's wins.
                OCIConfig.Device(type: .character, path: "/dev/full", major: 1, minor: 7, fileMode: 0o600),
            ]
        }
        defer { bundle.removeAll() }
        try bundle.probeExtra("""
        for d in /dev/conformance-char /dev/sub/conformance-block /dev/conformance-fifo /dev/full; do
          echo "dev.$d=$(stat -c '%F %t:%T %a %u:%g' $d)"
        done
        head -c 3 /dev/conformance-char | od -An -tx1 | tr -d ' ' | sed 's/^/read=/'
        """)
        let (result, seen) = try bundle.probe("conf-devices")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen["dev./dev/conformance-char"] == "character special file 1:5 624 1234:2345", "\(seen)")
        #expect(seen["dev./dev/sub/conformance-block"] == "block special file 7:c8 600 0:6", "\(seen)")
        #expect(seen["dev./dev/conformance-fifo"]?.hasPrefix("fifo 0:0 640") == true, "\(seen)")
        #expect(seen["dev./dev/full"] == "character special file 1:7 600 0:0", "\(seen)")
        #expect(seen["read"] == "000000", "the node is the device 1:5 (/dev/zero): \(seen)")
    }

    @Test("config-linux.md#devices: a file already at a device's path that is not that device is an error; the same device is fine")
    func existingFileAtDevicePath() throws {
        let bundle = try TestBundle(conformance: "devexist", args: ["/probe"]) { config in
            // No tmpfs on /dev: the root filesystem's own /dev is used.
            config.mounts = config.mounts?.filter { !$0.destination.hasPrefix("/dev") }
            config.linux?.devices = [OCIConfig.Device(type: .character, path: "/dev/conformance-zero", major: 1, minor: 5, fileMode: 0o640)]
        }
        defer { bundle.removeAll() }
        try "not a device\n".write(toFile: bundle.rootfs + "/dev/conformance-zero", atomically: false, encoding: .utf8)
        let refused = try bundle.runtime(["run", "--bundle", bundle.path, "conf-devexist"])
        #expect(refused.status != 0 && refused.stderr.contains("/dev/conformance-zero"), "\(refused)")
        #expect(try String(contentsOfFile: bundle.rootfs + "/dev/conformance-zero", encoding: .utf8) == "not a device\n")
        // The very device already there: made again with the config's mode.
        try FileManager.default.removeItem(atPath: bundle.rootfs + "/dev/conformance-zero")
        #expect(mknod(bundle.rootfs + "/dev/conformance-zero", S_IFCHR | 0o600, dev_t(iso_makedev(1, 5))) == 0)
        try bundle.probeExtra("echo \"dev=$(stat -c '%t:%T %a' /dev/conformance-zero)\"\n")
        let (result, seen) = try bundle.probe("conf-devexist2")
        #expect(result.status == 0 && seen["dev"] == "1:5 640", "\(result)")
    }

    @Test("config-linux.md#default-devices: with process.terminal, /dev/console is the container's terminal",
          .enabled(if: python3 != nil, "needs python3 for the console socket server"))
    func console() throws {
        let bundle = try TestBundle(conformance: "console", args: ["sh", "-c",
            "{ stat -c '%F %t:%T' /dev/console; readlink /proc/$$/fd/0; stat -L -c '%t:%T' /proc/$$/fd/0; } > /tmp/console.partial; mv /tmp/console.partial /tmp/console"]) { config in
            config.process?.terminal = true
        }
        defer { bundle.removeAll() }
        let socketPath = bundle.folder.path + "/console.sock"
        try consoleServer.write(toFile: bundle.folder.path + "/server.py", atomically: true, encoding: .utf8)
        let server = try TestProcess(python3!, [bundle.folder.path + "/server.py", socketPath])
        defer { server.stop() }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socketPath) { usleep(10_000) }
        let result = try bundle.runtime(["run", "--console-socket", socketPath, "--bundle", bundle.path, "conf-console"])
        #expect(result.status == 0, "\(result)")
        let lines = ((try? String(contentsOfFile: bundle.rootfs + "/tmp/console", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        // A Unix98 pty slave has major 136 (0x88); /dev/console is the same node as stdin.
        #expect(lines.count == 3 && lines[1] == "/dev/pts/0" && lines[2].hasPrefix("88:"), "\(lines)")
        #expect(lines.count == 3 && lines[0] == "character special file " + lines[2], "\(lines)")
    }

    @Test("config-linux.md#sysctl: values set in the container's network and IPC namespaces; the host's unchanged")
    func sysctl() throws {
        let hostForward = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8)
        let hostMsgmax = try String(contentsOfFile: "/proc/sys/kernel/msgmax", encoding: .utf8)
        let bundle = try TestBundle(conformance: "sysctl", args: ["/probe"]) { config in
            config.linux?.sysctl = ["net.ipv4.ip_forward": hostForward.hasPrefix("1") ? "0" : "1", "kernel.msgmax": "12345",
                                    "net.ipv4.ping_group_range": "1000 2000"]
        }
        defer { bundle.removeAll() }
        try bundle.probeExtra("""
        echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
        echo "msgmax=$(cat /proc/sys/kernel/msgmax)"
        echo "ping=$(cat /proc/sys/net/ipv4/ping_group_range | tr '\\t' ' ')"
        """)
        let (result, seen) = try bundle.probe("conf-sysctl")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen["ip_forward"] == (hostForward.hasPrefix("1") ? "0" : "1"), "\(seen)")
        #expect(seen["msgmax"] == "12345" && seen["ping"] == "1000 2000", "\(seen)")
        #expect(try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8) == hostForward)
        #expect(try String(contentsOfFile: "/proc/sys/kernel/msgmax", encoding: .utf8) == hostMsgmax)
    }

    @Test("config-linux.md#seccomp: defaultAction with defaultErrnoRet for unlisted calls; a rule without errnoRet returns EPERM")
    func seccompErrnoDefaults() throws {
        // What busybox sh, touch, mkdir, chmod and mv call (strace), and a few more; not chmod.
        let allowed = ["arch_prctl", "brk", "clock_nanosleep", "clone", "clone3", "vfork", "close", "dup", "dup2", "dup3", "execve", "exit", "exit_group",
                       "fcntl", "getpid", "getppid", "getrandom", "getuid", "geteuid", "getgid", "getegid", "gettid", "mprotect", "mmap", "munmap",
                       "newfstatat", "fstat", "stat", "lstat", "statx", "open", "openat", "prctl", "prlimit64", "read", "readv", "write", "writev",
                       "readlink", "readlinkat", "rename", "renameat", "renameat2", "rseq", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
                       "sendfile", "set_robust_list", "set_tid_address", "uname", "utimensat", "wait4", "lseek", "getcwd", "chdir", "ioctl",
                       "pipe", "pipe2", "getdents64", "futex", "madvise", "access", "faccessat", "faccessat2", "setpgid", "getpgrp", "sigaltstack"]
        let script = "touch /tmp/f; chmod 600 /tmp/f 2> /tmp/chmod.err; mkdir /tmp/d 2> /tmp/mkdir.err; mv /tmp/mkdir.err /tmp/done.err"
        let bundle = try TestBundle(conformance: "seccomp-errno", args: ["sh", "-c", script]) { config in
            config.linux?.seccomp = OCIConfig.Seccomp(
                defaultAction: .errno, defaultErrnoRet: 28, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                syscalls: [OCIConfig.Syscall(names: allowed, action: .allow),
                           OCIConfig.Syscall(names: ["mkdir", "mkdirat"], action: .errno)])
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["run", "--bundle", bundle.path, "conf-errno"])
        #expect(result.status == 0, "\(result)")
        let chmod = (try? String(contentsOfFile: bundle.rootfs + "/tmp/chmod.err", encoding: .utf8)) ?? ""
        let mkdir = (try? String(contentsOfFile: bundle.rootfs + "/tmp/done.err", encoding: .utf8)) ?? ""
        #expect(chmod.contains("No space left on device"), "not listed: defaultErrnoRet 28 (ENOSPC): \(chmod)")
        #expect(mkdir.contains("Operation not permitted"), "a rule without errnoRet: EPERM: \(mkdir)")
    }

    @Test("config-linux.md#seccomp: an action that kills (SCMP_ACT_KILL_PROCESS) ends the caller with SIGSYS; the filter shows in /proc/PID/status")
    func seccompKill() throws {
        // A child shell makes the call (busybox may run mkdir inside the shell itself).
        let script = "sh -c 'mkdir /tmp/refused'; echo $? > /tmp/probe.partial; mv /tmp/probe.partial /tmp/probe.out; exec sleep 30"
        let bundle = try TestBundle(conformance: "seccomp", args: ["sh", "-c", script]) { config in
            config.linux?.seccomp = OCIConfig.Seccomp(
                defaultAction: .allow, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                syscalls: [OCIConfig.Syscall(names: ["mkdir", "mkdirat"], action: .killProcess)])
        }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-sc"]).status == 0)
        let pid = try #require(try bundle.pid("conf-sc"))
        #expect(try bundle.runtime(["start", "conf-sc"]).status == 0)
        for _ in 0..<300 where !FileManager.default.fileExists(atPath: bundle.rootfs + "/tmp/probe.out") { usleep(10_000) }
        let status = procStatus(pid)
        #expect(status["Seccomp"] == "2" && status["Seccomp_filters"] == "1", "\(status)")
        #expect(!FileManager.default.fileExists(atPath: bundle.rootfs + "/tmp/refused"))
        // The child died of SIGSYS (31): its status is 128 + 31.
        #expect(try String(contentsOfFile: bundle.rootfs + "/tmp/probe.out", encoding: .utf8) == "159\n")
    }
}
