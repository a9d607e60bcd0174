extension OCIConfig {
    /// The starter config that `runc spec` writes (runc's libcontainer/specconv Example),
    /// with the hostname `container` instead of `runc`:
    ///
    /// - `args` in a root file system at `rootfs`, read-only, as UID 0 in `/`, with PATH
    ///   and TERM=xterm;
    /// - the capabilities CAP_AUDIT_WRITE, CAP_KILL and CAP_NET_BIND_SERVICE (bounding,
    ///   permitted, effective), no new privileges, at most 1024 open files;
    /// - new pid, network, ipc, uts and mount namespaces, and a cgroup namespace when
    ///   `cgroupNamespace` is true (runc adds one only on cgroup v2 hosts: pass
    ///   `CgroupMode.detect() == .unified` to do the same);
    /// - /proc, a tmpfs /dev with devpts, shm and mqueue, a read-only /sys and
    ///   /sys/fs/cgroup;
    /// - every device denied to the cgroup (the runtime still allows its default devices),
    ///   and the /proc and /sys paths that reveal or change the host masked or read-only.
    ///
    /// `runc spec` sets `terminal` to true; here it is false unless asked for, so that the
    /// config runs without a console socket.
    public static func defaultSpec(args: [String] = ["sh"], terminal: Bool = false, cgroupNamespace: Bool = true) -> OCIConfig {
        let capabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        var namespaces: [NamespaceType] = [.pid, .network, .ipc, .uts, .mount]
        if cgroupNamespace { namespaces.append(.cgroup) }
        return OCIConfig(
            ociVersion: specVersion,
            process: Process(
                terminal: terminal,
                user: User(uid: 0, gid: 0),
                args: args,
                env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
                cwd: "/",
                capabilities: Capabilities(bounding: capabilities, effective: capabilities, permitted: capabilities),
                rlimits: [Rlimit(type: .openFiles, hard: 1024, soft: 1024)],
                noNewPrivileges: true),
            root: Root(path: "rootfs", readonly: true),
            hostname: "container",
            mounts: [
                Mount(destination: "/proc", type: "proc", source: "proc"),
                Mount(destination: "/dev", type: "tmpfs", source: "tmpfs",
                      options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
                Mount(destination: "/dev/pts", type: "devpts", source: "devpts",
                      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
                Mount(destination: "/dev/shm", type: "tmpfs", source: "shm",
                      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
                Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
                Mount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
                      options: ["nosuid", "noexec", "nodev", "relatime", "ro"]),
            ],
            linux: Linux(
                namespaces: namespaces.map { Namespace(type: $0) },
                resources: Resources(devices: [DeviceRule(allow: false, access: "rwm")]),
                maskedPaths: [
                    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
                ],
                readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]))
    }
}
