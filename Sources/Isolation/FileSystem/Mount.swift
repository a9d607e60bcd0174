import CIsolation
import Glibc
import SystemPackage

/// mount(2) flags, named after what they do (`MountFlags.recursive` is MS_REC).
public struct MountFlags: OptionSet, Sendable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }

    public static let readOnly = MountFlags(rawValue: UInt(MS_RDONLY))
    public static let noSetuid = MountFlags(rawValue: UInt(MS_NOSUID))
    public static let noDevices = MountFlags(rawValue: UInt(MS_NODEV))
    public static let noExec = MountFlags(rawValue: UInt(MS_NOEXEC))
    public static let remount = MountFlags(rawValue: UInt(MS_REMOUNT))
    public static let bind = MountFlags(rawValue: UInt(MS_BIND))
    public static let move = MountFlags(rawValue: UInt(MS_MOVE))
    public static let recursive = MountFlags(rawValue: UInt(MS_REC))
    /// Propagation types (mount_namespaces(7)).
    public static let `private` = MountFlags(rawValue: UInt(MS_PRIVATE))
    public static let slave = MountFlags(rawValue: UInt(MS_SLAVE))
    public static let shared = MountFlags(rawValue: UInt(MS_SHARED))
    public static let unbindable = MountFlags(rawValue: UInt(MS_UNBINDABLE))
    public static let noAccessTime = MountFlags(rawValue: UInt(MS_NOATIME))
    public static let relativeAccessTime = MountFlags(rawValue: UInt(MS_RELATIME))
    public static let strictAccessTime = MountFlags(rawValue: UInt(MS_STRICTATIME))
    public static let synchronous = MountFlags(rawValue: UInt(MS_SYNCHRONOUS))
    public static let noDirectoryAccessTime = MountFlags(rawValue: UInt(MS_NODIRATIME))
}

public enum Mount {
    /// mount(2).
    public static func mount(
        source: String, target: FilePath, type: String? = nil,
        flags: MountFlags = [], data: String? = nil
    ) throws {
        let result = target.withPlatformString { t in
            withOptionalCString(type) { fstype in
                withOptionalCString(data) { d in
                    Glibc.mount(source, t, fstype, flags.rawValue, d.map { UnsafeRawPointer($0) })
                }
            }
        }
        if result != 0 { throw currentErrno() }
    }

    /// umount2(2); `detach` is MNT_DETACH (a lazy unmount: gone from the tree now,
    /// cleaned up by the kernel when no longer busy).
    public static func unmount(_ target: FilePath, detach: Bool = false) throws {
        try pathCall(target) { umount2($0, detach ? Int32(MNT_DETACH) : 0) }
    }

    /// pivot_root(2): make `newRoot` the root mount of this mount namespace and put the
    /// old root at `putOld`, which must be under `newRoot`.
    public static func pivotRoot(newRoot: FilePath, putOld: FilePath) throws {
        let result = newRoot.withPlatformString { n in putOld.withPlatformString { o in iso_pivot_root(n, o) } }
        if result != 0 { throw currentErrno() }
    }
}

/// One line of /proc/PID/mountinfo (proc(5)).
public struct MountInfo: Sendable, Equatable {
    public var mountID: Int
    public var parentID: Int
    public var root: String
    public var mountPoint: String
    public var options: String
    public var propagation: [String]
    public var fileSystemType: String
    public var source: String

    /// Parses the mount table of `pid` (default: ourselves).
    public static func table(of pid: pid_t? = nil) throws -> [MountInfo] {
        let path = pid.map { "/proc/\($0)/mountinfo" } ?? "/proc/self/mountinfo"
        return parse(try FileSystem.readString(FilePath(path)))
    }

    /// Parses mountinfo text: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`.
    public static func parse(_ text: String) -> [MountInfo] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count >= 10, let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 2 < fields.count,
                  let id = Int(fields[0]), let parent = Int(fields[1]) else { return nil }
            return MountInfo(
                mountID: id, parentID: parent,
                root: unescape(fields[3]), mountPoint: unescape(fields[4]), options: fields[5],
                propagation: Array(fields[6..<dash]),
                fileSystemType: fields[dash + 1], source: unescape(fields[dash + 2]))
        }
    }

    /// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
               let value = UInt8(String(decoding: utf8[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
