// Exercise 07: a container plugged into a bridge, observed from outside. The checker
// reads the container's network namespace and the exercise's stand-in host with its own
// netlink sockets (opened inside them: setns, socket, setns back), serves a page in the
// stand-in host, and sends packets both ways. It makes no interface, route or namespace
// of its own: the exercise's stand-in host holds everything, and ends with it.
import Glibc
import Isolation
import SystemPackage

func checkNetwork(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("07")
        let rootfs = try context.rootfs(in: folder)
        // A subnet of this run's choosing (10.77.N.0/24): an address written into the
        // steps instead of the one passed in shows up as wrong.
        let network = IPv4Subnet(IPv4Address(10 << 24 | 77 << 16 | UInt32(20 + getpid() % 200) << 8), prefixLength: 24)
        let gateway = IPv4Address(network.address.value + 1)
        let port = 8007
        let token = "isolation-check-07-\(getpid())"
        let ours = try RouteSocket()
        let linksBefore = Set(try ours.links().map(\.name))
        let ownNamespace = NetworkNamespace.identity("/proc/self/ns/net")
        // (busybox wget's own -T crashes, statically linked: timeout(1) bounds it.) The probe waits twice: once while the checker looks at the interfaces, once
        // while it starts its server; then it pings and fetches.
        let probe = "echo \"pid=$$\"; echo ready; read go; ping -c 1 -W 3 \(gateway) >/dev/null 2>&1; echo \"ping=$?\"; "
            + "echo \"http=$(timeout -s KILL 8 wget -q -O - http://\(gateway):\(port)/ 2>&1 | head -n 1)\"; echo finished; read x; true"
        guard let running = startProbe(report, "07", program, ["--rootfs", rootfs.string, "--subnet", network.description, "--", "sh", "-c", probe],
                                       environment: context.environment(), explain: explainFailedStart) else { return }
        var server: ChildProcess?
        var standInHost: UInt64?
        var containerNamespace: UInt64?
        defer {
            if let server { _ = try? server.signal(SIGKILL); _ = try? server.wait() }
            running.finish(timeout: 10)
            checkNothingLeft(report, linksBefore: linksBefore, namespaces: [standInHost, containerNamespace].compactMap { $0 })
        }
        guard let shell = Proc.waitForDescendant(of: running.child.pid, named: "sh", timeout: 5) else {
            report.fail("find the probe's shell on the host", observed: "no process named sh below exercise-07 (PID \(running.child.pid))",
                        expected: "the probe running as a descendant", hint: "the command must run in the container the exercise started")
            return
        }
        let hostPath = FilePath("/proc/\(running.child.pid)/ns/net"), containerPath = FilePath("/proc/\(shell)/ns/net")
        standInHost = NetworkNamespace.identity(hostPath)
        containerNamespace = NetworkNamespace.identity(containerPath)
        report.check("the container has a network namespace of its own", containerNamespace != nil && containerNamespace != standInHost && containerNamespace != ownNamespace,
                     observed: "/proc/\(shell)/ns/net → net:[\(containerNamespace ?? 0)]; the stand-in host's (exercise-07, PID \(running.child.pid)) → net:[\(standInHost ?? 0)]; the checker's → net:[\(ownNamespace ?? 0)]",
                     expected: "three different namespaces", hint: "the exercise clones the container with CLONE_NEWNET and unshares its stand-in host: do not change Exercise07.swift")

        // What is in each namespace, read with rtnetlink from here.
        let host = try RouteSocket.open(in: hostPath)
        let inside = try RouteSocket.open(in: containerPath)
        let hostLinks = try host.links(), insideLinks = try inside.links()
        let eth0 = insideLinks.first { $0.name == "eth0" }
        report.check("eth0 is in the container's network namespace", eth0 != nil,
                     observed: "ip -n CONTAINER -br link → " + brief(insideLinks),
                     expected: "lo and eth0",
                     hint: "step \"move-veth\": the veth end named eth0 is created in the stand-in host; it has to be handed to the container's namespace (ip-link(8) `netns`)")
        report.check("eth0 left the stand-in host (moved, not copied)", !hostLinks.contains { $0.name == "eth0" },
                     observed: "ip -n HOST -br link → " + brief(hostLinks),
                     expected: "lo, isolation0 and isoveth0; no eth0",
                     hint: "step \"move-veth\": an interface is in exactly one namespace; moving it makes it vanish here")
        let bridge = hostLinks.first { $0.name == "isolation0" }
        let peer = hostLinks.first { $0.name == "isoveth0" }
        report.check("the host's end of the cable is still a port of the bridge", peer != nil && peer?.master == bridge?.index && bridge != nil,
                     observed: "isoveth0 " + (peer.map { $0.master.map { index in "master " + (hostLinks.first { $0.index == index }?.name ?? "#\(index)") } ?? "on no bridge" } ?? "is missing from the stand-in host"),
                     expected: "isoveth0 master isolation0",
                     hint: "step \"move-veth\": move the container's end (eth0), not the host's (isoveth0), which the bridge needs")
        guard let eth0 else {
            report.skipped("eth0's address, state and the routes: the container has no eth0")
            return
        }
        let addresses = try inside.addresses().filter { $0.index == eth0.index }.map(\.address)
        let inSubnet = addresses.first { network.contains($0.address) && $0.prefixLength == network.prefixLength }
        let usable = inSubnet.map { $0.address != gateway && $0.address != network.first && $0.address != network.broadcast } ?? false
        report.check("eth0 has an address in \(network)", inSubnet != nil && usable,
                     observed: "ip -n CONTAINER -4 addr show eth0 → " + (addresses.isEmpty ? "no IPv4 address" : addresses.map(\.description).joined(separator: ", ")),
                     expected: "an address of \(network) with its /\(network.prefixLength), not the gateway's (\(gateway)): the one the exercise passes in",
                     hint: "step \"address\": the address must be added in the container's namespace, with the prefix length (it tells the kernel which addresses are on this link)")
        report.check("eth0 is up", eth0.isUp,
                     observed: "eth0 flags → " + (eth0.isUp ? "UP" : "DOWN"),
                     expected: "UP",
                     hint: "step \"address\": a moved interface arrives down, and an interface that is down neither sends nor gets a route to its subnet")
        let routes = try inside.routes()
        let defaultRoute = routes.first { $0.destination.prefixLength == 0 }
        report.check("the default route goes via the gateway \(gateway) on eth0", defaultRoute?.gateway == gateway && defaultRoute?.device == eth0.index,
                     observed: "ip -n CONTAINER route → " + (routes.isEmpty ? "no route" : routes.map { describe($0, links: insideLinks) }.joined(separator: "; ")),
                     expected: "default via \(gateway) dev eth0",
                     hint: "step \"default-route\": without it the container reaches its subnet only; everything else needs a gateway, the bridge's address")

        // Packets: a server in the stand-in host, the container pings and fetches.
        let www = folder.appending("www")
        try FileSystem.makeDirectories(www)
        try FileSystem.writeFile(www.appending("index.html"), token + "\n")
        if let busybox = Command.find("busybox") {
            var options = SpawnOptions()
            options.parentDeathSignal = SIGKILL
            options.standardInput = try FileDescriptor.open("/dev/null", .readOnly, options: .closeOnExec)
            server = try NetworkNamespace.entered(hostPath) {
                try ChildProcess.spawn(busybox, arguments: ["busybox", "httpd", "-f", "-p", "\(gateway):\(port)", "-h", www.string],
                                       environment: Command.defaultEnvironment, options: options)
            }
            try? options.standardInput?.close()
            usleep(300_000)
        } else {
            report.note("(no busybox on this host: nothing serves HTTP in the stand-in host, so the fetch below must fail; apt install busybox-static)")
        }
        running.send("go\n")
        guard running.waitForLine("finished", timeout: 30) else {
            report.fail("the probe pings and fetches", observed: "no answer from the probe within 30 s:\n" + indent(running.stdout + running.stderr),
                        expected: "ping=…, http=…", hint: "run it yourself: sudo \(program) -- sh, then ping \(gateway)")
            return
        }
        let values = running.stdout.probeValues
        report.check("the container pings the gateway \(gateway) (through eth0, the cable and the bridge)", values["ping"] == "0",
                     observed: "ping -c 1 -W 3 \(gateway) inside → exit status \(values["ping"] ?? "?")",
                     expected: "0: one echo reply",
                     hint: "the container needs eth0 up with an address in \(network); look at the ✗ above")
        let page = values["http"] ?? ""
        report.check("the container fetches a page from the stand-in host (HTTP to \(gateway):\(port))", page == token,
                     observed: "wget http://\(gateway):\(port)/ inside → " + (page.isEmpty ? "nothing" : page),
                     expected: token + " (the page the checker serves there)",
                     hint: "a TCP connection needs the same path as the ping, both ways")
        if let address = inSubnet?.address {
            let arguments = ["-c", "1", "-W", "3", address.description]
            let (pinger, pingArguments) = Command.find("busybox").map { ($0, ["ping"] + arguments) } ?? (Command.find("ping") ?? "/bin/ping", arguments)
            let reply = try NetworkNamespace.entered(hostPath) { try Command.run(pinger, pingArguments) }
            report.check("the stand-in host pings the container at \(address)", reply.status == .exited(0),
                         observed: "ping -c 1 -W 3 \(address) in the stand-in host → \(reply.status)" + (reply.status == .exited(0) ? "" : ": " + (reply.standardOutput + reply.standardError).trimmed),
                         expected: "exited 0: the bridge knows the way to \(network), the container's address answers",
                         hint: "the reply leaves the container by its route to \(network) on eth0")
        }
        running.closeInput()
        let status = running.finish(timeout: 10)
        report.check("the exercise ends with the command's status", status == .exited(0), observed: "exercise-07 \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a root filesystem copy in /tmp and netlink sockets", hint: "run `swift run doctor`")
    }
}

