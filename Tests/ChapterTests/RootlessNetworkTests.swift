// Chapter 02's rootless container reaches the outside through a user-mode network
// (pasta or slirp4netns), tested without the machine's network: the test makes a
// "host" network namespace (isolation-test-…-host) with a veth cable to an "outside"
// namespace that serves HTTP at 198.51.100.1 (TEST-NET-2, beyond the host's default
// route), and runs chapter-02 as nobody *in the host namespace*. The helper opens its
// sockets in the namespace it runs in, so the container's connection leaves from the
// stand-in host and nowhere else. Both namespaces, and with them every interface, are
// removed at the end, also on failure.
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("Chapter 02 · rootless network through pasta and slirp4netns", .serialized,
       .enabled(if: isRoot, "making the test's network namespaces needs root; the container itself runs as nobody"),
       .enabled(if: ch02CanSwitchToNobody, "needs setpriv to become nobody"),
       .enabled(if: ch02RootlessAllowed, "this host does not allow unprivileged user namespaces"),
       .enabled(if: ch02HasBusybox, "the container needs busybox's wget (apt install busybox-static)"))
struct RootlessNetworkTests {
    @Test("pasta: nobody's container fetches a page from the outside; no bridge, no veth, nothing left",
          .enabled(if: UserModeNetwork.Helper.pasta.program() != nil, "pasta is not installed (apt install passt)"))
    func pasta() throws {
        let world = try RootlessRun("pasta")
        defer { world.remove() }
        let result = try world.container(userNet: "pasta")
        // pasta copies the host's address and gateway into the container.
        #expect(result.addresses.contains("tap0") && result.addresses.contains("192.0.2.1/24"), "\(result.output)")
        #expect(result.routes.contains("default via 192.0.2.2 dev tap0"), "\(result.output)")
        try world.expectOutsideReached(result)
    }

    @Test("slirp4netns: nobody's container fetches a page from the outside; no bridge, no veth, nothing left",
          .enabled(if: UserModeNetwork.Helper.slirp4netns.program() != nil, "slirp4netns is not installed"))
    func slirp4netns() throws {
        let world = try RootlessRun("slirp")
        defer { world.remove() }
        let result = try world.container(userNet: "slirp4netns")
        // libslirp's own network: 10.0.2.100, gateway 10.0.2.2 (the helper itself).
        #expect(result.addresses.contains("tap0") && result.addresses.contains("10.0.2.100/24"), "\(result.output)")
        #expect(result.routes.contains("default via 10.0.2.2 dev tap0"), "\(result.output)")
        try world.expectOutsideReached(result)
        // The outside saw the host's address, never the container's 10.0.2.100.
        #expect(!result.page.contains("10.0.2.100"), "\(result.page)")
    }

    @Test("without a helper (--user-net none, or /dev/net/tun closed to users) chapter-02 says so, and the container has only lo")
    func withoutHelper() throws {
        let world = try RootlessRun("none")
        defer { world.remove() }
        let none = try world.container(userNet: "none")
        #expect(none.output.contains("no outbound network (--user-net none)"), "\(none.output)")
        #expect(!none.addresses.contains("tap0") && !none.routes.contains("default"), "\(none.output)")
        #expect(!none.page.contains("from "), "no way out: \(none.page)")
        #expect(try world.net.links(world.host).sorted() == ["isot-up", "lo"])
        // Where /dev/net/tun is 0600 (some containers and VMs), auto says why instead of failing.
        var info = stat()
        if stat("/dev/net/tun", &info) == 0 && info.st_mode & 0o006 != 0o006 && UserModeNetwork.installed() != nil {
            let auto = try world.container(userNet: "auto", openTun: false)
            #expect(auto.status == 0 && auto.output.contains("/dev/net/tun is not open to you"), "\(auto.output)")
        }
        // As root the option makes no sense: chapter 07 is root's network.
        if let helper = UserModeNetwork.installed() {
            let asRoot = try run(product("chapter-02"), ["--namespaces", "user,net", "--user-net", helper.rawValue, "--", "true"])
            #expect(asRoot.status != 0 && asRoot.stderr.contains("is for rootless runs"), "\(asRoot)")
        }
    }
}

/// One test's namespaces ("host" and "outside", joined by a veth pair), the outside's
/// web server, a root filesystem and a copy of chapter-02 that nobody can run.
final class RootlessRun {
    let net: TestNetwork
    let host: String
    let outside: String
    let rootfs: Ch02Rootfs
    let binary: String
    let www: String

