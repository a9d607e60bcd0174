extension OCIConfig.Seccomp {
    /// A deny list in the spirit of the profile Docker and podman apply by default
    /// (containers-common's `seccomp.json`): every system call is allowed except those
    /// that reach what a container shares with the host and its capabilities do not
    /// fence well enough: the kernel's modules, memory and clock, mounts and namespaces,
    /// keyrings, file handles, tracing. They fail with EPERM, as there.
    ///
    /// The reference profile is an allow list of about 370 calls, many of them opened
    /// only to a container that holds a capability (mount with CAP_SYS_ADMIN, …); this
    /// one denies those calls whatever the capabilities, which is what the reference
    /// does for the default capability set. `clone3` answers ENOSYS, so that the C
    /// library falls back to `clone`, whose flags (an argument, not a pointer) a filter
    /// can read: a `clone` that asks for a new namespace is refused.
    ///
    /// The filter covers every ABI of the machine (x86_64, i386 and x32 on x86_64; arm64
    /// and 32-bit ARM), so that none of them is a way around it.
    public static var containerDefault: OCIConfig.Seccomp {
        let denied = [
            // Kernel code and memory: modules, kexec, BPF, raw I/O ports, perf, the log.
            "init_module", "finit_module", "delete_module", "create_module", "query_module",
            "get_kernel_syms", "kexec_load", "kexec_file_load", "bpf", "perf_event_open",
            "iopl", "ioperm", "syslog", "lookup_dcookie", "userfaultfd",
            // The clock, swap, accounting, quotas, reboot: one for the whole machine.
            "settimeofday", "stime", "clock_settime", "clock_adjtime",
            "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "reboot", "nfsservctl",
            "_sysctl", "ustat", "uselib", "vm86", "vm86old",
            // Mounts and namespaces: new ones give every capability back over them.
            "mount", "umount", "umount2", "pivot_root", "unshare", "setns",
            "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
            // Keyrings are not namespaced: root's keys are every container's root's keys.
            "keyctl", "add_key", "request_key",
            // File handles open any inode of a filesystem (the 2014 "shocker" escape).
            "name_to_handle_at", "open_by_handle_at",
            // Other processes' memory and NUMA placement.
            "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
            "mbind", "set_mempolicy", "move_pages", "fanotify_init",
        ]
        // clone(2)'s first argument holds the CLONE_NEW* flags: one rule per flag.
        let namespaceFlags: [UInt64] = [
            0x0002_0000,  // CLONE_NEWNS
            0x0200_0000,  // CLONE_NEWCGROUP
            0x0400_0000,  // CLONE_NEWUTS
            0x0800_0000,  // CLONE_NEWIPC
            0x1000_0000,  // CLONE_NEWUSER
            0x2000_0000,  // CLONE_NEWPID
            0x4000_0000,  // CLONE_NEWNET
        ]
        let ENOSYS: UInt32 = 38
        var rules = [OCIConfig.Syscall(names: denied, action: .errno)]
        rules += namespaceFlags.map { flag in
            OCIConfig.Syscall(names: ["clone"], action: .errno,
                              args: [OCIConfig.SyscallArgument(index: 0, value: flag, valueTwo: flag, op: .maskedEqual)])
        }
        rules.append(OCIConfig.Syscall(names: ["clone3"], action: .errno, errnoRet: ENOSYS))
        return OCIConfig.Seccomp(
            defaultAction: .allow,
            architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
            syscalls: rules)
    }
}
