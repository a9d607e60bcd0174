import SystemPackage

/// A bundle's `config.json`: everything an OCI runtime needs to create a container, as
/// the OCI runtime-spec (versions 1.0 to 1.2) defines it in config.md and config-linux.md.
///
///     let config = try OCIConfig.load(bundle: "/containers/web")
///     print(config.process?.args ?? [])
///
/// Fields the spec marks OPTIONAL are optionals here and are left out of the JSON when
/// nil; REQUIRED ones are not, and a file without them is an error naming the JSON path
/// (`config.json: root.path is required`). Unknown fields, including those of other
/// platforms (`windows`, `solaris`, `vm`, `zos`) and of later spec versions, are ignored.
/// Read next: https://github.com/opencontainers/runtime-spec/blob/v1.2.0/config.md
public struct OCIConfig: Codable, Equatable, Sendable {
    /// The spec version the file follows, in SemVer: `1.2.0` (config.md "Specification version").
    public var ociVersion: String
    /// The container's first process; REQUIRED by `start`, optional for `create` (config.md "Process").
    public var process: Process?
    /// The container's root file system (config.md "Root"; REQUIRED on Linux).
    public var root: Root
    /// The hostname processes see in the UTS namespace (config.md "Hostname").
    public var hostname: String?
    /// The NIS domain name processes see in the UTS namespace (config.md "Domainname", 1.1).
    public var domainname: String?
    /// Mounts made on top of the root, in order (config.md "Mounts").
    public var mounts: [Mount]?
    /// Programs the runtime runs at points of the lifecycle (config.md "POSIX-platform Hooks").
    public var hooks: Hooks?
    /// Free-form metadata; keys in reverse domain notation (config.md "Annotations").
    public var annotations: [String: String]?
    /// Linux-specific configuration (config-linux.md).
    public var linux: Linux?

    /// The spec version this library writes.
    public static let specVersion = "1.2.0"
    /// The name of the file in a bundle.
    public static let fileName = "config.json"

    public init(ociVersion: String = OCIConfig.specVersion, process: Process? = nil, root: Root,
                hostname: String? = nil, domainname: String? = nil, mounts: [Mount]? = nil, hooks: Hooks? = nil,
                annotations: [String: String]? = nil, linux: Linux? = nil) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        self.hooks = hooks
        self.annotations = annotations
        self.linux = linux
    }

    /// Reads `BUNDLE/config.json`. A missing file, malformed JSON, a wrong type, a missing
    /// required field or a value the spec does not allow is an `IsolationError` naming the
    /// file, and the JSON path with its line and column.
    public static func load(bundle: FilePath) throws(IsolationError) -> OCIConfig {
        try read(bundle: bundle).config
    }

    /// `load`, with the bytes it decoded (a runtime keeps them as they were).
    public static func read(bundle: FilePath) throws(IsolationError) -> (config: OCIConfig, bytes: [UInt8]) {
        let path = bundle.appending(fileName)
        let read: [UInt8]?
        do {
            read = try FileSystem.readFile(path, limit: maximumSize)
        } catch let errno as Errno where errno == .noSuchFileOrDirectory {
            if !FileSystem.isDirectory(bundle) {
                throw IsolationError("the bundle \(bundle) does not exist",
                                     hint: "a bundle is a directory holding config.json and the root file system (usually rootfs/)")
            }
            throw IsolationError("\(path) does not exist",
                                 hint: "a bundle needs a config.json; `runc spec` (or chapter-04 spec) writes a default one")
        } catch {
            throw IsolationError("cannot read \(path): \(error)")
        }
        guard let bytes = read else {
            // runc's spec is a few KiB; podman's, with a seccomp profile, about 30 KiB.
            throw IsolationError("\(path) is larger than \(maximumSize >> 20) MiB, the most this runtime reads",
                                 hint: "a config.json is a few KiB; check that it is the bundle's config (not a device or a growing file)")
        }
        return (try decode(json: bytes, source: path.string), bytes)
    }

    /// The largest config.json `read` accepts: 4 MiB.
    public static let maximumSize = 4 << 20

    /// Decodes a config from JSON bytes; errors start with `source`.
    public static func decode(json bytes: [UInt8], source: String = fileName) throws(IsolationError) -> OCIConfig {
        try decodeDocument(json: bytes, source: source)
    }

    /// The config as pretty-printed JSON with sorted keys, nil fields left out.
    public func encodedJSON() -> [UInt8] { documentJSON() }

    /// Checks the rules `load` checks, for a config built in code.
    public func validate(source: String = fileName) throws(IsolationError) { try validateDocument(source: source) }
}

