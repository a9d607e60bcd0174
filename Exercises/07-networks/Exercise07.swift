// Exercise 07 — networks. Your steps are in Steps.swift; this file is the rest of
// chapter 07's `-- COMMAND` path, written with the Isolation library, so you can see
// where they fit: a bridge with the gateway's address, a veth pair, and a container
// whose end of the pair you move in, address and route.
//
//   sudo .build/debug/exercise-07 [--subnet CIDR] [--rootfs DIR] -- COMMAND ARGS...
//   swift run check 07
//
// Everything happens in a network namespace of the exercise's own, standing in for the
// host (as chapter 07's lesson does): nothing reaches this machine's interfaces, and the
// bridge and the cable vanish when the exercise ends, whatever your steps did.
//
// The solution is chapter 07 itself: Chapters/07-networks/ and BridgeNetwork.attach.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise07: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-07",
        abstract: "Exercise 07: plug a container into a bridge (your steps: Steps.swift).",
        subcommands: [Start.self, Init.self],
        defaultSubcommand: Start.self)
}

/// The container: chapter 02's namespaces, with a network namespace of its own.
let containerNamespaces: Namespaces = [.uts, .pid, .mount, .ipc, .network]

/// The names in the stand-in host: the bridge, and the host's end of the veth pair.
let bridgeName = "isolation0"
let hostEnd = "isoveth0"
/// The container's end: created in the host under this name, then moved (your step).
let containerEnd = "eth0"

/// The parent: the stand-in host, its bridge, the veth pair, the container, your steps.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run COMMAND in a container on a bridge (the default).")

    @Option(help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR")) var rootfs: String?
    @Option(help: ArgumentHelp("The bridge's subnet; the bridge gets its first address, the container the next.", valueName: "CIDR"))
    var subnet = "10.88.0.0/24"
    @Argument(parsing: .postTerminator, help: "The command to run (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("07") {
            // Every value is checked before anything is created.
            guard let parsed = IPv4Subnet(subnet), parsed.prefixLength <= 30 else {
                throw IsolationError("--subnet \(subnet): expected an IPv4 network such as 10.88.0.0/24 (/30 or larger)")
            }
            let network = parsed.network
            let gateway = IPv4Address(network.address.value + 1)
            let address = IPv4Subnet(IPv4Address(network.address.value + 2), prefixLength: network.prefixLength)
            let root = try exerciseRootfs(rootfs, why: "network interfaces need CAP_NET_ADMIN, namespaces CAP_SYS_ADMIN")

            // 1. The stand-in host: unshare(CLONE_NEWNET) moves this process into a new,
            //    empty network namespace. It lasts while a process is in it.
            try NetworkNamespace.unshareOwn()
            let host = try RouteSocket()   // a netlink socket of the stand-in host
            try host.setUp("lo")
            note("unshare(CLONE_NEWNET)", "a stand-in host of our own: nothing here reaches this machine's interfaces")

            // 2. The bridge, with the gateway's address: a switch in software.
            note("ip link add \(bridgeName) type bridge; ip addr add \(gateway)/\(network.prefixLength) dev \(bridgeName); ip link set \(bridgeName) up", "")
            try host.addBridge(bridgeName)
            try host.addAddress(IPv4Subnet(gateway, prefixLength: network.prefixLength), to: bridgeName)
            try host.setUp(bridgeName)

            // 3. The container, cloned and held before execve(2): its network namespace
            //    exists, with only `lo`. The network is plugged in while it waits, as an
            //    engine calls its network plugin between `create` and `start`.
            blockSignalsForSupervision()
            let child = try Container.start(
                arguments: ["exercise-07", "init", "--rootfs", root.path.string, "--"] + command,
                environment: exerciseEnvironment(), namespaces: containerNamespaces,
                beforeRelease: { pid in
                    let container = FilePath("/proc/\(pid)/ns/net")
                    // 4. The cable: a veth pair, both ends in the stand-in host for now.
                    note("ip link add \(hostEnd) type veth peer name \(containerEnd)", "a cable with two ends")
                    try host.addVethPair(hostEnd, peer: containerEnd)
                    note("ip link set \(hostEnd) master \(bridgeName); ip link set \(hostEnd) up", "the host's end plugged into the bridge")
                    try host.setMaster(hostEnd, bridge: bridgeName)
                    try host.setUp(hostEnd)

                    // 5. Your step "move-veth": the other end into the container.
                    try moveIntoContainer(containerEnd, host: host, container: container)
                    // 6. Your step "address": its address, and up.
                    try setAddress(address, on: containerEnd, container: container)
                    // 7. Your step "default-route": everything else via the bridge.
                    try addDefaultRoute(via: gateway, container: container)
                    note("container PID \(pid): \(address) on \(containerEnd), gateway \(gateway) on \(bridgeName)", "")
                })
            status = try child.waitForwardingSignals()
            // The container's namespace went with it, and eth0 with it (a veth pair
            // dies with either end); the stand-in host goes when we exit.
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }

    /// The equivalent command of a given step, on standard error: standard output is the command's.
    func note(_ command: String, _ why: String) {
        printError(Style.standardError.dim("exercise-07: " + command + (why.isEmpty ? "" : "   # " + why)))
    }
}

/// The container's first process (hidden): chapter 02's set-up (with `lo` up), then the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the container, then run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("07") {
            let container = Container(rootfs: FilePath(rootfs), namespaces: containerNamespaces, hostname: "exercise-07")
            _ = try container.setUpInside()
            status = try container.runCommand(command, environment: exerciseEnvironment())
        }
        throw ExitCode(status.shellCode)
    }
}
