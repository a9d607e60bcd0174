import Glibc
import SystemPackage

/// One thing a chapter needs from the machine, checked: ✓ or ✗ and, for ✗, what fixes it.
///
/// `doctor` prints every check; each chapter runs the ones it needs before it starts and
/// stops with the same line when one fails.
public struct Check: Sendable {
    public enum Status: Sendable { case ok, failed, warning }
    public var name: String
    public var status: Status
    public var detail: String
    public var fix: String?

    public init(_ name: String, _ status: Status, _ detail: String, fix: String? = nil) {
        self.name = name
        self.status = status
        self.detail = detail
        self.fix = fix
    }

    public var passed: Bool { status != .failed }

    /// `✓ root          running as uid 0`, with `→ fix` on the next line for ✗ and !.
    public func line(style: Style = .standardOutput) -> String {
        let mark: String
        switch status {
        case .ok: mark = style.green("✓")
        case .failed: mark = style.red("✗")
        case .warning: mark = style.yellow("!")
        }
        var text = "\(mark) \(pad(name, 24)) \(detail)"
        if let fix, status != .ok { text += "\n    → \(fix)" }
        return text
    }
}

public enum Preflight {
    /// Linux, and its version.
    public static func kernel() -> Check {
        var info = utsname()
        uname(&info)
        let system = withUnsafeBytes(of: info.sysname) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        let release = kernelRelease()
        let machine = withUnsafeBytes(of: info.machine) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        guard system == "Linux" else {
            return Check("Linux kernel", .failed, "this is \(system); containers are a Linux kernel feature",
                         fix: "run the workshop in a Linux VM (Ubuntu or Debian)")
        }
        let (major, minor) = kernelVersion()
        if (major, minor) < (4, 6) {
            return Check("Linux kernel", .failed, "Linux \(release) on \(machine): older than 4.6 (cgroup namespaces)",
                         fix: "use a distribution with Linux 5.6 or newer")
        }
        return Check("Linux kernel", .ok, "Linux \(release) on \(machine)")
    }