/// Why the exercise stopped before the probe, in words, for the errors the steps typically
/// cause (the kernel's answer names the message, not the mistake).
private func explainFailedStart(_ stderr: String) -> String? {
    if stderr.contains("RTM_NEWROUTE") && stderr.contains("unreachable") {
        return "the kernel refused the default route: its gateway is unreachable. A gateway is reachable only through an interface that is up and has an address in the gateway's subnet; a moved veth end arrives down (step \"address\": bring eth0 up; ip-link(8))"
    }
    if stderr.contains("there is no interface eth0") {
        return "the step found no eth0 in the namespace its socket belongs to: either eth0 was not moved into the container (step \"move-veth\"), or the socket is the stand-in host's, not one opened inside the container (a netlink socket acts on the namespace it was created in; rtnetlink(7))"
    }
    if stderr.contains("EEXIST") && stderr.contains("RTM_NEWROUTE") {
        return "a default route exists already in that namespace: is the socket the container's?"
    }
    return nil
}

/// Nothing may outlive the exercise: no new interface in the checker's (the machine's)
/// namespace, and no process left in the stand-in host's or the container's namespace.
private func checkNothingLeft(_ report: Report, linksBefore: Set<String>, namespaces: [UInt64]) {
    let now = Set(((try? RouteSocket().links()) ?? []).map(\.name))
    let added = now.subtracting(linksBefore).filter { $0 == "eth0" || $0.hasPrefix("iso") }
    report.check("no interface of the exercise is in this machine's namespace", added.isEmpty,
                 observed: added.isEmpty ? "ip -br link here: no isolation0, isoveth0 or eth0 appeared" : "new here: " + added.sorted().joined(separator: ", "),
                 expected: "everything in the stand-in host",
                 hint: "work only with the sockets and namespace files the steps are given")
    var still: [pid_t] = []
    for _ in 0..<50 {
        still = Proc.allPIDs().filter { pid in namespaces.contains(NetworkNamespace.identity(FilePath("/proc/\(pid)/ns/net")) ?? 0) }
        if still.isEmpty { break }
        usleep(100_000)
    }
    report.check("the stand-in host and the container are gone, and the bridge and the cable with them", still.isEmpty,
                 observed: still.isEmpty ? "no process is left in net:[\(namespaces.map(String.init).joined(separator: "], net:["))]"
                                         : "still in them: PIDs " + still.map(String.init).joined(separator: " "),
                 expected: "a network namespace ends with its last process, and its interfaces with it",
                 hint: "the exercise must end when its command does")
}

