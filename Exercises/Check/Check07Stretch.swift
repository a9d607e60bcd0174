// Exercise 07, stretch: NAT both ways, observed from outside. The checker makes two
// network namespaces of its own (`ip netns add isolation-check-07s-PID-…`): the stand-in
// host, with an uplink, and the "outside" at the other end of it, which has no route to
// the containers' subnet. The exercise enters the first (--netns), clones its container
// there and writes its rules. The outside's server logs who connects (it must be the
// host's address); the outside and the host connect to the host's published port (they
// must get the container's token, and the container's server must see the outside's own
// address). Subnets and ports change with every run. Everything, the namespaces with
// their links and tables and every process in them, is removed, also on failure.
import Glibc
import Isolation
import SystemPackage

func checkNetworkStretch(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        guard let ip = Command.find("ip"), let busybox = Command.find("busybox"), let timeout = Command.find("timeout") else {
            report.fail("the tools the check needs", observed: "ip, busybox or timeout is missing", expected: "iproute2, busybox-static, coreutils",
                        hint: "sudo apt-get install iproute2 busybox-static")
            return
        }
        let nft = try Firewall.nft()
        let folder = try context.folder("07-stretch")
        let rootfs = try context.rootfs(in: folder)

        // This run's numbers: a subnet, an uplink, ports, a token (hard-coded values fail).
        let seed = UInt32(getpid())
        let network = IPv4Subnet(IPv4Address(10 << 24 | 79 << 16 | (20 + seed % 200) << 8), prefixLength: 24)
        let gateway = IPv4Address(network.address.value + 1), containerAddress = IPv4Address(network.address.value + 2)
        let uplink = IPv4Subnet(IPv4Address(198 << 24 | 18 << 16 | (seed % 250) << 8), prefixLength: 24)
        let hostAddress = IPv4Address(uplink.address.value + 1 + seed % 100)
        let outsideAddress = IPv4Address(uplink.address.value + 150 + seed % 100)
        let port = PortMapping(hostPort: UInt16(20000 + seed % 20000), containerPort: UInt16(8100 + seed % 800))
        let outsidePort = 9100 + seed % 800
        let token = "isolation-check-07s-\(getpid())-\(UInt32.random(in: 1000...9999))"
        report.note("this run: container subnet \(network), --publish \(port.hostPort):\(port.containerPort)")
        report.note("          uplink \(uplink): host \(hostAddress), outside \(outsideAddress)")

        // What this machine's own namespace has before: links, nft tables, ip_forward.
        let machineLinks = Set(try RouteSocket().links().map(\.name))
        let machineTables = nftTables(nft)
        let machineForwarding = readForwarding()

        let namespaces = CheckedNetworkNamespaces(ip: ip)
        var outsideServer: ChildProcess?
        var running: Running?
        var containerNamespace: UInt64?
        defer {
            if let outsideServer { _ = try? outsideServer.signal(SIGKILL); _ = try? outsideServer.wait() }
            running?.finish(timeout: 10)
            checkMachineUntouched(report, links: machineLinks, tables: machineTables, forwarding: machineForwarding, nft: nft,
                                  namespaces: namespaces.identities + [containerNamespace].compactMap { $0 })
            namespaces.remove()
        }

        // The stand-in host and the outside, joined by a veth pair; forwarding off in both.
        let hostPath = try namespaces.add("isolation-check-07s-\(getpid())-host")
        let outsidePath = try namespaces.add("isolation-check-07s-\(getpid())-out")
        let host = try RouteSocket.open(in: hostPath), outside = try RouteSocket.open(in: outsidePath)
        try host.setUp("lo")
        try outside.setUp("lo")
        try host.addVethPair("isolation-up", peer: "eth0", peerNamespace: outsidePath)
        try host.addAddress(IPv4Subnet(hostAddress, prefixLength: uplink.prefixLength), to: "isolation-up")
        try host.setUp("isolation-up")
        try outside.addAddress(IPv4Subnet(outsideAddress, prefixLength: uplink.prefixLength), to: "eth0")
        try outside.setUp("eth0")
        // A new namespace copies this machine's ip_forward: start from 0, as a fresh host.
        for path in [hostPath, outsidePath] {
            try NetworkNamespace.entered(path) { try FileSystem.writeFile("/proc/sys/net/ipv4/ip_forward", "0\n") }
        }
        report.note("made: ip netns add \(hostPath.lastComponent!) (isolation-up)")
        report.note("      ip netns add \(outsidePath.lastComponent!) (eth0; no route to \(network))")

        // The outside's server: a CGI that logs the address each connection came from.
        let outsideLog = folder.appending("outside-peers.log")
        let outsideRoot = folder.appending("outside")
        try FileSystem.makeDirectories(outsideRoot.appending("cgi-bin"))
        try FileSystem.writeFile(outsideRoot.appending("cgi-bin/who"),
                                 "#!/bin/sh\necho \"$REMOTE_ADDR\" >> \(outsideLog)\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"outside saw $REMOTE_ADDR\"\n", mode: 0o755)
        var options = SpawnOptions()
        options.parentDeathSignal = SIGKILL
        options.standardInput = try FileDescriptor.open("/dev/null", .readOnly, options: .closeOnExec)
        outsideServer = try NetworkNamespace.entered(outsidePath) {
            try ChildProcess.spawn(busybox, arguments: ["busybox", "httpd", "-f", "-p", "\(outsideAddress):\(outsidePort)", "-h", outsideRoot.string],
                                   environment: Command.defaultEnvironment, options: options)
        }
        try? options.standardInput?.close()

        // The container's server, in its root filesystem: the token, and a log of its peers.
        try FileSystem.makeDirectories(rootfs.appending("srv/www/cgi-bin"))
        try FileSystem.writeFile(rootfs.appending("srv/www/cgi-bin/peer"),
                                 "#!/bin/sh\necho \"$REMOTE_ADDR\" >> /srv/peers.log\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \(token)\n", mode: 0o755)
        let peerLog = rootfs.appending("srv/peers.log")
        let probe = "echo \"pid=$$\"; httpd -f -p \(port.containerPort) -h /srv/www </dev/null >/dev/null 2>&1 & server=$!; sleep 0.3; echo ready; read go; "
            + "echo \"out=$(timeout -s KILL 8 wget -q -O - http://\(outsideAddress):\(outsidePort)/cgi-bin/who 2>&1 | head -n 1)\"; echo finished; read x; kill $server; true"
        running = startProbe(report, "07-stretch", program,
                             ["--netns", hostPath.string, "--rootfs", rootfs.string, "--subnet", network.description, "--publish", "\(port.hostPort):\(port.containerPort)",
                              "--", "sh", "-c", probe], environment: context.environment())
        guard let running else { return }
        guard let shell = Proc.waitForDescendant(of: running.child.pid, named: "sh", timeout: 5) else {
            report.fail("find the probe's shell on the host", observed: "no process named sh below exercise-07-stretch (PID \(running.child.pid))",
                        expected: "the probe running as a descendant", hint: "the command must run in the container the exercise started")
            return
        }
        containerNamespace = NetworkNamespace.identity(FilePath("/proc/\(shell)/ns/net"))

        // The rules, as the learner wrote them, and the switch.
        let ruleset = try NetworkNamespace.entered(hostPath) { try Command.run(nft, ["list", "ruleset"]) }.standardOutput
        report.note("nft list ruleset, in the stand-in host:")
        for line in ruleset.split(separator: "\n") { report.note("  " + line.replacingOccurrences(of: "\t", with: "  ")) }
        let hostForwarding = try NetworkNamespace.entered(hostPath) { readForwarding() }
        report.check("the stand-in host forwards (net.ipv4.ip_forward in its namespace)", hostForwarding == "1",
                     observed: "net.ipv4.ip_forward in the stand-in host → \(hostForwarding); in this machine's → \(readForwarding()) (was \(machineForwarding))",
                     expected: "1 in the stand-in host",
                     hint: "step \"forward\": the sysctl is per network namespace; the one a process writes is the one it is in (the exercise is in the stand-in host)")

        // Out: the container fetches from the outside, whose server logs the peer.
        let before = ipCounters(of: outsideServer?.pid ?? 0)
        running.send("go\n")
        guard running.waitForLine("finished", timeout: 30) else {
            report.fail("the probe fetches from the outside", observed: "no answer from the probe within 30 s:\n" + indent(running.stdout + running.stderr),
                        expected: "out=…", hint: "run it yourself: the README shows how to make the namespaces")
            return
        }
        let after = ipCounters(of: outsideServer?.pid ?? 0)
        let seen = peers(outsideLog)
        let unanswerable = (after["OutNoRoutes"] ?? 0) - (before["OutNoRoutes"] ?? 0)
        let arrived = (after["InReceives"] ?? 0) - (before["InReceives"] ?? 0)
        var why = "step \"masquerade\": rewrite the source of what leaves the subnet by any interface but the bridge (a nat chain on the postrouting hook)"
        if hostForwarding != "1" {
            why = "step \"forward\": the stand-in host drops what is not addressed to it unless it forwards"
        } else if seen.isEmpty && unanswerable > 0 {
            why = "packets reached the outside (\(arrived) in), but it could not answer \(unanswerable) of them (Ip OutNoRoutes): they carried the container's address, to which the outside has no route. " + why
        } else if seen.contains(containerAddress.description) {
            why = "the outside saw the container's own address. " + why
        }
        report.check("the outside's server saw the stand-in host's address \(hostAddress), not the container's", seen == [hostAddress.description],
                     observed: "its log of peers → " + (seen.isEmpty ? "no connection" : seen.joined(separator: ", "))
                        + "; the container's wget http://\(outsideAddress):\(outsidePort)/cgi-bin/who → \(running.stdout.probeValues["out"].map { $0.isEmpty ? "nothing" : $0 } ?? "?")",
                     expected: "one connection, from \(hostAddress) (masqueraded; the outside has no route to \(network))",
                     hint: why)

        // In: the outside, then the stand-in host itself, connect to the published port.
        func fetch(from namespace: FilePath, _ address: IPv4Address) -> String {
            var answer = ""
            for _ in 0..<3 {
                let request = "printf 'GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n' | \(timeout) -s KILL 10 \(busybox) nc -w 5 \(address) \(port.hostPort)"
                answer = (try? NetworkNamespace.entered(namespace) { try Command.run("/bin/sh", ["-c", request]) })
                    .map { ($0.standardOutput + $0.standardError).trimmed } ?? ""
                if answer.contains(token) { break }
                usleep(300_000)
            }
            return answer
        }
        let dnatLines = ruleset.split(separator: "\n").filter { $0.contains("dnat") }.map { String($0).trimmed }
        let rulesSay = dnatLines.isEmpty ? "no dnat rule in the ruleset" : "its dnat rules: " + dnatLines.joined(separator: " · ")
        let wrongTarget = !dnatLines.isEmpty && !dnatLines.contains { $0.contains("\(containerAddress):\(port.containerPort)") }
        let outsideAnswer = fetch(from: outsidePath, hostAddress)
        let peersAfterOutside = peers(peerLog)
        report.check("the outside reaches the container through \(hostAddress):\(port.hostPort)", outsideAnswer.contains(token),
                     observed: "GET http://\(hostAddress):\(port.hostPort)/cgi-bin/peer from the outside → "
                        + (outsideAnswer.isEmpty ? "nothing" : String(outsideAnswer.split(whereSeparator: \.isNewline).last ?? "").prefix(80)),
                     expected: "\(token) (the container's server, on \(containerAddress):\(port.containerPort))",
                     hint: wrongTarget
                        ? "step \"publish\": the rule sends the connection elsewhere than \(containerAddress):\(port.containerPort), where the container listens; \(rulesSay)"
                        : hostForwarding != "1" ? "step \"forward\": after DNAT the connection is routed on into the bridge, and the stand-in host does not forward"
                        : "step \"publish\": rewrite the destination before routing (a nat chain on the prerouting hook), to the container's address and port; \(rulesSay)")
        if outsideAnswer.contains(token) {
            let peer = peersAfterOutside.last ?? ""
            report.check("the container's server saw the outside's own address \(outsideAddress)", peer == outsideAddress.description,
                         observed: "its log of peers → " + (peersAfterOutside.isEmpty ? "nothing" : peersAfterOutside.joined(separator: ", ")),
                         expected: outsideAddress.description + " (DNAT changes the destination only)",
                         hint: peer == gateway.description
                            ? "step \"masquerade\": a connection that came in through the published port left for the bridge with its source rewritten to \(gateway): the rule masquerades everything that leaves, the bridge included. Masquerade only what leaves the subnet for elsewhere"
                            : "step \"masquerade\": only what leaves \(network) by another interface than the bridge is rewritten")
        }
        let hostAnswer = fetch(from: hostPath, hostAddress)
        report.check("a program on the stand-in host reaches the container through \(hostAddress):\(port.hostPort) too", hostAnswer.contains(token),
                     observed: "GET http://\(hostAddress):\(port.hostPort)/cgi-bin/peer in the stand-in host → "
                        + (hostAnswer.isEmpty ? "nothing" : String(hostAnswer.split(whereSeparator: \.isNewline).last ?? "").prefix(80)),
                     expected: token,
                     hint: outsideAnswer.contains(token)
                        ? "step \"publish\": a packet the host sends itself never passes prerouting; it passes the output hook (a nat chain there, with the same rule)"
                        : "step \"publish\": \(rulesSay)")

        running.closeInput()
        let status = running.finish(timeout: 10)
        report.check("the exercise ends with the command's status", status == .exited(0), observed: "exercise-07-stretch \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
        // The stand-in host is the checker's: the exercise takes back what it added.
        let tablesLeft = try NetworkNamespace.entered(hostPath) { nftTables(nft) }
        let forwardingLeft = try NetworkNamespace.entered(hostPath) { readForwarding() }
        let linksLeft = try host.links().map(\.name)
        report.check("the stand-in host is as the checker made it again", tablesLeft.isEmpty && forwardingLeft == "0" && linksLeft.sorted() == ["isolation-up", "lo"],
                     observed: "nft list tables → \(tablesLeft.isEmpty ? "none" : tablesLeft.joined(separator: ", ")); ip_forward → \(forwardingLeft); links → \(linksLeft.joined(separator: ", "))",
                     expected: "no table, ip_forward 0, only lo and isolation-up",
                     hint: "the exercise deletes its table and the bridge and puts ip_forward back when its command ends: do not change Exercise07Stretch.swift")
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "two network namespaces, a veth pair, nft", hint: "run `swift run doctor`")
    }
}