extension OCIConfig {
    /// The container's root file system (config.md "Root").
    public struct Root: Codable, Equatable, Sendable, OCIObject {
        /// The root's directory: absolute, or relative to the bundle (conventionally `rootfs`).
        public var path: String
        /// Makes the root read-only inside the container; false when absent.
        public var readonly: Bool?

        public init(path: String, readonly: Bool? = nil) {
            self.path = path
            self.readonly = readonly
        }
    }

    /// One mount made in the container's mount namespace, in order (config.md "Mounts").
    public struct Mount: Codable, Equatable, Sendable, OCIObject {
        /// Where in the container: an absolute path (relative ones are deprecated, taken from `/`).
        public var destination: String
        /// The file system type, as in /proc/filesystems (`proc`, `tmpfs`); `none` or absent for bind mounts.
        public var type: String?
        /// A device, a directory to bind (absolute or relative to the bundle), or a dummy name.
        public var source: String?
        /// fstab-style options: flags such as `nosuid` and `rbind`, and data such as `mode=755`.
        public var options: [String]?
        /// An ID-mapped mount's UID mapping (1.1, mount_setattr MOUNT_ATTR_IDMAP); needs `gidMappings` too.
        public var uidMappings: [IDMapping]?
        /// An ID-mapped mount's GID mapping (1.1); needs `uidMappings` too.
        public var gidMappings: [IDMapping]?

        public init(destination: String, type: String? = nil, source: String? = nil, options: [String]? = nil,
                    uidMappings: [IDMapping]? = nil, gidMappings: [IDMapping]? = nil) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
            self.uidMappings = uidMappings
            self.gidMappings = gidMappings
        }
    }

    /// A range of user or group IDs mapped between a namespace and its parent
    /// (config-linux.md "User namespace mappings"): container IDs `containerID ..<
    /// containerID + size` are host IDs `hostID ..< hostID + size`.
    public struct IDMapping: Codable, Equatable, Sendable, OCIObject {
        /// The first ID inside the container.
        public var containerID: UInt32
        /// The first ID on the host that `containerID` stands for.
        public var hostID: UInt32
        /// How many consecutive IDs are mapped.
        public var size: UInt32

        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }
    }

    /// Programs run at points of the container's lifecycle (config.md "POSIX-platform Hooks").
    public struct Hooks: Codable, Equatable, Sendable, OCIObject {
        /// DEPRECATED since 1.0.2: after `create`'s environment exists, before pivot_root, in the runtime namespace.
        public var prestart: [Hook]?
        /// During `create`, after the environment exists and before pivot_root, in the runtime namespace (1.0.2).
        public var createRuntime: [Hook]?
        /// During `create`, before pivot_root, in the container namespace (1.0.2).
        public var createContainer: [Hook]?
        /// During `start`, before the user's program runs, in the container namespace (1.0.2).
        public var startContainer: [Hook]?
        /// After the user's program started, before `start` returns, in the runtime namespace.
        public var poststart: [Hook]?
        /// After the container is deleted, before `delete` returns, in the runtime namespace.
        public var poststop: [Hook]?

        public init(prestart: [Hook]? = nil, createRuntime: [Hook]? = nil, createContainer: [Hook]? = nil,
                    startContainer: [Hook]? = nil, poststart: [Hook]? = nil, poststop: [Hook]? = nil) {
            self.prestart = prestart
            self.createRuntime = createRuntime
            self.createContainer = createContainer
            self.startContainer = startContainer
            self.poststart = poststart
            self.poststop = poststop
        }

        /// Each list with its JSON name, in lifecycle order.
        var all: [(name: String, hooks: [Hook]?)] {
            [("prestart", prestart), ("createRuntime", createRuntime), ("createContainer", createContainer),
             ("startContainer", startContainer), ("poststart", poststart), ("poststop", poststop)]
        }
    }

    /// One hook: a program the runtime runs with the container's state on its stdin
    /// (config.md "POSIX-platform Hooks").
    public struct Hook: Codable, Equatable, Sendable, OCIObject {
        /// The program: an absolute path, resolved in the runtime namespace (execv's path).
        public var path: String
        /// Its argv, including argv[0].
        public var args: [String]?
        /// Its environment, `NAME=value`.
        public var env: [String]?
        /// Seconds before the hook is aborted; greater than zero when set.
        public var timeout: Int?

        public init(path: String, args: [String]? = nil, env: [String]? = nil, timeout: Int? = nil) {
            self.path = path
            self.args = args
            self.env = env
            self.timeout = timeout
        }
    }
}

