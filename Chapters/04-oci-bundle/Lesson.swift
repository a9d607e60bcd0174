// The lesson: write a bundle, read its config, run it step by step, watch its state.
import ArgumentParser
import Glibc
import Isolation
import RuntimeCLI
import SystemPackage

struct Lesson: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson", abstract: "Write a bundle from the built-in root filesystem and run it, narrated (the default).",
        discussion: "With `-- COMMAND ARGS...`: run COMMAND in the lesson's bundle through the runtime (create, start, wait, delete) and exit with its status.")

    @Option(name: .long, help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR"))
    var rootfs: String?

    @Flag(name: .long, help: "Show the whole config.json (else only the fields the lesson is about).")
    var verbose = false

    @Argument(parsing: .postTerminator, help: "The command to run in the lesson's bundle.") var command: [String] = []

    func run() throws {
        continueOnClosedOutput()
        let style = Style.standardOutput
        var commandStatus = ExitStatus.exited(0)
        reportingErrors("chapter-04") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "a runtime creates namespaces, mounts and cgroups")])
            let (root, layer) = try RootFilesystem.forRun(given: rootfs, log: note)
            defer { layer?.remove() }
            if !command.isEmpty {
                commandStatus = try runCommand(root)
                return
            }
            if rootfs != nil { try root.requirePrograms(["sh", "hostname", "id", "ls", "sleep"], for: "the lesson") }
            say(style.bold("Chapter 04 · An OCI bundle, run by a runtime"))
            say("2015: Docker gives its container code, libcontainer and runC, to the new Open")
            say("Container Initiative. A container is now a *bundle*: config.json + a root")
            say("filesystem, run by any runtime.")
            say()

            // 1. The bundle: a folder, config.json, and root.path pointing at the root
            //    filesystem (here this run's layer over the built-in one, read-only).
            let bundle = try FileSystem.makeTemporaryDirectory(purpose: "bundle")
            let store = ContainerStore(root: try FileSystem.makeTemporaryDirectory(purpose: "state"))
            let id = "lesson-\(getpid())"
            var runtime = Runtime(store: store, narrate: { lessonStep($0, $1) })
            defer {
                try? runtime.delete(id: id, force: true)
                try? FileSystem.removeTree(store.root)
                try? FileSystem.removeTree(bundle)
            }
            var config = OCIConfig.defaultSpec(args: ["sh", "-c", "echo \"hello from $(hostname), PID $$, uid $(id -u)\"; ls /; sleep 1"],
                                               cgroupNamespace: CgroupMode.detect() == .unified)
            config.root = OCIConfig.Root(path: root.path.string, readonly: true)
            config.hostname = "oci-lesson"
            config.linux?.resources = OCIConfig.Resources(memory: OCIConfig.Memory(limit: 128 << 20), pids: OCIConfig.Pids(limit: 64))
            try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
            say(style.bold("Step 1 · The bundle") + "  \(bundle)/config.json")
            if verbose {
                let json = String(decoding: config.encodedJSON(), as: UTF8.self)
                for line in json.split(separator: "\n") { say(style.dim("  │ ") + line) }
            } else {
                for line in summary(config) { say(style.dim("  │ ") + line) }
                say(style.dim("  (the fields this lesson is about; --verbose shows the whole file)"))
            }
            say()

            // 2. create: parse → namespaces → cgroup → mounts → pivot_root → capabilities → (seccomp) → wait.
            say(style.bold("Step 2 · create") + "  (`runc create`; the container's init narrates its steps)")
            let parseStart = monotonicNow()
            _ = try OCIConfig.load(bundle: bundle)
            say(style.dim("  parse config.json: \(milliseconds(monotonicNow() - parseStart))"))
            blockSignalsForSupervision()
            var options = Runtime.CreateOptions(bundle: bundle)
            options.narrateInit = true
            let child = try runtime.create(id: id, options: options)
            sayWrapped("outside, each stage took: " + runtime.timings.map { "\($0.stage) \(milliseconds($0.seconds))" }.joined(separator: " · "),
                       indent: "  ", hanging: "    ", style: style.dim)
            showState(runtime, id)
            say()

            // 3. start: the init execs the process.
            say(style.bold("Step 3 · start") + "  (open the exec FIFO: the init execs the process)")
            try runtime.start(id: id)
            usleep(200_000)
            showState(runtime, id)
            let status = try child.waitForwardingSignals()
            say(style.dim("  the process \(status)"))
            showState(runtime, id)
            say()
            say(style.bold("Step 4 · delete") + "  (remove the cgroup and the state folder)")
            try runtime.delete(id: id, force: false)
            say("  deleted \(id)")
            say()
            say("The same binary is a runtime: `chapter-04 spec`, `create`, `start`, `state`,")
            say("`kill`, `delete`, … and `isorun` is its short name for engines.")
            say("Next: chapter 05 plugs it into podman and containerd.")
        }
        if commandStatus != .exited(0) { throw ExitCode(commandStatus.shellCode) }
    }

    /// `chapter-04 -- COMMAND`: the lesson's bundle with COMMAND as process.args, run as
    /// `runc run` does (create, start, wait, delete), without narration.
    func runCommand(_ root: RootFilesystem) throws -> ExitStatus {
        let bundle = try FileSystem.makeTemporaryDirectory(purpose: "bundle")
        defer { try? FileSystem.removeTree(bundle) }
        let store = ContainerStore(root: try FileSystem.makeTemporaryDirectory(purpose: "state"))
        defer { try? FileSystem.removeTree(store.root) }
        let id = "command-\(getpid())"
        var runtime = Runtime(store: store)
        var config = OCIConfig.defaultSpec(args: command, cgroupNamespace: CgroupMode.detect() == .unified)
        config.root = OCIConfig.Root(path: root.path.string, readonly: true)
        config.hostname = "oci-lesson"
        try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
        blockSignalsForSupervision()  // Ctrl-C goes to the container; we delete it after
        let child = try runtime.create(id: id, options: Runtime.CreateOptions(bundle: bundle))
        defer { try? runtime.delete(id: id, force: true) }
        try runtime.start(id: id)
        return try child.waitForwardingSignals()
    }

    /// The config's fields the lesson is about, one line each (mounts one per line).
    func summary(_ config: OCIConfig) -> [String] {
        var lines: [String] = []
        let args = (config.process?.args ?? []).map { "\"" + String($0.flatMap { $0 == "\"" ? ["\\", "\""] : [$0] }) + "\"" }.joined(separator: ", ")
        let argsLine = "process.args: [\(args)]"
        lines.append(argsLine.count <= 74 ? argsLine : String(argsLine.prefix(73)) + "…")
        lines.append("root: \(config.root.path)\(config.root.readonly == true ? " (readonly)" : "")")
        lines.append("hostname: \(config.hostname ?? "(the host's)")")
        let namespaces = (config.linux?.namespaces ?? []).map { $0.type.rawValue + ($0.path.map { "=" + $0 } ?? "") }
        lines.append("linux.namespaces: " + namespaces.joined(separator: ", "))
        lines.append("mounts:")
        for mount in config.mounts ?? [] {
            let options = (mount.options ?? []).joined(separator: ",")
            let line = "  " + pad(mount.destination, 20) + " " + pad(mount.type ?? "bind", 7) + " " + options
            lines.append(line.count <= 74 ? line : String(line.prefix(73)) + "…")
        }
        let resources = config.linux?.resources
        var limits: [String] = []
        if let memory = resources?.memory?.limit { limits.append("memory.limit \(memory >> 20) MiB") }
        if let pids = resources?.pids?.limit { limits.append("pids.limit \(pids)") }
        if let quota = resources?.cpu?.quota, let period = resources?.cpu?.period { limits.append("cpu \(quota)/\(period) µs") }
        lines.append("linux.resources: " + (limits.isEmpty ? "none" : limits.joined(separator: ", ")))
        return lines
    }

    func showState(_ runtime: Runtime, _ id: String) {
        guard let state = try? runtime.state(id: id) else { return }
        let json = String(decoding: state.encodedJSON(), as: UTF8.self).split(separator: "\n").map { $0.trimmingCharacters(in: " ") }.joined(separator: " ")
        say("  " + Style.standardOutput.bold("state: \(state.status.rawValue)"))
        sayWrapped(json, indent: "    ", hanging: "    ", style: Style.standardOutput.dim)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        return String(self.drop(while: { chars.contains($0) }).reversed().drop(while: { chars.contains($0) }).reversed())
    }
}
