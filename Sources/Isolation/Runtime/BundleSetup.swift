import CIsolation
import CLibcap
import Glibc
import SystemPackage

/// What a container's init does with an OCI config, from the inside, in the order the
/// kernel needs (runtime-spec config.md, config-linux.md):
///
/// 1. `prepareRoot`: mount propagation, the root filesystem as a mount point, the
///    spec's mounts (destinations resolved *inside* the root, even through symlinks),
///    the device nodes and /dev links;
/// 2. `enterRoot`: pivot_root and detach the host's root; masked and read-only paths;
///    sysctls; a read-only root;
/// 3. `applyProcess`: hostname, rlimits, OOM score, groups and user, capabilities,
///    no_new_privs, umask, working directory.
///
/// Each step is told to `narrate` as it is made, and timed in `timings`.
public final class BundleSetup {
    public let config: OCIConfig
    public let bundle: FilePath
    public let rootfs: FilePath
    /// The namespaces the init is in (new or joined).
    public let namespaces: Namespaces
    /// The container's cgroup directories, for a `cgroup` mount.
    public let cgroupDirectories: [String: FilePath]
    public private(set) var timings: [(stage: String, seconds: Double)] = []
    let narrate: (String, String) -> Void

    public init(config: OCIConfig, bundle: FilePath, namespaces: Namespaces,
                cgroupDirectories: [String: FilePath] = [:], narrate: @escaping (String, String) -> Void = { _, _ in }) {
        self.config = config
        self.bundle = bundle
        let root = FilePath(config.root.path)
        self.rootfs = root.isAbsolute ? root : bundle.pushing(root)
        self.namespaces = namespaces
        self.cgroupDirectories = cgroupDirectories
        self.narrate = narrate
    }

    /// The root filesystem's absolute path, checked: it must be a directory.
    public static func rootfs(of config: OCIConfig, bundle: FilePath) throws -> FilePath {
        let root = FilePath(config.root.path)
        let path = root.isAbsolute ? root : bundle.pushing(root)
        guard FileSystem.isDirectory(path) else {
            throw IsolationError("root.path \(path) is not a directory",
                                 hint: "the bundle's config.json names its root filesystem in root.path (usually \"rootfs\")")
        }
        return path
    }

    func timed(_ stage: String, _ body: () throws -> Void) rethrows {
        let start = monotonicNow()
        try body()
        timings.append((stage, monotonicNow() - start))
    }

    // MARK: 1. Before pivot_root

    /// Without a mount namespace of its own (none in linux.namespaces: the spec says the
    /// container then shares the runtime's) the container's mounts are made in the host's
    /// mount table, below the root filesystem, and stay there until `delete` unmounts
    /// them; the init enters its root with chroot(2), which, unlike pivot_root, a root
    /// process can escape (chapter 01).
    public var sharesHostMounts: Bool { !namespaces.contains(.mount) }

    public func prepareRoot() throws {
        try timed("mounts") {
            if sharesHostMounts {
                narrate("(no mount namespace: every mount below is a host mount until delete)", "linux.namespaces has no mount entry: the container shares the host's mount table")
            } else {
                // Our copy of the host's mounts must not propagate back: rslave (runc's default)
                // still lets host mounts reach us, but nothing of ours reaches the host.
                narrate("mount(NULL, \"/\", NULL, MS_REC|MS_SLAVE, NULL)", "nothing we mount may propagate to the host (mount_namespaces(7))")
                try stage("make / rslave") { try Mount.mount(source: "none", target: "/", flags: [.recursive, .slave]) }
            }
            narrate("mount(\"\(rootfs)\", \"\(rootfs)\", NULL, MS_BIND|MS_REC, NULL)", "pivot_root(2) needs the new root to be a mount point")
            try stage("bind the root filesystem") { try Mount.mount(source: rootfs.string, target: rootfs, flags: [.bind, .recursive]) }
            if sharesHostMounts {
                // Ours alone, so that `delete` can take it away with all that is mounted on
                // it, and so that nothing mounted below reaches other mount namespaces.
                try stage("make the root filesystem rprivate") { try Mount.mount(source: "none", target: rootfs, flags: [.recursive, .private]) }
            }
            // The root, opened once it is a mount point: every destination is opened
            // relative to this descriptor, on the bind mount pivot_root will use.
            if !(config.mounts ?? []).isEmpty {
                narrate("open(\"\(rootfs)\", O_PATH); then per mount openat2(root, destination, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)",
                        "each destination opened inside the root, then mounted onto through /proc/self/fd/N: a symlink swapped into the path meanwhile changes nothing (CVE-2021-30465)")
            }
            let root: RootDirectory
            do { root = try RootDirectory(rootfs) } catch let error as Errno {
                throw StageError(stage: "open the root filesystem \(rootfs)", errno: error)
            }
            for (index, mount) in (config.mounts ?? []).enumerated() {
                try self.mount(mount, index: index, in: root)
            }
            try makeDevices()
        }
    }

