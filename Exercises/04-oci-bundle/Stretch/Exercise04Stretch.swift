// Exercise 04, stretch — two things a runtime must get right that a small one skips:
// the config's hooks (a program run with the container's state on its stdin, whose
// failure or timeout aborts the container) and mount destinations that the image
// controls (a symlink in the root filesystem must never send a mount, or a mkdir, onto
// the host). Your steps are in Steps.swift; this file is the rest, with exercise 04's
// own steps done (see "Exercise 04's steps, solved" below).
//
//   sudo .build/debug/exercise-04-stretch --bundle DIR [--name ID]
//   swift run check 04 --stretch
//
// The solution is chapter 04's runtime: Hooks.run in Sources/Isolation/Runtime/Hooks.swift
// and FileSystem.resolve(_:inside:) in Sources/Isolation/FileSystem/PathResolution.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise04Stretch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-04-stretch",
        abstract: "Exercise 04, stretch: a bundle's createRuntime hooks, and mounts a symlink cannot send out (your steps: Steps.swift).",
        subcommands: [RunBundle.self, Init.self],
        defaultSubcommand: RunBundle.self)
}

/// The parent: read config.json, make the cgroup, clone the init held before it does
/// anything, join it to the cgroup, run the createRuntime hooks, release it, wait.
struct RunBundle: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the bundle (the default).")

    @Option(help: ArgumentHelp("The bundle: a folder with config.json.", valueName: "DIR")) var bundle: String = "."
    @Option(help: ArgumentHelp("The container's ID: the hooks' state says it, and the cgroup is isolation/ID (default: exercise-04-stretch-PID).", valueName: "ID"))
    var name: String?

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("04-stretch") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "namespaces, mounts and cgroups need root")])
            let bundlePath = try FileSystem.realPath(FilePath(bundle))
            let config = try OCIConfig.load(bundle: bundlePath)
            _ = try BundleSetup.rootfs(of: config, bundle: bundlePath)
            let kinds = config.linux?.namespaceKinds ?? []
            guard kinds.contains(.mount) else {
                throw IsolationError("config.json has no mount namespace: mounts and pivot_root would change the host", hint: "add {\"type\": \"mount\"} to linux.namespaces")
            }
            guard !kinds.contains(.user) else {
                throw IsolationError("this exercise runs as root without a user namespace", hint: "remove {\"type\": \"user\"} from linux.namespaces")
            }
            let id = name ?? "exercise-04-stretch-\(getpid())"
            let cgroup = try Cgroup.create(name: id, limits: ResourceLimits(oci: config.linux?.resources))
            defer { cgroup.destroy() }
            blockSignalsForSupervision()
            let child = try Container.start(
                arguments: ["exercise-04-stretch", "init", "--bundle", bundlePath.string],
                environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], namespaces: kinds.subtracting(.cgroup),
                beforeRelease: { pid in
                    try cgroup.addProcess(pid)
                    // config.md, "POSIX-platform Hooks": createRuntime runs in the runtime's
                    // namespaces once the container's exist, in order; the first that fails
                    // (or times out) aborts the container, which never runs its process.
                    let state = OCIState(id: id, status: .creating, pid: pid, bundle: bundlePath.string)
                    for (index, hook) in (config.hooks?.createRuntime ?? []).enumerated() {
                        do { try runHook(hook, state: state) } catch {
                            throw IsolationError("hooks.createRuntime[\(index)] (\(hook.path)) failed: \(error)", hint: "the container was stopped before its process ran")
                        }
                    }
                })
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The container's init (hidden): the bundle's root, the mounts (your step "resolve"
/// says where each goes), pivot_root, the process.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the bundle's root, then exec its process.", shouldDisplay: false)

    @Option var bundle: String

    func run() throws {
        runExercise("04-stretch") {
            let bundlePath = FilePath(bundle)
            let config = try OCIConfig.load(bundle: bundlePath)
            let rootfs = try BundleSetup.rootfs(of: config, bundle: bundlePath)
            guard let process = config.process else { throw IsolationError("config.json has no process") }
            if let hostname = config.hostname, config.linux?.namespaceKinds.contains(.uts) == true {
                try Identity.setHostname(hostname)
            }
            try Mount.mount(source: "none", target: "/", flags: [.recursive, .slave])
            try Mount.mount(source: rootfs.string, target: rootfs, flags: [.bind, .recursive])

            for (index, mount) in (config.mounts ?? []).enumerated() {
                if mount.type == "cgroup" || mount.type == "cgroup2" { continue }
                // Your step "resolve": where, on the host, the destination is *for the
                // container*. Everything after it (mkdir, mount) follows what it returns.
                let target = try resolveInside(mount.destination, rootfs: rootfs)
                guard target == rootfs || target.string.hasPrefix(rootfs.string + "/") else {
                    throw IsolationError("mounts[\(index)].destination \(mount.destination) resolved to \(target), outside the root filesystem \(rootfs)")
                }
                if FileSystem.isSymlink(target) {
                    throw IsolationError("mounts[\(index)].destination \(mount.destination) → \(target), a symlink in the image: mkdir(2) and mount(2) would follow it on the host's terms",
                                         hint: "step \"resolve\" must follow symlinks itself, below the root filesystem")
                }
                let isBind = mount.type == "bind" || (mount.options ?? []).contains { $0 == "bind" || $0 == "rbind" }
                var source = mount.source ?? mount.type ?? "none"
                if isBind && !source.hasPrefix("/") { source = bundlePath.appending(source).string }
                try FileSystem.makeMountPoint(target, forFile: isBind && FileSystem.exists(FilePath(source)) && !FileSystem.isDirectory(FilePath(source)))
                do { try applyMount(mount, source: source, target: target) } catch let error as Errno {
                    throw StageError(stage: "mounts[\(index)] \(mount.type ?? "bind") on \(mount.destination)", errno: error)
                }
            }
            let dev = rootfs.appending("dev")
            for name in Container.devices where FileSystem.isDirectory(dev) && FileSystem.exists(FilePath("/dev/\(name)")) {
                let node = dev.appending(name)
                if !FileSystem.exists(node) { try? FileSystem.writeFile(node, "", mode: 0o666) }
                try? Mount.mount(source: "/dev/\(name)", target: node, flags: [.bind])
            }
            do { try pivotInto(rootfs) } catch let error as Errno {
                throw StageError(stage: "pivot_root into \(rootfs)", errno: error)
            }
            try FileSystem.changeDirectory(FilePath(process.cwd))
            let environment = process.env ?? []
            let path = environment.first(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) } ?? Exec.containerPath
            try Exec.replaceProcess(try Exec.resolve(process.args[0], path: path), arguments: process.args, environment: environment)
        }
    }
}

