/// An IPv4 address, as four bytes in network order (`10.88.0.2`).
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The address as a number, most significant byte first (10.0.0.1 is 0x0A000001).
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Parses dotted-quad text; nil unless it is exactly four numbers 0-255.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit),
                  let byte = UInt32(part), byte <= 255 else { return nil }
            value = value << 8 | byte
        }
        self.value = value
    }

    /// The four bytes in network order, as netlink and sockaddr_in carry them.
    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 4 else { return nil }
        value = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public var description: String { bytes.map(String.init).joined(separator: ".") }
    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}

/// An IPv4 network in CIDR notation (`10.88.0.0/24`): a base address and a prefix length.
public struct IPv4Subnet: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var prefixLength: Int

    public init(_ address: IPv4Address, prefixLength: Int) {
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `A.B.C.D/N`. The address keeps its host bits (`10.88.0.2/24` is an interface
    /// address; `network` is its `10.88.0.0/24`).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(parts[0]),
              parts[1].allSatisfy(\.isASCIIDigit), let length = Int(parts[1]), (0...32).contains(length) else { return nil }
        self.init(address, prefixLength: length)
    }

    public var mask: UInt32 { prefixLength == 0 ? 0 : UInt32.max << (32 - UInt32(prefixLength)) }
    /// The subnet with its host bits cleared.
    public var network: IPv4Subnet { IPv4Subnet(IPv4Address(address.value & mask), prefixLength: prefixLength) }
    public var first: IPv4Address { IPv4Address(address.value & mask) }
    public var broadcast: IPv4Address { IPv4Address(address.value | ~mask) }

    public func contains(_ other: IPv4Address) -> Bool { other.value & mask == address.value & mask }

    /// Whether the two networks share any address (one contains the other's base).
    public func overlaps(_ other: IPv4Subnet) -> Bool {
        let shorter = min(prefixLength, other.prefixLength)
        let mask = shorter == 0 ? 0 : UInt32.max << (32 - UInt32(shorter))
        return address.value & mask == other.address.value & mask
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