extension OCIConfig: OCIDocument {
    static var specSections: [(field: String, section: String)] {
        [
            ("", "config.md"),
            ("ociVersion", "config.md#configSpecificationVersion"),
            ("root", "config.md#configRoot"),
            ("mounts", "config.md#configMounts"),
            ("process", "config.md#configProcess"),
            ("process.user", "config.md#configUser"),
            ("process.rlimits", "config.md#configPOSIXProcess"),
            ("process.capabilities", "config.md#configLinuxProcess"),
            ("process.noNewPrivileges", "config.md#configLinuxProcess"),
            ("process.apparmorProfile", "config.md#configLinuxProcess"),
            ("process.oomScoreAdj", "config.md#configLinuxProcess"),
            ("process.scheduler", "config.md#configLinuxProcess"),
            ("process.selinuxLabel", "config.md#configLinuxProcess"),
            ("process.ioPriority", "config.md#configLinuxProcess"),
            ("hostname", "config.md#configHostname"),
            ("domainname", "config.md#configDomainname"),
            ("hooks", "config.md#configHooks"),
            ("annotations", "config.md#configAnnotations"),
            ("linux", "config-linux.md"),
            ("linux.namespaces", "config-linux.md#configLinuxNamespaces"),
            ("linux.uidMappings", "config-linux.md#configLinuxUserNamespaceMappings"),
            ("linux.gidMappings", "config-linux.md#configLinuxUserNamespaceMappings"),
            ("linux.timeOffsets", "config-linux.md#configLinuxTimeOffset"),
            ("linux.devices", "config-linux.md#configLinuxDevices"),
            ("linux.cgroupsPath", "config-linux.md#configLinuxCgroupsPath"),
            ("linux.resources", "config-linux.md#configLinuxControlGroups"),
            ("linux.resources.devices", "config-linux.md#configLinuxDeviceAllowedlist"),
            ("linux.resources.memory", "config-linux.md#configLinuxMemory"),
            ("linux.resources.cpu", "config-linux.md#configLinuxCPU"),
            ("linux.resources.blockIO", "config-linux.md#configLinuxBlockIO"),
            ("linux.resources.hugepageLimits", "config-linux.md#configLinuxHugePageLimits"),
            ("linux.resources.network", "config-linux.md#configLinuxNetwork"),
            ("linux.resources.pids", "config-linux.md#configLinuxPIDS"),
            ("linux.resources.rdma", "config-linux.md#configLinuxRDMA"),
            ("linux.resources.unified", "config-linux.md#configLinuxUnified"),
            ("linux.intelRdt", "config-linux.md#configLinuxIntelRdt"),
            ("linux.sysctl", "config-linux.md#configLinuxSysctl"),
            ("linux.seccomp", "config-linux.md#configLinuxSeccomp"),
            ("linux.rootfsPropagation", "config-linux.md#configLinuxRootfsMountPropagation"),
            ("linux.maskedPaths", "config-linux.md#configLinuxMaskedPaths"),
            ("linux.readonlyPaths", "config-linux.md#configLinuxReadonlyPaths"),
            ("linux.mountLabel", "config-linux.md#configLinuxMountLabel"),
            ("linux.personality", "config-linux.md#configLinuxPersonality"),
        ]
    }

    /// The spec's rules beyond each field's type. Each is a MUST in the spec.
    func checkRules() throws(OCIFieldError) {
        let top = JSONPath()
        if !ociVersion.isSemanticVersion {
            throw OCIFieldError(path: top.appending("ociVersion"), problem: .invalid("'\(ociVersion)' is not a SemVer version"),
                                hint: "write the spec version the file follows, such as \"\(OCIConfig.specVersion)\"")
        }
        try process?.checkRules(at: top.appending("process"))
        for (index, mount) in (mounts ?? []).enumerated() where (mount.uidMappings == nil) != (mount.gidMappings == nil) {
            let present = mount.uidMappings == nil ? "gidMappings" : "uidMappings"
            let absent = mount.uidMappings == nil ? "uidMappings" : "gidMappings"
            throw OCIFieldError(path: top.appending("mounts").appending(index).appending(absent), problem: .missing,
                                hint: "an ID-mapped mount gives both uidMappings and gidMappings; this one has only \(present)")
        }
        for (name, list) in hooks?.all ?? [] {
            for (index, hook) in (list ?? []).enumerated() {
                let path = top.appending("hooks").appending(name).appending(index)
                if !hook.path.hasPrefix("/") {
                    throw OCIFieldError(path: path.appending("path"), problem: .invalid("'\(hook.path)' is not an absolute path"),
                                        hint: "a hook's path starts with /, resolved in the runtime's mount namespace")
                }
                if let timeout = hook.timeout, timeout <= 0 {
                    throw OCIFieldError(path: path.appending("timeout"), problem: .invalid("\(timeout) is not a number of seconds"),
                                        hint: "a timeout is greater than zero; leave it out for none")
                }
            }
        }
        try linux?.checkRules(at: top.appending("linux"))
        try checkBounds()
    }
}
