import Glibc
import SystemPackage

/// The flags of a network interface (netdevice(7), `IFF_*`).
public struct InterfaceFlags: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    public static let up = InterfaceFlags(rawValue: Int16(IFF_UP))
    public static let loopback = InterfaceFlags(rawValue: Int16(IFF_LOOPBACK))
    public static let running = InterfaceFlags(rawValue: Int16(IFF_RUNNING))

    public var description: String {
        var words: [String] = []
        if contains(.loopback) { words.append("LOOPBACK") }
        if contains(.up) { words.append("UP") }
        if contains(.running) { words.append("RUNNING") }
        return words.isEmpty ? "DOWN" : words.joined(separator: ",")
    }
}

/// The little networking a new network namespace needs before anything else: a
/// namespace starts with one device, `lo`, and it is *down* — even `ping 127.0.0.1`
/// fails until it is brought up. (Chapter 05 adds a veth pair.)
///
/// This is what `ip link set lo up` does, with the older ioctl(2) interface instead of
/// netlink: SIOCGIFFLAGS / SIOCSIFFLAGS on any socket of the namespace.
public enum Network {
    /// The flags of interface `name` (SIOCGIFFLAGS).
    public static func flags(of name: String) throws -> InterfaceFlags {
        let socket = try controlSocket()
        defer { close(socket) }
        var request = try interfaceRequest(name)
        // Swift's Glibc overlay has a non-variadic ioctl(fd, request, pointer).
        try valueOrErrno { ioctl(socket, UInt(SIOCGIFFLAGS), &request) }
        return InterfaceFlags(rawValue: request.ifr_ifru.ifru_flags)
    }

    /// Sets IFF_UP on interface `name`: read its flags, add UP, write them back
    /// (SIOCSIFFLAGS needs CAP_NET_ADMIN in the user namespace that owns the network
    /// namespace). Returns the flags afterwards.
    @discardableResult
    public static func bringUp(_ name: String) throws -> InterfaceFlags {
        let socket = try controlSocket()
        defer { close(socket) }
        var request = try interfaceRequest(name)
        do {
            try valueOrErrno { ioctl(socket, UInt(SIOCGIFFLAGS), &request) }
            request.ifr_ifru.ifru_flags |= InterfaceFlags.up.rawValue
            try valueOrErrno { ioctl(socket, UInt(SIOCSIFFLAGS), &request) }
            try valueOrErrno { ioctl(socket, UInt(SIOCGIFFLAGS), &request) }
        } catch let error as Errno {
            throw StageError(stage: "ioctl(SIOCSIFFLAGS, \"\(name)\", IFF_UP)", errno: error)
        }
        return InterfaceFlags(rawValue: request.ifr_ifru.ifru_flags)
    }

    /// `ip link set lo up`.
    @discardableResult
    public static func bringUpLoopback() throws -> InterfaceFlags { try bringUp("lo") }

    /// The interfaces the calling process's network namespace has, from /proc/net/dev
    /// (which follows the namespace of the process that reads it).
    public static func interfaceNames() -> [String] {
        guard let text = try? FileSystem.readString("/proc/net/dev") else { return [] }
        return text.split(separator: "\n").dropFirst(2).compactMap { line in
            line.split(separator: ":").first.map { $0.trimmingSpaces() }
        }
    }

    /// A datagram socket: ioctls on interfaces need a socket, any kind will do.
    static func controlSocket() throws -> Int32 {
        try valueOrErrno { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    }

    static func interfaceRequest(_ name: String) throws -> ifreq {
        let bytes = Array(name.utf8)
        var request = ifreq()
        guard bytes.count < MemoryLayout.size(ofValue: request.ifr_ifrn.ifrn_name) else {
            throw IsolationError("interface name '\(name)' is longer than IFNAMSIZ-1 bytes")
        }
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        return request
    }
}
