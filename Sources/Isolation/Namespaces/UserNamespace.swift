import Glibc
import SystemPackage

/// One line of a `/proc/PID/uid_map` or `gid_map` (user_namespaces(7)): IDs
/// `inside ..< inside+count` in the namespace are `outside ..< outside+count` in the
/// parent namespace.
public struct IDMapping: Sendable, Equatable, CustomStringConvertible {
    public var inside: UInt32
    public var outside: UInt32
    public var count: UInt32

    public init(inside: UInt32, outside: UInt32, count: UInt32 = 1) {
        self.inside = inside
        self.outside = outside
        self.count = count
    }

    /// The line the kernel expects: `0 1000 1`.
    public var description: String { "\(inside) \(outside) \(count)" }

    /// The host ID that `id` inside maps to, if it is mapped.
    public func outsideID(of id: UInt32) -> UInt32? {
        guard id >= inside, id - inside < count else { return nil }
        return outside + (id - inside)
    }
}

/// The ID maps of a user namespace, written by its *parent* while the child waits
/// (`SpawnOptions.waitForRelease`): until they are written, the child's IDs are the
/// overflow IDs (65534, "nobody") and execve(2) would drop its capabilities.
public struct UserNamespace: Sendable, Equatable {
    public var uidMap: [IDMapping]
    public var gidMap: [IDMapping]

    public init(uidMap: [IDMapping], gidMap: [IDMapping]) {
        self.uidMap = uidMap
        self.gidMap = gidMap
    }

    /// The maps this project uses: our own uid and gid become 0 inside (`0 <uid> 1`),
    /// for an unprivileged user and for root alike.
    ///
    /// - For an unprivileged user it is the only map the kernel allows without help from
    ///   the setuid helpers newuidmap(1)/newgidmap(1) and /etc/subuid.
    /// - For root it is `0 0 1`: files the container's root creates are root's on the host
    ///   too, but its capabilities count only in namespaces its user namespace owns (it
    ///   cannot load a module, set the host's clock or mount over the host's files).
    ///   A range such as `0 100000 65536` would need the child to setuid(0) *inside*
    ///   before execve: the map does not change the child's credentials, and an unmapped
    ///   uid (kuid 0 shows as 65534 there) loses every capability at execve.
    public static func forInvokingUser() -> UserNamespace {
        UserNamespace(uidMap: [IDMapping(inside: 0, outside: geteuid())],
                      gidMap: [IDMapping(inside: 0, outside: getegid())])
    }

    /// Writes the maps of the user namespace `pid` is in, in the order the kernel needs:
    ///
    /// 1. `setgroups` ← `deny`: since Linux 3.19 an unprivileged process may write a
    ///    gid_map only after denying setgroups(2) in the namespace — otherwise it could
    ///    drop a supplementary group that a file's permissions deny it (CVE-2014-8989).
    /// 2. `uid_map`, then 3. `gid_map`: each may be written once, in one write(2).
    ///
    /// `narrate` hears each write as it is made.
    public func write(to pid: pid_t, narrate: (String, String) -> Void = { _, _ in }) throws {
        let base = FilePath("/proc/\(pid)")
        narrate("write(\"/proc/\(pid)/setgroups\", \"deny\")",
                "since Linux 3.19 a gid_map written without privilege requires setgroups(2) to be off (user_namespaces(7))")
        try writeOnce(base.appending("setgroups"), "deny", stage: "write /proc/\(pid)/setgroups")
        let uids = uidMap.map(\.description).joined(separator: "\n")
        narrate("write(\"/proc/\(pid)/uid_map\", \"\(uids)\")",
                "uid \(uidMap.first.map { "\($0.inside) inside is \($0.outside) on the host" } ?? "map")")
        try writeOnce(base.appending("uid_map"), uids + "\n", stage: "write /proc/\(pid)/uid_map")
        let gids = gidMap.map(\.description).joined(separator: "\n")
        narrate("write(\"/proc/\(pid)/gid_map\", \"\(gids)\")", "the same for groups")
        try writeOnce(base.appending("gid_map"), gids + "\n", stage: "write /proc/\(pid)/gid_map")
    }

    /// The maps a process's user namespace has, as the kernel shows them.
    public static func maps(of pid: pid_t? = nil) throws -> UserNamespace {
        let base = pid.map { "/proc/\($0)" } ?? "/proc/self"
        return UserNamespace(uidMap: parse(try FileSystem.readString(FilePath(base + "/uid_map"))),
                             gidMap: parse(try FileSystem.readString(FilePath(base + "/gid_map"))))
    }

    /// Parses uid_map text: lines of three numbers, with any spacing.
    public static func parse(_ text: String) -> [IDMapping] {
        text.split(separator: "\n").compactMap { line in
            let numbers = line.split(separator: " ", omittingEmptySubsequences: true).compactMap { UInt32($0) }
            guard numbers.count == 3 else { return nil }
            return IDMapping(inside: numbers[0], outside: numbers[1], count: numbers[2])
        }
    }

    /// One write(2), not truncating (these files refuse O_TRUNC) and not retried in parts.
    private func writeOnce(_ path: FilePath, _ text: String, stage: String) throws {
        do {
            let fd = try FileDescriptor.open(path, .writeOnly, options: .closeOnExec)
            defer { try? fd.close() }
            let bytes = Array(text.utf8)
            let written = try bytes.withUnsafeBytes { try fd.write($0) }
            if written != bytes.count { throw Errno.invalidArgument }
        } catch let error as Errno {
            throw StageError(stage: stage, errno: error, detail: error == .notPermitted || error == .permissionDenied
                ? "the kernel refused this map; `doctor` checks whether user namespaces are restricted here" : nil)
        }
    }
}
