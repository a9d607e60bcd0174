import Glibc
import SystemPackage

/// A network interface as RTM_GETLINK reports it (what `ip -br link` prints).
public struct NetworkInterface: Sendable, Equatable {
    public var index: Int32
    public var name: String
    /// IFLA_INFO_KIND: `veth`, `bridge`, ... (nil for `lo` and physical devices).
    public var kind: String?
    public var flags: UInt32
    public var mtu: UInt32
    /// The index of the bridge this interface is a port of (IFLA_MASTER).
    public var master: Int32?
    /// The hardware (MAC) address, `aa:bb:cc:dd:ee:ff`.
    public var mac: String
    public var isUp: Bool { flags & RTNL.IFF_UP != 0 }
}

/// An IPv4 address on an interface, as RTM_GETADDR reports it (`ip -4 -br addr`).
public struct InterfaceAddress: Sendable, Equatable {
    public var index: Int32
    public var address: IPv4Subnet
}

/// An IPv4 route of the main table, as RTM_GETROUTE reports it (`ip route`).
public struct Route: Sendable, Equatable {
    /// `0.0.0.0/0` for the default route.
    public var destination: IPv4Subnet
    public var gateway: IPv4Address?
    public var device: Int32?
}

/// Each operation is one rtnetlink message, named after the `ip` command it replaces
/// (shown in `ipCommand`-style strings in errors and by the lesson).
extension RouteSocket {
    // MARK: Links

    /// `ip link add NAME type veth peer name PEER [netns NS]`: a veth pair, two interfaces
    /// joined like a cable (veth(4)). With `peerNamespace`, the peer is born in that
    /// namespace (IFLA_NET_NS_FD inside the peer's attributes), so its name only has to be
    /// free there: every container's end may be called `eth0`.
    public func addVethPair(_ name: String, peer: String, peerNamespace: FilePath? = nil, mtu: UInt32? = nil) throws {
        let namespaceFD = try peerNamespace.map { try NetworkNamespace.open($0, purpose: "create a veth end in it") }
        defer { if let namespaceFD { close(namespaceFD) } }
        var message = NetlinkMessage(type: RTNL.RTM_NEWLINK, flags: RTNL.NLM_F_CREATE | RTNL.NLM_F_EXCL)
        message.appendInterfaceInfo()
        message.attribute(RTNL.IFLA_IFNAME, string: name)
        if let mtu { message.attribute(RTNL.IFLA_MTU, uint32: mtu) }
        message.nested(RTNL.IFLA_LINKINFO) { info in
            info.attribute(RTNL.IFLA_INFO_KIND, string: "veth")
            info.nested(RTNL.IFLA_INFO_DATA) { data in
                data.nested(RTNL.VETH_INFO_PEER) { peerInfo in
                    peerInfo.appendInterfaceInfo()
                    peerInfo.attribute(RTNL.IFLA_IFNAME, string: peer)
                    if let mtu { peerInfo.attribute(RTNL.IFLA_MTU, uint32: mtu) }
                    if let namespaceFD { peerInfo.attribute(RTNL.IFLA_NET_NS_FD, uint32: UInt32(namespaceFD)) }
                }
            }
        }
        try request(message, operation: "ip link add \(name)\(mtu.map { " mtu \($0)" } ?? "") type veth peer name \(peer)"
                    + (peerNamespace.map { " netns \($0)" } ?? ""))
    }

    /// `ip link add NAME type bridge`: a software switch (the kernel's bridge module);
    /// the ports attached to it exchange Ethernet frames.
    public func addBridge(_ name: String, mtu: UInt32? = nil) throws {
        var message = NetlinkMessage(type: RTNL.RTM_NEWLINK, flags: RTNL.NLM_F_CREATE | RTNL.NLM_F_EXCL)
        message.appendInterfaceInfo()
        message.attribute(RTNL.IFLA_IFNAME, string: name)
        if let mtu { message.attribute(RTNL.IFLA_MTU, uint32: mtu) }
        message.nested(RTNL.IFLA_LINKINFO) { $0.attribute(RTNL.IFLA_INFO_KIND, string: "bridge") }
        try request(message, operation: "ip link add \(name) type bridge")
    }

    /// `ip link set NAME master BRIDGE`: makes the interface a port of the bridge.
    public func setMaster(_ name: String, bridge: String) throws {
        let operation = "ip link set \(name) master \(bridge)"
        let bridgeIndex = try index(of: bridge, for: operation)
        try changeLink(name, operation: operation) { $0.attribute(RTNL.IFLA_MASTER, uint32: UInt32(bitPattern: bridgeIndex)) }
    }

