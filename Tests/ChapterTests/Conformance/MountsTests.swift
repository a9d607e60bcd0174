// config.md "Root" and "Mounts", config-linux.md "Rootfs Mount Propagation", "Masked
// Paths", "Readonly Paths": the container's mount table as the probe reads it from
// /proc/$$/mountinfo, and what writes and reads do there.
import Foundation
import Isolation
import SystemPackage
import Testing

/// The per-mount options of a mountinfo entry (`ro,nosuid,…`).
func mountOptions(_ mount: MountInfo?) -> Set<String> {
    Set((mount?.options ?? "").split(separator: ",").map(String.init))
}

@Suite("Conformance: config.md#root and #mounts, config-linux.md mounts", .serialized,
       .enabled(if: canProbe, "needs root and a static busybox"))
struct ConformanceMounts {
    @Test("config.md#root: root.path relative to the bundle; readonly true refuses writes, false lets them land in root.path",
          arguments: [true, false])
    func root(readonly: Bool) throws {
        let bundle = try TestBundle(conformance: "root", args: ["/probe"]) { $0.root = OCIConfig.Root(path: "rootfs", readonly: readonly) }
        defer { bundle.removeAll() }
        try bundle.probeExtra("echo written > /written 2>/dev/null && echo write=ok || echo write=refused\n")
        let (result, seen) = try bundle.probe("conf-root")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen["write"] == (readonly ? "refused" : "ok"), "\(seen)")
        #expect(FileManager.default.fileExists(atPath: bundle.rootfs + "/written") == !readonly)
        let root = seen.mount(at: "/")
        #expect(mountOptions(root).contains("ro") == readonly, "\(String(describing: root))")
        // pivot_root, not chroot: the host's root is no longer in the container's mount table.
        #expect(root?.root == bundle.rootfs || root?.root.hasSuffix("/bundle/rootfs") == true, "\(String(describing: root))")
        #expect(seen.mounts.allSatisfy { $0.mountPoint == "/" || $0.parentID != root?.parentID }, "a mount beside the root: \(seen.all("mountinfo"))")
        #expect(seen.mounts.first?.mountPoint == "/", "the root is the first mount: \(seen.all("mountinfo"))")
    }

    @Test("config.md#mounts: proc, sysfs, tmpfs, devpts, mqueue, cgroup and bind mounts with their types and options")
    func typesAndOptions() throws {
        let bundle = try TestBundle(conformance: "mounts", args: ["/probe"]) { config in
            config.mounts! += [
                OCIConfig.Mount(destination: "/srv/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", "size=1m", "mode=710"]),
                OCIConfig.Mount(destination: "/srv/data-ro", type: "bind", source: "data", options: ["rbind", "ro", "nosuid"]),
                OCIConfig.Mount(destination: "/srv/data-rw", type: "none", source: "data", options: ["bind", "nodev"]),
                OCIConfig.Mount(destination: "/srv/file", type: "bind", source: "data/file", options: ["bind", "ro"]),
            ]
        }
        defer { bundle.removeAll() }
        try FileManager.default.createDirectory(atPath: bundle.path + "/data", withIntermediateDirectories: true)
        try "from the host\n".write(toFile: bundle.path + "/data/file", atomically: false, encoding: .utf8)
        try bundle.probeExtra("""
        echo "file=$(cat /srv/file)"
        touch /srv/data-ro/x 2>/dev/null && echo data-ro=writable || echo data-ro=readonly
        touch /srv/data-rw/x 2>/dev/null && echo data-rw=writable || echo data-rw=readonly
        echo "tmp=$(stat -c %a /srv/tmp)"
        """)
        let (result, seen) = try bundle.probe("conf-mounts")
        #expect(result.status == 0 && seen.complete, "\(result)")
        let expected: [(String, String, Set<String>)] = [
            ("/proc", "proc", []), ("/dev", "tmpfs", ["nosuid"]), ("/dev/pts", "devpts", ["nosuid", "noexec"]),
            ("/dev/shm", "tmpfs", ["nosuid", "noexec", "nodev"]), ("/dev/mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
            ("/sys", "sysfs", ["ro", "nosuid", "noexec", "nodev"]),
            ("/srv/tmp", "tmpfs", ["nosuid", "nodev", "noexec"]), ("/srv/data-ro", "", ["ro", "nosuid"]),
            ("/srv/data-rw", "", ["nodev"]), ("/srv/file", "", ["ro"]),
        ]
        for (point, type, options) in expected {
            let mount = seen.mount(at: point)
            #expect(mount != nil, "no mount at \(point): \(seen.all("mountinfo"))")
            if !type.isEmpty { #expect(mount?.fileSystemType == type, "\(point): \(String(describing: mount))") }
            #expect(mountOptions(mount).isSuperset(of: options), "\(point) lacks \(options.subtracting(mountOptions(mount))): \(String(describing: mount))")
        }
        // The cgroup mount is read-only, whatever its inside looks like on this cgroup version.
        #expect(seen.mounts.contains { $0.mountPoint == "/sys/fs/cgroup" && mountOptions($0).contains("ro") }, "\(seen.all("mountinfo"))")
        #expect(seen.superOptions(at: "/srv/tmp").isSuperset(of: ["size=1024k", "mode=710"]), "\(seen.superOptions(at: "/srv/tmp"))")
        #expect(seen.superOptions(at: "/dev/pts").isSuperset(of: ["ptmxmode=666", "mode=620", "gid=5"]), "\(seen.superOptions(at: "/dev/pts"))")
        #expect(seen["tmp"] == "710")
        #expect(seen["file"] == "from the host")
        #expect(seen["data-ro"] == "readonly" && seen["data-rw"] == "writable", "\(seen)")
        #expect(FileManager.default.fileExists(atPath: bundle.path + "/data/x"), "a bind mount shows the host's folder itself")
        // Nothing of the container's mounts is in the host's mount table.
        #expect(mounts(under: bundle.folder.path).isEmpty)
    }

    @Test("config.md#mounts: bind leaves the source's submounts out, rbind brings them")
    func bindAndRbind() throws {
        let bundle = try TestBundle(conformance: "rbind", args: ["/probe"]) { config in
            config.mounts! += [
                OCIConfig.Mount(destination: "/srv/bind", type: "bind", source: "tree", options: ["bind"]),
                OCIConfig.Mount(destination: "/srv/rbind", type: "bind", source: "tree", options: ["rbind"]),
            ]
        }
        let submount = bundle.path + "/tree/sub"
        try FileManager.default.createDirectory(atPath: submount, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "isolation-conformance", submount])
        defer {
            _ = try? run("/bin/umount", [submount])
            bundle.removeAll()
        }
        try #require(mounted.status == 0, "\(mounted)")
        try "in the submount\n".write(toFile: submount + "/marker", atomically: false, encoding: .utf8)
        try bundle.probeExtra("""
        [ -e /srv/bind/sub/marker ] && echo bind=sees-submount || echo bind=no-submount
        [ -e /srv/rbind/sub/marker ] && echo rbind=sees-submount || echo rbind=no-submount
        """)
        let (result, seen) = try bundle.probe("conf-rbind")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen["bind"] == "no-submount" && seen["rbind"] == "sees-submount", "\(seen)")
        #expect(seen.mount(at: "/srv/rbind/sub")?.fileSystemType == "tmpfs")
        #expect(seen.mount(at: "/srv/bind/sub") == nil)
    }

    @Test("config.md#mounts: private, shared, slave and unbindable propagation, in the mount table's optional fields")
    func propagation() throws {
        let bundle = try TestBundle(conformance: "propagation", args: ["/probe"]) { config in
            config.mounts! += [
                OCIConfig.Mount(destination: "/srv/shared", type: "bind", source: "tree", options: ["rbind", "rshared"]),
                // A bind of the shared mount joins its peer group; slave turns that into "master:N".
                OCIConfig.Mount(destination: "/srv/slave", type: "bind", source: "rootfs/srv/shared", options: ["rbind", "rslave"]),
                OCIConfig.Mount(destination: "/srv/private", type: "bind", source: "rootfs/srv/shared", options: ["rbind", "rprivate"]),
                OCIConfig.Mount(destination: "/srv/unbindable", type: "bind", source: "tree", options: ["rbind", "runbindable"]),
            ]
        }
        defer { bundle.removeAll() }
        try FileManager.default.createDirectory(atPath: bundle.path + "/tree", withIntermediateDirectories: true)
        let (result, seen) = try bundle.probe("conf-prop")
        #expect(result.status == 0 && seen.complete, "\(result)")
        let shared = try #require(seen.mount(at: "/srv/shared"), "\(seen.all("mountinfo"))")
        let group = try #require(shared.propagation.first { $0.hasPrefix("shared:") }, "\(shared)").dropFirst("shared:".count)
        let slave = seen.mount(at: "/srv/slave")
        #expect(slave?.propagation == ["master:\(group)"], "a slave of the shared mount's peer group: \(String(describing: slave))")
        #expect(seen.mount(at: "/srv/private")?.propagation == [], "\(String(describing: seen.mount(at: "/srv/private")))")
        #expect(seen.mount(at: "/srv/unbindable")?.propagation == ["unbindable"], "\(String(describing: seen.mount(at: "/srv/unbindable")))")
    }

    @Test("config.md#mounts: destinations are resolved inside the root, also through absolute and relative symlinks; missing ones are made")
    func destinationsThroughSymlinks() throws {
        let bundle = try TestBundle(conformance: "symlinks", args: ["/probe"]) { config in
            config.mounts! += [
                OCIConfig.Mount(destination: "/abs/t", type: "tmpfs", source: "tmpfs", options: ["size=1m"]),
                OCIConfig.Mount(destination: "/srv/rel/t", type: "tmpfs", source: "tmpfs", options: ["size=2m"]),
                OCIConfig.Mount(destination: "/srv/new/deeper/t", type: "tmpfs", source: "tmpfs", options: ["size=3m"]),
            ]
        }
        defer { bundle.removeAll() }
        // /abs → /srv/real (absolute: the host's /srv/real must not be touched); /srv/rel → ../srv/real2.
        try FileManager.default.createDirectory(atPath: bundle.rootfs + "/srv/real", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: bundle.rootfs + "/srv/real2", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: bundle.rootfs + "/abs", withDestinationPath: "/srv/real")
        try FileManager.default.createSymbolicLink(atPath: bundle.rootfs + "/srv/rel", withDestinationPath: "../srv/real2")
        let hostHadSrvReal = FileManager.default.fileExists(atPath: "/srv/real")
        let (result, seen) = try bundle.probe("conf-sym")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen.superOptions(at: "/srv/real/t").contains("size=1024k"), "\(seen.all("mountinfo"))")
        #expect(seen.superOptions(at: "/srv/real2/t").contains("size=2048k"), "\(seen.all("mountinfo"))")
        #expect(seen.superOptions(at: "/srv/new/deeper/t").contains("size=3072k"))
        #expect(FileManager.default.fileExists(atPath: "/srv/real") == hostHadSrvReal, "a mount point was made on the host")
        #expect(FileManager.default.fileExists(atPath: bundle.rootfs + "/srv/real/t"))
    }

    @Test("config.md#mounts: an ID-mapped mount is mapped, or refused with a clear error — never mounted unmapped")
    func idMappedMount() throws {
        let bundle = try TestBundle(conformance: "idmap", args: ["/probe"]) { config in
            config.mounts! += [OCIConfig.Mount(destination: "/srv/mapped", type: "bind", source: "data", options: ["bind", "idmap"],
                                               uidMappings: [OCIConfig.IDMapping(containerID: 0, hostID: 0, size: 1), OCIConfig.IDMapping(containerID: 4000, hostID: 1000, size: 1)],
                                               gidMappings: [OCIConfig.IDMapping(containerID: 0, hostID: 0, size: 1), OCIConfig.IDMapping(containerID: 4000, hostID: 1000, size: 1)])]
        }
        defer { bundle.removeAll() }
        try FileManager.default.createDirectory(atPath: bundle.path + "/data", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: bundle.path + "/data/owned", contents: nil)
        chown(bundle.path + "/data/owned", 1000, 1000)
        try bundle.probeExtra("echo \"owner=$(stat -c %u:%g /srv/mapped/owned)\"\n")
        let (result, seen) = try bundle.probe("conf-idmap")
        if result.status == 0 {
            #expect(seen["owner"] == "4000:4000", "host 1000 is 4000 through the mount's mapping: \(seen)")
        } else {
            #expect(result.stderr.contains("mounts[") && result.stderr.contains("ID-mapped"), "\(result)")
            #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-idmap"))
        }
    }

    @Test("config.md#mounts: mounts are made in order — a later one stacks on an earlier one")
    func order() throws {
        let bundle = try TestBundle(conformance: "order", args: ["/probe"]) { config in
            config.mounts! += [
                OCIConfig.Mount(destination: "/srv/a", type: "tmpfs", source: "first", options: ["size=1m"]),
                OCIConfig.Mount(destination: "/srv/a/b", type: "tmpfs", source: "second", options: ["size=2m"]),
                OCIConfig.Mount(destination: "/srv/a", type: "tmpfs", source: "third", options: ["size=3m"]),
            ]
        }
        defer { bundle.removeAll() }
        try bundle.probeExtra("[ -d /srv/a/b ] && echo b=visible || echo b=hidden\n")
        let (result, seen) = try bundle.probe("conf-order")
        #expect(result.status == 0 && seen.complete, "\(result)")
        let stack = seen.mounts.filter { $0.mountPoint.hasPrefix("/srv/a") }
        #expect(stack.map(\.source) == ["first", "second", "third"], "\(stack)")
        if stack.count == 3 {
            #expect(stack[1].parentID == stack[0].mountID && stack[2].parentID == stack[0].mountID)
        }
        #expect(seen["b"] == "hidden", "the third mount hides the first and what is on it")
    }

    @Test("config-linux.md#rootfs-mount-propagation: the root's propagation in the container's mount table",
          arguments: ["shared", "rslave", "runbindable"])
    func rootfsPropagation(_ propagation: String) throws {
        let bundle = try TestBundle(conformance: "rootprop", args: ["/probe"]) { config in
            config.linux?.rootfsPropagation = OCIConfig.RootfsPropagation(rawValue: propagation)
        }
        defer { bundle.removeAll() }
        let (result, seen) = try bundle.probe("conf-rp")
        #expect(result.status == 0 && seen.complete, "\(result)")
        let root = try #require(seen.mount(at: "/"), "\(seen.all("mountinfo"))")
        switch propagation {
        case "shared", "rshared": #expect(root.propagation.contains { $0.hasPrefix("shared:") }, "\(root)")
        case "unbindable", "runbindable": #expect(root.propagation == ["unbindable"], "\(root)")
        default: #expect(!root.propagation.contains { $0.hasPrefix("shared:") } && !root.propagation.contains("unbindable"), "\(root)")
        }
    }

    @Test("config-linux.md#masked-paths: a masked file reads empty, a masked folder is empty, a missing path is skipped; neither is writable")
    func maskedPaths() throws {
        let bundle = try TestBundle(conformance: "masked", args: ["/probe"]) { config in
            config.linux?.maskedPaths = ["/srv/secret.txt", "/srv/secrets", "/srv/does-not-exist"]
        }
        defer { bundle.removeAll() }
        try FileManager.default.createDirectory(atPath: bundle.rootfs + "/srv/secrets", withIntermediateDirectories: true)
        try "password\n".write(toFile: bundle.rootfs + "/srv/secret.txt", atomically: false, encoding: .utf8)
        try "key\n".write(toFile: bundle.rootfs + "/srv/secrets/key", atomically: false, encoding: .utf8)
        try bundle.probeExtra("""
        echo "file=[$(cat /srv/secret.txt)]"
        echo "folder=[$(ls -A /srv/secrets)]"
        echo x > /srv/secret.txt 2>/dev/null; echo "file-after-write=[$(cat /srv/secret.txt)]"
        touch /srv/secrets/new 2>/dev/null && echo folder-write=ok || echo folder-write=refused
        [ -e /srv/does-not-exist ] && echo missing=made || echo missing=absent
        """)
        let (result, seen) = try bundle.probe("conf-masked")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen["file"] == "[]" && seen["folder"] == "[]", "\(seen)")
        #expect(seen["file-after-write"] == "[]" && seen["folder-write"] == "refused", "\(seen)")
        #expect(seen["missing"] == "absent")
        #expect(try String(contentsOfFile: bundle.rootfs + "/srv/secret.txt", encoding: .utf8) == "password\n", "the host's file is untouched")
    }

    @Test("config-linux.md#readonly-paths: readable, not writable; the rest stays writable")
    func readonlyPaths() throws {
        let bundle = try TestBundle(conformance: "readonly", args: ["/probe"]) { config in
            config.linux?.readonlyPaths = ["/srv/ro", "/srv/ro-file", "/srv/does-not-exist"]
        }
        defer { bundle.removeAll() }
        for dir in ["ro", "rw"] { try FileManager.default.createDirectory(atPath: bundle.rootfs + "/srv/" + dir, withIntermediateDirectories: true) }
        try "content\n".write(toFile: bundle.rootfs + "/srv/ro/file", atomically: false, encoding: .utf8)
        try "single\n".write(toFile: bundle.rootfs + "/srv/ro-file", atomically: false, encoding: .utf8)
        try bundle.probeExtra("""
        echo "read=$(cat /srv/ro/file)"
        echo "read-file=$(cat /srv/ro-file)"
        touch /srv/ro/new 2>/dev/null && echo ro-write=ok || echo ro-write=refused
        echo x >> /srv/ro-file 2>/dev/null && echo ro-file-write=ok || echo ro-file-write=refused
        touch /srv/rw/new 2>/dev/null && echo rw-write=ok || echo rw-write=refused
        """)
        let (result, seen) = try bundle.probe("conf-ro")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen["read"] == "content" && seen["read-file"] == "single", "\(seen)")
        #expect(seen["ro-write"] == "refused" && seen["ro-file-write"] == "refused" && seen["rw-write"] == "ok", "\(seen)")
        #expect(mountOptions(seen.mount(at: "/srv/ro")).contains("ro"))
    }
}
