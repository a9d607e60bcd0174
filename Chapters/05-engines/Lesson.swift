// The lesson: one image, three engines, one runtime, and every call the runtime received.
import Glibc
import Isolation
import SystemPackage

struct Lesson {
    let runtime: FilePath
    let rootfs: FilePath

    func run() throws {
        continueOnClosedOutput()
        say(style.bold("Chapter 05 · Adding a runtime"))
        sayWrapped("Engines do not run containers: they write a bundle and call a runtime, through a small "
                   + "monitor that stays with the container (podman: conmon; containerd and Docker: containerd's "
                   + "shim). Any program with runc's command line will do. Here podman, containerd and Docker "
                   + "call chapter 04's runtime:", hanging: "")
        sayWrapped(runtime.string, indent: "  ", hanging: "  ", style: { style.cyan($0) })
        say()
        let folder = try FileSystem.makeTemporaryDirectory(purpose: "engines")
        defer { try? FileSystem.removeTree(folder) }

        var archive: FilePath? = nil
        let podmanMissing = Engines.missing(["podman", "conmon"])
        if podmanMissing.isEmpty {
            archive = try podman(in: folder.appending("podman"))
        } else {
            missing("podman", podmanMissing, package: "podman")
            say()
        }
        let containerdMissing = Engines.missing(["containerd", "ctr", "containerd-shim-runc-v2"])
        if !containerdMissing.isEmpty {
            missing("containerd", containerdMissing, package: "containerd")
            say()
        } else if let archive {
            try containerd(in: folder.appending("containerd"), image: archive)
        } else {
            sayWrapped("containerd: the image is made with podman (no registry here): apt-get install podman — skipping containerd.", hanging: "  ", style: { style.yellow($0) })
            say()
        }
        let dockerMissing = Engines.missing(["dockerd", "docker", "containerd", "containerd-shim-runc-v2"])
        if dockerMissing.isEmpty {
            try docker(in: folder.appending("docker"))
        } else {
            missing("Docker", dockerMissing, package: "docker.io")
            say()
        }
        try cri(in: folder.appending("cri"))
        registrations()
    }

    /// The CRI act alone (`chapter-05 cri`).
    func runCRI() throws {
        continueOnClosedOutput()
        say(style.bold("Chapter 05 · Adding a runtime: the kubelet's path"))
        say("A kubelet speaks only CRI (gRPC) to an engine. containerd's CRI plugin turns")
        say("each call into runtime commands, through its runc shim. The runtime here:")
        sayWrapped(runtime.string, indent: "  ", hanging: "  ", style: { style.cyan($0) })
        say()
        let folder = try FileSystem.makeTemporaryDirectory(purpose: "engines")
        defer { try? FileSystem.removeTree(folder) }
        try cri(in: folder.appending("cri"))
    }

    // MARK: podman

