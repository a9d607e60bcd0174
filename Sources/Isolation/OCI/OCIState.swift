import SystemPackage

/// The state of a container, as `runc state` prints it and as hooks read it on their
/// stdin (runtime.md "State"). Runtimes keep it in a file of their own; this project
/// keeps it as `state.json`.
///
///     {"ociVersion": "1.2.0", "id": "web", "status": "running", "pid": 4422, "bundle": "/containers/web"}
///
/// Other fields a runtime adds (runc adds `rootfs`, `created`, `owner`) are ignored.
public struct OCIState: Codable, Equatable, Sendable {
    /// The spec version the state follows.
    public var ociVersion: String
    /// The container's ID, unique on this host.
    public var id: String
    /// Where the container is in its lifecycle.
    public var status: Status
    /// The container process's ID as the runtime sees it; REQUIRED on Linux when
    /// `created` or `running`.
    public var pid: Int32?
    /// The bundle directory: an absolute path.
    public var bundle: String
    /// The annotations of the container's config.
    public var annotations: [String: String]?

    /// The name of the file this project keeps a container's state in.
    public static let fileName = "state.json"

    public init(ociVersion: String = OCIConfig.specVersion, id: String, status: Status, pid: Int32? = nil,
                bundle: String, annotations: [String: String]? = nil) {
        self.ociVersion = ociVersion
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
        self.annotations = annotations
    }

    /// Where a container is in its lifecycle (runtime.md "State" and "Lifecycle").
    ///
    /// The spec names four states and lets a runtime add its own for "new runtime states
    /// not defined above"; runc adds `paused` (its processes frozen by the cgroup freezer),
    /// and so does this type. The spec's JSON schema lists only the four.
    public enum Status: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        /// `create` is under way.
        case creating
        /// `create` finished; the user's program has not run yet (its process waits).
        case created
        /// The user's program runs.
        case running
        /// The container process has exited.
        case stopped
        /// runc's extension: the processes are frozen (`runc pause`).
        case paused

        static let noun = "a container status"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// Reads a state file.
    public static func load(_ path: FilePath) throws(IsolationError) -> OCIState {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(path)
        } catch let errno as Errno where errno == .noSuchFileOrDirectory {
            throw IsolationError("\(path) does not exist", hint: "is the container created? `create` writes its state")
        } catch {
            throw IsolationError("cannot read \(path): \(error)")
        }
        return try decode(json: bytes, source: path.string)
    }

    /// Decodes a state from JSON bytes; errors start with `source`.
    public static func decode(json bytes: [UInt8], source: String = fileName) throws(IsolationError) -> OCIState {
        try decodeDocument(json: bytes, source: source)
    }

    /// The state as pretty-printed JSON with sorted keys, nil fields left out.
    public func encodedJSON() -> [UInt8] { documentJSON() }

    /// Checks the rules `load` checks, for a state built in code.
    public func validate(source: String = fileName) throws(IsolationError) { try validateDocument(source: source) }
}

extension OCIState: OCIDocument {
    static var specSections: [(field: String, section: String)] { [("", "runtime.md#runtimeState")] }

    func checkRules() throws(OCIFieldError) {
        if !ociVersion.isSemanticVersion {
            throw OCIFieldError(path: JSONPath().appending("ociVersion"), problem: .invalid("'\(ociVersion)' is not a SemVer version"),
                                hint: "write the spec version the state follows, such as \"\(OCIConfig.specVersion)\"")
        }
        if id.isEmpty {
            throw OCIFieldError(path: JSONPath().appending("id"), problem: .invalid("is empty"), hint: "a container has a name")
        }
        if pid == nil && (status == .created || status == .running) {
            throw OCIFieldError(path: JSONPath().appending("pid"), problem: .missing,
                                hint: "a \(status.rawValue) container has a process; its pid is part of the state")
        }
        if let pid, pid < 0 {
            throw OCIFieldError(path: JSONPath().appending("pid"), problem: .invalid("\(pid) is not a process ID"))
        }
        if !bundle.hasPrefix("/") {
            throw OCIFieldError(path: JSONPath().appending("bundle"), problem: .invalid("'\(bundle)' is not an absolute path"),
                                hint: "the state names the bundle by its absolute path")
        }
    }
}
