// Chapter 07: networks. Every test makes its own "host" network namespace
// (isolation-test-…), and puts its bridges, containers (more namespaces, as a CNI runtime
// passes them: /run/netns/NAME) and an "outside" namespace behind it, so that no packet
// reaches this machine's interfaces. Each test removes its namespaces (and with them
// every interface and nft table in them), its servers and its state folders, also when
// it fails.
import Foundation
import Isolation
import SystemPackage
import Testing

/// Whether /run/netns was there, and a mount point, before the first test made a
/// namespace: `ip netns add` makes it (a bind mount of itself, so that the namespace
/// files' mounts can be shared) and `ip netns del` leaves it; the tests remove it again.
let runNetnsBefore: (existed: Bool, mounted: Bool) = (
    FileManager.default.fileExists(atPath: "/run/netns"), mounts(under: "/run/netns").contains("/run/netns"))

/// The namespaces of one test, named isolation-test-<tag>-<name>.
final class TestNetwork: @unchecked Sendable {
    let tag: String
    private(set) var names: [String] = []
    let state: TemporaryFolder

    init(_ purpose: String) throws {
        _ = runNetnsBefore  // read before any `ip netns add`
        tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        state = try TemporaryFolder("net-\(purpose)")
    }

    /// `ip netns add isolation-test-TAG-NAME`; returns the full name.
    @discardableResult
    func namespace(_ name: String) throws -> String {
        let full = "isolation-test-\(tag)-\(name)"
        let result = try run("/usr/sbin/ip", ["netns", "add", full])
        guard result.status == 0 else { throw IsolationError("ip netns add \(full): \(result)") }
        names.append(full)
        _ = try ip(full, ["link", "set", "lo", "up"])
        return full
    }

    func path(_ full: String) -> String { "/run/netns/\(full)" }

    /// `ip -n NS ARGS`.
    func ip(_ namespace: String, _ arguments: [String]) throws -> RunResult {
        try run("/usr/sbin/ip", ["-n", namespace] + arguments)
    }

    /// Runs a program inside namespace `namespace` (`ip netns exec`).
    /// Without standard input it goes through Isolation's spawn, which clears the blocked
    /// signals a test runner's child inherits (ping's -W and wget's -T need SIGALRM).
    func exec(_ namespace: String, _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil, timeout: TimeInterval = 30) throws -> RunResult {
        guard stdin == nil else {
            return try run("/usr/sbin/ip", ["netns", "exec", namespace] + arguments, environment: environment, stdin: stdin, timeout: timeout)
        }
        let output = try Command.run("/usr/sbin/ip", ["netns", "exec", namespace] + arguments,
                                     environment: (environment ?? ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]).map { "\($0.key)=\($0.value)" })
        let status: Int32 = if case .exited(let code) = output.status { code } else { 128 }
        return RunResult(status: status, reason: .exit, stdout: output.standardOutput, stderr: output.standardError)
    }

    /// Serves `folder` with busybox httpd in `server` while each client fetches its URL
    /// (an HTTP/1.0 GET through busybox nc in the client's namespace), then stops
    /// the server: one shell, so that no server outlives the call. Returns each client's output.
    func fetch(server: String, folder: String, clients: [(namespace: String, url: String)]) throws -> [String] {
        // SIGKILL below: a process started from the test runner inherits its blocked
        // signals, SIGTERM among them.
        var script = "busybox httpd -f -p 80 -h '\(folder)' </dev/null >/dev/null 2>&1 & server=$!; sleep 0.5\n"
        for (index, client) in clients.enumerated() {
            // busybox nc speaks the HTTP (busybox wget, static, crashes in NSS lookups on some hosts).
            let url = client.url.dropFirst("http://".count)
            let hostPort = url.prefix { $0 != "/" }, path = url.dropFirst(hostPort.count)
            let parts = hostPort.split(separator: ":")
            script += "echo @@\(index); printf 'GET \(path) HTTP/1.0\\r\\n\\r\\n' | ip netns exec \(client.namespace) busybox nc -w 5 \(parts[0]) \(parts.count > 1 ? parts[1] : "80") 2>&1\n"
        }
        script += "kill -9 $server; wait $server 2>/dev/null; exit 0\n"
        let result = try exec(server, ["sh", "-c", script], timeout: 120)
        let parts = result.stdout.components(separatedBy: "@@").dropFirst()
        return clients.indices.map { index in
            parts.first { $0.hasPrefix("\(index)\n") }.map { String($0.dropFirst("\(index)\n".count)) } ?? "(no output: \(result))"
        }
    }

    /// Interface names in `namespace` (`ip -br link`, without the @peer suffix).
    func links(_ namespace: String) throws -> [String] {
        try ip(namespace, ["-br", "link"]).stdout.split(separator: "\n").compactMap {
            $0.split(separator: " ").first.map { String($0.split(separator: "@")[0]) }
        }
    }

    func nftTables(_ namespace: String) throws -> String {
        try exec(namespace, ["nft", "list", "tables"]).stdout
    }

    /// Kills the processes we started in our namespaces (by their PIDs), then deletes them.
    func remove() {
        for name in names {
            let pids = (try? run("/usr/sbin/ip", ["netns", "pids", name]))?.stdout.split(separator: "\n").compactMap { pid_t($0) } ?? []
            for pid in pids { kill(pid, SIGKILL) }
            _ = try? run("/usr/sbin/ip", ["netns", "del", name])
        }
        state.remove()
        // What `ip netns add` left, once no namespace file is in it.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        if left.isEmpty {
            if !runNetnsBefore.mounted && mounts(under: "/run/netns").contains("/run/netns") { umount2("/run/netns", Int32(MNT_DETACH)) }
            if !runNetnsBefore.existed { rmdir("/run/netns") }
        }
    }
}

