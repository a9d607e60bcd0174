// isolation-cni: the network layer of `Isolation` as a CNI plugin (CNI spec 1.0).
//
// A container runtime (containerd's CRI, podman with CNI, Kubernetes through them) runs
// the plugin once per operation: the operation and the container in CNI_* environment
// variables, the network's configuration as JSON on standard input, the result as JSON
// on standard output, an error as CNI error JSON on standard output with a non-zero
// exit. It runs in the host's network namespace; CNI_NETNS names the container's.
//
// Its configuration takes the keys of the reference `bridge` plugin: bridge, isGateway,
// ipMasq, mtu, and ipam.subnet (served by our own allocator, so ipam.type may be left
// out; "host-local" is accepted as the same thing), plus runtimeConfig.portMappings for
// published ports (the `portMappings` capability).
//
// Single-threaded and synchronous: it enters the container's namespace with setns(2).
import Foundation
import Glibc
import Isolation
import SystemPackage

let supportedVersions = ["0.4.0", "1.0.0"]

/// A CNI error (spec: "Error"): the code says what kind, msg what happened.
struct CNIError: Error {
    var code: Int
    var message: String
    var details: String = ""
    // Codes of the spec: 1 incompatible version, 2 unsupported field, 3 container
    // unknown, 4 invalid environment variables, 5 I/O failure, 6 failed to decode
    // content, 7 invalid network config, 11 try again later. 100+ are the plugin's own.
    static let incompatibleVersion = 1, unknownContainer = 3, invalidEnvironment = 4, ioFailure = 5
    static let decodeFailure = 6, invalidConfig = 7, pluginFailure = 100
}

func emit(_ object: [String: Any]) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

func environment(_ name: String, required: Bool) throws -> String? {
    let value = ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    if required && value == nil { throw CNIError(code: CNIError.invalidEnvironment, message: "\(name) is not set") }
    return value
}

struct Configuration {
    var version: String
    var network: BridgeNetwork
    var ports: [PortMapping]

