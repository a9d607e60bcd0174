// Chapter 07 — networks (Docker's docker0, 2013; CNI, 2015).
//
// Chapter 02 gave a container a network namespace of its own, with nothing in it but a
// loopback. Every engine then plugs it in: a veth pair (a virtual cable) from the
// container to a bridge (a virtual switch) on the host, an address from a pool, a
// default route via the bridge, masquerade so that its packets can leave, and DNAT so
// that `-p 8080:80` reaches it. All of it is rtnetlink messages and nftables rules.
//
//   chapter-07                                        the lesson: two containers, one bridge
//   chapter-07 [--network none|bridge|host] [--publish H:C] [--subnet CIDR] -- COMMAND ARGS...
//
// Everything happens in a network namespace of the chapter's own, standing in for the
// host: nothing here can reach this machine's interfaces, and it all vanishes with us.
//
// Read next: rtnetlink(7), netlink(7), veth(4), ip-link(8), nft(8), the CNI spec.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

@main
struct Chapter07: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-07",
        abstract: "Networks: veth pairs, a bridge, addresses, NAT and published ports, built with netlink and nftables.",
        subcommands: [Lesson.self, Init.self],
        defaultSubcommand: Lesson.self)
}

/// How a container is connected, as `docker run --network` says it.
enum NetworkMode: String, ExpressibleByArgument, CaseIterable {
    /// Its own namespace with only `lo`.
    case none
    /// Its own namespace, a veth pair to the bridge, an address, NAT.
    case bridge
    /// No namespace of its own: the host's interfaces (here: the chapter's stand-in host).
    case host
}

/// The environment of the container's processes.
func containerEnvironment() -> [String] {
    ["PATH=\(Exec.containerPath)", "HOME=/root", "TERM=\(environmentValue("TERM") ?? "xterm")"]
}

/// Hidden: the container's first process (chapter 02's), started in new namespaces by
/// `Container.start`; it sets the inside up (mounts, root, hostname, `lo`) and runs the command.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "(internal) set up the inside of the namespaces, then run COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Option var namespaces: String
    @Option var hostname: String
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-07") {
            let container = Container(rootfs: FilePath(rootfs), namespaces: try Namespaces(parsing: namespaces), hostname: hostname)
            _ = try container.setUpInside()
            status = try container.runCommand(command, environment: containerEnvironment())
        }
        throw ExitCode(status.shellCode)
    }
}

let style = Style.standardOutput
