import Foundation
import Glibc
import SystemPackage

/// A published port: connections to the host's `hostPort` go to the container's `containerPort`.
public struct PortMapping: Sendable, Equatable, Codable, CustomStringConvertible {
    public var hostPort: UInt16
    public var containerPort: UInt16
    public var `protocol`: String

    public init(hostPort: UInt16, containerPort: UInt16, protocol: String = "tcp") {
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.protocol = `protocol`
    }

    /// Parses `--publish HOST:CONTAINER[/tcp|udp]`.
    public init(parsing text: String) throws {
        let (ports, proto) = text.split(separator: "/").count == 2
            ? (String(text.split(separator: "/")[0]), String(text.split(separator: "/")[1])) : (text, "tcp")
        let parts = ports.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let host = UInt16(parts[0]), let container = UInt16(parts[1]), host > 0, container > 0,
              proto == "tcp" || proto == "udp" else {
            throw IsolationError("--publish \(text): expected HOSTPORT:CONTAINERPORT, like 8080:80 (ports 1-65535, optionally /tcp or /udp)")
        }
        self.init(hostPort: host, containerPort: container, protocol: proto)
    }

    public var description: String { "\(hostPort):\(containerPort)/\(`protocol`)" }
}

/// The firewall rules of one network, all in one nftables table of our own
/// (`ip isolation-NAME`), so that removing them is one `nft delete table`.
///
/// - `postrouting`: masquerade — a packet from the bridge's subnet leaving for anywhere
///   else gets the outgoing interface's address as its source (SNAT), so the answer finds
///   its way back; conntrack remembers the translation and undoes it on the reply.
/// - `prerouting` and `output`: published ports — a connection to the host's port is
///   sent to the container's address (DNAT); `prerouting` sees packets from other
///   machines, `output` the host's own.
/// - `forward`: isolation — a new connection routed into the bridge from anywhere else
///   (another bridge, the outside) is dropped unless it came through a published port
///   (`ct status dnat`); answers to the containers' own connections pass
///   (`ct state established,related`). Docker's DOCKER-ISOLATION chains do the same.
///
/// Rules are written in nft's own language and given to `nft -f -` (nftables is the
/// kernel's netlink API too; `nft` is its reference encoder, and what the reader would
/// type); they are read back as JSON (`nft -j`). Acts in the network namespace of the
/// calling process.
public struct Firewall: Sendable {
    public let table: String

    public init(network: String) { table = "isolation-\(network)" }

    /// The nft program, or a clear error.
    public static func nft() throws -> FilePath {
        guard let path = Command.find("nft") else {
            throw IsolationError("nft (nftables) is not installed; it writes the NAT rules", hint: "sudo apt-get install nftables")
        }
        return path
    }

