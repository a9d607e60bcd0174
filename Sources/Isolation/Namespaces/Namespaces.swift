import CIsolation
import Glibc
import SystemPackage

/// The eight kinds of Linux namespace (namespaces(7)), as an option set of their
/// `CLONE_NEW*` flags.
///
///     let kinds: Namespaces = [.uts, .pid, .mount]
public struct Namespaces: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Hostname and NIS domain name (`CLONE_NEWUTS`, Linux 2.6.19).
    public static let uts = Namespaces(rawValue: Int32(ISO_CLONE_NEWUTS))
    /// Process IDs: the first process is PID 1 (`CLONE_NEWPID`, Linux 2.6.24).
    public static let pid = Namespaces(rawValue: Int32(ISO_CLONE_NEWPID))
    /// The mount table (`CLONE_NEWNS`, Linux 2.4.19, the first namespace).
    public static let mount = Namespaces(rawValue: Int32(ISO_CLONE_NEWNS))
    /// System V IPC objects and POSIX message queues (`CLONE_NEWIPC`, Linux 2.6.19).
    public static let ipc = Namespaces(rawValue: Int32(ISO_CLONE_NEWIPC))
    /// Network devices, addresses, routes, ports (`CLONE_NEWNET`, Linux 2.6.29).
    public static let network = Namespaces(rawValue: Int32(ISO_CLONE_NEWNET))
    /// User and group IDs and capabilities (`CLONE_NEWUSER`, Linux 3.8).
    public static let user = Namespaces(rawValue: Int32(ISO_CLONE_NEWUSER))
    /// The cgroup root a process sees (`CLONE_NEWCGROUP`, Linux 4.6).
    public static let cgroup = Namespaces(rawValue: Int32(ISO_CLONE_NEWCGROUP))
    /// Offsets of CLOCK_MONOTONIC and CLOCK_BOOTTIME (`CLONE_NEWTIME`, Linux 5.6).
    public static let time = Namespaces(rawValue: Int32(ISO_CLONE_NEWTIME))

    /// Every kind, in the order a lesson presents them.
    public static let allKinds: [Namespaces] = [.uts, .pid, .mount, .ipc, .network, .user, .cgroup, .time]
    public static let all: Namespaces = Namespaces(allKinds)

    /// The file name under `/proc/PID/ns/`.
    public var procName: String {
        switch self {
        case .uts: return "uts"
        case .pid: return "pid"
        case .mount: return "mnt"
        case .ipc: return "ipc"
        case .network: return "net"
        case .user: return "user"
        case .cgroup: return "cgroup"
        case .time: return "time"
        default: return kinds.map(\.procName).joined(separator: ",")
        }
    }

    /// The name people type on a command line (`net`, not `network`).
    public var shortName: String {
        switch self {
        case .mount: return "mount"
        case .network: return "net"
        default: return procName
        }
    }

    /// The `CLONE_NEW*` constant's name, for lessons that print the system call.
    public var cloneFlagName: String {
        switch self {
        case .uts: return "CLONE_NEWUTS"
        case .pid: return "CLONE_NEWPID"
        case .mount: return "CLONE_NEWNS"
        case .ipc: return "CLONE_NEWIPC"
        case .network: return "CLONE_NEWNET"
        case .user: return "CLONE_NEWUSER"
        case .cgroup: return "CLONE_NEWCGROUP"
        case .time: return "CLONE_NEWTIME"
        default: return kinds.map(\.cloneFlagName).joined(separator: "|")
        }
    }

    /// The single kinds this set holds, in `allKinds` order.
    public var kinds: [Namespaces] { Namespaces.allKinds.filter { contains($0) } }

    public var description: String { kinds.map(\.shortName).joined(separator: ",") }

    /// Parses `uts,pid,mnt,net` (also `mount`, `network`, `all`). Unknown names are an
    /// error that lists the valid ones.
    public init(parsing text: String) throws {
        var result: Namespaces = []
        for word in text.split(separator: ",").map({ $0.trimmingSpaces().lowercased() }) where !word.isEmpty {
            switch word {
            case "all": result.formUnion(.all)
            case "uts": result.insert(.uts)
            case "pid": result.insert(.pid)
            case "mnt", "mount", "ns": result.insert(.mount)
            case "ipc": result.insert(.ipc)
            case "net", "network": result.insert(.network)
            case "user", "userns": result.insert(.user)
            case "cgroup": result.insert(.cgroup)
            case "time": result.insert(.time)
            default:
                throw IsolationError(
                    "unknown namespace '\(word)'",
                    hint: "use a comma-separated list of: uts, pid, mount, ipc, net, user, cgroup, time")
            }
        }
        self = result
    }

    /// The kinds this kernel has: those with an entry under `/proc/self/ns`.
    public static func supportedByKernel() -> Namespaces {
        Namespaces(allKinds.filter { access("/proc/self/ns/\($0.procName)", F_OK) == 0 })
    }

    /// The identity (inode number) of each namespace `pid` is in, read from
    /// `/proc/PID/ns/*` (which are symlinks such as `uts:[4026531838]`).
    public static func identity(of pid: pid_t? = nil) -> [String: UInt64] {
        let base = pid.map { "/proc/\($0)/ns" } ?? "/proc/self/ns"
        var result: [String: UInt64] = [:]
        for kind in allKinds {
            var info = stat()
            if stat("\(base)/\(kind.procName)", &info) == 0 { result[kind.procName] = UInt64(info.st_ino) }
        }
        return result
    }

    /// Joins the namespace that `path` (a `/proc/PID/ns/KIND` file or a bind mount of one)
    /// refers to, with setns(2). Joining a PID namespace affects children only.
    public static func join(path: FilePath, kind: Namespaces = []) throws {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec) } catch let error as Errno {
            throw StageError(stage: "open(\"\(path)\") to join its namespace", errno: error)
        }
        defer { try? fd.close() }
        if iso_setns(fd.rawValue, kind.rawValue) != 0 {
            throw StageError(stage: "setns(\(path))", errno: currentErrno())
        }
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

extension Namespaces {
    init(_ list: [Namespaces]) {
        self = list.reduce(into: Namespaces()) { $0.formUnion($1) }
    }
}
