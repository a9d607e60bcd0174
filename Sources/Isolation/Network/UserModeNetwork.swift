import Glibc
import SystemPackage

/// Outbound network for a rootless container: a user-mode TCP/IP stack in a process of
/// the user's own, as rootless Podman, Docker and Buildah do.
///
/// Without root there is no bridge and no veth pair: creating a link in the host's
/// namespace needs CAP_NET_ADMIN there. What an unprivileged user *can* do is open a TAP
/// device inside the container's network namespace (it owns that namespace through its
/// user namespace) and keep its file descriptor. The helper then reads the container's
/// Ethernet frames from the TAP device, runs a TCP/IP stack of its own over them, and
/// turns each connection into an ordinary socket of the namespace it runs in — the
/// host's, with the user's rights. No packet of the container is routed or NATed by the
/// kernel: the far end sees a connection from the host's address, made by a user process.
///
/// - **slirp4netns** (2018, rootless containers): libslirp, the user-mode network of
///   QEMU. The container gets `10.0.2.100/24` on `tap0`, gateway `10.0.2.2`.
/// - **pasta** (2021, Debian package `passt`): the same idea without libslirp, and the
///   container gets the host's own address and gateway, copied.
///
/// Both take the container's PID, join its user and network namespaces themselves
/// (setns(2) in their own process), create and configure the TAP device, and serve it
/// until they are stopped.
public final class UserModeNetwork {
    public enum Helper: String, CaseIterable, Sendable, CustomStringConvertible {
        case pasta
        case slirp4netns

        /// The Debian package that installs it.
        public var package: String { self == .pasta ? "passt" : "slirp4netns" }
        public var description: String { rawValue }

        /// The program, found on `path`.
        public func program(path: String = environmentValue("PATH") ?? "/usr/local/bin:/usr/bin:/bin") -> FilePath? {
            Command.find(rawValue, path: path + ":/usr/sbin:/usr/bin:/sbin:/bin")
        }

        /// Its arguments to serve the container whose first process is `pid`, on a TAP
        /// device named `interface`. Inbound port forwarding is off: outbound only.
        func arguments(pid: pid_t, interface: String) -> [String] {
            switch self {
            case .pasta:
                // -f: stay in the foreground, our child; --config-net: address, route and
                // up on the TAP device; no port is forwarded either way (-t/-u/-T/-U none).
                return ["--foreground", "--quiet", "--config-net", "--ns-ifname", interface,
                        "-t", "none", "-u", "none", "-T", "none", "-U", "none", "\(pid)"]
            case .slirp4netns:
                // --configure: 10.0.2.100/24, default via 10.0.2.2, up. The container may
                // not reach the host's own 127.0.0.1 (--disable-host-loopback).
                return ["--configure", "--mtu=65520", "--disable-host-loopback", "\(pid)", interface]
            }
        }
    }

    public let helper: Helper
    public let process: ChildProcess
    /// The device of the container's default route, as the helper configured it (`tap0`).
    public private(set) var interface: String
    /// The gateway of that route.
    public private(set) var gateway: IPv4Address?
    /// The helper's output, in an unlinked temporary file (nothing is left on disk).
    private let log: Int32
    private var stopped = false

    /// The first helper installed, pasta before slirp4netns; nil when neither is.
    public static func installed() -> Helper? {
        Helper.allCases.first { $0.program() != nil }
    }

    /// What to say when no helper is installed.
    public static var noneInstalledHint: String {
        "neither pasta (apt install passt) nor slirp4netns (apt install slirp4netns) is installed"
    }

    /// Why no helper can work for this user here, or nil. Both open /dev/net/tun to
    /// create the TAP device: it must exist, and be open to everyone (0666, as udev
    /// makes it on Debian and Ubuntu; a container or a hardened host may have 0600).
    /// Asked by root, it is about users: the mode must let others read and write.
    public static func tunProblem() -> String? {
        var info = stat()
        guard stat("/dev/net/tun", &info) == 0 else {
            return "there is no /dev/net/tun (the tun module: sudo modprobe tun)"
        }
        // Root may open anything: for root (doctor) the question is whether users may.
        let open = Identity.isRoot ? info.st_mode & 0o006 == 0o006 : access("/dev/net/tun", R_OK | W_OK) == 0
        guard open else {
            return "/dev/net/tun is not open to \(Identity.isRoot ? "users" : "you") (mode \(String(info.st_mode & 0o777, radix: 8)); Debian and Ubuntu make it 666: sudo chmod 666 /dev/net/tun)"
        }
        return nil
    }

