import Foundation
import Glibc
import SystemPackage

/// What attaching a container left behind: enough to check it and to take it apart.
public struct Attachment: Sendable, Codable, Equatable {
    public var containerID: String
    /// The container's interface (`eth0`) and the network namespace it is in.
    public var interface: String
    public var namespace: String
    /// The host's end of the veth pair, a port of the bridge.
    public var hostInterface: String
    /// The container's address with the subnet's prefix length (`10.88.0.2/24`).
    public var address: String
    public var gateway: String?
    public var ports: [PortMapping]
    /// MAC addresses, for a CNI result.
    public var mac: String
    public var hostMac: String
    public var bridgeMac: String
}

/// A bridge network, as Docker's default `bridge` (docker0) and CNI's `bridge` plugin
/// make it: one bridge on the host with the gateway's address, one veth pair per
/// container (one end a port of the bridge, the other the container's `eth0`),
/// addresses from `AddressAllocator`, a default route via the bridge, masquerade for
/// traffic leaving the subnet and DNAT for published ports (`Firewall`).
///
/// Runs in the host's network namespace: the bridge, the host ends and the firewall
/// table are created in the namespace of the calling process; the container's side is
/// configured through a netlink socket opened inside the container's namespace.
public struct BridgeNetwork: Sendable {
    /// The network's name: the firewall table is `isolation-NAME`, its addresses live in
    /// `stateDirectory/NAME`.
    public var name: String
    public var bridge: String
    public var subnet: IPv4Subnet
    public var gateway: IPv4Address
    /// The bridge holds the gateway's address and containers route through it.
    public var isGateway = true
    /// Masquerade traffic from the subnet to elsewhere.
    public var ipMasq = true
    public var mtu: UInt32?
    public var stateDirectory: FilePath

    /// narrate(the equivalent command, why): the lesson prints each step.
    public typealias Narrate = (String, String) -> Void

