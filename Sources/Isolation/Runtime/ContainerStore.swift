#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import SystemPackage

/// What the runtime remembers about a container between its commands (`create` exits,
/// `start`, `state`, `kill` and `delete` are separate processes): one folder per
/// container under the runtime's root, `<root>/<id>/`, with `record.json` and, while the
/// container is created but not started, the `exec.fifo` its init waits on.
public struct ContainerRecord: Codable, Sendable {
    public var ociVersion: String
    public var id: String
    public var bundle: String
    public var rootfs: String
    /// The init's PID and its start time (field 22 of /proc/PID/stat), so that a reused
    /// PID is never mistaken for the container.
    public var pid: Int32
    public var startTime: UInt64
    /// When it was created, as seconds since the epoch.
    public var created: Double
    /// The cgroup path below each hierarchy's root.
    public var cgroupPath: String
    public var annotations: [String: String]?
    /// Created with `--no-new-keyring`: `exec` keeps its caller's session keyring too.
    public var noNewKeyring: Bool?
}

public struct ContainerStore: Sendable {
    public let root: FilePath
    public static let defaultRoot = FilePath("/run/\(projectPrefix)")
    /// What this process has already written or read of each container. `run` creates,
    /// starts, waits for and deletes a container in one process, and each step would
    /// otherwise decode the same record and config again (JSON decoding is the largest
    /// part of a runtime call's own work: about 1 ms each time in a release build).
    let memo = Memo()

    final class Memo: @unchecked Sendable {
        // Unchecked: the runtime's commands are single-threaded processes (they fork).
        /// Each record with the inode of the record.json it came from: a container
        /// deleted and made again by another process meanwhile has a new one.
        var records: [String: (record: ContainerRecord, inode: ino_t)] = [:]
        var configs: [String: OCIConfig] = [:]
    }

    public init(root: FilePath = ContainerStore.defaultRoot) { self.root = root }

    public func directory(_ id: String) -> FilePath { root.appending(id) }
    public func fifo(_ id: String) -> FilePath { directory(id).appending("exec.fifo") }

    /// IDs are file names here: letters, digits and `_ + - .`, as runc allows.
    public static func validate(id: String) throws {
        let allowed = id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_+-.".contains($0)) }
        guard !id.isEmpty, allowed, id != ".", id != ".." else {
            throw IsolationError("invalid container ID '\(id)'", hint: "use letters, digits and _ + - . only")
        }
    }

    static let rootHint = "the state folder (--root) must be a folder root can write, on a writable file system"

    /// Makes the container's folder; an existing one is the "already exists" error.
    public func reserve(_ id: String) throws -> FilePath {
        try Self.validate(id: id)
        try inStage("making the state folder \(root) (mkdir)", detail: Self.rootHint) {
            try FileSystem.makeDirectories(root, mode: 0o711)
        }
        let dir = directory(id)
        if mkdir(dir.string, 0o711) != 0 {
            if Glibc.errno == EEXIST { throw IsolationError("container with ID '\(id)' already exists") }
            throw StageError(stage: "making the container's state folder \(dir) (mkdir)", errno: currentErrno(), detail: Self.rootHint)
        }
        return dir
    }

    public func save(_ record: ContainerRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(record)
        let temporary = directory(record.id).appending("record.json.tmp")
        try inStage("writing the container's state \(temporary)", detail: Self.rootHint) {
            try FileSystem.writeFile(temporary, Array(data), mode: 0o600)
            try pathCall(temporary) { rename($0, directory(record.id).appending("record.json").string) }
        }
        memo.records[record.id] = FileSystem.inode(directory(record.id).appending("record.json")).map { (record, $0) }
    }

    public func load(_ id: String) throws -> ContainerRecord {
        try Self.validate(id: id)
        let path = directory(id).appending("record.json")
        // Known already, and still the same file (another process may have deleted it since).
        if let known = memo.records[id], FileSystem.inode(path) == known.inode { return known.record }
        guard let bytes = try? FileSystem.readFile(path) else {
            throw IsolationError("container '\(id)' does not exist", hint: "`list` shows the containers under \(root)")
        }
        do {
            let record = try JSONDecoder().decode(ContainerRecord.self, from: Data(bytes))
            memo.records[id] = FileSystem.inode(path).map { (record, $0) }
            return record
        } catch {
            throw IsolationError("the state of container '\(id)' is unreadable (\(path))", hint: "remove it with `delete --force \(id)`")
        }
    }

    public func remove(_ id: String) throws {
        memo.records[id] = nil
        memo.configs[id] = nil
        try FileSystem.removeTree(directory(id))
    }

    /// The config the container was created with, as saved in its folder at `create`.
    func config(_ id: String) throws -> OCIConfig {
        if let config = memo.configs[id] { return config }
        let config = try OCIConfig.load(bundle: directory(id))
        memo.configs[id] = config
        return config
    }

    /// Keeps the config `create` saved (its bytes, as read from the bundle: unknown fields
    /// and all) and remembers it decoded.
    func saveConfig(_ config: OCIConfig, bytes: [UInt8], id: String) throws {
        try inStage("keeping config.json in \(directory(id))", detail: Self.rootHint) {
            try FileSystem.writeFile(directory(id).appending(OCIConfig.fileName), bytes, mode: 0o600)
        }
        memo.configs[id] = config
    }

    /// The IDs of every container with a folder here.
    public func ids() -> [String] {
        ((try? FileSystem.contentsOfDirectory(root)) ?? []).filter { FileSystem.exists(directory($0).appending("record.json")) }
    }

    /// Where the container is in its lifecycle now (runtime.md "State"): stopped once its
    /// init is gone (or a zombie, or another process with its PID); created while its
    /// init still waits on the exec FIFO; paused while its cgroup is frozen; else running.
    public func status(of record: ContainerRecord) -> OCIState.Status {
        guard let process = ProcessInfoStat(pid: record.pid), process.startTime == record.startTime, process.state != "Z", process.state != "X" else {
            return .stopped
        }
        if let cgroup = try? Cgroup.existing(path: record.cgroupPath), cgroup.isFrozen { return .paused }
        if FileSystem.exists(fifo(record.id), followSymlinks: false) { return .created }
        return .running
    }

    /// The state as the runtime-spec defines it, for `state` and for hooks' stdin.
    public func state(of record: ContainerRecord) -> OCIState {
        let status = status(of: record)
        return OCIState(id: record.id, status: status, pid: status == .stopped ? nil : record.pid,
                        bundle: record.bundle, annotations: record.annotations)
    }
}

/// The fields of /proc/PID/stat a runtime needs (proc(5)).
public struct ProcessInfoStat: Sendable {
    public var state: String
    public var parent: pid_t
    public var startTime: UInt64

    public init?(pid: pid_t) {
        guard pid > 0, let text = try? FileSystem.readString(FilePath("/proc/\(pid)/stat")),
              let close = text.lastIndex(of: ")") else { return nil }
        // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let parent = pid_t(fields[1]), let start = UInt64(fields[19]) else { return nil }
        self.state = String(fields[0])
        self.parent = parent
        self.startTime = start
    }
}