/// Network namespaces the check makes with `ip netns add` and removes again, with every
/// process left in them and the /run/netns mount `ip` makes the first time.
final class CheckedNetworkNamespaces {
    let ip: FilePath
    private(set) var names: [String] = []
    let folderExisted = FileSystem.exists("/run/netns")
    let folderMounted = ((try? MountInfo.table()) ?? []).contains { $0.mountPoint == "/run/netns" }

    init(ip: FilePath) { self.ip = ip }

    /// `ip netns add NAME`: the namespace's file, /run/netns/NAME.
    func add(_ name: String) throws -> FilePath {
        let result = try Command.run(ip, ["netns", "add", name])
        guard result.status == .exited(0) else { throw IsolationError("ip netns add \(name): \(result.standardError.trimmed)") }
        names.append(name)
        return FilePath("/run/netns/\(name)")
    }

    var identities: [UInt64] { names.compactMap { NetworkNamespace.identity(FilePath("/run/netns/\($0)")) } }

    func remove() {
        for name in names {
            let pids = ((try? Command.run(ip, ["netns", "pids", name]))?.standardOutput ?? "").split(separator: "\n").compactMap { pid_t($0) }
            for pid in pids { kill(pid, SIGKILL) }
            _ = try? Command.run(ip, ["netns", "del", name])
        }
        names = []
        if (try? FileSystem.contentsOfDirectory("/run/netns"))?.isEmpty == true {
            if !folderMounted { try? Mount.unmount("/run/netns", detach: true) }
            if !folderExisted { rmdir("/run/netns") }
        }
    }
}

