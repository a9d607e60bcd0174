// The lesson: two containers on one bridge, a web server, NAT both ways, then nothing left.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

struct Lesson: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson",
        abstract: "The lesson (the default), or run COMMAND in a container after --.",
        discussion: """
            Everything happens in a network namespace of this program's own, standing in for the \
            host: nothing reaches this machine's interfaces, and it all vanishes when the program ends.
            """)

    @Option(name: .long, help: "How the container is connected: none (only lo), bridge, host (the stand-in host's interfaces).")
    var network: NetworkMode = .bridge

    @Option(name: .long, help: ArgumentHelp("Publish a container port on the host: HOSTPORT:CONTAINERPORT, like 8080:80.", valueName: "H:C"))
    var publish: [String] = []

    @Option(name: .long, help: ArgumentHelp("The bridge's subnet (default: the first 10.N.0.0/24 no route covers).", valueName: "CIDR"))
    var subnet: String?

    @Option(name: .long, help: ArgumentHelp("A root filesystem to use instead of the built-in one (needs busybox's sh, ping, wget, httpd).", valueName: "DIR"))
    var rootfs: String?

    @Argument(parsing: .postTerminator, help: "The command to run in the container.") var command: [String] = []

    func run() throws {
        continueOnClosedOutput()
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-07") {
            // Everything checked before anything is made.
            let ports = try publish.map(PortMapping.init(parsing:))
            if !ports.isEmpty && network != .bridge {
                throw IsolationError("--publish needs --network bridge (with \(network.rawValue) there is no address to forward to)")
            }
            let chosenSubnet = try subnet.map { text in
                guard let parsed = IPv4Subnet(text), parsed.prefixLength <= 30 else {
                    throw IsolationError("--subnet \(text): expected an IPv4 network such as 10.88.0.0/24 (/30 or larger)")
                }
                return parsed.network
            }
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "creating network interfaces and NAT rules needs CAP_NET_ADMIN")])
            if network == .bridge { _ = try Firewall.nft() }
            let root = try rootfs.map { try RootFilesystem.validate(FilePath($0)) }
                ?? RootFilesystem.builtIn(log: { say(style.dim("  (\($0))")) })
            let state = try FileSystem.makeTemporaryDirectory(purpose: "net")
            defer { try? FileSystem.removeTree(state) }

            // The stand-in host: a network namespace of our own. It goes away with the
            // last process in it (us and our containers), and every interface with it.
            try NetworkNamespace.unshareOwn()
            _ = try RouteSocket().setUp("lo")

            if command.isEmpty {
                try lesson(root, state: state, subnet: chosenSubnet ?? BridgeNetwork.freeSubnet(), ports: ports.isEmpty ? [PortMapping(hostPort: 8080, containerPort: 80)] : ports)
            } else {
                status = try runCommand(root, state: state, subnet: chosenSubnet ?? BridgeNetwork.freeSubnet(), ports: ports)
            }
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }

    /// `-- COMMAND`: one container, connected as `--network` says, the command's output as
    /// its own, then everything removed.
    func runCommand(_ root: RootFilesystem, state: FilePath, subnet: IPv4Subnet, ports: [PortMapping]) throws -> ExitStatus {
        var namespaces: Namespaces = [.uts, .pid, .mount, .ipc, .network]
        if network == .host { namespaces.remove(.network) }
        let bridge = try BridgeNetwork(name: "run", bridge: "isolation0", subnet: subnet, stateDirectory: state)
        let id = "run-\(getpid())"
        let child = try Container.start(
            arguments: ["chapter-07", "init", "--rootfs", root.path.string, "--namespaces", namespaces.description,
                        "--hostname", "container", "--"] + command,
            environment: containerEnvironment(), namespaces: namespaces,
            beforeRelease: { pid in
                if network == .bridge {
                    let attachment = try bridge.attach(id, namespace: FilePath("/proc/\(pid)/ns/net"), ports: ports)
                    printError(style.dim("chapter-07: \(attachment.address) on \(bridge.bridge)"
                        + (ports.isEmpty ? "" : ", published \(ports.map(\.description).joined(separator: ", ")) on the stand-in host")))
                }
            })
        defer { if network == .bridge { try? bridge.detach(id) } }
        blockSignalsForSupervision()
        return try child.waitForwardingSignals()
    }

    func lesson(_ root: RootFilesystem, state: FilePath, subnet: IPv4Subnet, ports: [PortMapping]) throws {
        say(style.bold("Chapter 07 · Networks"))
        say("2013: Docker's docker0, a bridge with a veth pair per container and iptables NAT.")
        say("2015: CNI, the same steps as a plugin any runtime can call. Here: the same steps,")
        say("as rtnetlink messages (ip) and nftables rules (nft), each shown as its command.")
        say()
        lessonStep("unshare(CLONE_NEWNET)",
                   "this lesson runs in a network namespace of its own, standing in for the host: a real engine does all of this in the host's own namespace. Nothing here can reach this machine's interfaces, and it all vanishes with the lesson")
        lessonStep("ip link set lo up", "")
        let host = try RouteSocket()
        say()
        say(style.bold("Before") + style.dim("  (ip -br link, in the stand-in host)"))
        showLinks(host)

        // The outside world: a namespace at the other end of a cable, with no route to
        // the containers' subnet. Only NAT can make them talk.
        say()
        say(style.bold("Step 1 · An \"outside\" network") + style.dim("  (a namespace standing in for the internet)"))
        let uplink = "isolation-up"
        let hostAddress = IPv4Subnet(IPv4Address("192.0.2.1")!, prefixLength: 24)
        let outsideAddress = IPv4Subnet(IPv4Address("192.0.2.2")!, prefixLength: 24)
        let outside = try ContainerShell(name: "outside", root: root, namespaces: [.uts, .pid, .mount, .ipc, .network]) { pid in
            lessonStep("ip link add \(uplink) type veth peer name eth0 netns \(pid)",
                       "RTM_NEWLINK: a veth pair, its far end created inside the outside's namespace (IFLA_NET_NS_FD)")
            try host.addVethPair(uplink, peer: "eth0", peerNamespace: FilePath("/proc/\(pid)/ns/net"))
            lessonStep("ip addr add \(hostAddress) dev \(uplink); ip link set \(uplink) up", "RTM_NEWADDR, RTM_NEWLINK with IFF_UP: the host's address toward the outside")
            try host.addAddress(hostAddress, to: uplink)
            try host.setUp(uplink)
            let inside = try RouteSocket.open(in: FilePath("/proc/\(pid)/ns/net"))
            lessonStep("ip -n outside addr add \(outsideAddress) dev eth0; ip -n outside link set eth0 up",
                       "a netlink socket opened inside the namespace (setns, socket, setns back) configures its side; no route back to \(subnet)")
            try inside.addAddress(outsideAddress, to: "eth0")
            try inside.setUp("eth0")
        }
        defer { outside.stop() }

        // Two containers on one bridge.
        let network = try BridgeNetwork(name: "lesson", bridge: "isolation0", subnet: subnet, stateDirectory: state)
        var containers: [ContainerShell] = []
        defer { for container in containers.reversed() { container.stop() } }
        var addresses: [String: IPv4Address] = [:]
        for (number, name) in ["web", "client"].enumerated() {
            say()
            say(style.bold("Step \(number + 2) · Container \"\(name)\" joins the bridge") + style.dim("  (created, network attached, then started)"))
            containers.append(try ContainerShell(name: name, root: root, namespaces: [.uts, .pid, .mount, .ipc, .network]) { pid in
                let attachment = try network.attach(name, namespace: FilePath("/proc/\(pid)/ns/net"), ports: name == "web" ? ports : [], narrate: lessonStep)
                addresses[name] = IPv4Subnet(attachment.address).map(\.address)
            })
        }
        let (web, client) = (containers[0], containers[1])
        guard let webAddress = addresses["web"], let clientAddress = addresses["client"] else { throw IsolationError("no address was recorded") }
        defer {
            say()
            say(style.bold("Step 6 · Everything removed") + style.dim("  (what docker rm and CNI DEL do)"))
            for name in ["client", "web"] { try? network.detach(name, narrate: lessonStep) }
            lessonStep("ip link del \(uplink)", "")
            try? host.deleteLink(uplink)
            say()
            say(style.bold("After") + style.dim("  (ip -br link; nft list tables)"))
            showLinks(host)
            say("  nft tables: " + (Firewall.tables().isEmpty ? style.dim("none") : Firewall.tables().joined(separator: ", ")))
        }

        say()
        say(style.bold("The stand-in host now") + style.dim("  (ip -br link; ip -4 -br addr; nft list table ip isolation-lesson)"))
        showLinks(host)
        for address in try host.addresses() {
            let name = try host.links().first { $0.index == address.index }?.name ?? "?"
            say("  " + pad(name, 16) + address.address.description)
        }
        if let table = try? Command.run(Firewall.nft(), ["list", "table", "ip", "isolation-lesson"]) {
            for line in table.standardOutput.split(separator: "\n") { say(style.dim("  " + line.replacingTabs())) }
        }

        say()
        say(style.bold("Step 4 · Traffic") + style.dim("  (commands run by each container's shell)"))
        try show(web, "mount -t tmpfs tmpfs /tmp && mkdir /tmp/www && echo 'hello from web' > /tmp/www/index.html && httpd -p 80 -h /tmp/www",
                 "busybox httpd on port 80 (its files in a tmpfs, so the shared root filesystem stays untouched)")
        try show(outside, "mount -t tmpfs tmpfs /tmp && mkdir -p /tmp/www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \"outside saw a request from $REMOTE_ADDR\"\\n' > /tmp/www/cgi-bin/who && chmod +x /tmp/www/cgi-bin/who && httpd -p 80 -h /tmp/www",
                 "the outside runs a server that says who asked")
        try show(client, "ping -c 2 -W 2 \(webAddress)", "container to container: through the bridge, as on one Ethernet switch")
        try show(client, "wget -q -O - http://\(webAddress)/", "HTTP from client to web, by address")
        try show(client, "wget -q -O - http://\(outsideAddress.address)/cgi-bin/who",
                 "out to the outside: the source \(clientAddress) is masqueraded as \(hostAddress.address), the only address the outside can answer")
        if let port = ports.first {
            say()
            say(style.bold("Step 5 · A published port") + style.dim("  (-p \(port.hostPort):\(port.containerPort))"))
            try show(outside, "wget -q -O - http://\(hostAddress.address):\(port.hostPort)/",
                     "the outside asks the host's port \(port.hostPort); prerouting's DNAT sends it to \(webAddress):\(port.containerPort)")
            // A network client runs in a process of its own: a container of chapter 02's
            // without a network namespace, that is, `--network host`.
            let onHost = try ContainerShell(name: "host", root: root, namespaces: [.uts, .pid, .mount, .ipc]) { _ in }
            defer { onHost.stop() }
            try show(onHost, "wget -q -O - http://\(hostAddress.address):\(port.hostPort)/",
                     "the host's own connection (a --network host container: no network namespace of its own); output's DNAT does the same")
        }
    }

    func show(_ container: ContainerShell, _ command: String, _ why: String) throws {
        say("  " + style.syscall("\(container.name)# \(command.count > 110 ? String(command.prefix(100)) + " …" : command)"))
        say("      " + style.dim(why))
        let (status, lines) = try container.run(command)
        for line in lines where !line.isEmpty { say("      → " + line) }
        if status != 0 { throw IsolationError("\(container.name): `\(command)` failed with status \(status)") }
    }

    /// `ip -br link`, from an RTM_GETLINK dump.
    func showLinks(_ host: RouteSocket) {
        let links = (try? host.links()) ?? []
        for link in links {
            let master = link.master.flatMap { index in links.first { $0.index == index }?.name }.map { " master \($0)" } ?? ""
            say("  " + pad(link.name, 16) + pad(link.isUp ? "UP" : "DOWN", 6) + pad(link.kind ?? "", 8) + link.mac + master)
        }
    }

    func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
}

extension Substring {
    func replacingTabs() -> String { String(self).split(separator: "\t", omittingEmptySubsequences: false).joined(separator: "  ") }
}