private func brief(_ links: [NetworkInterface]) -> String {
    links.map { "\($0.name) \($0.isUp ? "UP" : "DOWN")" }.joined(separator: ", ")
}

private func describe(_ route: Route, links: [NetworkInterface]) -> String {
    let device = route.device.flatMap { index in links.first { $0.index == index }?.name } ?? "?"
    let destination = route.destination.prefixLength == 0 ? "default" : route.destination.description
    return destination + (route.gateway.map { " via \($0)" } ?? "") + " dev " + device
}

/// `check 07 --hint`: level 1 names the API, level 2 the shape of the answer.
let networkHints: [StepHint] = [
    StepHint(step: "move-veth",
             api: "RouteSocket (Sources/Isolation/Network/RouteSocket.swift, its link calls in Interfaces.swift) speaks rtnetlink in this namespace: `host.moveToNamespace(interface, namespace:)` sends RTM_NEWLINK with IFLA_NET_NS_FD, as `ip link set eth0 netns /proc/PID/ns/net` does.",
             shape: "One call on the host's socket with the container's /proc/PID/ns/net path. Afterwards eth0 is gone from the stand-in host and appears in the container, down and without an address."),
    StepHint(step: "address",
             api: "A netlink socket acts on the namespace it was opened in: `RouteSocket.open(in: container)` opens one inside (setns, socket, setns back). Then `addAddress(_:to:)` (RTM_NEWADDR) and `setUp(_:)` (RTM_NEWLINK with IFF_UP).",
             shape: "let inside = try RouteSocket.open(in: container); the address with its prefix length on eth0; then eth0 up. Up, the kernel adds the subnet's route by itself."),
    StepHint(step: "default-route",
             api: "`addRoute(via:)` on a socket opened in the container's namespace sends RTM_NEWROUTE for 0.0.0.0/0, as `ip -n CONTAINER route add default via GATEWAY` does.",
             shape: "RouteSocket.open(in: container).addRoute(via: gateway). \"Network is unreachable\" means the gateway is not on a subnet of an interface that is up: the address step first."),
]