    /// The script that creates the table with its four chains, the isolation rules and, with `masquerade`,
    /// the rule for `subnet` (leaving the subnet through any interface but `bridge`).
    public func createScript(subnet: IPv4Subnet, bridge: String, masquerade: Bool) -> String {
        var lines = [
            "add table ip \(table)",
            "add chain ip \(table) postrouting { type nat hook postrouting priority srcnat; policy accept; }",
            "add chain ip \(table) prerouting { type nat hook prerouting priority dstnat; policy accept; }",
            "add chain ip \(table) output { type nat hook output priority -100; policy accept; }",
            "add chain ip \(table) forward { type filter hook forward priority filter; policy accept; }",
            "add rule ip \(table) forward oifname \"\(bridge)\" iifname != \"\(bridge)\" ct state established,related accept",
            "add rule ip \(table) forward oifname \"\(bridge)\" iifname != \"\(bridge)\" ct status dnat accept",
            "add rule ip \(table) forward oifname \"\(bridge)\" iifname != \"\(bridge)\" drop",
        ]
        if masquerade {
            lines.append("add rule ip \(table) postrouting ip saddr \(subnet.network) oifname != \"\(bridge)\" masquerade")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The rules that publish `port` for the container at `address`, tagged with `owner`.
    public func publishScript(_ port: PortMapping, to address: IPv4Address, owner: String) -> String {
        let match = "\(port.protocol) dport \(port.hostPort) dnat to \(address):\(port.containerPort) comment \"\(owner)\""
        return "add rule ip \(table) prerouting fib daddr type local \(match)\n"
            + "add rule ip \(table) output fib daddr type local \(match)\n"
    }

    /// Runs an nft script (`nft -f -`); `what` names it in the error.
    public func apply(_ script: String, what: String) throws {
        let result = try Self.run(["-f", "-"], input: script)
        guard result.status == .exited(0) else {
            throw IsolationError("nft: \(what) failed: \(result.standardError.trimmingNewlines())\n  script:\n\(script)")
        }
    }

    public func exists() -> Bool {
        (try? Self.run(["list", "table", "ip", table], input: ""))?.status == .exited(0)
    }

    /// `nft delete table ip isolation-NAME`: every rule at once.
    public func delete() throws {
        guard exists() else { return }
        try apply("delete table ip \(table)\n", what: "removing table \(table)")
    }

    /// Removes the rules tagged with `owner` (their handles, from `nft -j -a list table`).
    public func removeRules(of owner: String) throws {
        let script = rules().filter { $0.comment == owner }
            .map { "delete rule ip \(table) \($0.chain) handle \($0.handle)\n" }.joined()
        if !script.isEmpty { try apply(script, what: "removing the published ports of \(owner)") }
    }

    /// The ports published by any `isolation-*` table of this namespace, with their table.
    public static func publishedPorts() -> [(table: String, port: UInt16, protocol: String)] {
        guard let result = try? run(["-j", "list", "ruleset", "ip"], input: ""), result.status == .exited(0) else { return [] }
        return parseRules(result.standardOutput).compactMap { rule in
            guard rule.table.hasPrefix("isolation-"), let port = rule.destinationPort else { return nil }
            return (rule.table, port.port, port.protocol)
        }
    }

    /// The names of our tables in this namespace.
    public static func tables() -> [String] {
        guard let result = try? run(["-j", "list", "tables", "ip"], input: ""), result.status == .exited(0),
              let root = try? JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any],
              let items = root["nftables"] as? [[String: Any]] else { return [] }
        return items.compactMap { ($0["table"] as? [String: Any])?["name"] as? String }.filter { $0.hasPrefix("isolation-") }
    }

    struct Rule {
        var table: String, chain: String, handle: Int, comment: String?
        var destinationPort: (port: UInt16, protocol: String)?
    }

    func rules() -> [Rule] {
        guard let result = try? Self.run(["-j", "-a", "list", "table", "ip", table], input: ""), result.status == .exited(0) else { return [] }
        return Self.parseRules(result.standardOutput)
    }

    /// Walks nft's JSON (libnftables-json(5)): `{"nftables": [{"rule": {...}}, ...]}`.
    static func parseRules(_ json: String) -> [Rule] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let items = root["nftables"] as? [[String: Any]] else { return [] }
        return items.compactMap { item in
            guard let rule = item["rule"] as? [String: Any], let table = rule["table"] as? String,
                  let chain = rule["chain"] as? String, let handle = rule["handle"] as? Int else { return nil }
            var port: (UInt16, String)?
            for expression in rule["expr"] as? [[String: Any]] ?? [] {
                guard let match = expression["match"] as? [String: Any],
                      let payload = (match["left"] as? [String: Any])?["payload"] as? [String: Any],
                      payload["field"] as? String == "dport", let value = match["right"] as? Int else { continue }
                port = (UInt16(clamping: value), payload["protocol"] as? String ?? "tcp")
            }
            return Rule(table: table, chain: chain, handle: handle, comment: rule["comment"] as? String, destinationPort: port)
        }
    }

    static func run(_ arguments: [String], input: String) throws -> CommandOutput {
        let (readEnd, writeEnd) = try makePipe()
        let bytes = Array(input.utf8)
        // Our scripts are a few hundred bytes: they fit in the pipe's buffer (64 KiB).
        _ = bytes.withUnsafeBytes { write(writeEnd, $0.baseAddress, $0.count) }
        close(writeEnd)
        defer { close(readEnd) }
        var options = SpawnOptions()
        options.standardInput = FileDescriptor(rawValue: readEnd)
        return try Command.run(try nft(), arguments, options: options)
    }
}

/// `net.ipv4.ip_forward`: whether this namespace routes packets between its interfaces
/// (from a container's veth out through another interface). Off by default on many
/// machines; per network namespace. We turn it on with the first network and put the
/// value found back with the last (`/run/isolation/net/ip_forward-NSINODE` keeps it).
public enum Forwarding {
    static let path: FilePath = "/proc/sys/net/ipv4/ip_forward"

    public static var isOn: Bool { (try? FileSystem.readString(path))?.trimmingNewlines() == "1" }

    static func savedFile(_ directory: FilePath) -> FilePath {
        let inode = NetworkNamespace.identity("/proc/thread-self/ns/net") ?? 0
        return directory.appending("ip_forward-\(inode)")
    }

    /// Turns forwarding on, remembering the value found (once per namespace).
    public static func enable(stateDirectory: FilePath) throws {
        let saved = savedFile(stateDirectory)
        if !FileSystem.exists(saved) {
            try FileSystem.writeFile(saved, isOn ? "1\n" : "0\n", mode: 0o600)
        }
        do { try FileSystem.writeFile(path, "1\n") } catch let error as Errno {
            throw StageError(stage: "write \"1\" to \(path)", errno: error)
        }
    }

    /// Puts back the value `enable` found, and forgets it.
    public static func restore(stateDirectory: FilePath) throws {
        let saved = savedFile(stateDirectory)
        guard let value = try? FileSystem.readString(saved) else { return }
        try FileSystem.writeFile(path, value)
        unlink(saved.string)
    }
}