    init(_ data: Data) throws {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CNIError(code: CNIError.decodeFailure, message: "the network configuration on standard input is not a JSON object")
        }
        guard let version = root["cniVersion"] as? String else {
            throw CNIError(code: CNIError.invalidConfig, message: "the network configuration has no cniVersion")
        }
        guard supportedVersions.contains(version) else {
            throw CNIError(code: CNIError.incompatibleVersion, message: "cniVersion \(version) is not supported",
                           details: "supported: \(supportedVersions.joined(separator: ", "))")
        }
        self.version = version
        guard let name = root["name"] as? String else { throw CNIError(code: CNIError.invalidConfig, message: "the network configuration has no name") }
        let ipam = root["ipam"] as? [String: Any] ?? [:]
        if let type = ipam["type"] as? String, type != "host-local", type != "isolation-cni" {
            throw CNIError(code: CNIError.invalidConfig, message: "ipam.type \(type) is not supported: leave it out, isolation-cni allocates addresses itself")
        }
        guard let subnetText = ipam["subnet"] as? String ?? (((ipam["ranges"] as? [[[String: Any]]])?.first?.first)?["subnet"] as? String) else {
            throw CNIError(code: CNIError.invalidConfig, message: "ipam.subnet is missing (for example \"10.88.0.0/24\")")
        }
        guard let subnet = IPv4Subnet(subnetText) else {
            throw CNIError(code: CNIError.invalidConfig, message: "ipam.subnet \(subnetText) is not an IPv4 CIDR such as 10.88.0.0/24")
        }
        var gateway: IPv4Address?
        if let text = ipam["gateway"] as? String {
            guard let address = IPv4Address(text) else { throw CNIError(code: CNIError.invalidConfig, message: "ipam.gateway \(text) is not an IPv4 address") }
            gateway = address
        }
        do {
            network = try BridgeNetwork(name: name, bridge: root["bridge"] as? String ?? "cni0", subnet: subnet, gateway: gateway,
                                        stateDirectory: FilePath(ipam["dataDir"] as? String ?? NetworkLock.defaultDirectory.string))
        } catch {
            throw CNIError(code: CNIError.invalidConfig, message: "\(error)")
        }
        network.isGateway = root["isGateway"] as? Bool ?? false
        network.ipMasq = root["ipMasq"] as? Bool ?? false
        if let mtu = root["mtu"] as? Int {
            guard (68...65535).contains(mtu) else { throw CNIError(code: CNIError.invalidConfig, message: "mtu \(mtu) is not between 68 and 65535") }
            network.mtu = UInt32(mtu)
        }
        let mappings = (root["runtimeConfig"] as? [String: Any])?["portMappings"] as? [[String: Any]] ?? []
        ports = try mappings.map { mapping in
            guard let host = mapping["hostPort"] as? Int, let container = mapping["containerPort"] as? Int,
                  (1...65535).contains(host), (1...65535).contains(container) else {
                throw CNIError(code: CNIError.invalidConfig, message: "runtimeConfig.portMappings needs hostPort and containerPort, 1-65535")
            }
            let proto = (mapping["protocol"] as? String ?? "tcp").lowercased()
            guard proto == "tcp" || proto == "udp" else { throw CNIError(code: CNIError.invalidConfig, message: "protocol \(proto): tcp or udp") }
            return PortMapping(hostPort: UInt16(host), containerPort: UInt16(container), protocol: proto)
        }
    }

    /// The spec's result: interfaces (the bridge, the host end, the container's), the
    /// address with its gateway, the default route.
    func result(_ attachment: Attachment) -> [String: Any] {
        var ip: [String: Any] = ["address": attachment.address, "interface": 2]
        if let gateway = attachment.gateway { ip["gateway"] = gateway }
        if version == "0.4.0" { ip["version"] = "4" }
        return [
            "cniVersion": version,
            "interfaces": [
                ["name": network.bridge, "mac": attachment.bridgeMac],
                ["name": attachment.hostInterface, "mac": attachment.hostMac],
                ["name": attachment.interface, "mac": attachment.mac, "sandbox": attachment.namespace],
            ],
            "ips": [ip],
            "routes": attachment.gateway.map { [["dst": "0.0.0.0/0", "gw": $0]] } ?? [],
            "dns": [String: Any](),
        ]
    }
}

func main() throws {
    guard let command = try environment("CNI_COMMAND", required: true) else { return }
    if command == "VERSION" {
        emit(["cniVersion": "1.0.0", "supportedVersions": supportedVersions])
        return
    }
    guard ["ADD", "DEL", "CHECK"].contains(command) else {
        throw CNIError(code: CNIError.invalidEnvironment, message: "CNI_COMMAND \(command) is not ADD, DEL, CHECK or VERSION")
    }
    let configuration = try Configuration(FileHandle.standardInput.readDataToEndOfFile())
    let id = try environment("CNI_CONTAINERID", required: true)!
    let interface = try environment("CNI_IFNAME", required: true)!
    switch command {
    case "ADD":
        let namespace = try environment("CNI_NETNS", required: true)!
        guard FileSystem.exists(FilePath(namespace)) else {
            throw CNIError(code: CNIError.unknownContainer, message: "CNI_NETNS \(namespace) does not exist: the container is unknown")
        }
        let attachment = try configuration.network.attach(id, namespace: FilePath(namespace), interface: interface, ports: configuration.ports)
        emit(configuration.result(attachment))
    case "CHECK":
        _ = try configuration.network.check(id, interface: interface)
    default:   // DEL: also for what is not (or no longer) there
        try configuration.network.detach(id, interface: interface)
    }
}

do {
    try main()
} catch let error as CNIError {
    emit(["cniVersion": "1.0.0", "code": error.code, "msg": error.message, "details": error.details])
    exit(1)
} catch {
    emit(["cniVersion": "1.0.0", "code": CNIError.pluginFailure, "msg": "\(error)", "details": ""])
    exit(1)
}
