import Glibc
import SystemPackage

/// Finds and removes what this project may have left on a machine: its cgroups, its
/// mounts, its state and temporary folders, and the root filesystem cache. Everything
/// it creates carries the `isolation` prefix, which is what this looks for. What still
/// runs (a container, a process in one of its cgroups, a folder a live process holds) is
/// never a leftover: it is listed, and stopped only when asked to (`clean(force:)`).
public enum Cleanup {
    /// Where the project's cgroups live: `<hierarchy>/isolation/…` in each v1 hierarchy,
    /// and in the v2 one (at /sys/fs/cgroup or /sys/fs/cgroup/unified).
    /// Removes the project's parent cgroup (`isolation`) from every hierarchy where it
    /// is empty: engines make their cgroups below it in every hierarchy, named ones
    /// (`systemd`) and v2's `unified` too. rmdir(2) of one that is still used fails, harmlessly.
    public static func removeEmptyParents(root: String = "/sys/fs/cgroup") {
        for parent in cgroupParents(root: root) { rmdir(parent.string) }
    }

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

    /// Something that still runs: a container of the runtime, or processes in one of the
    /// project's cgroups. `doctor --clean` lists it with `stop`; only `--force` stops it.
    public struct Running: Sendable {
        public var what: String
        /// The command that stops it, for the reader.
        public var stop: String
        /// A container (its store and ID), stopped with the runtime's own delete.
        public var container: (store: FilePath, id: String)?
        /// Cgroups whose processes are killed (those of a container included).
        public var cgroups: [FilePath]
    }

    /// What the project left on this machine, sorted into what may simply go (leftovers
    /// of runs whose processes are gone) and what still runs.
    public struct Survey: Sendable {
        /// Containers that have stopped: the runtime's delete removes state, cgroup, mounts.
        public var stoppedContainers: [(store: FilePath, id: String)] = []
        /// Mount points under the project's folders that no live process uses.
        public var mounts: [String] = []
        /// Empty cgroups (leaves first).
        public var cgroups: [FilePath] = []
        /// The project's folders that no live process uses.
        public var folders: [FilePath] = []
        /// The project's folders a live process uses, with who uses them: left alone.
        public var foldersInUse: [(folder: FilePath, user: String)] = []
        public var running: [Running] = []

        public var leftoverCount: Int { stoppedContainers.count + mounts.count + cgroups.count + folders.count }

        /// One line per leftover, as `--clean` would remove it.
        public var leftoverLines: [String] {
            stoppedContainers.map { "the state of stopped container '\($0.id)' in \($0.store)" }
                + mounts.map { "the mount \($0)" } + cgroups.map { "the empty cgroup \($0)" } + folders.map { "\($0)" }
        }
    }

    /// A live process: its PID, its name, and the paths it holds (working directory, root,
    /// executable, open files, and the arguments it was started with).
    struct LiveProcess {
        var pid: pid_t
        var name: String
        var paths: [String]
    }

    static func liveProcesses() -> [LiveProcess] {
        let me = getpid()
        return ((try? FileSystem.contentsOfDirectory("/proc")) ?? []).compactMap { entry -> LiveProcess? in
            guard let pid = pid_t(entry), pid != me else { return nil }
            let base = FilePath("/proc/\(pid)")
            var paths: [String] = []
            for link in ["cwd", "root", "exe"] {
                if let target = try? FileSystem.readLink(base.appending(link)) { paths.append(target.string) }
            }
            for fd in (try? FileSystem.contentsOfDirectory(base.appending("fd"))) ?? [] {
                if let target = try? FileSystem.readLink(base.appending("fd").appending(fd)) { paths.append(target.string) }
            }
            if let cmdline = try? FileSystem.readFile(base.appending("cmdline")) {
                paths += cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.filter { $0.hasPrefix("/") }
            }
            guard let stat = ProcessInfoStat(pid: pid), stat.state != "Z" else { return nil }
            let name = ((try? FileSystem.readString(base.appending("comm"))) ?? "?").trimmingCharacters(in: "\n")
            return LiveProcess(pid: pid, name: name, paths: paths)
        }
    }