/// The addresses a server's CGI logged, one a line; busybox httpd listens on IPv6 too
/// and names an IPv4 peer `[::ffff:A.B.C.D]`.
private func peers(_ log: FilePath) -> [String] {
    ((try? FileSystem.readString(log)) ?? "").split(whereSeparator: \.isNewline).map { line in
        var address = String(line)
        for affix in ["[::ffff:", "::ffff:"] where address.hasPrefix(affix) { address = String(address.dropFirst(affix.count)) }
        return address.hasSuffix("]") ? String(address.dropLast()) : address
    }
}

/// net.ipv4.ip_forward of the calling thread's network namespace.
private func readForwarding() -> String {
    ((try? FileSystem.readString("/proc/sys/net/ipv4/ip_forward")) ?? "?").trimmed
}

/// `nft list tables` in the calling thread's network namespace, one line each.
private func nftTables(_ nft: FilePath) -> [String] {
    ((try? Command.run(nft, ["list", "tables"]))?.standardOutput ?? "").split(separator: "\n").map { String($0).trimmed }.filter { !$0.isEmpty }
}

/// The Ip counters (/proc/PID/net/snmp) of the namespace `pid` is in.
private func ipCounters(of pid: pid_t) -> [String: Int] {
    let lines = (Proc.read("/proc/\(pid)/net/snmp") ?? "").split(separator: "\n").filter { $0.hasPrefix("Ip: ") }
    guard lines.count >= 2 else { return [:] }
    let names = lines[0].split(separator: " ").dropFirst(), values = lines[1].split(separator: " ").dropFirst()
    return Dictionary(zip(names.map(String.init), values.map { Int($0) ?? 0 }), uniquingKeysWith: { $1 })
}

