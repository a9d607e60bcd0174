// The network layer's pure parts: IPv4 parsing and arithmetic, the netlink encoder.
@testable import Isolation
import Testing

@Suite("Network: addresses and netlink messages")
struct NetworkTests {
    @Test("IPv4 addresses and subnets parse, and bad text is refused")
    func parsing() {
        #expect(IPv4Address("10.88.0.2")?.value == 0x0A58_0002)
        #expect(IPv4Address("10.88.0.2")?.bytes == [10, 88, 0, 2])
        for bad in ["10.88.0", "10.88.0.256", "10.88.0.-1", "a.b.c.d", "10..0.1", "", "1.2.3.4.5", "01234.1.1.1"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        let subnet = IPv4Subnet("10.88.0.7/24")!
        #expect(subnet.network.description == "10.88.0.0/24")
        #expect(subnet.broadcast.description == "10.88.0.255")
        #expect(subnet.contains(IPv4Address("10.88.0.200")!) && !subnet.contains(IPv4Address("10.89.0.1")!))
        #expect(IPv4Subnet("10.88.0.0/33") == nil && IPv4Subnet("10.88.0.0") == nil)
    }

    @Test("overlap: either network containing the other's base")
    func overlap() {
        let wide = IPv4Subnet("10.206.0.0/16")!
        #expect(wide.overlaps(IPv4Subnet("10.206.5.0/24")!))
        #expect(IPv4Subnet("10.206.5.0/24")!.overlaps(wide))
        #expect(!wide.overlaps(IPv4Subnet("10.207.0.0/24")!))
        #expect(IPv4Subnet("0.0.0.0/0")!.overlaps(wide))
    }

    @Test("a message: nlmsghdr, then ifinfomsg, then 4-byte-aligned attributes with nested lengths patched")
    func encoding() {
        var message = NetlinkMessage(type: RTNL.RTM_NEWLINK, flags: RTNL.NLM_F_CREATE)
        message.appendInterfaceInfo()
        message.attribute(RTNL.IFLA_IFNAME, string: "br0")           // 4 + "br0\0" = 8
        message.nested(RTNL.IFLA_LINKINFO) { $0.attribute(RTNL.IFLA_INFO_KIND, string: "bridge") }  // 4 + (4 + 7, padded to 12) = 16
        let bytes = message.encoded(sequence: 7)
        #expect(bytes.count == 16 + 16 + 8 + 16)
        #expect(Array(bytes[0..<4]) == [56, 0, 0, 0])          // nlmsg_len
        #expect(Array(bytes[4..<6]) == [16, 0])               // RTM_NEWLINK
        #expect(Array(bytes[8..<12]) == [7, 0, 0, 0])         // sequence
        #expect(Array(bytes[32..<40]) == [8, 0, 3, 0, 98, 114, 48, 0])  // IFLA_IFNAME "br0"
        #expect(Array(bytes[40..<44]) == [16, 0, 18, 0])      // IFLA_LINKINFO: 4 + the kind (4 + "bridge" and its NUL, padded to 12)
        // Read back by the decoder.
        let attributes = NetlinkAttributes(ArraySlice(bytes[32...]))
        #expect(attributes.string(RTNL.IFLA_IFNAME) == "br0")
        #expect(attributes[RTNL.IFLA_LINKINFO].flatMap { NetlinkAttributes($0).string(RTNL.IFLA_INFO_KIND) } == "bridge")
    }

    @Test("the host end's name is stable per container and fits IFNAMSIZ")
    func hostInterfaceName() {
        let name = BridgeNetwork.hostInterfaceName("abc", "eth0")
        #expect(name == BridgeNetwork.hostInterfaceName("abc", "eth0") && name != BridgeNetwork.hostInterfaceName("abd", "eth0"))
        #expect(name.hasPrefix("iso") && name.utf8.count == 11)
    }
}