    /// The container stores to look in: the default one, and any folder (to two levels)
    /// of the project's temporary folders that holds containers (chapters' and tests').
    static func containerStores(in folders: [FilePath]) -> [FilePath] {
        var stores = [stateDirectory]
        for folder in folders where folder.string.hasPrefix("/tmp/") {
            var candidates = [folder]
            for name in (try? FileSystem.contentsOfDirectory(folder)) ?? [] where FileSystem.isDirectory(folder.appending(name)) {
                candidates.append(folder.appending(name))
            }
            stores += candidates.filter { !ContainerStore(root: $0).ids().isEmpty }
        }
        return stores
    }

    static func within(_ path: String, _ folder: String) -> Bool { path == folder || path.hasPrefix(folder + "/") }

    /// Looks at everything the project may have left, and removes nothing.
    public static func survey() -> Survey {
        var survey = Survey()
        let folders = ownedFolders()
        let processes = liveProcesses()
        var held: [(path: String, user: String)] = processes.flatMap { process in
            process.paths.map { ($0, "PID \(process.pid) (\(process.name))") }
        }
        // 1. Containers: stopped ones are leftovers; live ones hold their bundle, root and state.
        var containerCgroups = Set<String>()
        for storeRoot in containerStores(in: folders) {
            let store = ContainerStore(root: storeRoot)
            for id in store.ids() {
                guard let record = try? store.load(id) else { continue }
                let status = store.status(of: record)
                if status == .stopped {
                    survey.stoppedContainers.append((storeRoot, id))
                    continue
                }
                let cgroups = cgroupParents().map { FilePath(String($0.string.dropLast(projectPrefix.count + 1))).pushing(FilePath(String(record.cgroupPath.drop(while: { $0 == "/" })))) }
                    .filter { FileSystem.isDirectory($0) }
                containerCgroups.formUnion(cgroups.map(\.string))
                let rootOption = storeRoot == stateDirectory ? "" : " --root \(storeRoot)"
                survey.running.append(Running(
                    what: "container '\(id)' (\(status.rawValue), init PID \(record.pid), bundle \(record.bundle))",
                    stop: "sudo chapter-04\(rootOption) delete --force \(id)",
                    container: (storeRoot, id), cgroups: cgroups))
                let user = "container '\(id)'"
                held += [(record.bundle, user), (record.rootfs, user), (store.directory(id).string, user)]
            }
        }
        // 2. cgroups: empty ones go; one with processes (not a container's) runs.
        for parent in cgroupParents() {
            var empty: [FilePath] = []
            _ = surveyCgroup(parent, empty: &empty, running: &survey.running, known: containerCgroups, processes: processes)
            survey.cgroups += empty
        }
        // 3. Folders and the mounts below them: leftovers unless a live process holds them.
        for folder in folders where FileSystem.exists(folder, followSymlinks: false) {
            if let user = held.first(where: { within($0.path, folder.string) })?.user {
                survey.foldersInUse.append((folder, user))
            } else {
                survey.folders.append(folder)
            }
        }
        let table = (try? MountInfo.table()) ?? []
        survey.mounts = table.map(\.mountPoint)
            .filter { point in survey.folders.contains { within(point, $0.string) } }
            .sorted { $0.count > $1.count }  // deepest first
        return survey
    }