/// Nothing may reach this machine's own namespace, and nothing may outlive the check.
private func checkMachineUntouched(_ report: Report, links: Set<String>, tables: [String], forwarding: String, nft: FilePath, namespaces: [UInt64]) {
    let newLinks = Set(((try? RouteSocket().links()) ?? []).map(\.name)).subtracting(links).filter { $0 == "eth0" || $0.hasPrefix("iso") }
    let newTables = nftTables(nft).filter { !tables.contains($0) }
    let forwardingNow = readForwarding()
    report.check("this machine's own namespace is untouched", newLinks.isEmpty && newTables.isEmpty && forwardingNow == forwarding,
                 observed: "new links: \(newLinks.isEmpty ? "none" : newLinks.sorted().joined(separator: ", ")); new nft tables: \(newTables.isEmpty ? "none" : newTables.joined(separator: ", ")); ip_forward \(forwarding) → \(forwardingNow)",
                 expected: "no new link, no new table, ip_forward as it was",
                 hint: "everything belongs in the stand-in host, the namespace the exercise runs in")
    var still: [pid_t] = []
    for _ in 0..<50 {
        still = Proc.allPIDs().filter { pid in namespaces.contains(NetworkNamespace.identity(FilePath("/proc/\(pid)/ns/net")) ?? 0) }
        if still.isEmpty { break }
        usleep(100_000)
    }
    report.check("no process is left in the stand-in host, the outside or the container", still.isEmpty,
                 observed: still.isEmpty ? "none in net:[\(namespaces.map(String.init).joined(separator: "], net:["))]"
                                         : "still there: " + still.map { "\($0) (\(Proc.comm($0)))" }.joined(separator: ", ") + " (now killed)",
                 expected: "the exercise, its container and the servers gone",
                 hint: "the exercise must end when its command does")
}

