// Exercise 07, stretch — the way out and the way in. Exercise 07 plugged a container into
// a bridge: it reaches the host, and nothing beyond. Here the stand-in host has an uplink
// to an "outside" network that has no route to the containers' subnet, and your steps
// make the two meet: the host routes (forwarding), rewrites the container's packets to
// its own address on the way out (masquerade), and sends connections to one of its ports
// on to the container's server (a published port, DNAT). Your steps are in Steps.swift;
// this file is the rest, with exercise 07's own steps done (see the end of the file).
//
//   sudo .build/debug/exercise-07-stretch --netns /run/netns/HOST [--subnet CIDR] [--publish H:C] -- COMMAND
//   swift run check 07 --stretch
//
// Everything happens in the network namespace `--netns` names, standing in for the host
// (the checker makes it, with its uplink and the outside behind it; the README shows how
// to make them by hand). Without `--netns` the exercise makes an empty one of its own,
// with no way out. Nothing reaches this machine's interfaces.
//
// The solution is chapter 07's Firewall (Sources/Isolation/Network/Firewall.swift).
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise07Stretch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-07-stretch",
        abstract: "Exercise 07, stretch: NAT both ways with nftables, out of the stand-in host and into the container (your steps: Steps.swift).",
        subcommands: [Start.self, Init.self],
        defaultSubcommand: Start.self)
}

/// The container: chapter 02's namespaces, with a network namespace of its own.
let containerNamespaces: Namespaces = [.uts, .pid, .mount, .ipc, .network]