    /// Sorts a cgroup tree into empty cgroups (leaves first) and ones with processes.
    /// Returns whether the whole subtree is empty.
    static func surveyCgroup(_ path: FilePath, empty: inout [FilePath], running: inout [Running],
                             known: Set<String>, processes: [LiveProcess]) -> Bool {
        var allEmpty = true
        for name in (try? FileSystem.contentsOfDirectory(path)) ?? [] where FileSystem.isDirectory(path.appending(name)) {
            if !surveyCgroup(path.appending(name), empty: &empty, running: &running, known: known, processes: processes) { allEmpty = false }
        }
        let procs = ((try? FileSystem.readString(path.appending("cgroup.procs"))) ?? "").split(separator: "\n").compactMap { pid_t($0) }
        if !procs.isEmpty {
            allEmpty = false
            if !known.contains(path.string) {
                let names = procs.prefix(5).map { pid in "\(pid) (\(processes.first { $0.pid == pid }?.name ?? "?"))" }
                running.append(Running(
                    what: "cgroup \(path): PID \(names.joined(separator: ", "))\(procs.count > 5 ? ", …" : "")",
                    stop: "stop the chapter or program that runs it (Ctrl-C), or: sudo kill \(procs.map(String.init).joined(separator: " "))",
                    container: nil, cgroups: [path]))
            }
        }
        if allEmpty { empty.append(path) }
        return allEmpty
    }

    /// Removes the leftovers a survey found; with `force`, first stops what runs (after
    /// the caller has listed it) and then removes what it leaves. `report` hears one line
    /// per thing removed (or not). Returns how many things were removed.
    @discardableResult
    public static func clean(_ survey: Survey, force: Bool, report: (String) -> Void) -> Int {
        var removed = 0
        if force {
            for item in survey.running {
                if let (store, id) = item.container {
                    do {
                        try Runtime(store: ContainerStore(root: store)).delete(id: id, force: true)
                        report("stopped and deleted container '\(id)'")
                        removed += 1
                    } catch {
                        report("could not delete container '\(id)': \(error)")
                    }
                }
                for cgroup in item.cgroups where FileSystem.isDirectory(cgroup) {
                    removed += removeCgroupTree(cgroup, report: report)
                }
            }
            // What they held is a leftover now.
            var after = Cleanup.survey()
            after.running = []
            if !after.foldersInUse.isEmpty {
                // Held by a process outside the project's cgroups (a shell in the folder):
                // --force removes the folder anyway, and leaves that process alone.
                after.folders += after.foldersInUse.map(\.folder)
                let table = (try? MountInfo.table()) ?? []
                after.mounts = table.map(\.mountPoint).filter { point in after.folders.contains { within(point, $0.string) } }
                    .sorted { $0.count > $1.count }
            }
            return removed + clean(after, force: false, report: report)
        }
        // 1. Stopped containers: the runtime's delete removes state, cgroup and mounts.
        for (store, id) in survey.stoppedContainers {
            do {
                try Runtime(store: ContainerStore(root: store)).delete(id: id, force: false)
                report("removed the state of stopped container '\(id)' (\(store))")
                removed += 1
            } catch {
                report("could not delete stopped container '\(id)': \(error)")
            }
        }
        // 2. Mounts, deepest first, so that no folder below is still in use.
        for point in survey.mounts {
            do {
                try Mount.unmount(FilePath(point), detach: true)
                report("unmounted \(point)")
                removed += 1
            } catch {
                report("could not unmount \(point): \(error)")
            }
        }
        // 3. Empty cgroups, leaves first.
        for cgroup in survey.cgroups where FileSystem.isDirectory(cgroup) {
            if rmdir(cgroup.string) == 0 {
                report("removed cgroup \(cgroup)")
                removed += 1
            } else if Glibc.errno != ENOENT {
                report("could not remove cgroup \(cgroup): \(currentErrno())")
            }
        }
        // 3. Networks (chapter 07, isolation-cni) in this network namespace, before their
        //    state folder goes: the nft tables, the host ends of veth pairs, ip_forward.
        //    A running container may still use them: only when nothing runs, or forced.
        if force || survey.running.isEmpty {
            removed += removeNetworks(report: report)
        } else if !Firewall.tables().isEmpty {
            report("kept the networks (nft tables isolation-*, veth iso…): containers still run; --force removes them too")
        }
        // 4. Folders: state, temporary folders, caches.
        for folder in survey.folders where FileSystem.exists(folder, followSymlinks: false) {
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
