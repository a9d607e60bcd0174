/// A netlink message, built and read byte by byte (netlink(7), rtnetlink(7)).
///
/// Every message is a 16-byte header (`struct nlmsghdr`: length, type, flags, sequence
/// number, port ID), a fixed-size family header (`struct ifinfomsg` for links,
/// `ifaddrmsg` for addresses, `rtmsg` for routes), then attributes: type-length-value
/// records (`struct rtattr`), each padded to 4 bytes, some holding further attributes
/// ("nested", like a veth's peer). That is the whole wire format `ip` speaks to the kernel.
public struct NetlinkMessage: Sendable {
    /// `nlmsg_type`: RTM_NEWLINK, RTM_GETADDR, ...
    public var type: UInt16
    /// `nlmsg_flags`: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | ...
    public var flags: UInt16
    /// The family header and the attributes, already encoded.
    public var payload: [UInt8] = []

    public init(type: UInt16, flags: UInt16) {
        self.type = type
        self.flags = flags
    }

    // MARK: Building

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { payload.append(contentsOf: $0) }
    }

    /// `struct ifinfomsg`: family, padding, device type, interface index, flags, change mask.
    mutating func appendInterfaceInfo(index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) {
        append(UInt8(RTNL.AF_UNSPEC)); append(UInt8(0)); append(UInt16(0))
        append(index); append(flags); append(change)
    }

    /// `struct ifaddrmsg`: family, prefix length, flags, scope, interface index.
    mutating func appendAddressInfo(prefixLength: UInt8, scope: UInt8, index: Int32) {
        append(UInt8(RTNL.AF_INET)); append(prefixLength); append(UInt8(0)); append(scope)
        append(UInt32(bitPattern: index))
    }

    /// `struct rtmsg`: family, destination/source prefix lengths, TOS, table, protocol, scope, type, flags.
    mutating func appendRouteInfo(destinationLength: UInt8, table: UInt8, protocol: UInt8, scope: UInt8, type: UInt8) {
        append(UInt8(RTNL.AF_INET)); append(destinationLength); append(UInt8(0)); append(UInt8(0))
        append(table); append(`protocol`); append(scope); append(type); append(UInt32(0))
    }

    /// One attribute: `struct rtattr` (length, type) then the value, padded to 4 bytes.
    mutating func attribute(_ type: UInt16, _ value: [UInt8]) {
        append(UInt16(4 + value.count)); append(type)
        payload += value
        pad()
    }

    mutating func attribute(_ type: UInt16, uint32 value: UInt32) {
        attribute(type, withUnsafeBytes(of: value.littleEndian) { Array($0) })
    }

    /// A NUL-terminated string attribute (interface names, link kinds).
    mutating func attribute(_ type: UInt16, string: String) {
        attribute(type, Array(string.utf8) + [0])
    }

    /// An attribute holding attributes: its length is patched once `body` has added them.
    mutating func nested(_ type: UInt16, _ body: (inout NetlinkMessage) -> Void) {
        let start = payload.count
        append(UInt16(0)); append(type)
        body(&self)
        let length = UInt16(payload.count - start)
        payload[start] = UInt8(length & 0xff)
        payload[start + 1] = UInt8(length >> 8)
        pad()
    }

    mutating func pad() {
        while payload.count % 4 != 0 { payload.append(0) }
    }

    /// The whole message with its `nlmsghdr`, sequence number `sequence`.
    func encoded(sequence: UInt32) -> [UInt8] {
        var header = NetlinkMessage(type: type, flags: flags)
        header.append(UInt32(16 + payload.count)); header.append(type); header.append(flags)
        header.append(sequence); header.append(UInt32(0))
        return header.payload + payload
    }
}

/// Reading: attributes of a received message, after its family header.
struct NetlinkAttributes {
    var values: [UInt16: ArraySlice<UInt8>] = [:]

    /// Parses the `rtattr` records in `bytes` (the low 14 bits of rta_type are the type;
    /// the top two are the nested and byte-order flags).
    init(_ bytes: ArraySlice<UInt8>) {
        var offset = bytes.startIndex
        while offset + 4 <= bytes.endIndex {
            let length = Int(bytes.uint16(at: offset))
            let type = bytes.uint16(at: offset + 2) & 0x3fff
            guard length >= 4, offset + length <= bytes.endIndex else { break }
            if values[type] == nil { values[type] = bytes[(offset + 4)..<(offset + length)] }
            offset += (length + 3) & ~3
        }
    }

    subscript(_ type: UInt16) -> ArraySlice<UInt8>? { values[type] }

    func string(_ type: UInt16) -> String? {
        values[type].map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    func uint32(_ type: UInt16) -> UInt32? {
        guard let value = values[type], value.count >= 4 else { return nil }
        return value.uint32(at: value.startIndex)
    }
}

extension ArraySlice<UInt8> {
    func uint16(at offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func uint32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3]) << 24
    }
}

/// The numbers of <linux/netlink.h>, <linux/rtnetlink.h> and <linux/if_link.h> that we
/// use, written out: Swift's Glibc module does not import the kernel's uapi headers, and
/// seeing them is half of the lesson.
enum RTNL {
    static let AF_UNSPEC = 0, AF_INET = 2, NETLINK_ROUTE: Int32 = 0
    // nlmsghdr flags
    static let NLM_F_REQUEST: UInt16 = 0x1, NLM_F_MULTI: UInt16 = 0x2, NLM_F_ACK: UInt16 = 0x4
    static let NLM_F_DUMP: UInt16 = 0x300, NLM_F_EXCL: UInt16 = 0x200, NLM_F_CREATE: UInt16 = 0x400
    // message types
    static let NLMSG_ERROR: UInt16 = 2, NLMSG_DONE: UInt16 = 3
    static let RTM_NEWLINK: UInt16 = 16, RTM_DELLINK: UInt16 = 17, RTM_GETLINK: UInt16 = 18
    static let RTM_NEWADDR: UInt16 = 20, RTM_GETADDR: UInt16 = 22
    static let RTM_NEWROUTE: UInt16 = 24, RTM_GETROUTE: UInt16 = 26
    // link attributes (IFLA_*)
    static let IFLA_ADDRESS: UInt16 = 1, IFLA_IFNAME: UInt16 = 3, IFLA_MTU: UInt16 = 4
    static let IFLA_MASTER: UInt16 = 10, IFLA_OPERSTATE: UInt16 = 16, IFLA_LINKINFO: UInt16 = 18
    static let IFLA_NET_NS_PID: UInt16 = 19, IFLA_NET_NS_FD: UInt16 = 28
    static let IFLA_INFO_KIND: UInt16 = 1, IFLA_INFO_DATA: UInt16 = 2, VETH_INFO_PEER: UInt16 = 1
    // address attributes (IFA_*)
    static let IFA_ADDRESS: UInt16 = 1, IFA_LOCAL: UInt16 = 2, IFA_BROADCAST: UInt16 = 4
    // route attributes (RTA_*) and values
    static let RTA_DST: UInt16 = 1, RTA_OIF: UInt16 = 4, RTA_GATEWAY: UInt16 = 5, RTA_TABLE: UInt16 = 15
    static let RT_TABLE_MAIN: UInt8 = 254, RTPROT_BOOT: UInt8 = 3, RTN_UNICAST: UInt8 = 1
    static let RT_SCOPE_UNIVERSE: UInt8 = 0, RT_SCOPE_LINK: UInt8 = 253
    static let IFF_UP: UInt32 = 0x1
}
