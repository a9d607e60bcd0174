// Exercise 07, stretch · your steps. The stand-in host has a bridge with your container
// on it, and an uplink to an "outside" network that has no route to the bridge's subnet.
// Make the two meet, both ways. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 07 --stretch`: it makes the stand-in host and the outside, asks
// the outside's server who connected, connects to the host's published port from the
// outside and from the host, and prints the rules you wrote. Stuck after a failed check?
// `--hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "forward": this process is in the stand-in host's network namespace. Afterwards
/// that namespace routes packets from one of its interfaces out of another (from the
/// bridge to the uplink and back); this machine's own namespace and the container's are
/// left as they were.
func enableForwarding() throws {
    try exerciseTODO("07-stretch", step: "forward",
                     hint: "what must become true: the stand-in host passes the container's packets on instead of dropping them. A host that is not a router drops a packet addressed to someone else; the switch is a sysctl, and every network namespace has its own (which one does a process write to?). Read the notes' \"How a packet leaves\" and \"Pitfalls\"; sysctl(8), proc(5) /proc/sys/net, the kernel's Documentation/networking/ip-sysctl.rst",
                     notes: "Chapters/07-networks/README.md#how-a-packet-leaves-and-why--p-808080-works")
}

/// Step "masquerade": a packet from `subnet` that leaves the stand-in host through any
/// interface but `bridge` carries the address of the interface it leaves by, and the
/// answer finds its way back to the container. Nothing else is rewritten: not what stays
/// on the bridge, not what arrives through a published port. The rules go in `firewall`'s
/// table (`firewall.table`, family ip), which exists already and is empty.
func addMasquerade(_ firewall: Firewall, subnet: IPv4Subnet, bridge: String) throws {
    try exerciseTODO("07-stretch", step: "masquerade",
                     hint: "what must become true: the outside's server sees the stand-in host's uplink address, never the container's, and a connection that comes in through a published port keeps its own source. The kernel only looks at rules that hang on a hook: which hook sees a packet after routing, on its way out, and which chain type may rewrite addresses? Read the notes' \"How a packet leaves\"; nft(8) on chains (type, hook, priority) and on masquerade",
                     notes: "Chapters/07-networks/README.md#how-a-packet-leaves-and-why--p-808080-works")
}

/// Step "publish": a TCP connection to any of the stand-in host's own addresses, port
/// `port.hostPort`, reaches `address`, port `port.containerPort` — whether it comes from
/// another machine (the outside) or from a program on the stand-in host itself.
func publish(_ port: PortMapping, to address: IPv4Address, firewall: Firewall) throws {
    try exerciseTODO("07-stretch", step: "publish",
                     hint: "what must become true: the outside connects to the host's address and port \(port.hostPort) and talks to the container's server on \(port.containerPort); a program on the stand-in host does the same. The destination must be rewritten before the routing decision: which hook is that for a packet that arrives, and which for one the host sends itself? Read the notes' \"How a packet leaves, and why -p 8080:80 works\"; nft(8) on dnat and on fib daddr type",
                     notes: "Chapters/07-networks/README.md#how-a-packet-leaves-and-why--p-808080-works")
}