    /// podman → conmon → isorun. Returns the image as an OCI archive, for containerd.
    func podman(in folder: FilePath) throws -> FilePath {
        try FileSystem.makeDirectories(folder)
        let engine = Engines.Podman(folder: folder, runtime: runtime, cgroupName: "podman-lesson-\(getpid())",
                                    otherRuntimes: Lesson.runsc.map { [("runsc", $0)] } ?? [])
        let calls = try CallLog(root: ContainerStore.defaultRoot)
        calls.clear()
        defer {
            // Whatever happened: containers, image, conmon and its clean-up, cgroups, the log.
            _ = try? podman(engine, ["rm", "--all", "--force", "--time", "0"], show: false)
            _ = try? podman(engine, ["rmi", "--all", "--force"], show: false)
            Engines.stopProcessesAndMounts(under: folder)
            engine.removeCgroups()
            calls.remove()
        }
        heading("Step 1 · podman, told to use isorun", "(containers.conf, in \(folder))")
        try engine.writeConfiguration()
        for line in try FileSystem.readString(engine.containersConf).split(separator: "\n") { sayQuoted(line) }
        sayNote("runtime_supports_json: podman passes --log FILE --log-format=json, and reads errors from FILE.")
        sayNote("default_ulimits: podman asks for 1048576 files and processes; without CAP_SYS_RESOURCE no runtime can.")
        say()

        heading("Step 2 · An image from the root filesystem", "(no registry: a tar of \(rootfs))")
        let tar = folder.appending("rootfs.tar")
        try check(Command.run(Command.find("tar") ?? "/bin/tar", ["-C", rootfs.string, "-cf", tar.string, "."]), "tar")
        try check(podman(engine, ["import", tar.string, Engines.imageName]), "podman import")
        try? FileSystem.removeTree(tar)
        say()

        heading("Step 3 · podman run", "(conmon calls isorun create, then start; podman's clean-up calls delete)")
        calls.clear()
        _ = try podman(engine, ["run", "--rm", "--cgroup-parent", engine.cgroupParent, "--hostname", "from-podman", "--memory", "64m",
                                Engines.imageName, "sh", "-c", "echo hello from $(hostname), PID $$; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"])
        calls.show()
        say()

        heading("Step 4 · run -d, exec, stop, rm", "(the runtime exits after start: conmon, a subreaper, is the container's parent)")
        calls.clear()
        _ = try podman(engine, ["run", "-d", "--name", "lesson", "--cgroup-parent", engine.cgroupParent, Engines.imageName, "sleep", "60"])
        let pid = try podman(engine, ["inspect", "--format", "{{.State.Pid}}", "lesson"], show: false).standardOutput.split(separator: "\n").first.map(String.init) ?? "?"
        if let info = ProcessInfoStat(pid: pid_t(pid) ?? 0) {
            let parent = (try? FileSystem.readString(FilePath("/proc/\(info.parent)/comm")))?.split(separator: "\n").first ?? "?"
            say("  the container's PID 1 is host PID \(pid); its parent is \(info.parent) " + style.bold(String(parent)))
        }
        _ = try podman(engine, ["exec", "-e", "WHO=exec", "lesson", "sh", "-c", "echo hello from $WHO, PID $$ beside $(cat /proc/1/comm)"])
        sayNote("stop: SIGTERM (kill ID 15); sleep as PID 1 has no handler, so after 1 s SIGKILL (kill ID 9)")
        _ = try podman(engine, ["stop", "--time", "1", "lesson"])
        _ = try podman(engine, ["rm", "lesson"])
        calls.show()
        say()

        try gvisor(engine)

        let archive = folder.appending("image.tar")
        try check(podman(engine, ["save", "--format", "oci-archive", "-o", archive.string, Engines.imageName], show: false), "podman save")
        return archive
    }

    func podman(_ engine: Engines.Podman, _ arguments: [String], show: Bool = true) throws -> CommandOutput {
        let environment = Command.defaultEnvironment + engine.environment.map { "\($0.key)=\($0.value)" }
        return try client("podman", arguments, environment: environment, show: show)
    }

    // MARK: containerd