    init(_ purpose: String) throws {
        net = try TestNetwork("rootless-\(purpose)")
        do {
            host = try net.namespace("host")
            outside = try net.namespace("outside")
            // The cable: host 192.0.2.1/24 ↔ outside 192.0.2.2/24; the host's default route
            // goes to the outside, which also holds 198.51.100.1, "somewhere on the internet".
            for arguments in [["link", "add", "isot-up", "type", "veth", "peer", "name", "eth0", "netns", outside],
                              ["addr", "add", "192.0.2.1/24", "dev", "isot-up"], ["link", "set", "isot-up", "up"],
                              ["route", "add", "default", "via", "192.0.2.2"]] {
                let result = try net.ip(host, arguments)
                guard result.status == 0 else { throw IsolationError("ip -n \(host) \(arguments.joined(separator: " ")): \(result)") }
            }
            for arguments in [["addr", "add", "192.0.2.2/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                              ["addr", "add", "198.51.100.1/32", "dev", "lo"]] {
                let result = try net.ip(outside, arguments)
                guard result.status == 0 else { throw IsolationError("ip -n \(outside) \(arguments.joined(separator: " ")): \(result)") }
            }
            rootfs = try Ch02Rootfs("rootless-net")
        } catch {
            net.remove()
            throw error
        }
        binary = try productCopyForNobody("chapter-02", in: rootfs.folder)
        // The outside's page says who asked (busybox httpd sets REMOTE_ADDR for CGI).
        www = rootfs.folder.path + "/www"
        try FileManager.default.createDirectory(atPath: www + "/cgi-bin", withIntermediateDirectories: true)
        try "#!/bin/sh\necho Content-Type: text/plain\necho\necho \"from $REMOTE_ADDR\"\n".write(toFile: www + "/cgi-bin/who", atomically: true, encoding: .utf8)
        chmod(www + "/cgi-bin/who", 0o755)
    }

    struct Result {
        var status: Int32
        var output: String
        var addresses: String
        var routes: String
        var page: String
    }

    /// Runs, in the outside namespace: the web server; then, in the host namespace and as
    /// nobody, `chapter-02 --user-net HELPER -- sh -c PROBE`; then stops the server.
    ///
    /// `openTun`: /dev/net/tun is 0666 on Debian and Ubuntu (udev), but 0600 on some
    /// machines (this project's CI host among them). Then a node open to all is bound
    /// over it in a mount namespace of this run's own (on a tmpfs, which allows device
    /// nodes), standing in for an ordinary machine; the host's node is never changed.
    func container(userNet: String, openTun: Bool = true) throws -> Result {
        var info = stat()
        let needsTun = openTun && stat("/dev/net/tun", &info) == 0 && info.st_mode & 0o006 != 0o006
        let tunFolder = rootfs.folder.path + "/tun"
        try FileManager.default.createDirectory(atPath: tunFolder, withIntermediateDirectories: true)
        let probe = "echo @addr; ip -4 -o addr show; echo @route; ip route; echo @page; timeout -s KILL 10 wget -q -O - http://198.51.100.1/cgi-bin/who 2>&1; echo @end"
        let script = """
            www=$1; host=$2; tun=$3; shift 3
            busybox httpd -f -p 80 -h "$www" </dev/null >/dev/null 2>&1 & server=$!
            sleep 0.5
            timeout -s KILL 90 unshare -m --propagation private sh -c '
                tun=$1; host=$2; shift 2
                if [ -n "$tun" ]; then
                    mount -t tmpfs -o mode=755 isolation-tun "$tun" && mknod -m 666 "$tun/tun" c 10 200 &&
                    mount --bind "$tun/tun" /dev/net/tun || exit 99
                fi
                exec ip netns exec "$host" "$@"' sh "$tun" "$host" "$@" 2>&1
            echo "@status=$?"
            kill -9 $server; wait $server 2>/dev/null; exit 0
            """
        let environment = ["env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", "ISOLATION_CACHE_DIR=/nonexistent"]
        let command = environment + ch02AsNobody + [binary, "--rootfs", rootfs.path, "--namespaces", "user,uts,pid,mount,ipc,net",
                                                    "--user-net", userNet, "--", "sh", "-c", probe]
        let linksBefore = try net.links(host).sorted()
        let result = try net.exec(outside, ["sh", "-c", script, "sh", www, host, needsTun ? tunFolder : ""] + command, timeout: 120)
        let output = result.stdout + result.stderr
        func section(_ name: String, _ next: String) -> String {
            guard let start = output.range(of: "@\(name)\n"), let end = output.range(of: "@\(next)", range: start.upperBound..<output.endIndex) else { return "" }
            return String(output[start.upperBound..<end.lowerBound])
        }
        let status = output.split(separator: "\n").first { $0.hasPrefix("@status=") }.flatMap { Int32($0.dropFirst("@status=".count)) } ?? -1
        // Nothing was added to the host's namespace (no bridge, no veth: no root needed),
        // and no process is left in it: the helper ended with the container.
        #expect(try net.links(host).sorted() == linksBefore, "the host's links changed: \(output)")
        let pids = try run("/usr/sbin/ip", ["netns", "pids", host]).stdout.split(separator: "\n")
        #expect(pids.isEmpty, "processes left in the host namespace: \(pids)")
        return Result(status: status, output: output, addresses: section("addr", "route"), routes: section("route", "page"), page: section("page", "end"))
    }

    /// The container's fetch reached the outside, which saw the host's address: the
    /// connection was made by the helper's socket in the host namespace.
    func expectOutsideReached(_ result: Result) throws {
        #expect(result.status == 0, "\(result.output)")
        // (httpd listens on IPv6 too, so it may write the address as [::ffff:192.0.2.1].)
        #expect(result.page.contains("from 192.0.2.1") || result.page.contains("from [::ffff:192.0.2.1]"),
                "the outside answered the host's address: \(result.output)")
    }

    func remove() {
        net.remove()
        rootfs.remove()
    }
}
