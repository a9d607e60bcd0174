// The ladder: six configurations, each the one before plus one layer. Rung 1 is chapter
// 01's chroot; rungs 2 to 6 are config.json files for chapter 04's runtime, and the
// difference between two rungs is the difference between two configs.
import Glibc
import Isolation
import SystemPackage

enum Rung: Int, CaseIterable, Comparable {
    case chroot = 1, namespaces, capabilities, seccomp, procPaths, userNamespace, anotherKernel

    static func < (a: Rung, b: Rung) -> Bool { a.rawValue < b.rawValue }

    /// The table's column heading (at most 8 characters).
    var heading: String {
        switch self {
        case .chroot: "chroot"
        case .namespaces: "ns"
        case .capabilities: "caps"
        case .seccomp: "seccomp"
        case .procPaths: "paths"
        case .userNamespace: "userns"
        case .anotherKernel: "gvisor"
        }
    }

    /// The layer this rung adds, for "stopped by …".
    var layer: String {
        switch self {
        case .chroot: "chroot"
        case .namespaces: "namespaces"
        case .capabilities: "capabilities"
        case .seccomp: "seccomp"
        case .procPaths: "masked and read-only paths"
        case .userNamespace: "the user namespace"
        case .anotherKernel: "gVisor's kernel"
        }
    }

    /// What the rung adds, in one line of the lesson.
    var adds: String {
        switch self {
        case .chroot: "chroot(2) into the root filesystem, and nothing else (chapter 01)"
        case .namespaces: "+ every namespace and pivot_root; every capability (--privileged)"
        case .capabilities: "+ only the default capabilities, and the device cgroup"
        case .seccomp: "+ no_new_privs and the default seccomp profile"
        case .procPaths: "+ /proc/kcore, /proc/sys, /proc/sysrq-trigger… masked or read-only"
        case .userNamespace: "+ a user namespace: root inside is uid 100000 outside"
        case .anotherKernel: "+ another kernel: rung 6's config, run by gVisor's runsc"
        }
    }

    /// gVisor's runtime, when installed (apt: runsc): rung 7 needs it.
    static var runsc: FilePath? { Command.find("runsc") }

    /// The rungs this machine can climb: all but gVisor's where runsc is missing.
    static var available: [Rung] { allCases.filter { $0 != .anotherKernel || runsc != nil } }

    /// The first uid and gid of the host that the user namespace maps root to.
    static let mappedRoot: UInt32 = 100_000

    /// The config.json of this rung (nil for rung 1, which is no container at all):
    /// `runc spec`'s config, the layers above this rung taken out of it.
    func config(args: [String], rootfs: FilePath, shared: FilePath) -> OCIConfig? {
        guard self != .chroot else { return nil }
        var config = Rung.adapt(OCIConfig.defaultSpec(args: args, cgroupNamespace: CgroupMode.detect() == .unified),
                                args: args, rootfs: rootfs, shared: shared)
        config.hostname = "breakout"
        if self < .capabilities {
            // Every capability this kernel has, and every device (what --privileged gives).
            let all = Rung.allCapabilities
            config.process?.capabilities = OCIConfig.Capabilities(bounding: all, effective: all, inheritable: all, permitted: all)
            config.linux?.resources?.devices = [OCIConfig.DeviceRule(allow: true, access: "rwm")]
        }
        if self < .seccomp {
            config.process?.noNewPrivileges = false
        } else {
            config.linux?.seccomp = .containerDefault
        }
        if self < .procPaths {
            config.linux?.maskedPaths = []
            config.linux?.readonlyPaths = []
        }
        if self >= .userNamespace {
            config.linux?.namespaces?.append(OCIConfig.Namespace(type: .user))
            config.linux?.uidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: Rung.mappedRoot, size: 65536)]
            config.linux?.gidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: Rung.mappedRoot, size: 65536)]
        }
        return config
    }

    /// Any config made to run the escapes: the lab's root filesystem (writable), the
    /// escape as its process, and a folder of the host shared as /shared, as `-v` shares
    /// one (a volume). Hooks and a cgroup path of its own are dropped: the lab's
    /// containers are the lab's.
    static func adapt(_ given: OCIConfig, args: [String], rootfs: FilePath, shared: FilePath) -> OCIConfig {
        var config = given
        config.root = OCIConfig.Root(path: rootfs.string, readonly: false)
        config.process?.args = args
        config.process?.env = ["PATH=/"]
        config.process?.cwd = "/"
        config.process?.terminal = false
        config.hooks = nil
        config.linux?.cgroupsPath = nil
        config.mounts = (config.mounts ?? []).filter { $0.destination != "/shared" } + [
            OCIConfig.Mount(destination: "/shared", type: "bind", source: shared.string, options: ["rbind", "rw"]),
        ]
        return config
    }

    /// CAP_CHOWN … CAP_LAST_CAP (/proc/sys/kernel/cap_last_cap), by libcap's names: all
    /// that our own bounding set holds (a runtime cannot grant more than it has).
    static var allCapabilities: [String] {
        let text = (try? FileSystem.readString("/proc/sys/kernel/cap_last_cap")) ?? ""
        let last = Int32(text.split(separator: "\n").first ?? "") ?? 40
        return (0...last).map { Capability(rawValue: $0) }.filter { CapabilityState.inBoundingSet($0) }
            .map { $0.description.uppercased() }
    }
}

/// One column of the table: a rung of the ladder, or a config.json of the reader's.
struct Column {
    var rung: Rung?
    var given: OCIConfig?

    /// `chroot` … `gvisor` (the ladder above the table numbers them), or `yours`.
    var heading: String { rung?.heading ?? "yours" }
    /// In prose: `rung 3`, or `your config`.
    var name: String { rung.map { "rung \($0.rawValue)" } ?? "your config" }
    var layer: String { rung.map { "\($0.layer) at rung \($0.rawValue)" } ?? "your config" }
    var isChroot: Bool { rung == .chroot }
    /// For container IDs: `3`, or `yours`.
    var tag: String { rung.map { "\($0.rawValue)" } ?? "yours" }

    func config(args: [String], rootfs: FilePath, shared: FilePath) -> OCIConfig? {
        if let given { return Rung.adapt(given, args: args, rootfs: rootfs, shared: shared) }
        return rung?.config(args: args, rootfs: rootfs, shared: shared)
    }
}