/// The names in the stand-in host: the bridge, the host's end of the veth pair, the
/// container's end (moved into it), and the network's one nftables table.
let bridgeName = "isolation0"
let hostEnd = "isoveth0"
let containerEnd = "eth0"
let firewall = Firewall(network: "ex07s")

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run COMMAND in a container with NAT both ways (the default).")

    @Option(help: ArgumentHelp("The stand-in host: a network namespace file to enter (ip netns add NAME makes /run/netns/NAME).", valueName: "PATH"))
    var netns: String?
    @Option(help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR")) var rootfs: String?
    @Option(help: ArgumentHelp("The bridge's subnet; the bridge gets its first address, the container the next.", valueName: "CIDR"))
    var subnet = "10.88.0.0/24"
    @Option(name: .customLong("publish"), help: ArgumentHelp("Publish a container port on the host: HOSTPORT:CONTAINERPORT, like 8080:80.", valueName: "H:C"))
    var published: [String] = []
    @Argument(parsing: .postTerminator, help: "The command to run (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("07-stretch") {
            // Every value is checked before anything is created.
            guard let parsed = IPv4Subnet(subnet), parsed.prefixLength <= 30 else {
                throw IsolationError("--subnet \(subnet): expected an IPv4 network such as 10.88.0.0/24 (/30 or larger)")
            }
            let ports = try published.map(PortMapping.init(parsing:))
            let network = parsed.network
            let gateway = IPv4Address(network.address.value + 1)
            let address = IPv4Subnet(IPv4Address(network.address.value + 2), prefixLength: network.prefixLength)
            let root = try exerciseRootfs(rootfs, why: "network interfaces and nftables rules need CAP_NET_ADMIN, namespaces CAP_SYS_ADMIN")
            _ = try Firewall.nft()

            // 1. The stand-in host: the namespace we are given (setns(2), for good), or a
            //    new, empty one. From here on, every link, rule and sysctl is its own.
            if let netns {
                guard FileSystem.exists(FilePath(netns)) else {
                    throw IsolationError("--netns \(netns): no such namespace file", hint: "make one: sudo ip netns add isolation-try (then --netns /run/netns/isolation-try)")
                }
                try NetworkNamespace.enter(FilePath(netns))
                note("setns(\(netns), CLONE_NEWNET)", "the stand-in host: this process and everything it makes live in it")
            } else {
                try NetworkNamespace.unshareOwn()
                note("unshare(CLONE_NEWNET)", "a stand-in host of our own, with no uplink: the way out needs --netns")
            }
            let host = try RouteSocket()
            try host.setUp("lo")
            if let taken = try host.links().first(where: { [bridgeName, hostEnd, containerEnd].contains($0.name) }) {
                throw IsolationError("the stand-in host has an interface \(taken.name) already: is another exercise-07-stretch running in it?")
            }
            // The namespace may outlive us (--netns): what we change there is put back.
            let forwardingBefore = Forwarding.isOn
            defer {
                if firewall.exists() {
                    note("nft delete table ip \(firewall.table)", "every rule of the network at once")
                    try? firewall.delete()
                }
                if !forwardingBefore && Forwarding.isOn {
                    note("sysctl -w net.ipv4.ip_forward=0", "as it was")
                    try? FileSystem.writeFile("/proc/sys/net/ipv4/ip_forward", "0\n")
                }
                try? host.deleteLink(bridgeName)
            }

            // 2. The bridge, with the gateway's address.
            note("ip link add \(bridgeName) type bridge; ip addr add \(gateway)/\(network.prefixLength) dev \(bridgeName); ip link set \(bridgeName) up", "")
            try host.addBridge(bridgeName)
            try host.addAddress(IPv4Subnet(gateway, prefixLength: network.prefixLength), to: bridgeName)
            try host.setUp(bridgeName)

            // 3. The container, held before execve(2) while its network is made.
            blockSignalsForSupervision()
            let child = try Container.start(
                arguments: ["exercise-07-stretch", "init", "--rootfs", root.path.string, "--"] + command,
                environment: exerciseEnvironment(), namespaces: containerNamespaces,
                beforeRelease: { pid in
                    // 4. Exercise 07: the cable, its end in the container, address, route.
                    try plugIn(pid: pid, host: host, address: address, gateway: gateway)
                    note("container PID \(pid): \(address) on \(containerEnd), gateway \(gateway) on \(bridgeName)", "")

                    // 5. The network's table: one of our own, so that removing it is one command.
                    note("nft add table ip \(firewall.table)", "every rule of this network goes in here")
                    try firewall.apply("add table ip \(firewall.table)\n", what: "creating table \(firewall.table)")

                    // 6. Your step "forward": the stand-in host routes between its interfaces.
                    try enableForwarding()
                    // 7. Your step "masquerade": leaving the subnet, packets carry the host's address.
                    try addMasquerade(firewall, subnet: network, bridge: bridgeName)
                    // 8. Your step "publish": each --publish reaches the container's port.
                    for port in ports {
                        try publish(port, to: address.address, firewall: firewall)
                        note("published \(port): the stand-in host's port \(port.hostPort) → \(address.address):\(port.containerPort)", "")
                    }
                })
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The equivalent command of a given step, on standard error: standard output is the command's.
func note(_ command: String, _ why: String) {
    printError(Style.standardError.dim("exercise-07-stretch: " + command + (why.isEmpty ? "" : "   # " + why)))
}

/// The container's first process (hidden): chapter 02's set-up (with `lo` up), then the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the container, then run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("07-stretch") {
            let container = Container(rootfs: FilePath(rootfs), namespaces: containerNamespaces, hostname: "exercise-07s")
            _ = try container.setUpInside()
            status = try container.runCommand(command, environment: exerciseEnvironment())
        }
        throw ExitCode(status.shellCode)
    }
}

// MARK: - Exercise 07's steps, solved (try exercise 07 before reading these)

/// The veth pair, the host's end on the bridge, the other moved into the container
/// (`/proc/PID/ns/net`), its address and up, and the default route via the bridge.
func plugIn(pid: pid_t, host: RouteSocket, address: IPv4Subnet, gateway: IPv4Address) throws {
    let container = FilePath("/proc/\(pid)/ns/net")
    note("ip link add \(hostEnd) type veth peer name \(containerEnd); ip link set \(hostEnd) master \(bridgeName) up", "")
    try host.addVethPair(hostEnd, peer: containerEnd)
    try host.setMaster(hostEnd, bridge: bridgeName)
    try host.setUp(hostEnd)
    note("ip link set \(containerEnd) netns \(container); ip -n CONTAINER addr add \(address) dev \(containerEnd); … up; … route add default via \(gateway)", "")
    try host.moveToNamespace(containerEnd, namespace: container)
    let inside = try RouteSocket.open(in: container)
    try inside.addAddress(address, to: containerEnd)
    try inside.setUp(containerEnd)
    try inside.addRoute(via: gateway)
}