    public static func kernelRelease() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: info.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }

    /// (major, minor) of the running kernel.
    public static func kernelVersion() -> (Int, Int) {
        let parts = kernelRelease().split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        return (parts.count > 0 ? parts[0] : 0, parts.count > 1 ? parts[1] : 0)
    }

    /// Running as root. `why` says what needs it; the fix is the exact sudo command line.
    public static func root(why: String = "chroot, mounts and cgroups need root") -> Check {
        if Identity.isRoot { return Check("root", .ok, "running as uid 0") }
        return Check("root", .failed, "needs root, running as uid \(getuid()) (\(why))", fix: "run: \(Identity.sudoCommandLine())")
    }

    /// One namespace kind exists in this kernel.
    public static func namespace(_ kind: Namespaces) -> Check {
        let name = "\(kind.shortName) namespace"
        if access("/proc/self/ns/\(kind.procName)", F_OK) == 0 {
            return Check(name, .ok, "\(kind.cloneFlagName) available")
        }
        let needs = kind == .time ? "Linux 5.6 and CONFIG_TIME_NS" : "CONFIG_\(kind.procName.uppercased())_NS"
        return Check(name, .failed, "not in this kernel (/proc/self/ns/\(kind.procName) is missing)",
                     fix: "needs \(needs); use a newer distribution kernel")
    }

    /// Which cgroup version the host mounts, and the controllers that can be used.
    public static func cgroups() -> Check {
        let mode = CgroupMode.detect()
        let controllers = CgroupMode.usableControllers(mode: mode)
        switch mode {
        case .none:
            return Check("cgroups", .failed, "nothing mounted at /sys/fs/cgroup",
                         fix: "mount -t cgroup2 none /sys/fs/cgroup (systemd does this at boot)")
        case .unified, .legacy, .hybrid:
            let label = mode == .unified ? "v2 (unified)" : mode == .legacy ? "v1 (legacy)" : "hybrid (v1 controllers, empty v2 at /sys/fs/cgroup/unified)"
            let missing = ["cpu", "memory", "pids"].filter { !controllers.contains($0) }
            if !missing.isEmpty {
                let fix = mode == .unified
                    ? "enable them: echo '+\(missing.joined(separator: " +"))' > /sys/fs/cgroup/cgroup.subtree_control"
                    : "mount them: mount -t cgroup -o \(missing[0]) cgroup /sys/fs/cgroup/\(missing[0])"
                return Check("cgroups", .warning, "\(label); missing controllers: \(missing.joined(separator: ", "))", fix: fix)
            }
            return Check("cgroups", .ok, "\(label): \(controllers.joined(separator: " "))")
        }
    }

    /// Whether a non-root user may create a user namespace (chapter 02 without sudo).
    public static func unprivilegedUserNamespaces() -> Check {
        let name = "unprivileged userns"
        if let value = readSysctl("kernel/unprivileged_userns_clone"), value == "0" {
            return Check(name, .warning, "disabled by kernel.unprivileged_userns_clone=0",
                         fix: "sudo sysctl -w kernel.unprivileged_userns_clone=1")
        }
        if let value = readSysctl("user/max_user_namespaces"), value == "0" {
            return Check(name, .warning, "disabled by user.max_user_namespaces=0",
                         fix: "sudo sysctl -w user.max_user_namespaces=15000")
        }
        if let value = readSysctl("kernel/apparmor_restrict_unprivileged_userns"), value == "1" {
            return Check(name, .warning, "restricted by AppArmor (Ubuntu 23.10+: kernel.apparmor_restrict_unprivileged_userns=1)",
                         fix: "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or run chapter-02 with sudo)")
        }
        return Check(name, .ok, "allowed (chapter-02 --namespaces user,... runs without sudo)")
    }

    /// Whether chapter 02's rootless container can get outbound network: pasta or
    /// slirp4netns installed, and /dev/net/tun open to users (`UserModeNetwork`).
    public static func rootlessNetwork() -> Check {
        let name = "rootless network"
        guard let helper = UserModeNetwork.installed(), let program = helper.program() else {
            return Check(name, .warning, "no pasta or slirp4netns: chapter-02 without sudo gives its container only lo",
                         fix: "sudo apt install passt (or slirp4netns)")
        }
        if let problem = UserModeNetwork.tunProblem() {
            return Check(name, .warning, "\(helper) is installed, but \(problem)")
        }
        return Check(name, .ok, "\(program) (chapter-02 without sudo: outbound network for its container)")
    }

    /// WSL 2 or a container: both work, with caveats worth knowing before a workshop.
    public static func environment() -> Check {
        let version = (try? FileSystem.readString("/proc/version")) ?? ""
        if version.lowercased().contains("microsoft") {
            return Check("environment", .warning, "WSL 2: namespaces work; cgroups depend on the WSL version",
                         fix: "if cgroup chapters fail, set kernelCommandLine = cgroup_no_v1=all in .wslconfig")
        }
        let rootType = ((try? MountInfo.table()) ?? []).last(where: { $0.mountPoint == "/" })?.fileSystemType ?? ""
        let pid1Cgroup = (try? FileSystem.readString("/proc/1/cgroup")) ?? ""
        let pid1Environment = (try? FileSystem.readFile("/proc/1/environ")).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let marker = FileSystem.exists("/.dockerenv") ? "/.dockerenv" : FileSystem.exists("/run/.containerenv") ? "/run/.containerenv" : nil
        if let evidence = containerEvidence(marker: marker, rootType: rootType, pid1Cgroup: pid1Cgroup, pid1Environment: pid1Environment) {
            return Check("environment", .warning, "running inside a container (\(evidence)): some namespaces and mounts may be refused",
                         fix: "run the container with --privileged, or use a VM")
        }
        if let marker {
            return Check("environment", .ok, "not inside a container (\(marker) is there, but / is \(rootType) and PID 1 is the host's init)")
        }
        return Check("environment", .ok, "not WSL, not inside a container")
    }

    /// Why this looks like a container, or nil. A marker file (`/.dockerenv`,
    /// `/run/.containerenv`) alone does not decide: images made from a container keep a
    /// stray one. It counts with a root file system that containers use (overlay, aufs,
    /// fuse-overlayfs), or PID 1 in an engine's cgroup, or PID 1 saying `container=`.
    public static func containerEvidence(marker: String?, rootType: String, pid1Cgroup: String, pid1Environment: String) -> String? {
        if pid1Environment.split(separator: "\0").contains(where: { $0.hasPrefix("container=") }) {
            return "PID 1 has container= in its environment"
        }
        let engines = ["docker", "containerd", "kubepods", "libpod", "lxc", "garden"]
        let pid1Paths = pid1Cgroup.split(separator: "\n").compactMap { $0.split(separator: ":", maxSplits: 2).last }
        if let path = pid1Paths.first(where: { path in engines.contains { path.contains($0) } }) {
            return "PID 1 is in the cgroup \(path)"
        }
        if let marker, ["overlay", "aufs", "fuse.fuse-overlayfs"].contains(rootType) {
            return "\(marker), and / is \(rootType)"
        }
        return nil
    }

    /// busybox for the built-in root filesystem (optional: host programs work too).
    public static func busybox() -> Check {
        if let path = RootFilesystem.busyboxPath() {
            let isStatic = (try? RootFilesystem.sharedLibraries(of: path).isEmpty) ?? false
            return Check("busybox", .ok, "\(path)\(isStatic ? " (static)" : "")")
        }
        return Check("busybox", .warning, "not installed: the root filesystem is built from host programs instead",
                     fix: "sudo apt-get install -y busybox-static")
    }

    /// stress-ng for chapter 03 (optional: built-in hogs work too).
    public static func stressNG() -> Check {
        if let path = Command.find("stress-ng") { return Check("stress-ng", .ok, path.string) }
        return Check("stress-ng", .warning, "not installed: chapter 03 uses its built-in hogs",
                     fix: "sudo apt-get install -y stress-ng")
    }

    /// libcap is linked into this program; check that it reads our capabilities.
    public static func libcap() -> Check {
        do {
            let state = try CapabilityState.of()
            return Check("libcap", .ok, "reads this process's capabilities (\(state.effective.count) effective)")
        } catch {
            return Check("libcap", .failed, "cap_get_proc failed: \(error)", fix: "sudo apt-get install -y libcap-dev")
        }
    }

    /// Every check `doctor` prints, in order.
    public static func all() -> [Check] {
        [kernel(), root(), environment()]
            + Namespaces.allKinds.map(namespace)
            + [unprivilegedUserNamespaces(), rootlessNetwork(), cgroups(), busybox(), stressNG(), libcap()]
    }

    /// Runs `checks`; when any fails, throws an `IsolationError` that is one line per
    /// failed check: what is wrong, then what fixes it.
    public static func require(_ checks: [Check]) throws {
        let failed = checks.filter { !$0.passed }
        guard !failed.isEmpty else { return }
        let lines = failed.map { check in
            check.fix.map { "\(check.detail); \($0)" } ?? check.detail
        }
        throw IsolationError(lines.joined(separator: "\n"))
    }

    static func readSysctl(_ name: String) -> String? {
        guard let text = try? FileSystem.readString(FilePath("/proc/sys/" + name)) else { return nil }
        return text.trimmingCharacters(in: " \n")
    }
}