    /// containerd → containerd-shim-runc-v2 → isorun.
    func containerd(in folder: FilePath, image: FilePath) throws {
        try FileSystem.makeDirectories(folder)
        let engine = Engines.Containerd(folder: folder, cgroupName: "containerd-lesson-\(getpid())")
        heading("Step 5 · containerd on its own socket", "(config.toml, in \(folder))")
        try engine.writeConfiguration()
        for line in try FileSystem.readString(engine.config).split(separator: "\n") { sayQuoted(line) }
        let runDirectoryExisted = Engines.Containerd.runDirectoryExists()
        let daemon = try engine.startDaemon()
        var calls: CallLog? = nil
        defer {
            for task in ((try? ctr(engine, ["tasks", "list", "--quiet"], show: false))?.standardOutput ?? "").split(separator: "\n") {
                _ = try? ctr(engine, ["tasks", "kill", "--signal", "SIGKILL", String(task)], show: false)
                _ = try? ctr(engine, ["tasks", "delete", "--force", String(task)], show: false)
            }
            for container in ((try? ctr(engine, ["containers", "list", "--quiet"], show: false))?.standardOutput ?? "").split(separator: "\n") {
                _ = try? ctr(engine, ["containers", "delete", String(container)], show: false)
            }
            _ = try? ctr(engine, ["images", "remove", Engines.imageName], show: false)
            _ = try? daemon.signal(SIGTERM)
            _ = try? daemon.wait()
            Engines.stopProcessesAndMounts(under: folder)
            engine.removeCgroups()
            Engines.Containerd.removeRunDirectory(existedBefore: runDirectoryExisted)
            calls?.remove()
        }
        var ready = false
        for _ in 0..<100 where !ready {
            ready = FileSystem.exists(engine.address) && (try? ctr(engine, ["version"], show: false))?.status == .exited(0)
            if !ready { usleep(100_000) }
        }
        guard ready else {
            throw IsolationError("containerd did not answer on \(engine.address) within 10 s", hint: "see \(engine.log)")
        }
        calls = try CallLog(root: engine.runcRoot.appending("default"))
        try check(ctr(engine, ["images", "import", "--base-name", String(Engines.imageName.split(separator: ":")[0]), image.string]), "ctr images import")
        say()

        // --runc-binary: the shim's BinaryName. --cgroup: below the project's cgroups.
        func runOptions(_ id: String) -> [String] {
            ["--runc-binary", runtime.string, "--runc-root", engine.runcRoot.string, "--cgroup", engine.cgroupParent + "/" + id]
        }
        heading("Step 6 · ctr run --runc-binary", "(the runc v2 shim calls isorun with --root, --log, --log-format json)")
        _ = try ctr(engine, ["run", "--rm"] + runOptions("lesson") + [Engines.imageName, "lesson", "sh", "-c", "echo hello from containerd, PID $$; exit 3"])
        calls?.show()
        say()

        say(style.bold("Step 7 · A task: run -d, exec, ps, pause, resume, kill, delete"))
        calls?.clear()
        _ = try ctr(engine, ["run", "-d"] + runOptions("lesson-task") + [Engines.imageName, "lesson-task", "sleep", "60"])
        _ = try ctr(engine, ["tasks", "exec", "--exec-id", "hello", "lesson-task", "sh", "-c", "echo hello from exec, PID $$"])
        _ = try ctr(engine, ["tasks", "ps", "lesson-task"])
        _ = try ctr(engine, ["tasks", "pause", "lesson-task"])
        _ = try ctr(engine, ["tasks", "list"])
        _ = try ctr(engine, ["tasks", "resume", "lesson-task"])
        _ = try ctr(engine, ["tasks", "kill", "--signal", "SIGKILL", "lesson-task"])
        for _ in 0..<100 {
            let list = try ctr(engine, ["tasks", "list"], show: false).standardOutput
            if list.contains("STOPPED") || !list.contains("lesson-task") { break }
            usleep(50_000)
        }
        _ = try ctr(engine, ["tasks", "delete", "lesson-task"])
        _ = try ctr(engine, ["containers", "delete", "lesson-task"])
        calls?.show()
        say()
    }

    func ctr(_ engine: Engines.Containerd, _ arguments: [String], show: Bool = true) throws -> CommandOutput {
        // The native snapshotter copies: it works on any file system (overlay may not, nested).
        let environment = Command.defaultEnvironment + ["CONTAINERD_ADDRESS=\(engine.address)", "CONTAINERD_SNAPSHOTTER=native"]
        return try client("ctr", arguments, environment: environment, show: show)
    }

    // MARK: Docker

