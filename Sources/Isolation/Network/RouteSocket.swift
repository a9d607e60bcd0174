import CIsolation
import Glibc
import SystemPackage

/// A NETLINK_ROUTE socket: how `ip` talks to the kernel's network stack (rtnetlink(7)).
///
/// A request is one message; with NLM_F_ACK the kernel answers with an NLMSG_ERROR whose
/// error is 0 for success or a negative errno. A dump (NLM_F_DUMP) is answered by many
/// messages, the last one NLMSG_DONE.
///
/// **Which namespace.** A socket belongs for its whole life to the network namespace of
/// the thread that created it: every link, address and route it names is in that
/// namespace, wherever the process moves later. So acting inside a container's namespace
/// needs no child process: enter the namespace, create the socket, come back
/// (`RouteSocket.open(in:)`); this is what `ip -n NAME` and `ip netns exec` do (they
/// stay). setns(2) moves only the calling thread, so the process that does it must be
/// single-threaded (this project's rule for every fork/unshare/setns).
public final class RouteSocket {
    public let descriptor: Int32
    var sequence: UInt32 = 0

    /// socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) in the calling thread's network namespace.
    public init() throws {
        do {
            descriptor = try valueOrErrno {
                socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), RTNL.NETLINK_ROUTE)
            }
        } catch let error as Errno {
            throw StageError(stage: "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)", errno: error)
        }
    }

    /// A socket in the network namespace `namespace` (`/proc/PID/ns/net`, or a bind mount
    /// such as `/run/netns/NAME`): setns(2) there, socket(2), setns back.
    public static func open(in namespace: FilePath) throws -> RouteSocket {
        try NetworkNamespace.entered(namespace) { try RouteSocket() }
    }

    deinit { close(descriptor) }

    /// Sends `message` with NLM_F_ACK and waits for the kernel's answer. `operation` names
    /// it for errors: the `ip` command it replaces.
    public func request(_ message: NetlinkMessage, operation: String) throws {
        _ = try exchange(message, flags: RTNL.NLM_F_ACK, operation: operation)
    }

    /// Sends a dump request and collects every answer's payload (family header and attributes).
    public func dump(_ message: NetlinkMessage, operation: String) throws -> [(type: UInt16, payload: ArraySlice<UInt8>)] {
        try exchange(message, flags: RTNL.NLM_F_DUMP, operation: operation)
    }

    /// Sends a GET for one object and returns its answer.
    func get(_ message: NetlinkMessage, operation: String) throws -> ArraySlice<UInt8> {
        guard let first = try exchange(message, flags: 0, operation: operation).first else {
            throw IsolationError("\(operation): the kernel sent no answer")
        }
        return first.payload
    }

    private func exchange(_ message: NetlinkMessage, flags: UInt16, operation: String) throws -> [(type: UInt16, payload: ArraySlice<UInt8>)] {
        sequence &+= 1
        var message = message
        message.flags |= RTNL.NLM_F_REQUEST | flags
        let bytes = message.encoded(sequence: sequence)
        let stage = "\(Self.name(of: message.type)) (\(operation))"
        do {
            let sent = try valueOrErrno { bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) } }
            guard sent == bytes.count else { throw IsolationError("\(stage): short send") }
        } catch let error as Errno {
            throw StageError(stage: stage, errno: error)
        }
        var answers: [(type: UInt16, payload: ArraySlice<UInt8>)] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count: Int
            do {
                count = try valueOrErrno { buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) } }
            } catch let error as Errno {
                throw StageError(stage: stage, errno: error)
            }
            let received = buffer[0..<count]
            var offset = 0
            while offset + 16 <= count {
                let length = Int(received.uint32(at: offset))
                let type = received.uint16(at: offset + 4)
                let answerSequence = received.uint32(at: offset + 8)
                guard length >= 16, offset + length <= count else { break }
                let payload = received[(offset + 16)..<(offset + length)]
                offset += (length + 3) & ~3
                guard answerSequence == sequence else { continue }   // a late answer to an earlier request
                switch type {
                case RTNL.NLMSG_DONE:
                    return answers
                case RTNL.NLMSG_ERROR:
                    let code = Int32(bitPattern: payload.uint32(at: payload.startIndex))
                    if code != 0 { throw StageError(stage: stage, errno: Errno(rawValue: -code)) }
                    return answers   // the ACK
                default:
                    answers.append((type, payload))
                    if flags & RTNL.NLM_F_DUMP == 0 && flags & RTNL.NLM_F_ACK == 0 { return answers }
                }
            }
        }
    }

    static func name(of type: UInt16) -> String {
        switch type {
        case RTNL.RTM_NEWLINK: return "RTM_NEWLINK"
        case RTNL.RTM_DELLINK: return "RTM_DELLINK"
        case RTNL.RTM_GETLINK: return "RTM_GETLINK"
        case RTNL.RTM_NEWADDR: return "RTM_NEWADDR"
        case RTNL.RTM_GETADDR: return "RTM_GETADDR"
        case RTNL.RTM_NEWROUTE: return "RTM_NEWROUTE"
        case RTNL.RTM_GETROUTE: return "RTM_GETROUTE"
        default: return "netlink message \(type)"
        }
    }
}

