// Exercise 07 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 07`: it looks into your container's network namespace from
// outside and sends packets both ways.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "move-veth": `interface` is one end of a veth pair, created in the (stand-in)
/// host's network namespace; `host` is a netlink socket of that namespace. Afterwards the
/// interface must be in the container's network namespace (`container`, the file
/// `/proc/PID/ns/net`) and no longer in the host's.
func moveIntoContainer(_ interface: String, host: RouteSocket, container: FilePath) throws {
    try exerciseTODO("07", step: "move-veth",
                     hint: "afterwards `ip -n CONTAINER link` lists \(interface) and the host's `ip link` no longer does. An interface belongs to exactly one network namespace and can be handed to another by naming that namespace (a PID or a namespace file): ip-link(8), `set ... netns`; veth(4)",
                     notes: "Chapters/07-networks/README.md#what-a-veth-pair-and-a-bridge-are")
}

/// Step "address": inside the container, `interface` must hold `address` (with its
/// prefix length, e.g. 10.88.0.2/24) and be up.
func setAddress(_ address: IPv4Subnet, on interface: String, container: FilePath) throws {
    try exerciseTODO("07", step: "address",
                     hint: "afterwards `ip -n CONTAINER -4 addr` shows \(address) on \(interface), and its state is UP. The host's netlink socket cannot do it: a netlink socket acts on the namespace it was created in, for its whole life (rtnetlink(7); ip-address(8), ip-link(8) `up`)",
                     notes: "Chapters/07-networks/README.md#the-code")
}

/// Step "default-route": inside the container, every address outside the subnet must be
/// sent to `gateway` (the bridge's address on the host).
func addDefaultRoute(via gateway: IPv4Address, container: FilePath) throws {
    try exerciseTODO("07", step: "default-route",
                     hint: "afterwards `ip -n CONTAINER route` shows `default via \(gateway) dev eth0`. The kernel accepts a gateway only when it is reachable: an interface that is up with an address in the gateway's subnet (ip-route(8); rtnetlink(7) RTM_NEWROUTE)",
                     notes: "Chapters/07-networks/README.md#how-a-packet-leaves-and-why--p-808080-works")
}