    /// dockerd → containerd → containerd-shim-runc-v2 → isorun.
    func docker(in folder: FilePath) throws {
        try FileSystem.makeDirectories(folder)
        let engine = Engines.Docker(folder: folder, runtime: runtime, cgroupName: "docker-lesson-\(getpid())")
        heading("Step 8 · dockerd on its own socket, told about isorun", "(--add-runtime, in \(folder))")
        try engine.writeConfiguration()
        for line in try FileSystem.readString(engine.configFile).split(separator: "\n") { sayQuoted(line) }
        // One option (and its value) per line: the command is long for a projector.
        var lines: [String] = []
        for word in engine.arguments.map(shellQuote) {
            if word.hasPrefix("-") || lines.isEmpty { lines.append(word) } else { lines[lines.count - 1] += " " + word }
        }
        for (index, line) in lines.enumerated() {
            // A word longer than the line (a long path) is cut where it must be: display only.
            let text = (index == 0 ? "$ " : "    ") + line + (index < lines.count - 1 ? " \\" : "")
            for piece in wrapLines(text, first: terminalWidth() - 2, rest: terminalWidth() - 8) {
                say("  " + style.syscall(piece.hasPrefix("$ ") || piece.hasPrefix("    ") ? piece : "      " + piece))
            }
        }
        sayNote("dockerd starts its own containerd (no --containerd given); no bridge, no iptables: containers get --network none.")
        let runDirectories = Engines.Docker.runDirectoriesExisting()
        let daemon = try engine.startDaemon()
        var calls: CallLog? = nil
        defer {
            let all = ((try? docker(engine, ["ps", "--all", "--quiet"], show: false))?.standardOutput ?? "").split(separator: "\n").map(String.init)
            if !all.isEmpty { _ = try? docker(engine, ["rm", "--force"] + all, show: false) }
            _ = try? docker(engine, ["rmi", "--force", Engines.imageName], show: false)
            _ = try? daemon.signal(SIGTERM)
            _ = try? daemon.wait()
            Engines.stopProcessesAndMounts(under: folder)
            engine.removeCgroups()
            Engines.Docker.removeRunDirectories(existedBefore: runDirectories)
            calls?.remove()
        }
        var ready = false
        for _ in 0..<300 where !ready {
            ready = FileSystem.exists(engine.socket) && (try? docker(engine, ["version"], show: false))?.status == .exited(0)
            if !ready { usleep(100_000) }
        }
        guard ready else {
            throw IsolationError("dockerd did not answer on \(engine.socket) within 30 s", hint: "see \(engine.log)")
        }
        calls = try CallLog(root: engine.runtimeRoot)
        let info = try docker(engine, ["info"], show: false).standardOutput.split(separator: "\n").filter { $0.contains("Runtime") }
        say("  " + style.syscall("$ docker info") + style.dim("  (the lines about runtimes)"))
        for line in info { sayWrapped(String(line.drop(while: { $0 == " " })), indent: "    ", hanging: "      ") }
        say()

        heading("Step 9 · docker load", "(no registry: a docker-save archive of \(rootfs), made here)")
        let archive = try Engines.Docker.writeImageArchive(of: rootfs, name: Engines.imageName, in: folder.appending("image"))
        for name in ["manifest.json", "config.json"] {
            let text = try FileSystem.readString(folder.appending("image/\(name)")).split(separator: "\n").joined()
            sayQuoted("\(name): " + (text.count > 150 ? String(text.prefix(150)) + "…" : text))
        }
        sayQuoted("layer.tar: the root filesystem; config.json names it by its SHA-256 (its diff ID), which Docker checks")
        try check(docker(engine, ["load", "--input", archive.string]), "docker load")
        try? FileSystem.removeTree(folder.appending("image"))
        say()

        heading("Step 10 · docker run --runtime isorun", "(dockerd → containerd → its runc shim → isorun)")
        calls?.clear()
        _ = try docker(engine, ["run", "--rm", "--runtime", engine.runtimeName, "--network", "none",
                                "--memory", "64m", Engines.imageName, "sh", "-c",
                                "echo hello from Docker, PID $$; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"])
        calls?.show()
        say()
        calls?.clear()
        _ = try docker(engine, ["run", "-d", "--name", "lesson", "--runtime", engine.runtimeName, "--network", "none", Engines.imageName, "sleep", "60"])
        _ = try docker(engine, ["exec", "lesson", "sh", "-c", "echo hello from exec, PID $$ beside $(cat /proc/1/comm)"])
        sayNote("stop: SIGTERM (kill ID 15); sleep as PID 1 has no handler, so after 1 s SIGKILL (kill ID 9)")
        _ = try docker(engine, ["stop", "-t", "1", "lesson"])
        _ = try docker(engine, ["rm", "lesson"])
        calls?.show()
        say()
    }