    func mount(_ mount: OCIConfig.Mount, index: Int, in root: RootDirectory) throws {
        let options = MountOptions(mount.options ?? [])
        let type = mount.type ?? (options.isBind ? "bind" : "none")
        // First a check on the path as the image has it, for a clear error: a symlink
        // that climbs above the root is an attempt to get out.
        // (Only a check: what it finds may change before the mount; openat2 below decides.)
        var climbed = false
        _ = try? FileSystem.resolve(FilePath(mount.destination), inside: rootfs, climbedAboveRoot: &climbed)
        if climbed {
            throw IsolationError("mounts[\(index)].destination \(mount.destination) climbs out of the root filesystem (through a symlink or ..)",
                                 hint: "a mount destination must stay inside root.path; check the image's symlinks")
        }
        var source = mount.source ?? type
        if options.isBind || type == "bind" {
            let path = FilePath(source)
            source = path.isAbsolute ? source : bundle.pushing(path).string
        }
        let isBind = options.isBind || type == "bind"
        let sourceIsFile = isBind && FileSystem.exists(FilePath(source)) && !FileSystem.isDirectory(FilePath(source))
        // Resolving and mounting are one step (CVE-2021-30465): the destination is opened
        // inside the root (openat2(2) RESOLVE_IN_ROOT, missing folders made one by one
        // relative to the one before), and the mount goes onto that descriptor through
        // /proc/self/fd/N. A folder swapped for a symlink meanwhile changes nothing.
        let target: RootDirectory.Handle
        do {
            target = try root.open(mount.destination, creating: sourceIsFile ? .file : .directory)
        } catch let error as Errno {
            throw StageError(stage: "open mounts[\(index)].destination \(mount.destination) inside the root filesystem (openat2 RESOLVE_IN_ROOT)", errno: error)
        }
        let landing = try root.checkInside(target, "mounts[\(index)].destination \(mount.destination)")
        let onto = "\(target.procPath)"
        let stageName = "mounts[\(index)] \(type) on \(mount.destination)"
        if type == "cgroup" || type == "cgroup2" {
            return try mountCgroup(onto: target, in: root, destination: mount.destination, options: options, stageName: stageName)
        }
        // The new mount, opened again, only when something is done through it (a remount,
        // propagation); else a readlink(2) of the descriptor checks where it landed.
        var opened: RootDirectory.Handle? = nil
        defer { withExtendedLifetime(opened) {} }  // its deinit closes the descriptor
        func mounted() throws -> RootDirectory.Handle {
            if let opened { return opened }
            let handle = try root.mounted(on: target, mount.destination)
            opened = handle
            return handle
        }
        if isBind {
            narrate("mount(\"\(source)\", \"\(onto)\" (\(landing)), NULL, MS_BIND\(options.flags.contains(.recursive) ? "|MS_REC" : ""), NULL)", "mounts[\(index)]: \(mount.destination), opened inside the root")
            try stage(stageName) { try Mount.mount(source: source, target: target.procPath, flags: options.flags.intersection([.bind, .recursive])) }
            let remountFlags = options.flags.subtracting([.bind, .recursive, .remount])
            if !remountFlags.isEmpty { try remount(try mounted().procPath, flags: remountFlags, stageName: stageName) }
        } else {
            narrate("mount(\"\(source)\", \"\(onto)\" (\(landing)), \"\(type)\", \(describe(options.flags)), \(options.dataString.map { "\"\($0)\"" } ?? "NULL"))", "mounts[\(index)]: \(mount.destination), opened inside the root")
            do {
                try Mount.mount(source: source, target: target.procPath, type: type, flags: options.flags, data: options.dataString)
            } catch let error as Errno where error == .notPermitted && (type == "sysfs" || type == "mqueue") {
                // In a user namespace without its own network (sysfs) or IPC (mqueue)
                // namespace the kernel refuses a new instance: bind the host's, as runc does.
                let host = type == "sysfs" ? "/sys" : "/dev/mqueue"
                narrate("  → EPERM: mount(\"\(host)\", \"\(onto)\", NULL, MS_BIND|MS_REC, NULL)", "a user namespace may not mount a new \(type) here: bind the host's")
                try stage(stageName) { try Mount.mount(source: host, target: target.procPath, flags: [.bind, .recursive]) }
                let remountFlags = options.flags.subtracting([.bind, .recursive, .remount])
                if !remountFlags.isEmpty { try remount(try mounted().procPath, flags: remountFlags, stageName: stageName) }
            } catch let error as Errno {
                throw StageError(stage: stageName, errno: error)
            }
        }
        if !options.propagation.isEmpty {
            let top = try mounted()
            try stage("\(stageName): propagation") { try Mount.mount(source: "none", target: top.procPath, flags: options.propagation) }
        }
        if opened == nil { try root.checkLanded(on: target, mount.destination) }
    }

    /// A bind mount takes its flags (ro, nosuid, ...) only on a second, remounting call.
    /// In a user namespace, flags the original mount has are locked and must be kept.
    func remount(_ target: FilePath, flags: MountFlags, stageName: String) throws {
        var keep: MountFlags = []
        var info = statvfs()
        if statvfs(target.string, &info) == 0 {
            let f = UInt(info.f_flag)
            if f & 2 != 0 { keep.insert(.noSetuid) }    // ST_NOSUID
            if f & 4 != 0 { keep.insert(.noDevices) }   // ST_NODEV
            if f & 8 != 0 { keep.insert(.noExec) }      // ST_NOEXEC
            if f & 1 != 0 && flags.contains(.readOnly) { keep.insert(.readOnly) }  // ST_RDONLY
        }
        try stage("\(stageName): remount") {
            try Mount.mount(source: "none", target: target, flags: flags.union(keep).union([.bind, .remount]))
        }
    }

    /// A `cgroup` mount shows the container its own cgroup: a tmpfs with one bind of each
    /// v1 hierarchy's container directory, or the v2 directory itself.
    /// It is mounted onto `opened` (a descriptor inside the root); what follows is made
    /// below the new mount, through its own descriptor.
    func mountCgroup(onto opened: RootDirectory.Handle, in root: RootDirectory, destination: String,
                     options: MountOptions, stageName: String) throws {
        let onto = opened.procPath
        let readOnly = options.flags.contains(.readOnly)
        let base = options.flags.intersection([.noSetuid, .noDevices, .noExec])
        if let v2 = cgroupDirectories[""] {
            narrate("mount(\"\(v2)\", \"\(onto)\", NULL, MS_BIND|MS_REC, NULL)", "the container's own cgroup as its /sys/fs/cgroup")
            try stage(stageName) { try Mount.mount(source: v2.string, target: onto, flags: [.bind, .recursive]) }
            if readOnly {
                // The handle must outlive the remount: /proc/self/fd/N is gone once it closes.
                let mounted = try root.mounted(on: opened, destination)
                try withExtendedLifetime(mounted) {
                    try remount(mounted.procPath, flags: base.union(.readOnly), stageName: stageName)
                }
            } else {
                try root.checkLanded(on: opened, destination)
            }
        } else {
            narrate("mount(\"tmpfs\", \"\(onto)\", \"tmpfs\", …) + MS_BIND of each hierarchy's container cgroup",
                    "cgroup v1: one folder per controller, each showing the container's own cgroup")
            try stage(stageName) { try Mount.mount(source: "tmpfs", target: onto, type: "tmpfs", flags: base, data: "mode=755") }
            // The handle must outlive every use of /proc/self/fd/N below (its deinit closes N).
            let mounted = try root.mounted(on: opened, destination)
            defer { withExtendedLifetime(mounted) {} }
            let target = mounted.procPath
            for (controller, directory) in cgroupDirectories.sorted(by: { $0.key < $1.key }) {
                let point = target.appending(controller)
                try stage("\(stageName): \(controller)") {
                    try FileSystem.makeDirectories(point)
                    try Mount.mount(source: directory.string, target: point, flags: [.bind, .recursive])
                }
                // Each bind is a mount of its own: a read-only tmpfs above it does not make
                // it read-only. Else the container's root could write `max` into its own
                // pids.max, or make sub-cgroups (runc binds them with the mount's flags too).
                if readOnly { try remount(point, flags: base.union(.readOnly), stageName: "\(stageName): \(controller)") }
            }
            if readOnly { narrate("mount(NULL, each, NULL, MS_BIND|MS_REMOUNT|MS_RDONLY, NULL)", "\"ro\": every controller's folder, not only the tmpfs, so the container cannot raise its own limits") }
            if readOnly { try remount(target, flags: base.union(.readOnly), stageName: stageName) }
        }
    }

    /// The device nodes every container gets (config-linux.md "Default Devices") and the
    /// config's own: mknod(2), or, where that is refused (a user namespace), a bind mount
    /// of the host's node. Then the /dev links.
    func makeDevices() throws {
        let dev = try FileSystem.resolve("/dev", inside: rootfs)
        guard FileSystem.isDirectory(dev) else {
            // No /dev at all: no devices (and no mount wanted one). Something that is not a
            // directory, or a symlink that leads nowhere once the mounts are made (one to
            // /sys/x is hidden by the /sys mount): the image's mistake, named now, not as
            // the missing /dev/null it leads to later.
            let entry = rootfs.appending("dev")
            guard FileSystem.exists(entry, followSymlinks: false) else { return }
            if let target = try? FileSystem.readLink(entry) {
                throw IsolationError("/dev in the root filesystem is a symlink to \(target), which is not a directory once the mounts are made",
                                     hint: "make /dev a directory in the image (a symlink into /sys or /proc is hidden when they are mounted)")
            }
            throw IsolationError("/dev in the root filesystem is not a directory", hint: "make /dev a directory in the image")
        }
        var devices: [OCIConfig.Device] = [
            .init(type: .character, path: "/dev/null", major: 1, minor: 3), .init(type: .character, path: "/dev/zero", major: 1, minor: 5),
            .init(type: .character, path: "/dev/full", major: 1, minor: 7), .init(type: .character, path: "/dev/random", major: 1, minor: 8),
            .init(type: .character, path: "/dev/urandom", major: 1, minor: 9), .init(type: .character, path: "/dev/tty", major: 5, minor: 0),
        ]
        for device in config.linux?.devices ?? [] {
            devices.removeAll { $0.path == device.path }
            devices.append(device)
        }
        let canMknod = !namespaces.contains(.user)
        narrate(canMknod ? "mknod(\"/dev/null\", S_IFCHR|0666, makedev(1, 3)) …" : "mount(\"/dev/null\", \"…/dev/null\", NULL, MS_BIND, NULL) …",
                canMknod ? "the default devices, \(devices.count) nodes" : "a user namespace may not mknod: bind the host's nodes")
        for device in devices {
            let path = try FileSystem.resolve(FilePath(device.path), inside: rootfs)
            var parent = path
            parent.removeLastComponent()
            try FileSystem.makeDirectories(parent)
            let kind: mode_t
            switch device.type {
            case .character, .unbuffered: kind = S_IFCHR
            case .block: kind = S_IFBLK
            case .fifo: kind = S_IFIFO
            }
            // Decoding checked the range (OCIBounds); a config built in code gets an error too.
            guard let major = UInt32(exactly: device.major ?? 0), let minor = UInt32(exactly: device.minor ?? 0) else {
                throw IsolationError("linux.devices: \(device.path) has the device number \(device.major ?? 0):\(device.minor ?? 0), which is out of range",
                                     hint: "a major number is 0 to 4095, a minor number 0 to 1048575")
            }
            let number = dev_t(iso_makedev(major, minor))
            var existing = stat()
            if lstat(path.string, &existing) == 0 {
                // config-linux.md "Devices": a file already at the path that is not the
                // requested device is an error (the image put something else there).
                let same = existing.st_mode & S_IFMT == kind && (kind == S_IFIFO || existing.st_rdev == number)
                if !same && (config.linux?.devices ?? []).contains(where: { $0.path == device.path }) {
                    throw IsolationError("linux.devices: \(device.path) already exists in the root filesystem and is not that device",
                                         hint: "remove it from the image, or change the device's path")
                }
                unlink(path.string)
            }
            let mode = mode_t(device.fileMode ?? 0o666)
            if canMknod {
                try stage("mknod \(device.path)") {
                    try pathCall(path) { mknod($0, kind | (mode & 0o7777), number) }
                    try pathCall(path) { chmod($0, mode & 0o7777) }
                    if device.uid != nil || device.gid != nil {
                        try pathCall(path) { chown($0, device.uid ?? 0, device.gid ?? 0) }
                    }
                }
            } else {
                try stage("bind \(device.path)") {
                    try FileSystem.writeFile(path, "", mode: 0o644)
                    try Mount.mount(source: device.path, target: path, flags: [.bind])
                }
            }
        }
        let links = [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]
            + (FileSystem.isDirectory(dev.appending("pts")) ? [("ptmx", "pts/ptmx")] : [])
            + (FileSystem.exists("/proc/kcore") ? [("core", "/proc/kcore")] : [])
        for (name, target) in links where !FileSystem.exists(dev.appending(name), followSymlinks: false) {
            try stage("/dev/\(name) link") { try FileSystem.symlink(target: target, at: dev.appending(name)) }
        }
    }

    // MARK: 2. pivot_root and what must happen inside the new root

    /// `stateDirectory` stays reachable through an open descriptor (the exec FIFO).
    public func enterRoot() throws {
        try timed("pivot_root") {
            if sharesHostMounts {
                // pivot_root(2) would move the root of every host process: chroot(2) moves ours.
                narrate("chdir(\"\(rootfs)\"); chroot(\".\")", "no mount namespace: chroot, the host's mounts stay as they are")
                try stage("chdir(\"\(rootfs)\")") { try FileSystem.changeDirectory(rootfs) }
                try stage("chroot(\".\")") { _ = try valueOrErrno { chroot(".") } }
                try stage("chdir(\"/\")") { try FileSystem.changeDirectory("/") }
            } else {
                narrate("chdir(\"\(rootfs)\"); pivot_root(\".\", \".\"); umount2(\".\", MNT_DETACH)",
                        "the bundle's root becomes /, the host's root is stacked on it and then detached")
                try stage("chdir(\"\(rootfs)\")") { try FileSystem.changeDirectory(rootfs) }
                try stage("pivot_root(\".\", \".\")") { try Mount.pivotRoot(newRoot: ".", putOld: ".") }
                try stage("umount2(old root, MNT_DETACH)") { try Mount.unmount(".", detach: true) }
                try stage("chdir(\"/\")") { try FileSystem.changeDirectory("/") }
            }
        }
        try timed("masked and read-only paths") {
            // sysctls first: /proc/sys is about to become read-only.
            // create checked that each is in a namespace of the container's own (Sysctls).
            for (key, value) in (config.linux?.sysctl ?? [:]).sorted(by: { $0.key < $1.key }) {
                guard let file = Sysctls.file(key) else { throw IsolationError("linux.sysctl \"\(key)\" is not a sysctl name") }
                narrate("echo \(value) > \(file)", "sysctl \(key)")
                try stage("sysctl \(key)") { try FileSystem.writeFile(file, value) }
            }
            let masked = config.linux?.maskedPaths ?? []
            let readOnly = config.linux?.readonlyPaths ?? []
            if !masked.isEmpty { narrate("mount(\"/dev/null\" or tmpfs, …) × \(masked.count)", "maskedPaths: hide what reveals the host (/proc/kcore, /proc/keys, …)") }
            for path in masked where FileSystem.exists(FilePath(path)) {
                if FileSystem.isDirectory(FilePath(path)) {
                    try stage("mask \(path)") { try Mount.mount(source: "tmpfs", target: FilePath(path), type: "tmpfs", flags: [.readOnly]) }
                } else {
                    guard FileSystem.exists("/dev/null") else {
                        throw IsolationError("maskedPaths: \(path) is hidden by mounting /dev/null over it, and the container has no /dev/null",
                                             hint: "give the container a /dev (the default spec mounts a tmpfs there, and the runtime makes /dev/null in it)")
                    }
                    try stage("mask \(path)") { try Mount.mount(source: "/dev/null", target: FilePath(path), flags: [.bind]) }
                }
            }
            if !readOnly.isEmpty { narrate("mount(p, p, NULL, MS_BIND|MS_REC) + MS_REMOUNT|MS_RDONLY × \(readOnly.count)", "readonlyPaths: /proc/sys and friends, readable but not writable") }
            for path in readOnly where FileSystem.exists(FilePath(path)) {
                try stage("read-only \(path)") { try Mount.mount(source: path, target: FilePath(path), flags: [.bind, .recursive]) }
                try remount(FilePath(path), flags: [.readOnly, .recursive], stageName: "read-only \(path)")
            }
            // Last of the mounts: masks and read-only paths are bind mounts, and nothing
            // can be bound from an unbindable mount.
            if let propagation = config.linux?.rootfsPropagation {
                let flags = MountOptions([propagation.rawValue]).propagation
                try stage("rootfsPropagation \(propagation.rawValue)") { try Mount.mount(source: "none", target: "/", flags: flags) }
            }
            if config.root.readonly == true {
                narrate("mount(NULL, \"/\", NULL, MS_BIND|MS_REMOUNT|MS_RDONLY, NULL)", "root.readonly: the container cannot write its root filesystem")
                try remount("/", flags: [.readOnly], stageName: "read-only root")
            }
        }
    }

    // MARK: 3. The process's own settings

    /// A filter to install right before execve (with no_new_privs; see `applyProcess`).
    public private(set) var pendingSeccomp: SeccompFilter?

    /// Installs the seccomp filter `applyProcess` left for the last moment, if any.
    public func installPendingSeccomp() throws {
        guard let filter = pendingSeccomp else { return }
        narrate("prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, {\(filter.instructions.count) BPF instructions})", "linux.seccomp, the last step before execve: from here every system call is checked")
        try filter.install()
        pendingSeccomp = nil
    }

    /// Whether a missing process.cwd is made: for the container's init, as runc makes it;
    /// not for `exec`, where runc refuses a working directory the container lacks.
    public var makesWorkingDirectory = true
    /// Whether setgroups(2) is denied in the user namespace (`/proc/PID/setgroups` reads
    /// `deny`). nil: read `/proc/self/setgroups`, which only a process of the container's
    /// PID namespace can; `exec` is not one (only its child will be), so it reads the
    /// init's file on the host and says so here.
    public var setgroupsDenied: Bool? = nil

    /// chdir(2) to process.cwd (made if missing, for the init), then the CVE-2024-21626
    /// check: a cwd such as /proc/self/fd/N can land on a descriptor the runtime still
    /// holds, outside the root. getcwd(3) then has no path from our root
    /// ("(unreachable)…", or ENOENT): refuse to exec from there.
    func enterWorkingDirectory(_ cwd: String) throws {
        try stage("chdir(\"\(cwd)\")") {
            if makesWorkingDirectory && !FileSystem.isDirectory(FilePath(cwd)) { try FileSystem.makeDirectories(FilePath(cwd)) }
            try FileSystem.changeDirectory(FilePath(cwd))
        }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let inside = getcwd(&buffer, buffer.count) != nil && buffer[0] == CChar(UInt8(ascii: "/"))
        if !inside {
            throw IsolationError("process.cwd \(cwd) leads outside the container", hint: "use a directory inside the root filesystem")
        }
    }

    public func applyProcess() throws {
        let process = config.process
        // Compile the seccomp profile first: a profile that cannot be compiled must stop
        // us before anything else changes.
        let seccomp = try config.linux?.seccomp.map { try SeccompFilter($0) }
        try timed("hostname, rlimits") {
            if let hostname = config.hostname, !hostname.isEmpty {
                guard namespaces.contains(.uts) else {
                    throw IsolationError("config.json sets hostname but has no uts namespace", hint: "add {\"type\": \"uts\"} to linux.namespaces")
                }
                narrate("sethostname(\"\(hostname)\")", "our UTS namespace's name")
                do { try Identity.setHostname(hostname) } catch let error as Errno { throw StageError(stage: "sethostname", errno: error) }
            }
            if let domain = config.domainname, !domain.isEmpty {
                let bytes = Array(domain.utf8).map { CChar(bitPattern: $0) }
                try stage("setdomainname") { _ = try valueOrErrno { setdomainname(bytes, bytes.count) } }
            }
            for limit in process?.rlimits ?? [] {
                narrate("setrlimit(\(limit.type.rawValue), {\(limit.soft), \(limit.hard)})", "process.rlimits")
                if iso_setrlimit(BundleSetup.rlimitNumber(limit.type), limit.soft, limit.hard) != 0 {
                    let error = currentErrno()
                    throw StageError(stage: "setrlimit(\(limit.type.rawValue), soft \(limit.soft), hard \(limit.hard))", errno: error,
                                     detail: error == .notPermitted ? "raising a hard limit needs CAP_SYS_RESOURCE, which this runtime does not have" : nil)
                }
            }
            if let scheduler = process?.scheduler {
                let policies: [OCIConfig.SchedulerPolicy: UInt32] = [.other: 0, .fifo: 1, .roundRobin: 2, .batch: 3, .iso: 4, .idle: 5, .deadline: 6]
                let flagBits: [OCIConfig.SchedulerFlag: UInt64] = [
                    .resetOnFork: 0x01, .reclaim: 0x02, .deadlineOverrun: 0x04, .keepPolicy: 0x08, .keepParameters: 0x10,
                    .utilizationClampMinimum: 0x20, .utilizationClampMaximum: 0x40,
                ]
                let flags = (scheduler.flags ?? []).reduce(UInt64(0)) { $0 | (flagBits[$1] ?? 0) }
                narrate("sched_setattr(0, {\(scheduler.policy.rawValue), nice \(scheduler.nice ?? 0), priority \(scheduler.priority ?? 0)}, 0)", "process.scheduler (sched(7))")
                if iso_sched_setattr(policies[scheduler.policy] ?? 0, flags, scheduler.nice ?? 0, UInt32(max(0, scheduler.priority ?? 0)),
                                     scheduler.runtime ?? 0, scheduler.deadline ?? 0, scheduler.period ?? 0) != 0 {
                    throw StageError(stage: "sched_setattr(\(scheduler.policy.rawValue))", errno: currentErrno())
                }
            }
            if let io = process?.ioPriority {
                let classes: [OCIConfig.IOPriorityClass: Int32] = [.realtime: 1, .bestEffort: 2, .idle: 3]
                narrate("ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(\(io.ioClass.rawValue), \(io.priority)))", "process.ioPriority (ioprio_set(2))")
                guard let level = Int32(exactly: io.priority), (0...7).contains(level) else {
                    throw IsolationError("process.ioPriority.priority \(io.priority) is out of range", hint: "0 (highest) to 7 (lowest)")
                }
                if iso_ioprio_set(classes[io.ioClass] ?? 2, level) != 0 {
                    throw StageError(stage: "ioprio_set(\(io.ioClass.rawValue), \(io.priority))", errno: currentErrno())
                }
            }
            if let personality = config.linux?.personality {
                if let flags = personality.flags, !flags.isEmpty {
                    throw IsolationError("linux.personality.flags \(flags) are not supported", hint: "the spec defines no flags yet: remove them")
                }
                narrate("personality(\(personality.domain == .linux32 ? "PER_LINUX32" : "PER_LINUX"))", "linux.personality: what uname(2) reports, for 32-bit programs")
                if iso_personality(personality.domain == .linux32 ? 0x0008 : 0) != 0 {
                    throw StageError(stage: "personality(\(personality.domain.rawValue))", errno: currentErrno())
                }
            }
            if let score = process?.oomScoreAdj {
                narrate("echo \(score) > /proc/self/oom_score_adj", "process.oomScoreAdj")
                try stage("oom_score_adj \(score)") { try FileSystem.writeFile("/proc/self/oom_score_adj", "\(score)") }
            }
        }
        // The working directory while still root, as runc tries first: the check after it
        // calls getcwd(2), which a profile may deny (once installed below). A directory
        // root may not enter (EACCES, in a user namespace) is tried again as the user.
        var inWorkingDirectory = false
        if let cwd = process?.cwd {
            do {
                try enterWorkingDirectory(cwd)
                inWorkingDirectory = true
            } catch let error as StageError where error.errno == .permissionDenied {}
        }
        // Without a process (create without one; start refuses it) nothing is ever exec'd:
        // the profile is compiled above, to check it, but binds nobody.
        if let seccomp, let process, process.noNewPrivileges != true {
            // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which the next
            // step drops: install it now (as runc does). The profile must then allow the
            // calls that follow (setresuid, capset, prctl, execve).
            try timed("seccomp") {
                narrate("prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, {\(seccomp.instructions.count) BPF instructions})", "linux.seccomp, before capabilities are dropped (no no_new_privs)")
                try seccomp.install()
            }
        }
        try timed("user and capabilities") {
            guard let process else { return }
            if let profile = process.apparmorProfile, !profile.isEmpty {
                // Before no_new_privs and the capability drop, as runc does: the switch
                // happens at our execve.
                narrate("echo \"exec \(profile)\" > /proc/self/attr/apparmor/exec", "process.apparmorProfile: confined from the next execve (aa_change_onexec(3))")
                try AppArmor.changeOnExec(profile, checkEnabled: false)  // create checked, on the host
            }
            let user = process.user
            let capabilities = process.capabilities
            if capabilities != nil { try stage("prctl(PR_SET_KEEPCAPS)") { _ = try valueOrErrno { iso_set_keep_capabilities(1) } } }
            // A set left out of process.capabilities is empty, as in runc: `{}` (podman
            // --cap-drop all) drops the bounding set too. Else root, without no_new_privs,
            // would get the whole bounding set back at execve (capabilities(7)).
            if let bounding = capabilities.map({ $0.bounding ?? [] }) {
                let keep = Set(try bounding.map { try BundleSetup.capability($0) })
                narrate("prctl(PR_CAPBSET_DROP, …) for all but \(bounding.count)", "the bounding set limits what this process and its children can ever gain")
                for value in 0..<Int32(cap_max_bits()) where !keep.contains(value) {
                    if iso_drop_bounding_capability(value) != 0 && Glibc.errno != EINVAL {
                        throw StageError(stage: "prctl(PR_CAPBSET_DROP, \(value))", errno: currentErrno())
                    }
                }
            }
            let groups = (user.additionalGids ?? []).map { gid_t($0) }
            narrate("setgroups(\(groups)); setresgid(\(user.gid)); setresuid(\(user.uid))", "process.user: drop root's identity last, after everything that needs it")
            let denied = setgroupsDenied ?? ((try? FileSystem.readString("/proc/self/setgroups"))?.hasPrefix("deny") == true)
            if !(namespaces.contains(.user) && denied) {
                try stage("setgroups") { _ = try valueOrErrno { groups.withUnsafeBufferPointer { buffer -> Int32 in setgroups(buffer.count, buffer.baseAddress) } } }
            }
            try stage("setresgid(\(user.gid))") { _ = try valueOrErrno { iso_setresgid(user.gid, user.gid, user.gid) } }
            try stage("setresuid(\(user.uid))") { _ = try valueOrErrno { iso_setresuid(user.uid, user.uid, user.uid) } }
            if let capabilities {
                narrate("cap_set_proc(effective \(capabilities.effective?.count ?? 0), permitted \(capabilities.permitted?.count ?? 0), inheritable \(capabilities.inheritable?.count ?? 0)); PR_CAP_AMBIENT_RAISE × \(capabilities.ambient?.count ?? 0)",
                        "process.capabilities with libcap (capabilities(7))")
                try BundleSetup.setCapabilities(capabilities, skipped: { name in
                    narrate("  (ambient \(name) not raised: it is not inheritable)", "runc only warns about this too")
                })
            }
            if let umask = user.umask { _ = Glibc.umask(mode_t(umask)) }
        }
        try timed("no_new_privs, seccomp") {
            if process?.noNewPrivileges == true {
                narrate("prctl(PR_SET_NO_NEW_PRIVS, 1)", "execve can never grant more privileges (setuid bits, file capabilities)")
                try stage("prctl(PR_SET_NO_NEW_PRIVS)") { _ = try valueOrErrno { iso_set_no_new_privs() } }
            }
            if let seccomp, process?.noNewPrivileges == true {
                if !seccomp.unknownNames.isEmpty {
                    narrate("(seccomp: no such syscall here: \(seccomp.unknownNames.prefix(5).joined(separator: ", "))\(seccomp.unknownNames.count > 5 ? ", …" : ""))", "skipped, as runc does")
                }
                if !seccomp.refusedArchitectures.isEmpty {
                    narrate("(seccomp: no syscall table here for \(seccomp.refusedArchitectures.joined(separator: ", ")))", "calls through that ABI are refused, as an unlisted one's are")
                }
                pendingSeccomp = seccomp
            }
        }
        if let cwd = process?.cwd, !inWorkingDirectory { try enterWorkingDirectory(cwd) }
    }

    static func setCapabilities(_ capabilities: OCIConfig.Capabilities, skipped: (String) -> Void = { _ in }) throws {
        guard let caps = cap_init() else { throw StageError(stage: "cap_init", errno: currentErrno()) }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        for (flag, names) in [(CAP_EFFECTIVE, capabilities.effective), (CAP_PERMITTED, capabilities.permitted), (CAP_INHERITABLE, capabilities.inheritable)] {
            var values = try (names ?? []).map { cap_value_t(try capability($0)) }
            if !values.isEmpty && cap_set_flag(caps, flag, Int32(values.count), &values, CAP_SET) != 0 {
                throw StageError(stage: "cap_set_flag", errno: currentErrno())
            }
        }
        if cap_set_proc(caps) != 0 {
            let error = currentErrno()
            // The usual reason: the runtime itself runs without some of them (a sandbox
            // or container around it dropped them from its bounding set), and nobody can
            // grant a capability it does not have (capabilities(7), cap_get_bound(3)).
            let requested = Set((capabilities.effective ?? []) + (capabilities.permitted ?? []) + (capabilities.inheritable ?? []))
            let lacking = requested.sorted().filter { name in (try? capability(name)).map { cap_get_bound(cap_value_t($0)) == 0 } ?? false }
            if error == .notPermitted && !lacking.isEmpty {
                throw IsolationError("process.capabilities asks for \(lacking.joined(separator: ", ")), which this runtime's own bounding set lacks: it cannot grant them",
                                     hint: "leave them out of config.json, or run the runtime where it has them (grep CapBnd /proc/self/status)")
            }
            throw StageError(stage: "cap_set_proc", errno: error, detail: "permitted must hold effective and inheritable")
        }
        _ = iso_clear_ambient_capabilities()
        // The kernel raises an ambient capability only if it is permitted *and*
        // inheritable; `runc spec` lists ambient ones without inheritable, and runc only
        // warns. So do we (in the narration): the rest of the config still holds.
        for name in capabilities.ambient ?? [] where iso_raise_ambient_capability(try capability(name)) != 0 {
            skipped(name)
        }
    }

    /// `CAP_SYS_ADMIN` → its number, with libcap (cap_from_name(3)).
    static func capability(_ name: String) throws -> Int32 {
        guard let value = Capability(name: name) else {
            throw IsolationError("process.capabilities: '\(name)' is not a capability this kernel and libcap know",
                                 hint: "names look like CAP_NET_BIND_SERVICE (capabilities(7))")
        }
        return value.rawValue
    }

    static func rlimitNumber(_ type: OCIConfig.RlimitType) -> Int32 {
        switch type {
        case .cpu: return 0
        case .fileSize: return 1
        case .data: return 2
        case .stack: return 3
        case .core: return 4
        case .residentSet: return 5
        case .processes: return 6
        case .openFiles: return 7
        case .memoryLock: return 8
        case .addressSpace: return 9
        case .locks: return 10
        case .pendingSignals: return 11
        case .messageQueue: return 12
        case .nice: return 13
        case .realtimePriority: return 14
        case .realtimeTime: return 15
        }
    }

    func stage(_ name: String, _ body: () throws -> Void) throws {
        do { try body() } catch let error as Errno { throw StageError(stage: name, errno: error) }
    }

    func describe(_ flags: MountFlags) -> String {
        let names: [(MountFlags, String)] = [(.readOnly, "MS_RDONLY"), (.noSetuid, "MS_NOSUID"), (.noDevices, "MS_NODEV"), (.noExec, "MS_NOEXEC"),
                                             (.strictAccessTime, "MS_STRICTATIME"), (.relativeAccessTime, "MS_RELATIME"), (.noAccessTime, "MS_NOATIME")]
        let present = names.filter { flags.contains($0.0) }.map(\.1)
        return present.isEmpty ? "0" : present.joined(separator: "|")
    }
}

/// CLOCK_MONOTONIC in seconds.
public func monotonicNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