    /// `ip link set NAME netns PID`: moves the interface into the network namespace of
    /// process `pid` (IFLA_NET_NS_PID). It disappears from here, and loses its addresses.
    public func moveToNamespace(_ name: String, pid: pid_t) throws {
        try changeLink(name, operation: "ip link set \(name) netns \(pid)") {
            $0.attribute(RTNL.IFLA_NET_NS_PID, uint32: UInt32(bitPattern: pid))
        }
    }

    /// `ip link set NAME netns NS`: the same with a namespace file (IFLA_NET_NS_FD), for a
    /// namespace no process is in (`/run/netns/NAME`, as CNI runtimes pass it).
    public func moveToNamespace(_ name: String, namespace: FilePath) throws {
        let fd = try NetworkNamespace.open(namespace, purpose: "move \(name) into it")
        defer { close(fd) }
        try changeLink(name, operation: "ip link set \(name) netns \(namespace)") {
            $0.attribute(RTNL.IFLA_NET_NS_FD, uint32: UInt32(fd))
        }
    }

    /// `ip link set NAME up` (or `down`): sets or clears IFF_UP (ifi_change says which
    /// flags the message changes).
    public func setUp(_ name: String, _ up: Bool = true) throws {
        let operation = "ip link set \(name) \(up ? "up" : "down")"
        let index = try index(of: name, for: operation)
        var message = NetlinkMessage(type: RTNL.RTM_NEWLINK, flags: 0)
        message.appendInterfaceInfo(index: index, flags: up ? RTNL.IFF_UP : 0, change: RTNL.IFF_UP)
        try request(message, operation: operation)
    }

    /// `ip link set NAME mtu MTU`.
    public func setMTU(_ name: String, _ mtu: UInt32) throws {
        try changeLink(name, operation: "ip link set \(name) mtu \(mtu)") { $0.attribute(RTNL.IFLA_MTU, uint32: mtu) }
    }

    /// `ip link del NAME`: deleting one end of a veth pair deletes both.
    public func deleteLink(_ name: String) throws {
        let operation = "ip link del \(name)"
        let index = try index(of: name, for: operation)
        var message = NetlinkMessage(type: RTNL.RTM_DELLINK, flags: 0)
        message.appendInterfaceInfo(index: index)
        try request(message, operation: operation)
    }

    /// RTM_NEWLINK on an existing interface, with the attributes `body` adds.
    func changeLink(_ name: String, operation: String, _ body: (inout NetlinkMessage) -> Void) throws {
        let index = try index(of: name, for: operation)
        var message = NetlinkMessage(type: RTNL.RTM_NEWLINK, flags: 0)
        message.appendInterfaceInfo(index: index)
        body(&message)
        try request(message, operation: operation)
    }

    // MARK: Addresses and routes

    /// `ip addr add A.B.C.D/N dev NAME`: IFA_LOCAL is the interface's own address,
    /// IFA_ADDRESS the same on a broadcast link; the kernel adds the subnet's route.
    public func addAddress(_ address: IPv4Subnet, to name: String) throws {
        let operation = "ip addr add \(address) dev \(name)"
        let index = try index(of: name, for: operation)
        var message = NetlinkMessage(type: RTNL.RTM_NEWADDR, flags: RTNL.NLM_F_CREATE | RTNL.NLM_F_EXCL)
        message.appendAddressInfo(prefixLength: UInt8(address.prefixLength), scope: RTNL.RT_SCOPE_UNIVERSE, index: index)
        message.attribute(RTNL.IFA_LOCAL, address.address.bytes)
        message.attribute(RTNL.IFA_ADDRESS, address.address.bytes)
        if address.prefixLength < 31 { message.attribute(RTNL.IFA_BROADCAST, address.broadcast.bytes) }
        try request(message, operation: operation)
    }

    /// `ip route add default via GATEWAY` (or `ip route add DEST via GATEWAY`): where
    /// packets for addresses no other route covers go.
    public func addRoute(_ destination: IPv4Subnet = IPv4Subnet(IPv4Address(0), prefixLength: 0), via gateway: IPv4Address) throws {
        let target = destination.prefixLength == 0 ? "default" : destination.network.description
        var message = NetlinkMessage(type: RTNL.RTM_NEWROUTE, flags: RTNL.NLM_F_CREATE | RTNL.NLM_F_EXCL)
        message.appendRouteInfo(destinationLength: UInt8(destination.prefixLength), table: RTNL.RT_TABLE_MAIN,
                                protocol: RTNL.RTPROT_BOOT, scope: RTNL.RT_SCOPE_UNIVERSE, type: RTNL.RTN_UNICAST)
        if destination.prefixLength > 0 { message.attribute(RTNL.RTA_DST, destination.network.address.bytes) }
        message.attribute(RTNL.RTA_GATEWAY, gateway.bytes)
        try request(message, operation: "ip route add \(target) via \(gateway)")
    }

    // MARK: Reading back