/// Network namespaces named by a file: `/proc/PID/ns/net`, or a bind mount of one under
/// `/run/netns` (what `ip netns add NAME` makes).
public enum NetworkNamespace {
    /// Runs `body` with the calling thread in the network namespace `path`, then returns
    /// to the namespace it was in. For single-threaded processes (see `RouteSocket`).
    /// A program `body` starts inherits the namespace (fork copies the calling thread's).
    public static func entered<R>(_ path: FilePath, _ body: () throws -> R) throws -> R {
        let original = try open("/proc/thread-self/ns/net", purpose: "remember our own network namespace")
        defer { close(original) }
        let target = try open(path, purpose: "enter its network namespace")
        defer { close(target) }
        guard iso_setns(target, Namespaces.network.rawValue) == 0 else {
            throw StageError(stage: "setns(\"\(path)\", CLONE_NEWNET)", errno: currentErrno())
        }
        defer {
            // Staying in the container's namespace by accident would make every later
            // step act on the wrong network: stop rather than go on.
            if iso_setns(original, Namespaces.network.rawValue) != 0 {
                fatalError("setns back to our own network namespace failed: \(currentErrno())")
            }
        }
        return try body()
    }

    /// Moves this process (a single-threaded one) into the network namespace `path` for good.
    public static func enter(_ path: FilePath) throws {
        let target = try open(path, purpose: "enter its network namespace")
        defer { close(target) }
        guard iso_setns(target, Namespaces.network.rawValue) == 0 else {
            throw StageError(stage: "setns(\"\(path)\", CLONE_NEWNET)", errno: currentErrno())
        }
    }

    /// unshare(CLONE_NEWNET): this process (single-threaded) moves to a new, empty network
    /// namespace, with only `lo`, down. It lasts as long as a process is in it (or a
    /// file is bind-mounted onto it, as `ip netns add` does).
    public static func unshareOwn() throws {
        guard iso_unshare(Namespaces.network.rawValue) == 0 else {
            throw StageError(stage: "unshare(CLONE_NEWNET)", errno: currentErrno())
        }
    }

    /// The inode that identifies the namespace `path` refers to.
    public static func identity(_ path: FilePath) -> UInt64? {
        var info = stat()
        guard path.withPlatformString({ stat($0, &info) }) == 0 else { return nil }
        return UInt64(info.st_ino)
    }

    static func open(_ path: FilePath, purpose: String) throws -> Int32 {
        do {
            return try pathCall(path) { Glibc.open($0, O_RDONLY | O_CLOEXEC) }
        } catch let error as Errno {
            throw StageError(stage: "open(\"\(path)\") to \(purpose)", errno: error)
        }
    }
}