    func docker(_ engine: Engines.Docker, _ arguments: [String], show: Bool = true) throws -> CommandOutput {
        try client("docker", arguments, environment: Command.defaultEnvironment + engine.clientEnvironment, show: show)
    }

    // MARK: elsewhere

    func registrations() {
        let path = runtime.string
        say(style.bold("Step 12 · The same runtime, registered elsewhere") + "  (not run here)")
        sayWrapped("Docker, for good: daemon.json instead of --add-runtime, and the default for every container", indent: "  ", hanging: "  ")
        for line in [
            "/etc/docker/daemon.json: {\"runtimes\": {\"isorun\": {\"path\": \"\(path)\"}},",
            "                          \"default-runtime\": \"isorun\"}",
            "# or: dockerd --add-runtime isorun=\(path) --default-runtime isorun",
        ] { sayQuoted(line) }
        say("  containerd's CRI plugin (/etc/containerd/config.toml), as Step 11 ran it")
        for line in [
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.isorun]",
            "  runtime_type = \"io.containerd.runc.v2\"",
            "  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.isorun.options]",
            "    BinaryName = \"\(path)\"",
        ] { sayQuoted(line) }
        say("  CRI-O (/etc/crio/crio.conf.d/isorun.conf)")
        for line in ["[crio.runtime.runtimes.isorun]", "runtime_path = \"\(path)\""] { sayQuoted(line) }
        sayWrapped("Kubernetes: a RuntimeClass names the handler (the runtime's name in CRI), pods choose it", indent: "  ", hanging: "  ")
        for line in [
            "apiVersion: node.k8s.io/v1", "kind: RuntimeClass", "metadata:", "  name: isorun", "handler: isorun", "---",
            "apiVersion: v1", "kind: Pod", "metadata:", "  name: hello-isorun", "spec:", "  runtimeClassName: isorun",
            "  containers:", "  - name: hello", "    image: busybox", "    command: [\"echo\", \"hello\"]",
        ] { say(style.dim("  │ ") + line) }
        say()
        sayWrapped("That is how gVisor (runsc) and Kata Containers plug in too: same calls, another isolation.", hanging: "")
    }

    // MARK: helpers

    /// Runs an engine's client, printing the command, its output and its status.
    func client(_ name: String, _ arguments: [String], environment: [String], show: Bool) throws -> CommandOutput {
        guard let program = Engines.find(name) else { throw IsolationError("\(name) is not installed", hint: "apt-get install \(Engines.package(for: name))") }
        if show { sayWrapped("$ \(name) " + arguments.map(shellQuote).joined(separator: " "), indent: "  ", hanging: "      ", style: { style.syscall($0) }) }
        let output = try Command.run(program, arguments, environment: environment)
        var pending = sigset_t()
        sigpending(&pending)
        if forwardedSignals.contains(where: { sigismember(&pending, $0) == 1 }) {
            throw IsolationError("interrupted", hint: "what the lesson made was removed")
        }
        if show {
            for line in (output.standardOutput + output.standardError).split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                sayWrapped(String(line), indent: "    ", hanging: "      ")
            }
            if output.status != .exited(0) { say(style.dim("    (\(output.status))")) }
        }
        return output
    }

    /// An engine that is not installed: what to install, then (its line can be long) what is missing.
    func missing(_ engine: String, _ programs: [String], package: String) {
        say(style.yellow("\(engine) is not installed: apt-get install \(package) — skipping \(engine)."))
        sayWrapped("(missing: \(programs.joined(separator: ", ")))", indent: "  ", hanging: "   ", style: { style.yellow($0) })
    }

    /// A step's title in bold, and what it is about after it, on a line of its own when
    /// both do not fit (the lesson is projected at 80 columns).
    func heading(_ title: String, _ aside: String) {
        guard title.count + 2 + aside.count > terminalWidth() else { return say(style.bold(title) + "  " + aside) }
        say(style.bold(title))
        sayWrapped(aside, indent: "  ", hanging: "   ")
    }

    /// A line of a file or a configuration, behind a dim bar; a long one goes on, indented.
    func sayQuoted(_ line: some StringProtocol) {
        for (index, piece) in wrapLines(String(line), first: terminalWidth() - 4, rest: terminalWidth() - 8).enumerated() {
            say(style.dim("  │ ") + (index == 0 ? "" : "    ") + piece)
        }
    }

    /// A dim remark under a step.
    func sayNote(_ text: String) { sayWrapped(text, indent: "  ", hanging: "  ", style: { style.dim($0) }) }

    func check(_ output: CommandOutput, _ what: String) throws {
        guard output.status == .exited(0) else {
            throw IsolationError("\(what) failed (\(output.status)): \(output.standardError)")
        }
    }
}