    public init(name: String, bridge: String, subnet: IPv4Subnet, gateway: IPv4Address? = nil,
                stateDirectory: FilePath = NetworkLock.defaultDirectory) throws {
        guard !name.isEmpty, name.utf8.count <= 20, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw IsolationError("network name '\(name)' must be 1-20 letters, digits, '-', '_' or '.'")
        }
        guard !bridge.isEmpty, bridge.utf8.count < 16, !bridge.contains("/"), !bridge.contains(" ") else {
            throw IsolationError("bridge name '\(bridge)' must be 1-15 bytes, without '/' or spaces (IFNAMSIZ)")
        }
        self.name = name
        self.bridge = bridge
        self.subnet = subnet.network
        self.gateway = gateway ?? IPv4Address(subnet.network.address.value + 1)
        guard self.subnet.contains(self.gateway) else { throw IsolationError("gateway \(self.gateway) is not in \(self.subnet)") }
        self.stateDirectory = stateDirectory
    }

    var allocator: AddressAllocator {
        AddressAllocator(subnet: subnet, gateway: gateway, directory: stateDirectory.appending(name))
    }
    var recordDirectory: FilePath { stateDirectory.appending(name).appending("attachments") }
    func recordFile(_ id: String, _ interface: String) -> FilePath { recordDirectory.appending("\(id).\(interface).json") }
    var firewall: Firewall { Firewall(network: name) }

    /// The host end's name: `iso` and a hash of the container's ID and interface, so that
    /// it is the same every time for the same container (at most 15 bytes).
    public static func hostInterfaceName(_ id: String, _ interface: String) -> String {
        var hash: UInt32 = 2166136261   // FNV-1a
        for byte in (id + "/" + interface).utf8 { hash = (hash ^ UInt32(byte)) &* 16777619 }
        let hex = String(hash, radix: 16)
        return "iso" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// The first `10.N.0.0/24` (N from 88 up) that no route of this namespace overlaps:
    /// the subnet a network gets when none is asked for.
    public static func freeSubnet() throws -> IPv4Subnet {
        let routes = try RouteSocket().routes().map(\.destination).filter { $0.prefixLength > 0 }
        for n in UInt32(88)...255 {
            let candidate = IPv4Subnet(IPv4Address(10 << 24 | n << 16), prefixLength: 24)
            if !routes.contains(where: { $0.overlaps(candidate) }) { return candidate }
        }
        throw IsolationError("every 10.N.0.0/24 from 10.88 up overlaps a route of this host", hint: "choose one with --subnet")
    }

    // MARK: Attach

    /// Connects the container whose network namespace is `namespace` (a `/proc/PID/ns/net`
    /// or `/run/netns/NAME` file) to the network. Checks everything it can first; if a
    /// later step fails, what was done is undone.
    public func attach(_ id: String, namespace: FilePath, interface: String = "eth0",
                       ports: [PortMapping] = [], narrate: Narrate = { _, _ in }) throws -> Attachment {
        guard !id.isEmpty, !id.contains("/"), !id.contains(" ") else { throw IsolationError("container ID '\(id)' must be non-empty, without '/' or spaces") }
        guard !interface.isEmpty, interface.utf8.count < 16, !interface.contains("/") else { throw IsolationError("interface name '\(interface)' must be 1-15 bytes") }
        guard FileSystem.exists(namespace) else {
            throw IsolationError("no network namespace at \(namespace): the container does not exist (or has stopped)")
        }
        return try NetworkLock.held(in: stateDirectory) {
            if FileSystem.exists(recordFile(id, interface)) {
                throw IsolationError("container \(id) is already attached to network \(name) as \(interface)")
            }
            let host = try RouteSocket()
            let container: RouteSocket
            do { container = try RouteSocket.open(in: namespace) } catch {
                throw IsolationError("cannot enter the network namespace \(namespace): \(error)")
            }
            if (try? container.link(named: interface)) != nil {
                throw IsolationError("the container already has an interface \(interface)")
            }
            let hostName = Self.hostInterfaceName(id, interface)
            if (try? host.link(named: hostName)) != nil {
                throw IsolationError("an interface \(hostName) exists already: is container \(id) attached elsewhere?")
            }
            let existingBridge = try? host.link(named: bridge)
            if let existingBridge, existingBridge.kind != "bridge" {
                throw IsolationError("\(bridge) exists and is not a bridge (it is a \(existingBridge.kind ?? "device"))")
            }
            if existingBridge == nil { try checkSubnetIsFree(host) }
            try checkPortsAreFree(ports)

            var undo: [() -> Void] = []
            do {
                // 1. The bridge, the first time (with the gateway's address).
                if existingBridge == nil {
                    narrate("ip link add \(bridge) type bridge", "a software switch in the host's namespace; every container gets a port")
                    try host.addBridge(bridge, mtu: mtu)
                    undo.append { try? host.deleteLink(bridge) }
                    if isGateway {
                        let address = IPv4Subnet(gateway, prefixLength: subnet.prefixLength)
                        narrate("ip addr add \(address) dev \(bridge)", "the bridge is the containers' gateway; the kernel adds the route to \(subnet)")
                        try host.addAddress(address, to: bridge)
                    }
                    narrate("ip link set \(bridge) up", "an interface does nothing until it is up")
                    try host.setUp(bridge)
                }
                // 2. An address for the container.
                let address = try allocator.allocate(for: "\(id) \(interface)")
                undo.append { allocator.release("\(id) \(interface)") }
                narrate("# reserve \(address): create \(allocator.directory)/\(address) (O_EXCL)",
                        "one file per address, under a lock: two containers never get the same one")
                // 3. The cable: a veth pair, the container's end born in its namespace.
                narrate("ip link add \(hostName)\(mtu.map { " mtu \($0)" } ?? "") type veth peer name \(interface) netns \(namespace)",
                        "a veth pair is a cable with two ends; one end is created right inside the container")
                try host.addVethPair(hostName, peer: interface, peerNamespace: namespace, mtu: mtu)
                undo.append { try? host.deleteLink(hostName) }
                narrate("ip link set \(hostName) master \(bridge)", "plug the host's end into the bridge")
                try host.setMaster(hostName, bridge: bridge)
                narrate("ip link set \(hostName) up", "")
                try host.setUp(hostName)
                // 4. Inside the container: address, up, default route.
                let withPrefix = IPv4Subnet(address, prefixLength: subnet.prefixLength)
                narrate("ip -n CONTAINER addr add \(withPrefix) dev \(interface)", "a socket opened inside the container's namespace configures its side")
                try container.addAddress(withPrefix, to: interface)
                narrate("ip -n CONTAINER link set \(interface) up", "")
                try container.setUp(interface)
                if isGateway {
                    narrate("ip -n CONTAINER route add default via \(gateway)", "everything outside \(subnet) goes to the bridge, and from there out")
                    try container.addRoute(via: gateway)
                }
                // 5. Firewall: masquerade, published ports, forwarding.
                if !firewall.exists() {
                    let script = firewall.createScript(subnet: subnet, bridge: bridge, masquerade: ipMasq)
                    narrate("nft -f - <<EOF\n    " + script.split(separator: "\n").joined(separator: "\n    ") + "\n  EOF",
                            "one table of our own: " + (ipMasq ? "masquerade gives leaving packets the host's address; " : "")
                                + "new connections into the bridge from elsewhere are dropped unless DNAT sent them (a published port)")
                    try firewall.apply(script, what: "creating table \(firewall.table)")
                    undo.append { try? firewall.delete() }
                    narrate("sysctl -w net.ipv4.ip_forward=1", "let the host route packets from the bridge to its other interfaces")
                    try Forwarding.enable(stateDirectory: stateDirectory)
                }
                for port in ports {
                    let script = firewall.publishScript(port, to: address, owner: id)
                    narrate("nft add rule ip \(firewall.table) prerouting fib daddr type local \(port.protocol) dport \(port.hostPort) dnat to \(address):\(port.containerPort)",
                            "published port: connections to the host's port \(port.hostPort) go to the container (and the same rule in output, for the host's own)")
                    try firewall.apply(script, what: "publishing \(port)")
                }
                let attachment = Attachment(
                    containerID: id, interface: interface, namespace: namespace.string, hostInterface: hostName,
                    address: withPrefix.description, gateway: isGateway ? gateway.description : nil, ports: ports,
                    mac: (try? container.link(named: interface).mac) ?? "", hostMac: (try? host.link(named: hostName).mac) ?? "",
                    bridgeMac: (try? host.link(named: bridge).mac) ?? "")
                try FileSystem.makeDirectories(recordDirectory, mode: 0o700)
                try FileSystem.writeFile(recordFile(id, interface), Array(try JSONEncoder().encode(attachment)), mode: 0o600)
                return attachment
            } catch {
                try? firewall.removeRules(of: id)
                for step in undo.reversed() { step() }
                if firewall.exists(), allocator.allocations().isEmpty { try? firewall.delete() }
                if !firewall.exists() && Firewall.tables().isEmpty { try? Forwarding.restore(stateDirectory: stateDirectory) }
                throw error
            }
        }
    }

    /// A subnet that overlaps a route the host already has would steal that route's
    /// traffic (or lose its own): refuse it.
    func checkSubnetIsFree(_ host: RouteSocket) throws {
        let links = (try? host.links()) ?? []
        for route in try host.routes() where route.destination.prefixLength > 0 && route.destination.overlaps(subnet) {
            let device = links.first { $0.index == route.device }?.name ?? "?"
            throw IsolationError("subnet \(subnet) overlaps the route to \(route.destination) (dev \(device)) this host already has",
                                 hint: "choose another subnet (--subnet), one no route of `ip route` covers")
        }
    }

    func checkPortsAreFree(_ ports: [PortMapping]) throws {
        let taken = Firewall.publishedPorts()
        for (index, port) in ports.enumerated() {
            if let owner = taken.first(where: { $0.port == port.hostPort && $0.protocol == port.protocol }) {
                throw IsolationError("port \(port.hostPort)/\(port.protocol) is already published (table \(owner.table))",
                                     hint: "choose another host port, or delete the container that publishes it")
            }
            if ports[..<index].contains(where: { $0.hostPort == port.hostPort && $0.protocol == port.protocol }) {
                throw IsolationError("port \(port.hostPort)/\(port.protocol) is asked for twice")
            }
        }
    }

    // MARK: Detach

    /// Takes the container off the network: its published ports, its veth pair, its
    /// address; with the last container, the bridge, the table and the forwarding
    /// setting too. Detaching what is not attached is not an error (CNI's DEL may come
    /// twice, or after a failed ADD).
    public func detach(_ id: String, interface: String = "eth0", narrate: Narrate = { _, _ in }) throws {
        try NetworkLock.held(in: stateDirectory) {
            let host = try RouteSocket()
            let record = (try? FileSystem.readFile(recordFile(id, interface))).flatMap { try? JSONDecoder().decode(Attachment.self, from: Data($0)) }
            if let record, !record.ports.isEmpty {
                narrate("nft delete rule ip \(firewall.table) … handle N   # the rules tagged \"\(id)\"", "unpublish its ports")
                try firewall.removeRules(of: id)
            }
            let hostName = record?.hostInterface ?? Self.hostInterfaceName(id, interface)
            if (try? host.link(named: hostName)) != nil {
                narrate("ip link del \(hostName)", "deleting one end of a veth pair deletes both: the container's \(interface) goes too")
                try host.deleteLink(hostName)
            }
            let released = allocator.release("\(id) \(interface)")
            if !released.isEmpty {
                narrate("# release \(released.map(\.description).joined(separator: ", ")): rm \(allocator.directory)/\(released[0])", "the address is free for the next container")
            }
            unlink(recordFile(id, interface).string)
            if allocator.allocations().isEmpty {
                try removeNetwork(host, narrate: narrate)
            }
        }
    }

    /// The last container left: the table, the bridge, the state directory, forwarding.
    func removeNetwork(_ host: RouteSocket, narrate: Narrate) throws {
        if firewall.exists() {
            narrate("nft delete table ip \(firewall.table)", "the last container left: every rule goes at once")
            try firewall.delete()
        }
        if Firewall.tables().isEmpty, FileSystem.exists(Forwarding.savedFile(stateDirectory)) {
            narrate("sysctl -w net.ipv4.ip_forward=\(((try? FileSystem.readString(Forwarding.savedFile(stateDirectory))) ?? "0").trimmingNewlines())",
                    "put forwarding back as it was")
            try Forwarding.restore(stateDirectory: stateDirectory)
        }
        if let link = try? host.link(named: bridge), link.kind == "bridge" {
            let ports = (try? host.links())?.filter { $0.master == link.index } ?? []
            if ports.isEmpty {
                narrate("ip link del \(bridge)", "no port is left on the bridge")
                try host.deleteLink(bridge)
            }
        }
        try? FileSystem.removeTree(stateDirectory.appending(name))
    }

    // MARK: Check

    /// Checks that the container is still attached as `attach` left it: its interface up
    /// with its address, its default route, the host end on the bridge. Throws what differs.
    public func check(_ id: String, interface: String = "eth0") throws -> Attachment {
        try NetworkLock.held(in: stateDirectory) {
            guard let bytes = try? FileSystem.readFile(recordFile(id, interface)),
                  let record = try? JSONDecoder().decode(Attachment.self, from: Data(bytes)) else {
                throw IsolationError("container \(id) is not attached to network \(name) as \(interface)")
            }
            let host = try RouteSocket()
            guard let hostEnd = try? host.link(named: record.hostInterface) else { throw IsolationError("the host end \(record.hostInterface) is gone") }
            guard let bridgeLink = try? host.link(named: bridge), hostEnd.master == bridgeLink.index else {
                throw IsolationError("\(record.hostInterface) is not a port of \(bridge)")
            }
            guard FileSystem.exists(FilePath(record.namespace)) else { throw IsolationError("the network namespace \(record.namespace) is gone") }
            let container = try RouteSocket.open(in: FilePath(record.namespace))
            guard let link = try? container.link(named: interface) else { throw IsolationError("the container has no interface \(interface)") }
            guard link.isUp else { throw IsolationError("\(interface) is down in the container") }
            guard try container.addresses().contains(where: { $0.index == link.index && $0.address.description == record.address }) else {
                throw IsolationError("\(interface) no longer has the address \(record.address)")
            }
            if let gateway = record.gateway {
                guard try container.routes().contains(where: { $0.destination.prefixLength == 0 && $0.gateway?.description == gateway }) else {
                    throw IsolationError("the container's default route via \(gateway) is gone")
                }
            }
            return record
        }
    }

    /// The containers attached now.
    public func attachments() -> [Attachment] {
        ((try? FileSystem.contentsOfDirectory(recordDirectory)) ?? []).compactMap { name in
            (try? FileSystem.readFile(recordDirectory.appending(name))).flatMap { try? JSONDecoder().decode(Attachment.self, from: Data($0)) }
        }
    }
}