/// One CNI plugin call, as a runtime makes it: the plugin run in the host's namespace,
/// CNI_* in its environment, the network configuration on its standard input.
func cni(_ net: TestNetwork, host: String, plugin: String, command: String, id: String, netns: String?,
         config: String, ifname: String = "eth0") throws -> RunResult {
    var environment = ["CNI_COMMAND": command, "CNI_CONTAINERID": id, "CNI_IFNAME": ifname,
                       "CNI_PATH": "/usr/lib/cni", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
    if let netns { environment["CNI_NETNS"] = netns }
    return try net.exec(host, [plugin], environment: environment, stdin: config)
}

/// Our plugin's network configuration, with the reference bridge plugin's keys.
func ourConfig(name: String, bridge: String, subnet: String, dataDir: String, masquerade: Bool = true,
               ports: [(Int, Int)] = []) -> String {
    let mappings = ports.map { "{\"hostPort\": \($0.0), \"containerPort\": \($0.1), \"protocol\": \"tcp\"}" }.joined(separator: ", ")
    return """
        {"cniVersion": "1.0.0", "name": "\(name)", "type": "isolation-cni", "bridge": "\(bridge)",
         "isGateway": true, "ipMasq": \(masquerade), "mtu": 1400,
         "ipam": {"subnet": "\(subnet)", "dataDir": "\(dataDir)"},
         "runtimeConfig": {"portMappings": [\(mappings)]}}
        """
}

func json(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

/// The address (without prefix) of a CNI result's first IP.
func resultAddress(_ result: RunResult) -> String? {
    ((json(result.stdout)["ips"] as? [[String: Any]])?.first?["address"] as? String)?.split(separator: "/").first.map(String.init)
}

var cniPlugin: String { product("isolation-cni") }
let referencePluginsInstalled = FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/bridge")
    && FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/host-local")
let nftInstalled = Command.find("nft") != nil

@Suite("chapter-07: networks", .serialized, .enabled(if: isRoot, "network namespaces, links and nft rules need root"),
       .enabled(if: nftInstalled, "nftables is not installed (apt-get install nftables)"))
struct Chapter07Tests {
    @Test("two containers on one bridge reach each other (ping, HTTP); a third on another bridge cannot")
    func sameBridgeAndIsolation() throws {
        let net = try TestNetwork("bridges")
        defer { net.remove() }
        let host = try net.namespace("host")
        let (c1, c2, c3) = (try net.namespace("c1"), try net.namespace("c2"), try net.namespace("c3"))
        let netA = ourConfig(name: "t\(net.tag)a", bridge: "isot\(net.tag.prefix(6))a", subnet: "10.201.0.0/24", dataDir: net.state.path)
        let netB = ourConfig(name: "t\(net.tag)b", bridge: "isot\(net.tag.prefix(6))b", subnet: "10.202.0.0/24", dataDir: net.state.path)
        var addresses: [String: String] = [:]
        for (container, config) in [(c1, netA), (c2, netA), (c3, netB)] {
            let added = try cni(net, host: host, plugin: cniPlugin, command: "ADD", id: container, netns: net.path(container), config: config)
            #expect(added.status == 0, "ADD \(container): \(added)")
            addresses[container] = resultAddress(added)
        }
        let (a1, a2, a3) = (addresses[c1] ?? "?", addresses[c2] ?? "?", addresses[c3] ?? "?")
        #expect(Set([a1, a2, a3]).count == 3)

        let ping = try net.exec(c1, ["busybox", "ping", "-c", "1", "-W", "2", a2])
        #expect(ping.status == 0 && ping.stdout.contains("1 packets received"), "c1 → c2: \(ping)")
        let www = net.state.path + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "served by c2\n".write(toFile: www + "/index.html", atomically: true, encoding: .utf8)
        let fetched = try net.fetch(server: c2, folder: www, clients: [(c1, "http://\(a2)/"), (c3, "http://\(a2)/")])
        #expect(fetched[0].contains("served by c2"), "c1 fetches from c2: \(fetched[0])")
        #expect(!fetched[1].contains("served by c2"), "c3, on another bridge, must not: \(fetched[1])")

        // The third is on another bridge, behind the same host: routed, but dropped by
        // the isolation rule of the first network's table.
        let blocked = try net.exec(c3, ["busybox", "ping", "-c", "1", "-W", "1", a1])
        #expect(blocked.status != 0 && blocked.stdout.contains("0 packets received"), "c3 → c1 must fail: \(blocked)")
        #expect(a3.hasPrefix("10.202.0."))

        for (container, config) in [(c1, netA), (c2, netA), (c3, netB)] {
            let deleted = try cni(net, host: host, plugin: cniPlugin, command: "DEL", id: container, netns: net.path(container), config: config)
            #expect(deleted.status == 0, "DEL \(container): \(deleted)")
        }
        #expect(try net.links(host) == ["lo"], "nothing left in the host namespace")
        #expect(try !net.nftTables(host).contains("isolation"))
    }

    @Test("the outside sees the masqueraded address; a published port reaches the server")
    func masqueradeAndPublishedPort() throws {
        let net = try TestNetwork("nat")
        defer { net.remove() }
        let host = try net.namespace("host"), outside = try net.namespace("outside"), c1 = try net.namespace("c1")
        // The uplink: host 192.0.2.1/24 — outside 192.0.2.2/24 (TEST-NET-1, never routed).
        for command in [["link", "add", "isot-up", "type", "veth", "peer", "name", "eth0", "netns", outside],
                        ["addr", "add", "192.0.2.1/24", "dev", "isot-up"], ["link", "set", "isot-up", "up"]] {
            let result = try net.ip(host, command)
            #expect(result.status == 0, "ip \(command): \(result)")
        }
        _ = try net.ip(outside, ["addr", "add", "192.0.2.2/24", "dev", "eth0"])
        _ = try net.ip(outside, ["link", "set", "eth0", "up"])
        let forwardingBefore = try net.exec(host, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout

        let config = ourConfig(name: "t\(net.tag)", bridge: "isot\(net.tag.prefix(6))", subnet: "10.203.0.0/24",
                               dataDir: net.state.path, ports: [(8080, 80)])
        let added = try cni(net, host: host, plugin: cniPlugin, command: "ADD", id: "c1", netns: net.path(c1), config: config)
        #expect(added.status == 0, "ADD: \(added)")
        let address = resultAddress(added) ?? "?"
        #expect(try net.exec(host, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout == "1\n")

        // Who asks? A CGI script on the outside answers with REMOTE_ADDR.
        let outsideWWW = net.state.path + "/outside"
        try FileManager.default.createDirectory(atPath: outsideWWW + "/cgi-bin", withIntermediateDirectories: true)
        try "#!/bin/sh\necho Content-Type: text/plain\necho\necho \"from $REMOTE_ADDR\"\n".write(toFile: outsideWWW + "/cgi-bin/who", atomically: true, encoding: .utf8)
        chmod(outsideWWW + "/cgi-bin/who", 0o755)
        let who = try net.fetch(server: outside, folder: outsideWWW, clients: [(c1, "http://192.0.2.2/cgi-bin/who")])[0]
        #expect(who.contains("192.0.2.1") && !who.contains(address), "masqueraded as the host's address: \(who)")

        let www = net.state.path + "/c1"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "published\n".write(toFile: www + "/index.html", atomically: true, encoding: .utf8)
        // Without the published port, the outside has no way in (no route, and the
        // isolation rule): given a route, its direct request must still fail.
        _ = try net.ip(outside, ["route", "add", "10.203.0.0/24", "via", "192.0.2.1"])
        let pages = try net.fetch(server: c1, folder: www, clients: [
            (outside, "http://192.0.2.1:8080/"), (host, "http://192.0.2.1:8080/"), (outside, "http://\(address)/")])
        #expect(pages[0].contains("published"), "outside → host:8080 → c1:80: \(pages[0])")
        #expect(pages[1].contains("published"), "host → its own :8080 → c1:80: \(pages[1])")
        #expect(!pages[2].contains("published"), "direct access must be dropped: \(pages[2])")

        let deleted = try cni(net, host: host, plugin: cniPlugin, command: "DEL", id: "c1", netns: net.path(c1), config: config)
        #expect(deleted.status == 0, "DEL: \(deleted)")
        #expect(try !net.nftTables(host).contains("isolation"))
        #expect(try net.exec(host, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout == forwardingBefore, "ip_forward restored")
        #expect(try net.links(host).sorted() == ["isot-up", "lo"])
    }

    @Test("20 containers started at once get 20 distinct addresses, all freed after")
    func twentyAtOnce() throws {
        let net = try TestNetwork("twenty")
        defer { net.remove() }
        let host = try net.namespace("host")
        let containers = try (0..<20).map { try net.namespace("c\($0)") }
        let name = "t\(net.tag)"
        let config = ourConfig(name: name, bridge: "isot\(net.tag.prefix(6))", subnet: "10.204.0.0/24", dataDir: net.state.path)
        let results = Results(count: containers.count)
        DispatchQueue.concurrentPerform(iterations: containers.count) { index in
            results.set(index, try? cni(net, host: host, plugin: cniPlugin, command: "ADD", id: containers[index],
                                        netns: net.path(containers[index]), config: config))
        }
        let addresses = results.all.map { $0.flatMap(resultAddress) }
        #expect(addresses.allSatisfy { $0?.hasPrefix("10.204.0.") == true }, "\(results.all)")
        #expect(Set(addresses.compactMap { $0 }).count == 20, "distinct: \(addresses)")
        let files = try FileManager.default.contentsOfDirectory(atPath: net.state.path + "/" + name).filter { IPv4Address($0) != nil }
        #expect(files.count == 20)
        #expect(try net.links(host).filter { $0.hasPrefix("iso") }.count == 21, "a bridge and 20 host ends")

        let deleted = Results(count: containers.count)
        DispatchQueue.concurrentPerform(iterations: containers.count) { index in
            deleted.set(index, try? cni(net, host: host, plugin: cniPlugin, command: "DEL", id: containers[index],
                                        netns: net.path(containers[index]), config: config))
        }
        #expect(deleted.all.allSatisfy { $0?.status == 0 }, "\(deleted.all)")
        #expect(!FileManager.default.fileExists(atPath: net.state.path + "/" + name), "every address is free again")
        #expect(try net.links(host) == ["lo"], "no veth, no bridge left")
        #expect(try !net.nftTables(host).contains("isolation"), "the table went with the last container")
        for container in containers { #expect(try net.links(container) == ["lo"]) }
    }

    @Test("CNI ADD, CHECK, DEL like the reference bridge + host-local plugins; DEL twice is fine",
          .enabled(if: referencePluginsInstalled, "containernetworking-plugins is not installed"))
    func cniAgainstReference() throws {
        let net = try TestNetwork("cni")
        defer { net.remove() }
        let reference = """
            {"cniVersion": "1.0.0", "name": "r\(net.tag)", "type": "bridge", "bridge": "isor\(net.tag.prefix(6))",
             "isGateway": true, "ipMasq": false, "mtu": 1400,
             "ipam": {"type": "host-local", "subnet": "10.205.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": "\(net.state.path)/reference"}}
            """
        let ours = ourConfig(name: "o\(net.tag)", bridge: "isoo\(net.tag.prefix(6))", subnet: "10.205.0.0/24",
                             dataDir: net.state.path + "/ours", masquerade: false)
        for (label, plugin, config) in [("reference", "/usr/lib/cni/bridge", reference), ("isolation-cni", cniPlugin, ours)] {
            let host = try net.namespace("\(label)-host"), container = try net.namespace("\(label)-c")
            let added = try cni(net, host: host, plugin: plugin, command: "ADD", id: "c1", netns: net.path(container), config: config)
            #expect(added.status == 0, "\(label) ADD: \(added)")
            let result = json(added.stdout)
            #expect(result["cniVersion"] as? String == "1.0.0", "\(label): \(added.stdout)")
            let ip = (result["ips"] as? [[String: Any]])?.first ?? [:]
            #expect(ip["gateway"] as? String == "10.205.0.1", "\(label): \(ip)")
            let interfaces = result["interfaces"] as? [[String: Any]] ?? []
            let index = ip["interface"] as? Int ?? -1
            #expect(interfaces.indices.contains(index) && interfaces[index]["name"] as? String == "eth0"
                    && interfaces[index]["sandbox"] as? String == net.path(container), "\(label): \(interfaces)")
            // Observed from outside: an address in the subnet, a default route via the gateway, the MTU.
            let address = try net.ip(container, ["-4", "-br", "addr", "show", "eth0"]).stdout
            #expect(address.contains("10.205.0.") && address.contains("/24"), "\(label): \(address)")
            let routes = try net.ip(container, ["route"]).stdout
            #expect(routes.contains("default via 10.205.0.1 dev eth0"), "\(label): \(routes)")
            #expect(try net.ip(container, ["link", "show", "eth0"]).stdout.contains("mtu 1400"), "\(label)")

            let withPrevious = String(config.dropLast()) + ", \"prevResult\": \(added.stdout)}"
            let checked = try cni(net, host: host, plugin: plugin, command: "CHECK", id: "c1", netns: net.path(container), config: withPrevious)
            #expect(checked.status == 0, "\(label) CHECK: \(checked)")
            // CHECK notices a change: the container's address removed by hand.
            if let addressText = (ip["address"] as? String) {
                _ = try net.ip(container, ["addr", "del", addressText, "dev", "eth0"])
                let broken = try cni(net, host: host, plugin: plugin, command: "CHECK", id: "c1", netns: net.path(container), config: withPrevious)
                #expect(broken.status != 0 && json(broken.stdout)["msg"] != nil, "\(label) CHECK after the address went: \(broken)")
            }
            for round in 1...2 {
                let deleted = try cni(net, host: host, plugin: plugin, command: "DEL", id: "c1", netns: net.path(container), config: config)
                #expect(deleted.status == 0, "\(label) DEL #\(round): \(deleted)")
            }
            #expect(try net.links(container) == ["lo"], "\(label): eth0 is gone")
        }
        let version = try net.exec(net.names[0], [cniPlugin], environment: ["CNI_COMMAND": "VERSION"], stdin: "")
        #expect((json(version.stdout)["supportedVersions"] as? [String])?.contains("1.0.0") == true, "\(version)")
    }

    @Test("bad input: an overlapping subnet, a port already published, a missing container: a clear error, nothing changed")
    func badInput() throws {
        let net = try TestNetwork("bad")
        defer { net.remove() }
        let host = try net.namespace("host"), c1 = try net.namespace("c1"), c2 = try net.namespace("c2")
        // A route the host has: 10.206.0.0/16 on a veth pair (the dummy module may be missing).
        #expect(try net.ip(host, ["link", "add", "isot-r0", "type", "veth", "peer", "name", "isot-r1"]).status == 0)
        _ = try net.ip(host, ["addr", "add", "10.206.0.1/16", "dev", "isot-r0"])
        _ = try net.ip(host, ["link", "set", "isot-r0", "up"])
        _ = try net.ip(host, ["link", "set", "isot-r1", "up"])
        #expect(try net.ip(host, ["route"]).stdout.contains("10.206.0.0/16"))
        func snapshot() throws -> [String] {
            [try net.ip(host, ["-br", "link"]).stdout, try net.ip(host, ["-4", "-br", "addr"]).stdout,
             try net.nftTables(host), try net.ip(c2, ["-br", "link"]).stdout, try net.ip(c2, ["-4", "-br", "addr"]).stdout]
        }

        // A subnet inside the host's 10.206.0.0/16.
        var before = try snapshot()
        let overlapping = ourConfig(name: "t\(net.tag)o", bridge: "isot\(net.tag.prefix(6))o", subnet: "10.206.5.0/24", dataDir: net.state.path)
        let refused = try cni(net, host: host, plugin: cniPlugin, command: "ADD", id: "c2", netns: net.path(c2), config: overlapping)
        #expect(refused.status != 0 && (json(refused.stdout)["msg"] as? String ?? "").contains("overlaps"), "\(refused)")
        #expect(try snapshot() == before, "nothing changed")

        // Port 8080 published by c1; c2 asks for it too.
        let first = ourConfig(name: "t\(net.tag)p", bridge: "isot\(net.tag.prefix(6))p", subnet: "10.207.0.0/24", dataDir: net.state.path, ports: [(8080, 80)])
        #expect(try cni(net, host: host, plugin: cniPlugin, command: "ADD", id: "c1", netns: net.path(c1), config: first).status == 0)
        before = try snapshot()
        let clash = try cni(net, host: host, plugin: cniPlugin, command: "ADD", id: "c2", netns: net.path(c2), config: first)
        #expect(clash.status != 0 && (json(clash.stdout)["msg"] as? String ?? "").contains("already published"), "\(clash)")
        #expect(try snapshot() == before, "nothing changed")
        let files = try FileManager.default.contentsOfDirectory(atPath: net.state.path + "/t\(net.tag)p").filter { IPv4Address($0) != nil }
        #expect(files.count == 1, "only c1's address is taken: \(files)")

        // A container whose namespace does not exist: CNI's code 3.
        let missing = try cni(net, host: host, plugin: cniPlugin, command: "ADD", id: "c9",
                              netns: "/run/netns/isolation-test-\(net.tag)-missing", config: first)
        #expect(missing.status != 0 && json(missing.stdout)["code"] as? Int == 3, "\(missing)")
        #expect(try snapshot() == before, "nothing changed")

        // Bad configuration: a clear CNI error, code 7.
        let badSubnet = try cni(net, host: host, plugin: cniPlugin, command: "ADD", id: "c2", netns: net.path(c2),
                                config: ourConfig(name: "x", bridge: "isotx", subnet: "10.300.0.0/24", dataDir: net.state.path))
        #expect(badSubnet.status != 0 && json(badSubnet.stdout)["code"] as? Int == 7, "\(badSubnet)")

        #expect(try cni(net, host: host, plugin: cniPlugin, command: "DEL", id: "c1", netns: net.path(c1), config: first).status == 0)
        #expect(try !net.nftTables(host).contains("isolation"))
    }

    @Test("the lesson: containers talk, NAT works both ways, and nothing is left on the machine")
    func lesson() throws {
        let result = try run(product("chapter-07"), [], timeout: 180)
        #expect(result.status == 0, "\(result)")
        let out = result.stdout
        #expect(out.contains("2 packets received"), "ping between the containers")
        #expect(out.components(separatedBy: "→ hello from web").count - 1 == 3, "client, outside and host fetch the page: \(out)")
        #expect(out.contains("request from") && out.contains("192.0.2.1]"), "masquerade seen from outside")
        #expect(out.contains("nft tables: none"))
        // The machine's own namespace never saw the lesson's interfaces or table (other
        // programs may change it meanwhile, so look for ours only).
        let links = try run("/usr/sbin/ip", ["-br", "link"]).stdout
        #expect(!links.contains("isolation0") && !links.contains("isolation-up"), "\(links)")
        #expect(try !run("/usr/sbin/nft", ["list", "tables"]).stdout.contains("isolation-lesson"))
        #expect(try !FileManager.default.contentsOfDirectory(atPath: "/tmp").contains { $0.hasPrefix("isolation-net-") })
    }

    @Test("--network none|bridge|host -- COMMAND")
    func networkModes() throws {
        let none = try run(product("chapter-07"), ["--network", "none", "--", "cat", "/proc/net/dev"])
        #expect(none.status == 0 && none.stdout.contains("lo:") && !none.stdout.contains("eth0"), "\(none)")
        let bridge = try run(product("chapter-07"), ["--network", "bridge", "--subnet", "10.209.0.0/24", "--", "ip", "route"])
        #expect(bridge.status == 0 && bridge.stdout.contains("default via 10.209.0.1"), "\(bridge)")
        let bad = try run(product("chapter-07"), ["--network", "host", "--publish", "8080:80", "--", "true"])
        #expect(bad.status != 0 && bad.stderr.contains("--publish needs --network bridge"), "\(bad)")
    }
}

/// Results filled in by concurrent iterations.
final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [RunResult?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: RunResult?) { lock.lock(); values[index] = value; lock.unlock() }
    var all: [RunResult?] { lock.lock(); defer { lock.unlock() }; return values }
}
