// The catalogue: each escape, what it is after, and what the host checks afterwards.
// The system calls themselves are in escapes.c.
import Glibc
import Isolation
import SystemPackage

enum Escape: String, CaseIterable {
    case chroot, disk, shocker, corePattern = "core-pattern", sysrq, kcore, devMem = "dev-mem", firmware, signal, ptrace,
         module, clock, nested, keyring, rawSocket = "raw-socket", setuid, runtimeExe = "runtime-exe", mountRace = "mount-race"

    /// One line of history: where the escape comes from, what it gets.
    var story: String {
        switch self {
        case .chroot: "1979's chroot keeps the working directory: chroot again, climb `..` out"
        case .disk: "mknod the host's disk, mount it, read the host's files"
        case .shocker: "open_by_handle_at opens any inode by handle (Docker, 2014)"
        case .corePattern: "kernel.core_pattern `|prog` runs prog as host root at a crash"
        case .sysrq: "/proc/sysrq-trigger: one byte reboots or crashes the host"
        case .kcore: "/proc/kcore is the kernel's memory"
        case .devMem: "/dev/mem is the machine's physical memory: mknod it, read it"
        case .firmware: "/sys/firmware: the machine's memory map and ACPI tables"
        case .signal: "kill(2) a process of the host"
        case .ptrace: "ptrace(2) a process of the host: its memory is ours"
        case .module: "init_module(2): our code in the kernel"
        case .clock: "settimeofday(2): one clock for every container and the host"
        case .nested: "unshare(2) a user namespace: every capability again"
        case .keyring: "keyctl(2): root's user keyring is one for host and container"
        case .rawSocket: "a packet socket on the host's interface sees its traffic"
        case .setuid: "a set-user-ID root program left in a shared folder (a volume)"
        case .runtimeExe: "the runtime's exec enters: write its file via /proc/PID/exe (runc, 2019)"
        case .mountRace: "a folder of a volume swapped for a symlink while the runtime mounts there (CVE-2021-30465)"
        }
    }

    /// Why the layer that stops the escape stops it (for the lines under the table).
    var why: String {
        switch self {
        case .chroot: "after pivot_root the host's root is not in the mount namespace: the climb ends at the container's own /"
        case .disk: "CAP_MKNOD and CAP_SYS_ADMIN are not in the default set (and the device cgroup denies the disk)"
        case .shocker: "open_by_handle_at needs CAP_DAC_READ_SEARCH"
        case .corePattern: "/proc/sys is mounted read-only; no capability is needed to write it as root"
        case .sysrq: "/proc/sysrq-trigger is mounted read-only; no capability is needed to write it as root"
        case .kcore: "reading it needs CAP_SYS_RAWIO (and it is masked)"
        case .devMem: "CAP_MKNOD and CAP_SYS_RAWIO are not in the default set (and the device cgroup denies it)"
        case .firmware: "/sys/firmware is masked (an empty read-only tmpfs); no capability is needed to read it as root"
        case .signal: "the PID namespace: the host's processes have no PID inside"
        case .ptrace: "the PID namespace: the host's processes have no PID inside"
        case .module: "init_module needs CAP_SYS_MODULE"
        case .clock: "setting the clock needs CAP_SYS_TIME"
        case .nested: "no capability is needed for a user namespace: seccomp refuses unshare and clone's CLONE_NEW* flags"
        case .keyring: "keys are kept by uid, and no capability is needed to search one's own: seccomp refuses keyctl (and in a user namespace @u is another keyring)"
        case .rawSocket: "the network namespace: the host's interfaces are not in it"
        case .setuid: "root inside is uid 100000 on the host: the program is set-user-ID to nobody of note"
        case .runtimeExe: "chapter 04's runtime enters a container from a read-only, detached copy of itself, and not dumpable: /proc/PID/exe cannot be opened, or only read (chapter 04, \"What isorun defends against\")"
        case .mountRace: "the runtime (openat2 + mount on the descriptor) opens the destination inside the root, then mounts onto that descriptor: a symlink swapped in meanwhile is never followed"
        }
    }

    /// The layer that stops the escape, where it is none of the ladder's rungs: the runtime
    /// itself, which every rung from 2 on shares.
    var stoppedByRuntime: Bool { self == .runtimeExe }
}

/// What one attempt came to, as the host sees it.
struct Outcome: Equatable {
    enum Kind: Equatable { case escaped, blocked, notApplicable, unclear }
    var kind: Kind
    /// The errno the escape met (`EPERM`), or what the host saw instead (`mapped`).
    var cell: String
    /// The escape's own words, or the host's.
    var detail: String

    static func parse(_ line: String) -> Outcome {
        let words = line.split(separator: " ", maxSplits: 2).map(String.init)
        switch words.first {
        case "ESCAPED": return Outcome(kind: .escaped, cell: "ESCAPED", detail: words.dropFirst().joined(separator: " "))
        case "blocked" where words.count >= 2:
            return Outcome(kind: .blocked, cell: words[1], detail: words.count > 2 ? words[2] : "")
        case "n/a": return Outcome(kind: .notApplicable, cell: "n/a", detail: words.dropFirst().joined(separator: " "))
        default: return Outcome(kind: .unclear, cell: "?", detail: line.isEmpty ? "the escape wrote no verdict" : line)
        }
    }
}