/// `check 07 --stretch --hint`: level 1 the API, level 2 the shape of the answer.
let networkStretchHints: [StepHint] = [
    StepHint(step: "forward",
             api: "The switch is the file /proc/sys/net/ipv4/ip_forward (sysctl net.ipv4.ip_forward); /proc/sys/net belongs to the network namespace of the process that opens it. FileSystem.writeFile(_:_:) writes it. The library's own: Forwarding.enable(stateDirectory:) in Sources/Isolation/Network/Firewall.swift.",
             shape: "One write of \"1\\n\", from this process, which is already in the stand-in host (the exercise entered it with setns before your steps). Not inside the container: it does not route for anyone."),
    StepHint(step: "masquerade",
             api: "firewall.apply(script, what:) runs `nft -f -` in this namespace; the table is firewall.table (family ip). A chain sees packets only if it is a base chain: `add chain ip TABLE NAME { type nat hook postrouting priority srcnat; policy accept; }`; then `add rule ip TABLE NAME MATCHES masquerade`. Matches: `ip saddr SUBNET`, `oifname != \"BRIDGE\"`. The library's own: Firewall.createScript(subnet:bridge:masquerade:).",
             shape: "Two lines: the postrouting nat chain, and `ip saddr \\(subnet.network) oifname != \"\\(bridge)\" masquerade`. Without the matches it also rewrites what a published port sends into the bridge."),
    StepHint(step: "publish",
             api: "DNAT: `dnat to ADDRESS:PORT` in a nat chain before routing: hook prerouting (priority dstnat) for packets that arrive, hook output (priority -100) for the host's own. Match `fib daddr type local tcp dport HOSTPORT` (any of the host's addresses). The library's own: Firewall.publishScript(_:to:owner:).",
             shape: "Two chains (prerouting, output) and the same rule in each: `fib daddr type local tcp dport \\(port.hostPort) dnat to \\(address):\\(port.containerPort)`. The container's port, not the host's: the server listens on port.containerPort."),
]
