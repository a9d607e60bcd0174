// Exercise 04: a bundle the checker writes, run by the exercise; the container's mount
// table read from outside (/proc/PID/mountinfo, /proc/PID/root).
import Glibc
import Isolation
import SystemPackage

func checkBundle(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("04")
        let bundle = folder.appending("bundle")
        try FileSystem.makeDirectories(bundle)
        let rootfs = try context.rootfs(in: bundle)
        let data = folder.appending("data")
        try FileSystem.makeDirectories(data)
        let token = "isolation-check-\(getpid())-\(monotonicNow())"
        try FileSystem.writeFile(data.appending("hello"), token + "\n")

        let probe = "echo \"pid=$$\"; echo \"data=$(cat /isolation-data/hello 2>&1)\"; "
            + "if echo x > /isolation-data/written 2>/dev/null; then echo data-write=allowed; else echo data-write=refused; fi; "
            + "echo \"scratch=$(echo ok > /isolation-scratch/file && cat /isolation-scratch/file)\"; echo ready; read x; echo done"
        var config = OCIConfig.defaultSpec(args: ["sh", "-c", probe], cgroupNamespace: false)
        config.root = OCIConfig.Root(path: "rootfs", readonly: false)
        config.hostname = "isolation-ex04"
        config.mounts = (config.mounts ?? []).filter { $0.type != "cgroup" } + [
            OCIConfig.Mount(destination: "/isolation-scratch", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", "mode=1777", "size=1m"]),
            OCIConfig.Mount(destination: "/isolation-data", type: "bind", source: data.string, options: ["rbind", "ro", "nosuid", "nodev"]),
        ]
        config.linux?.maskedPaths = nil
        config.linux?.readonlyPaths = nil
        try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
        report.note("bundle: \(bundle)/config.json — mounts: " + (config.mounts ?? []).map(\.destination).joined(separator: " "))

        let name = "check-04-\(getpid())"
        defer {
            if let cgroup = try? Cgroup.existing(path: "\(projectPrefix)/\(name)") { cgroup.destroy() }
            let left = context.unmountLeftovers(under: folder)
            report.check("nothing it mounted is left on the host", left.isEmpty,
                         observed: left.isEmpty ? "no mount under \(folder) in the host's mount table" : "left mounted (now removed): " + left.joined(separator: ", "),
                         expected: "none: the container's mounts live in its own mount namespace",
                         hint: "the starter makes / rslave before any of your mounts; mount only inside the container's init")
        }
        guard let running = startProbe(report, "04", program, ["--bundle", bundle.string, "--name", name],
                                       environment: context.environment()) else { return }
        defer { running.finish(timeout: 10) }
        let values = running.stdout.probeValues
        guard let shell = Proc.waitForDescendant(of: running.child.pid, named: "sh", timeout: 5) else {
            report.fail("find the container's process on the host", observed: "no sh below exercise-04", expected: "the bundle's process", hint: "the init must exec process.args")
            return
        }
        let mounts = (try? MountInfo.table(of: shell)) ?? []
        func mount(at point: String) -> MountInfo? { mounts.last(where: { $0.mountPoint == point }) }
        func describe(_ m: MountInfo?) -> String { m.map { "\($0.fileSystemType) \($0.source) at \($0.mountPoint) (\($0.options))" } ?? "nothing mounted there" }

        // pivot_root: "/" is the bundle's root, and nothing of the host's is left above it.
        // After a mere chroot(2), /proc/PID/root reads as the rootfs path; after pivot_root
        // as "/" (or, when the checker itself runs chrooted, its own root's name).
        let rootLink = Proc.link("/proc/\(shell)/root")
        let rootMount = mount(at: "/")
        report.check("the process's root is its mount namespace's root (pivot_root, not chroot)", !rootLink.hasSuffix("/bundle/rootfs") && rootMount?.root.hasSuffix("/bundle/rootfs") == true,
                     observed: "/proc/\(shell)/root → \(rootLink); \"/\" in its mountinfo is \(rootMount.map { "\($0.source) \($0.root)" } ?? "missing")",
                     expected: "\"/\", the bind mount of \(rootfs)",
                     hint: "step \"pivot_root\": chdir(rootfs), pivot_root(\".\", \".\"), umount2(\".\", MNT_DETACH), chdir(\"/\"). chroot(2) would leave the host's root in the mount namespace (readlink shows the rootfs path then)")
        let expectedPoints = Set(["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/isolation-scratch", "/isolation-data"])
        let foreign = mounts.filter { !expectedPoints.contains($0.mountPoint) && !$0.mountPoint.hasPrefix("/dev/") && !$0.mountPoint.hasPrefix("/isolation-data/") }
        report.check("the host's mounts are gone from the container", foreign.isEmpty && mounts.count < 40,
                     observed: "\(mounts.count) mounts in /proc/\(shell)/mountinfo" + (foreign.isEmpty ? ", all from config.json" : "; not from config.json: " + foreign.prefix(5).map(\.mountPoint).joined(separator: " ")),
                     expected: "only \"/\" and config.json's mounts",
                     hint: "step \"pivot_root\": after pivot_root(\".\", \".\") the old root is stacked on top of \".\"; umount2(\".\", MNT_DETACH) takes it, and every host mount below it, away")
        // The config's mounts, each as asked.
        let proc = mount(at: "/proc")
        report.check("mounts[0]: proc at /proc", proc?.fileSystemType == "proc", observed: describe(proc), expected: "proc at /proc",
                     hint: "step \"mounts\": mount(source, target, type, flags, data) for a typed mount: Mount.mount(source: source, target: target, type: mount.type, …)")
        let dev = mount(at: "/dev")
        report.check("mounts[1]: tmpfs at /dev, nosuid", dev?.fileSystemType == "tmpfs" && dev!.options.split(separator: ",").contains("nosuid"),
                     observed: describe(dev), expected: "tmpfs at /dev with nosuid (options nosuid, strictatime, mode=755, size=65536k)",
                     hint: "step \"mounts\": MountOptions(mount.options ?? []) gives .flags (nosuid → MS_NOSUID) and .dataString (mode=755,size=65536k)")
        let scratch = mount(at: "/isolation-scratch")
        let scratchOptions = Set((scratch?.options ?? "").split(separator: ",").map(String.init))
        report.check("mounts[\((config.mounts ?? []).count - 2)]: tmpfs at /isolation-scratch with nosuid,nodev,noexec, writable",
                     scratch?.fileSystemType == "tmpfs" && scratchOptions.isSuperset(of: ["nosuid", "nodev", "noexec"]) && values["scratch"] == "ok",
                     observed: describe(scratch) + "; writing a file there → \(values["scratch"] ?? "?")",
                     expected: "tmpfs, rw, nosuid,nodev,noexec",
                     hint: "step \"mounts\": pass the flags MountOptions found (flags: options.flags) and its data (size=1m) to mount(2)")
        let bound = mount(at: "/isolation-data")
        let boundOptions = Set((bound?.options ?? "").split(separator: ",").map(String.init))
        report.check("mounts[\((config.mounts ?? []).count - 1)]: the host folder bound at /isolation-data", bound != nil && values["data"] == token,
                     observed: describe(bound) + "; cat /isolation-data/hello → \(values["data"] ?? "?")",
                     expected: "a bind of \(data), showing its file",
                     hint: "step \"mounts\": a bind mount is mount(source, target, NULL, MS_BIND|MS_REC, NULL) (type \"bind\" is not a file system)")
        let written = FileSystem.exists(data.appending("written"))
        report.check("… read-only, as its options say (ro)", boundOptions.contains("ro") && !written && values["data-write"] == "refused",
                     observed: "mount options \(bound?.options ?? "-"); writing /isolation-data/written → \(written ? "the file appeared on the host" : "refused")",
                     expected: "ro, and the write refused",
                     hint: "step \"mounts\": mount(2) ignores MS_RDONLY (and nosuid, nodev…) together with MS_BIND: bind first, then remount the bind with the flags: MS_REMOUNT|MS_BIND|MS_RDONLY (…)")
        let status = running.finish(timeout: 10)
        report.check("the exercise ends with the process's status", status == .exited(0), observed: "exercise-04 \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a bundle in /tmp", hint: "run `swift run doctor`")
    }
}

/// `check 04 --hint`: level 1 the API, level 2 the shape of the answer.
let bundleHints: [StepHint] = [
    StepHint(step: "mounts",
             api: "MountOptions(mount.options ?? []) sorts the options into .flags (MountFlags: nosuid → .noSetuid, ro → .readOnly, rbind → .bind + .recursive), .dataString (mode=755,size=65536k), .propagation and .isBind. Mount.mount(source:target:type:flags:data:) is mount(2).",
             shape: "A typed mount is one call with the type, the flags and the data. A bind mount is two: Mount.mount with only .bind (and .recursive), then Mount.mount(source: \"none\", target:, flags: the other flags + .bind + .remount). Propagation options (rprivate…) are a call of their own."),
    StepHint(step: "pivot_root",
             api: "FileSystem.changeDirectory(_:) is chdir(2), Mount.pivotRoot(newRoot:putOld:) is pivot_root(2), Mount.unmount(_:detach: true) is umount2(2) with MNT_DETACH.",
             shape: "Four calls: chdir(rootfs); pivot_root(\".\", \".\") stacks the old root on top of the new one; umount2(\".\", MNT_DETACH) takes it, and every host mount below it, away; chdir(\"/\")."),
]
