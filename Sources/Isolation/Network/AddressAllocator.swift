import Glibc
import SystemPackage

/// Hands out the addresses of a subnet to containers, one file per address, as CNI's
/// `host-local` plugin does: `DIRECTORY/10.88.0.7` holds its owner (`CONTAINERID IFNAME`).
/// Creating that file with O_EXCL is the allocation, deleting it the release, and the
/// directory survives the process, so a second process (another container starting at
/// the same moment) sees what the first took. Callers hold `NetworkLock` around a whole
/// allocate-and-configure step.
///
/// The first address of the subnet is the network itself, the second the gateway (the
/// bridge's own address), the last the broadcast address: containers get the others,
/// round-robin after the last one handed out (`last_reserved_ip`), so a released address
/// is not reused at once (a late packet for the old container would reach the new one).
public struct AddressAllocator: Sendable {
    public let subnet: IPv4Subnet
    public let gateway: IPv4Address
    public let directory: FilePath

    public init(subnet: IPv4Subnet, gateway: IPv4Address? = nil, directory: FilePath) {
        self.subnet = subnet.network
        self.gateway = gateway ?? IPv4Address(subnet.network.address.value + 1)
        self.directory = directory
    }

    /// Every address in use, with its owner.
    public func allocations() -> [IPv4Address: String] {
        var result: [IPv4Address: String] = [:]
        for name in (try? FileSystem.contentsOfDirectory(directory)) ?? [] {
            guard let address = IPv4Address(name) else { continue }
            result[address] = (try? FileSystem.readString(directory.appending(name)))?.trimmingNewlines() ?? ""
        }
        return result
    }

    /// The address `owner` holds, if any.
    public func address(of owner: String) -> IPv4Address? {
        allocations().first { $0.value == owner }?.key
    }

    /// Takes a free address for `owner` (`CONTAINERID IFNAME`). Throws when the subnet is full.
    public func allocate(for owner: String) throws -> IPv4Address {
        try FileSystem.makeDirectories(directory, mode: 0o700)
        let lastFile = directory.appending("last_reserved_ip")
        let first = subnet.first.value + 1, last = subnet.broadcast.value - 1
        guard subnet.prefixLength <= 30 else { throw IsolationError("subnet \(subnet) is too small for containers: use /30 or larger") }
        let previous = (try? FileSystem.readString(lastFile)).flatMap { IPv4Address($0.trimmingNewlines()) }?.value
        let start = previous.map { $0 >= last || $0 < first ? first : $0 + 1 } ?? first
        var candidate = start
        repeat {
            let address = IPv4Address(candidate)
            if address != gateway {
                let file = directory.appending(address.description)
                let fd = file.withPlatformString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
                if fd >= 0 {
                    let bytes = Array((owner + "\n").utf8)
                    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    close(fd)
                    try FileSystem.writeFile(lastFile, address.description + "\n", mode: 0o600)
                    return address
                }
                guard errno == EEXIST else {
                    throw StageError(stage: "open(\"\(file)\", O_CREAT|O_EXCL) to reserve \(address)", errno: currentErrno())
                }
            }
            candidate = candidate >= last ? first : candidate + 1
        } while candidate != start
        throw IsolationError("no free address left in \(subnet) (\(allocations().count) in use, listed in \(directory))",
                             hint: "delete containers you no longer need, or choose a larger subnet")
    }

    /// Releases every address `owner` holds; returns them.
    @discardableResult
    public func release(_ owner: String) -> [IPv4Address] {
        let mine = allocations().filter { $0.value == owner }.map(\.key)
        for address in mine { unlink(directory.appending(address.description).string) }
        return mine
    }
}

/// One lock for every network change on this machine: `/run/isolation/net/lock`, taken
/// with flock(2). Allocating an address, creating the bridge and the firewall table,
/// and the "last one out deletes the bridge" check each read, then write, shared state;
/// with the lock held, two containers starting at once take turns. The kernel drops the
/// lock when the process dies, so a crash never leaves it held. The file itself stays.
public struct NetworkLock {
    public static let defaultDirectory: FilePath = "/run/isolation/net"

    /// Runs `body` while holding the lock in `directory` (flock(LOCK_EX) on `directory/lock`).
    public static func held<R>(in directory: FilePath = defaultDirectory, _ body: () throws -> R) throws -> R {
        try FileSystem.makeDirectories(directory, mode: 0o755)
        let path = directory.appending("lock")
        let fd: Int32
        do { fd = try pathCall(path) { open($0, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) } } catch let error as Errno {
            throw StageError(stage: "open(\"\(path)\")", errno: error)
        }
        defer { close(fd) }
        do { try valueOrErrno { flock(fd, LOCK_EX) } } catch let error as Errno {
            throw StageError(stage: "flock(\"\(path)\", LOCK_EX)", errno: error)
        }
        return try body()
    }
}

extension String {
    func trimmingNewlines() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == "\r" || last == " " { text = text.dropLast() }
        return String(text)
    }
}
