// Exercise 04 — an OCI bundle. Your steps are in Steps.swift; this file is the rest of a
// small runtime (`runc run` without the lifecycle), written with the Isolation library.
//
//   sudo .build/debug/exercise-04 --bundle DIR      run the bundle's process (config.json + rootfs)
//   swift run check 04
//
// The solution is chapter 04 itself: BundleSetup.prepareRoot / enterRoot in
// Sources/Isolation/Runtime/BundleSetup.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise04: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-04",
        abstract: "Exercise 04: run an OCI bundle's process, with its mounts and pivot_root (your steps: Steps.swift).",
        subcommands: [RunBundle.self, Init.self],
        defaultSubcommand: RunBundle.self)
}

/// The parent: read config.json, make the cgroup, clone the init in the config's
/// namespaces, join it to the cgroup before it execs, wait.
struct RunBundle: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the bundle (the default).")

    @Option(help: ArgumentHelp("The bundle: a folder with config.json.", valueName: "DIR")) var bundle: String = "."
    @Option(help: ArgumentHelp("The cgroup's name under isolation/ (default: exercise-04-PID).", valueName: "NAME")) var name: String?

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("04") {
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
            let cgroup = try Cgroup.create(name: name ?? "exercise-04-\(getpid())", limits: ResourceLimits(oci: config.linux?.resources))
            defer { cgroup.destroy() }
            blockSignalsForSupervision()
            let child = try Container.start(
                arguments: ["exercise-04", "init", "--bundle", bundlePath.string],
                environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], namespaces: kinds.subtracting(.cgroup),
                beforeRelease: { pid in try cgroup.addProcess(pid) })
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The container's init (hidden): the bundle's root, your mounts, your pivot_root, the process.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the bundle's root, then exec its process.", shouldDisplay: false)

    @Option var bundle: String

    func run() throws {
        runExercise("04") {
            let bundlePath = FilePath(bundle)
            let config = try OCIConfig.load(bundle: bundlePath)
            let rootfs = try BundleSetup.rootfs(of: config, bundle: bundlePath)
            guard let process = config.process else { throw IsolationError("config.json has no process") }
            if let hostname = config.hostname, config.linux?.namespaceKinds.contains(.uts) == true {
                try Identity.setHostname(hostname)
            }

            // Nothing we mount may propagate to the host; pivot_root needs a mount point.
            try Mount.mount(source: "none", target: "/", flags: [.recursive, .slave])
            try Mount.mount(source: rootfs.string, target: rootfs, flags: [.bind, .recursive])

            // The config's mounts, in order (your step "mounts"). The destination is
            // resolved *inside* the root, so a symlink in the image can never send a mount
            // onto the host (the CVE-2021-30465 family); the mount point is created.
            for (index, mount) in (config.mounts ?? []).enumerated() {
                if mount.type == "cgroup" || mount.type == "cgroup2" {
                    say("(exercise-04 skips mounts[\(index)] \(mount.destination): cgroup mounts are chapter 04's)")
                    continue
                }
                var climbed = false
                let target = try FileSystem.resolve(FilePath(mount.destination), inside: rootfs, climbedAboveRoot: &climbed)
                if climbed { throw IsolationError("mounts[\(index)].destination \(mount.destination) climbs out of the root filesystem") }
                let isBind = mount.type == "bind" || (mount.options ?? []).contains { $0 == "bind" || $0 == "rbind" }
                var source = mount.source ?? mount.type ?? "none"
                if isBind && !source.hasPrefix("/") { source = bundlePath.appending(source).string }
                try FileSystem.makeMountPoint(target, forFile: isBind && FileSystem.exists(FilePath(source)) && !FileSystem.isDirectory(FilePath(source)))
                do { try applyMount(mount, source: source, target: target) } catch let error as Errno {
                    throw StageError(stage: "mounts[\(index)] \(mount.type ?? "bind") on \(mount.destination)", errno: error)
                }
            }

            // /dev's nodes: the host's, bound one by one onto empty files (when /dev is a mount).
            let dev = rootfs.appending("dev")
            for name in Container.devices where FileSystem.isDirectory(dev) && FileSystem.exists(FilePath("/dev/\(name)")) {
                let node = dev.appending(name)
                if !FileSystem.exists(node) { try? FileSystem.writeFile(node, "", mode: 0o666) }
                try? Mount.mount(source: "/dev/\(name)", target: node, flags: [.bind])
            }

            // The root filesystem becomes "/" (your step "pivot_root").
            do { try pivotInto(rootfs) } catch let error as Errno {
                throw StageError(stage: "pivot_root into \(rootfs)", errno: error)
            }

            // The process: its working directory, then execve(2). The init becomes it.
            try FileSystem.changeDirectory(FilePath(process.cwd))
            let environment = process.env ?? []
            let path = environment.first(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) } ?? Exec.containerPath
            try Exec.replaceProcess(try Exec.resolve(process.args[0], path: path), arguments: process.args, environment: environment)
        }
    }
}