    /// `ip link show NAME`: one interface, by name (RTM_GETLINK with IFLA_IFNAME).
    public func link(named name: String) throws -> NetworkInterface {
        var message = NetlinkMessage(type: RTNL.RTM_GETLINK, flags: 0)
        message.appendInterfaceInfo()
        message.attribute(RTNL.IFLA_IFNAME, string: name)
        let payload = try get(message, operation: "ip link show \(name)")
        guard let link = Self.decodeLink(payload) else { throw IsolationError("ip link show \(name): the kernel's answer is too short") }
        return link
    }

    /// `ip link show`: every interface of the socket's namespace (an RTM_GETLINK dump).
    public func links() throws -> [NetworkInterface] {
        var message = NetlinkMessage(type: RTNL.RTM_GETLINK, flags: 0)
        message.appendInterfaceInfo()
        return try dump(message, operation: "ip link show").compactMap { $0.type == RTNL.RTM_NEWLINK ? Self.decodeLink($0.payload) : nil }
    }

    /// `ip -4 addr show`: every IPv4 address (an RTM_GETADDR dump).
    public func addresses() throws -> [InterfaceAddress] {
        var message = NetlinkMessage(type: RTNL.RTM_GETADDR, flags: 0)
        message.appendAddressInfo(prefixLength: 0, scope: 0, index: 0)
        return try dump(message, operation: "ip -4 addr show").compactMap { answer in
            let payload = answer.payload
            guard answer.type == RTNL.RTM_NEWADDR, payload.count >= 8, payload[payload.startIndex] == UInt8(RTNL.AF_INET) else { return nil }
            let attributes = NetlinkAttributes(payload.dropFirst(8))
            guard let bytes = attributes[RTNL.IFA_LOCAL] ?? attributes[RTNL.IFA_ADDRESS], let address = IPv4Address(bytes: bytes) else { return nil }
            let index = Int32(bitPattern: payload.uint32(at: payload.startIndex + 4))
            return InterfaceAddress(index: index, address: IPv4Subnet(address, prefixLength: Int(payload[payload.startIndex + 1])))
        }
    }

    /// `ip route show table main`: the IPv4 routes of the main table (an RTM_GETROUTE dump).
    public func routes() throws -> [Route] {
        var message = NetlinkMessage(type: RTNL.RTM_GETROUTE, flags: 0)
        message.appendRouteInfo(destinationLength: 0, table: 0, protocol: 0, scope: 0, type: 0)
        return try dump(message, operation: "ip route show").compactMap { answer in
            let payload = answer.payload
            guard answer.type == RTNL.RTM_NEWROUTE, payload.count >= 12, payload[payload.startIndex] == UInt8(RTNL.AF_INET) else { return nil }
            let attributes = NetlinkAttributes(payload.dropFirst(12))
            let table = attributes.uint32(RTNL.RTA_TABLE) ?? UInt32(payload[payload.startIndex + 4])
            guard table == UInt32(RTNL.RT_TABLE_MAIN), payload[payload.startIndex + 7] == RTNL.RTN_UNICAST else { return nil }
            let destination = attributes[RTNL.RTA_DST].flatMap { IPv4Address(bytes: $0) } ?? IPv4Address(0)
            return Route(destination: IPv4Subnet(destination, prefixLength: Int(payload[payload.startIndex + 1])),
                         gateway: attributes[RTNL.RTA_GATEWAY].flatMap { IPv4Address(bytes: $0) },
                         device: attributes.uint32(RTNL.RTA_OIF).map { Int32(bitPattern: $0) })
        }
    }

    /// The interface index of `name` (`if_nametoindex(3)` of the socket's namespace).
    func index(of name: String, for operation: String) throws -> Int32 {
        do { return try link(named: name).index } catch let error as StageError where error.errno == Errno(rawValue: ENODEV) {
            throw StageError(stage: operation, errno: error.errno, detail: "there is no interface \(name)")
        }
    }

    static func decodeLink(_ payload: ArraySlice<UInt8>) -> NetworkInterface? {
        guard payload.count >= 16 else { return nil }
        let start = payload.startIndex
        let attributes = NetlinkAttributes(payload.dropFirst(16))
        let kind = attributes[RTNL.IFLA_LINKINFO].flatMap { NetlinkAttributes($0).string(RTNL.IFLA_INFO_KIND) }
        let mac = (attributes[RTNL.IFLA_ADDRESS] ?? []).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
        return NetworkInterface(
            index: Int32(bitPattern: payload.uint32(at: start + 4)),
            name: attributes.string(RTNL.IFLA_IFNAME) ?? "?",
            kind: kind,
            flags: payload.uint32(at: start + 8),
            mtu: attributes.uint32(RTNL.IFLA_MTU) ?? 0,
            master: attributes.uint32(RTNL.IFLA_MASTER).map { Int32(bitPattern: $0) },
            mac: mac)
    }
}
