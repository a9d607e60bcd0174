import Glibc
import SystemPackage

/// Finds and removes what this project may have left on a machine: its cgroups, its
/// mounts, its state and temporary folders, and the root filesystem cache. Everything
/// it creates carries the `isolation` prefix, which is what this looks for.
public enum Cleanup {
    /// Where the project's cgroups live: `<hierarchy>/isolation/…` in each v1 hierarchy,
    /// and in the v2 one (at /sys/fs/cgroup or /sys/fs/cgroup/unified).
    public static func cgroupParents(root: String = "/sys/fs/cgroup") -> [FilePath] {
        var hierarchies = [root, root + "/unified"]
        hierarchies += ((try? FileSystem.contentsOfDirectory(FilePath(root))) ?? []).map { root + "/" + $0 }
        var seen = Set<String>()
        return hierarchies.compactMap { hierarchy in
            let parent = hierarchy + "/" + projectPrefix
            guard FileSystem.isDirectory(FilePath(parent)), seen.insert(parent).inserted else { return nil }
            return FilePath(parent)
        }
    }

    /// The project's state folder (chapter 04's runtime keeps its containers there).
    public static let stateDirectory = FilePath("/run/\(projectPrefix)")

    /// Folders whose mounts and contents belong to the project.
    public static func ownedFolders() -> [FilePath] {
        var folders = [RootFilesystem.cacheDirectory(), FilePath("/var/cache/\(projectPrefix)"), stateDirectory]
        let temporary = ((try? FileSystem.contentsOfDirectory("/tmp")) ?? []).filter { $0.hasPrefix(projectPrefix + "-") }
        folders += temporary.map { FilePath("/tmp").appending($0) }
        return folders
    }

    /// Removes everything; `report` hears one line per thing removed (or not).
    @discardableResult
    public static func removeEverything(report: (String) -> Void) -> Int {
        var removed = 0
        // 1. Mounts first (deepest first), so that no folder below is still in use.
        let folders = ownedFolders()
        let table = (try? MountInfo.table()) ?? []
        let ours = table.map(\.mountPoint).filter { point in
            folders.contains { point == $0.string || point.hasPrefix($0.string + "/") }
        }
        for point in ours.sorted(by: { $0.count > $1.count }) {
            do {
                try Mount.unmount(FilePath(point), detach: true)
                report("unmounted \(point)")
                removed += 1
            } catch {
                report("could not unmount \(point): \(error)")
            }
        }
        // 2. cgroups: kill what is inside, then rmdir from the leaves up.
        for parent in cgroupParents() {
            removed += removeCgroupTree(parent, report: report)
        }
        // 3. Networks (chapter 07, isolation-cni) in this network namespace, before their
        //    state folder goes: the nft tables, the host ends of veth pairs, ip_forward.
        removed += removeNetworks(report: report)
        // 4. Folders: state, temporary folders, caches.
        for folder in folders where FileSystem.exists(folder, followSymlinks: false) {
            do {
                try FileSystem.removeTree(folder)
                report("removed \(folder)")
                removed += 1
            } catch {
                report("could not remove \(folder): \(error)")
            }
        }
        return removed
    }

    /// Our nft tables (`isolation-*`), the host ends of our veth pairs (`iso` and eight hex
    /// digits: deleting one deletes its pair), `ip_forward` as we found it, and network
    /// namespaces a test left under /run/netns (`isolation-*`: unmounted, then unlinked).
    public static func removeNetworks(report: (String) -> Void) -> Int {
        var removed = 0
        for table in Firewall.tables() {
            do { try Firewall(network: String(table.dropFirst("isolation-".count))).delete(); report("deleted nft table ip \(table)"); removed += 1 } catch {
                report("could not delete nft table ip \(table): \(error)")
            }
        }
        if let socket = try? RouteSocket() {
            for link in (try? socket.links()) ?? [] where link.kind == "veth" && link.name.count == 11 && link.name.hasPrefix("iso")
                && link.name.dropFirst(3).allSatisfy(\.isHexDigit) {
                do { try socket.deleteLink(link.name); report("deleted link \(link.name)"); removed += 1 } catch {
                    report("could not delete link \(link.name): \(error)")
                }
            }
        }
        if FileSystem.exists(Forwarding.savedFile(NetworkLock.defaultDirectory)) {
            try? Forwarding.restore(stateDirectory: NetworkLock.defaultDirectory)
            report("restored net.ipv4.ip_forward")
        }
        for name in ((try? FileSystem.contentsOfDirectory("/run/netns")) ?? []) where name.hasPrefix(projectPrefix + "-") {
            let path = FilePath("/run/netns").appending(name)
            try? Mount.unmount(path, detach: true)
            if unlink(path.string) == 0 { report("removed network namespace \(name)"); removed += 1 }
        }
        return removed
    }

    /// Kills every process in a cgroup and its descendants, then removes them, leaves first.
    public static func removeCgroupTree(_ path: FilePath, report: (String) -> Void) -> Int {
        // The usual case first: no child cgroups and no processes left, and rmdir(2) is
        // all it takes (listing a v1 cgroup's folder means a stat(2) per control file).
        if rmdir(path.string) == 0 {
            report("removed cgroup \(path)")
            return 1
        }
        if Glibc.errno == ENOENT { return 0 }  // already gone
        var removed = 0
        for name in (try? FileSystem.contentsOfDirectory(path)) ?? [] where FileSystem.isDirectory(path.appending(name)) {
            removed += removeCgroupTree(path.appending(name), report: report)
        }
        // Linux 5.14+ (v2): cgroup.kill SIGKILLs the whole subtree at once, even a fork
        // bomb that keeps forking while we read cgroup.procs.
        if FileSystem.exists(path.appending("cgroup.kill")) {
            if FileSystem.exists(path.appending("cgroup.freeze")) { try? FileSystem.writeFile(path.appending("cgroup.freeze"), "0") }
            try? FileSystem.writeFile(path.appending("cgroup.kill"), "1")
        }
        for attempt in 0..<50 {
            let procs = ((try? FileSystem.readString(path.appending("cgroup.procs"))) ?? "")
                .split(separator: "\n").compactMap { pid_t($0) }
            if procs.isEmpty && rmdir(path.string) == 0 {
                report("removed cgroup \(path)")
                return removed + 1
            }
            if attempt == 0 && !procs.isEmpty { report("killing \(procs.count) process(es) in \(path)") }
            // A frozen v1 cgroup must thaw for SIGKILL to be delivered.
            if FileSystem.exists(path.appending("freezer.state")) { try? FileSystem.writeFile(path.appending("freezer.state"), "THAWED") }
            if FileSystem.exists(path.appending("cgroup.freeze")) { try? FileSystem.writeFile(path.appending("cgroup.freeze"), "0") }
            for pid in procs { kill(pid, SIGKILL) }
            usleep(20_000)
        }
        report("could not remove cgroup \(path): \(currentErrno())")
        return removed
    }
}
