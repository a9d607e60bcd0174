/// An image's configuration (image-spec config.md): how to run it, and the digests of its
/// layers once uncompressed (`rootfs.diff_ids`). Docker's `container.image.v1` is the same.
public struct ImageConfig: Codable, Equatable, Sendable {
    public var created: String?
    public var author: String?
    public var architecture: String
    public var os: String
    public var variant: String?
    public var config: Execution?
    public var rootfs: RootFS
    public var history: [History]?

    public init(architecture: String, os: String = "linux", config: Execution?, rootfs: RootFS, history: [History]? = nil, created: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.config = config
        self.rootfs = rootfs
        self.history = history
        self.created = created
    }

    /// What conversion.md turns into the runtime config's process and annotations.
    public struct Execution: Codable, Equatable, Sendable {
        public var user: String?
        public var exposedPorts: [String: Empty]?
        public var env: [String]?
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var volumes: [String: Empty]?
        public var workingDir: String?
        public var labels: [String: String]?
        public var stopSignal: String?

        enum CodingKeys: String, CodingKey {
            case user = "User", exposedPorts = "ExposedPorts", env = "Env", entrypoint = "Entrypoint", cmd = "Cmd"
            case volumes = "Volumes", workingDir = "WorkingDir", labels = "Labels", stopSignal = "StopSignal"
        }

        public init(user: String? = nil, env: [String]? = nil, entrypoint: [String]? = nil, cmd: [String]? = nil,
                    workingDir: String? = nil, labels: [String: String]? = nil, exposedPorts: [String: Empty]? = nil) {
            self.user = user
            self.env = env
            self.entrypoint = entrypoint
            self.cmd = cmd
            self.workingDir = workingDir
            self.labels = labels
            self.exposedPorts = exposedPorts
        }
    }

    /// `{}`: the value of each key in ExposedPorts and Volumes.
    public struct Empty: Codable, Equatable, Sendable {
        public init() {}
    }

    public struct RootFS: Codable, Equatable, Sendable {
        public var type: String
        public var diffIDs: [Digest]

        enum CodingKeys: String, CodingKey {
            case type, diffIDs = "diff_ids"
        }

        public init(diffIDs: [Digest]) {
            type = "layers"
            self.diffIDs = diffIDs
        }
    }

    public struct History: Codable, Equatable, Sendable {
        public var created: String?
        public var createdBy: String?
        public var comment: String?
        public var emptyLayer: Bool?

        enum CodingKeys: String, CodingKey {
            case created, createdBy = "created_by", comment, emptyLayer = "empty_layer"
        }

        public init(created: String? = nil, createdBy: String? = nil, comment: String? = nil) {
            self.created = created
            self.createdBy = createdBy
            self.comment = comment
        }
    }
}