    /// Starts `helper` for the container whose first process is `pid` (after its uid and
    /// gid maps are written: the helper joins its user namespace), and waits until the
    /// container's namespace has a default route. Read from `/proc/PID/net/route`: a
    /// process's `/proc/PID/net` shows *its* network namespace, so no setns is needed,
    /// and none would be allowed, the namespace belonging to a user namespace we are not in.
    public static func start(_ helper: Helper, for pid: pid_t, interface: String = "tap0", timeout: Double = 10) throws -> UserModeNetwork {
        guard let program = helper.program() else {
            throw IsolationError("\(helper) is not installed", hint: "apt install \(helper.package)")
        }
        if let problem = tunProblem() { throw IsolationError("\(helper) cannot make the container's TAP device: \(problem)") }
        // Its output goes to a file that has no name any more: readable while we hold it.
        var template = Array("/tmp/\(projectPrefix)-\(helper)-XXXXXX".utf8CString)
        let log = mkstemp(&template)
        guard log >= 0 else { throw StageError(stage: "mkstemp(/tmp/\(projectPrefix)-\(helper)-…) for the helper's output", errno: currentErrno()) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = fcntl(log, F_SETFD, FD_CLOEXEC)
        var options = SpawnOptions()
        options.standardInput = try? FileDescriptor.open("/dev/null", .readOnly, options: .closeOnExec)
        options.standardOutput = FileDescriptor(rawValue: log)
        options.standardError = FileDescriptor(rawValue: log)
        options.parentDeathSignal = SIGKILL   // if we die, the helper goes too
        options.newSession = true             // Ctrl-C at the container's shell is not for it
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(program, arguments: [helper.rawValue] + helper.arguments(pid: pid, interface: interface),
                                           environment: Command.defaultEnvironment, options: options)
        } catch {
            try? options.standardInput?.close()
            close(log)
            throw error
        }
        try? options.standardInput?.close()
        let network = UserModeNetwork(helper: helper, process: child, interface: interface, log: log)
        let end = monotonicNow() + timeout
        while monotonicNow() < end {
            if let route = defaultRoute(of: pid) {
                network.interface = route.device
                network.gateway = route.gateway
                return network
            }
            var status: Int32 = 0
            if waitpid(child.pid, &status, WNOHANG) == child.pid {
                network.stopped = true   // reaped
                let output = network.output()
                throw IsolationError("\(helper) \(ExitStatus(waitStatus: status)) before the container had a route"
                                     + (output.isEmpty ? "" : ": " + output), hint: "run `\(helper) --help`; is /dev/net/tun there?")
            }
            usleep(20_000)
        }
        let output = network.output()
        network.stop()
        throw IsolationError("\(helper) gave the container no default route within \(Int(timeout)) s" + (output.isEmpty ? "" : ": " + output))
    }

    private init(helper: Helper, process: ChildProcess, interface: String, log: Int32) {
        self.helper = helper
        self.process = process
        self.interface = interface
        self.log = log
    }

    deinit {
        stop()
        close(log)
    }

    /// What the helper printed so far (its last lines).
    public func output() -> String {
        var bytes = [UInt8](repeating: 0, count: 4096)
        let size = lseek(log, 0, SEEK_END)
        let count = pread(log, &bytes, bytes.count, max(0, size - off_t(bytes.count)))
        guard count > 0 else { return "" }
        return String(decoding: bytes[0..<count], as: UTF8.self).split(separator: "\n")
            .filter { !$0.hasPrefix("Failed to send") }   // pasta's syslog complaints
            .suffix(5).joined(separator: "; ")
    }

    /// SIGTERM, then SIGKILL after a second; reaps it. Called when the container has ended.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? process.signal(SIGTERM)
        var status: Int32 = 0
        for _ in 0..<50 {
            if waitpid(process.pid, &status, WNOHANG) == process.pid { return }
            usleep(20_000)
        }
        _ = try? process.signal(SIGKILL)
        _ = try? process.wait()
    }

    /// The default route of `pid`'s network namespace, from /proc/PID/net/route
    /// (hexadecimal, in the kernel's byte order: little-endian here).
    public static func defaultRoute(of pid: pid_t) -> (device: String, gateway: IPv4Address?)? {
        guard let table = try? FileSystem.readString(FilePath("/proc/\(pid)/net/route")) else { return nil }
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 8, fields[1] == "00000000", fields[7] == "00000000" else { continue }
            let gateway = UInt32(fields[2], radix: 16).map { IPv4Address($0.byteSwapped) }
            return (String(fields[0]), gateway)
        }
        return nil
    }
}
