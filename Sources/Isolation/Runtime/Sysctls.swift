import Glibc
import SystemPackage

/// `linux.sysctl`: kernel parameters the init writes to /proc/sys before it makes /proc/sys
/// read-only. Only a parameter that lives in a namespace the container has for itself is
/// the container's; any other is the host's, and writing it would change the whole machine.
/// runc's rule (libcontainer/configs/validate), checked by `create` before anything is made:
///
/// - `kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`: the IPC namespace;
/// - `net.*`: the network namespace;
/// - `kernel.hostname`, `kernel.domainname`: the UTS namespace;
/// - anything else (`vm.swappiness`, `kernel.pid_max`, …): not in any namespace, refused.
///
/// A namespace joined by path counts unless it is the runtime's own (the host's).
/// Read next: sysctl(8), ipc_namespaces(7), network_namespaces(7), uts_namespaces(7).
enum Sysctls {
    /// The file under /proc/sys: `net.ipv4.ip_forward` → `net/ipv4/ip_forward`. A key
    /// written with slashes (`net/ipv4/conf/eth0.100/forwarding`) keeps its dots. nil
    /// for a key with an empty, `.` or `..` component.
    static func file(_ key: String) -> FilePath? {
        let parts = key.contains("/") ? key.split(separator: "/", omittingEmptySubsequences: false)
                                      : key.split(separator: ".", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { return nil }
        return FilePath("/proc/sys/" + parts.joined(separator: "/"))
    }

    /// The namespace a parameter lives in, by its dotted name; nil: none (the host's).
    static func namespace(of key: String) -> OCIConfig.NamespaceType? {
        let name = key.contains("/") ? key.replacing("/", with: ".") : key
        if name.hasPrefix("kernel.msg") || name == "kernel.sem" || name.hasPrefix("kernel.shm") || name.hasPrefix("fs.mqueue.") { return .ipc }
        if name.hasPrefix("net.") { return .network }
        if name == "kernel.hostname" || name == "kernel.domainname" { return .uts }
        return nil
    }

    /// Refuses, naming it, the first sysctl that is not the container's own; writes nothing.
    static func check(_ sysctl: [String: String]?, namespaces: [OCIConfig.Namespace]) throws {
        for key in (sysctl ?? [:]).keys.sorted() {
            guard file(key) != nil else {
                throw IsolationError("linux.sysctl \"\(key)\" is not a sysctl name", hint: "write it as sysctl(8) does, such as net.ipv4.ip_forward")
            }
            guard let kind = namespace(of: key) else {
                throw IsolationError("linux.sysctl \(key) is not in any namespace: writing it in the container would change it for the whole host",
                                     hint: "remove it from config.json; a container may set kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.* (ipc), net.* (network), kernel.hostname and kernel.domainname (uts)")
            }
            let name = kind == .network ? "network" : kind.rawValue
            guard let entry = namespaces.first(where: { $0.type == kind }) else {
                throw IsolationError("linux.sysctl \(key) belongs to the \(name) namespace, and the container has none of its own: writing it would change the host's",
                                     hint: "add {\"type\": \"\(kind.rawValue)\"} to linux.namespaces, or remove the sysctl")
            }
            if let path = entry.path, isRuntimesOwn(path, kind: kind) {
                throw IsolationError("linux.sysctl \(key) belongs to the \(name) namespace, and the container joins the runtime's own (\(path)): writing it would change the host's",
                                     hint: "give the container a \(name) namespace of its own, or remove the sysctl")
            }
        }
    }

    /// Whether the namespace file at `path` is the one this process is in (same inode).
    static func isRuntimesOwn(_ path: String, kind: OCIConfig.NamespaceType) -> Bool {
        var joined = stat(), own = stat()
        guard stat(path, &joined) == 0, stat("/proc/self/ns/\(kind.kind.procName)", &own) == 0 else { return false }
        return joined.st_dev == own.st_dev && joined.st_ino == own.st_ino
    }
}