/// The runtime's call log in `root` (`<root>/calls.log`): turned on for the lesson, off
/// after (when the lesson turned it on), and shown with each caller.
final class CallLog {
    let path: FilePath
    let created: Bool
    /// Where this section starts: the log may be shared, so nothing is truncated.
    var offset = 0

    init(root: FilePath) throws {
        try FileSystem.makeDirectories(root, mode: 0o711)
        path = root.appending("calls.log")
        created = !FileSystem.exists(path)
        if created { try FileSystem.writeFile(path, "") }
    }

    /// Starts a new section: `show` prints what was logged after this.
    func clear() { offset = ((try? FileSystem.readFile(path)) ?? []).count }

    func show() {
        let bytes = (try? FileSystem.readFile(path)) ?? []
        let lines = String(decoding: bytes.dropFirst(offset), as: UTF8.self).split(separator: "\n")
        offset = bytes.count
        if 36 + path.string.count > terminalWidth() {
            say(style.bold("  what the runtime was called with"))
            sayWrapped("(\(path))", indent: "  ", hanging: "   ", style: { style.dim($0) })
        } else {
            say(style.bold("  what the runtime was called with") + style.dim("  (\(path))"))
        }
        for line in lines {
            // "<time> <caller>[pid] → <arguments>": drop the time, shorten the 64-hex IDs.
            let words = line.split(separator: " ", maxSplits: 1)
            guard words.count == 2 else { continue }
            let text = words[1].split(separator: " ").map { word -> String in
                word.count == 64 && word.allSatisfy(\.isHexDigit) ? String(word.prefix(12)) + "…" : shorten(String(word))
            }.joined(separator: " ")
            // Broken between words only (a call's words stay whole), continued 8 columns in.
            var lines = [""]
            for word in text.split(separator: " ") {
                let room = terminalWidth() - (lines.count == 1 ? 4 : 8)
                if lines[lines.count - 1].isEmpty || lines[lines.count - 1].count + 1 + word.count <= room {
                    lines[lines.count - 1] += (lines[lines.count - 1].isEmpty ? "" : " ") + word
                } else {
                    lines.append(String(word))
                }
            }
            for (index, line) in lines.enumerated() { say((index == 0 ? "    " : "        ") + line) }
        }
    }

    /// Long paths in the engines' folders, shortened to their last two parts.
    func shorten(_ word: String) -> String {
        guard word.hasPrefix("/"), word.count > 48 else { return word }
        let parts = word.split(separator: "/")
        // An ID, alone or before a suffix (Docker's exec pid file: ID.pid), cut to 12.
        return "…/" + parts.suffix(2).map { part in
            part.count >= 64 && part.prefix(64).allSatisfy(\.isHexDigit) ? String(part.prefix(12)) + "…" + part.dropFirst(64) : String(part)
        }.joined(separator: "/")
    }

    func remove() { if created { try? FileSystem.removeTree(path) } }
}