// MARK: - Exercise 04's steps, solved (try exercise 04 before reading these)

/// One entry of `mounts`: a typed mount in one call; a bind mount, then a remount with
/// its flags (mount(2) ignores them on MS_BIND); propagation in a call of its own.
func applyMount(_ mount: OCIConfig.Mount, source: String, target: FilePath) throws {
    let options = MountOptions(mount.options ?? [])
    if options.isBind || mount.type == "bind" {
        try Mount.mount(source: source, target: target, flags: options.flags.intersection([.bind, .recursive]))
        let remount = options.flags.subtracting([.bind, .recursive, .remount])
        if !remount.isEmpty { try Mount.mount(source: "none", target: target, flags: remount.union([.bind, .remount])) }
    } else {
        try Mount.mount(source: source, target: target, type: mount.type, flags: options.flags, data: options.dataString)
    }
    if !options.propagation.isEmpty { try Mount.mount(source: "none", target: target, flags: options.propagation) }
}

/// pivot_root(".", "."), then the old root, stacked on top, detached.
func pivotInto(_ rootfs: FilePath) throws {
    try FileSystem.changeDirectory(rootfs)
    try Mount.pivotRoot(newRoot: ".", putOld: ".")
    try Mount.unmount(".", detach: true)
    try FileSystem.changeDirectory("/")
}
