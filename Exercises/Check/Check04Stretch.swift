// Exercise 04, stretch: the bundle's createRuntime hooks, and mount destinations that go
// through the image's symlinks. Three runs: a hook that records what it was given and
// two symlinks that point at the host (one absolute, one climbing with ..); a hook that
// fails; a hook that hangs past its timeout. Observed from outside: what the hook wrote,
// the container's /proc/PID/mountinfo, and whether anything appeared on the host.
import Glibc
import Isolation
import SystemPackage

func checkBundleStretch(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("04-stretch")
        let bundle = folder.appending("bundle")
        try FileSystem.makeDirectories(bundle)
        let rootfs = try context.rootfs(in: bundle)
        let realBundle = try FileSystem.realPath(bundle).string
        // Two host paths that must never appear: the image's symlinks point at them.
        let outside = folder.appending("outside"), climbing = folder.appending("outside-climb")
        guard symlink(outside.string, rootfs.appending("isolation-evil").string) == 0,
              symlink(String(repeating: "../", count: 12) + climbing.string.dropFirst(), rootfs.appending("isolation-climb").string) == 0 else {
            throw StageError(stage: "symlink in \(rootfs)", errno: Errno(rawValue: errno))
        }
        let stateFile = folder.appending("hook-state.json"), argsFile = folder.appending("hook-args")
        let script = folder.appending("hook.sh")
        try FileSystem.writeFile(script, "cat > \(stateFile)\necho \"args=$*\" > \(argsFile)\necho \"env=$ISOLATION_HOOK_ENV\" >> \(argsFile)\n")
        let probe = "echo \"pid=$$\"; echo \"evil=$(echo ok > /isolation-evil/f 2>&1 && cat /isolation-evil/f)\"; "
            + "echo \"climb=$(echo ok > /isolation-climb/f 2>&1 && cat /isolation-climb/f)\"; echo ready; read x; echo done"
        func writeConfig(_ hooks: [OCIConfig.Hook]) throws {
            var config = OCIConfig.defaultSpec(args: ["sh", "-c", probe], cgroupNamespace: false)
            config.root = OCIConfig.Root(path: "rootfs", readonly: false)
            config.hostname = "isolation-ex04s"
            config.mounts = (config.mounts ?? []).filter { $0.type != "cgroup" } + [
                OCIConfig.Mount(destination: "/isolation-evil", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "size=1m"]),
                OCIConfig.Mount(destination: "/isolation-climb", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "size=1m"]),
            ]
            config.linux?.maskedPaths = nil
            config.linux?.readonlyPaths = nil
            config.hooks = OCIConfig.Hooks(createRuntime: hooks)
            try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
        }
        let name = "check-04s-\(getpid())"
        defer {
            if let cgroup = try? Cgroup.existing(path: "\(projectPrefix)/\(name)") { cgroup.destroy() }
            let left = context.unmountLeftovers(under: folder)
            report.check("nothing it mounted is left on the host", left.isEmpty,
                         observed: left.isEmpty ? "no mount under \(folder) in the host's mount table" : "left mounted (now removed): " + left.joined(separator: ", "),
                         expected: "none", hint: "the starter makes / rslave before any mount; did the exercise crash?")
        }

        // Run 1: a hook that records what it got; mounts through the image's symlinks.
        try writeConfig([OCIConfig.Hook(path: "/bin/sh", args: ["sh", script.string, "first", "second"],
                                        env: ["ISOLATION_HOOK_ENV=given", "PATH=/usr/bin:/bin"], timeout: 10)])
        report.note("bundle: \(bundle) — hooks.createRuntime: sh hook.sh first second; /isolation-evil → \(outside), /isolation-climb → ../…\(climbing)")
        if let running = startProbe(report, "04-stretch", program, ["--bundle", bundle.string, "--name", name], environment: context.environment()) {
            defer { running.finish(timeout: 10) }
            let values = running.stdout.probeValues
            let shell = Proc.waitForDescendant(of: running.child.pid, named: "sh", timeout: 5)
            let stateText = (try? FileSystem.readString(stateFile)) ?? ""
            let state = try? OCIState.decode(json: Array(stateText.utf8), source: "the hook's stdin")
            report.check("the hook got the container's state on its stdin", state != nil && state?.id == name && state?.status == .creating
                            && state?.bundle == realBundle && state?.pid != nil && state?.pid == shell,
                         observed: stateText.isEmpty ? "\(stateFile) is empty or missing: the hook did not run, or got no stdin" : "\(stateText.trimmed.prefix(200)) (the container's process: \(shell.map(String.init) ?? "?"))",
                         expected: "{\"id\": \"\(name)\", \"status\": \"creating\", \"pid\": the container's init, \"bundle\": \"\(realBundle)\"}",
                         hint: "step \"hook\": write OCIState's JSON (state.encodedJSON()) into a pipe that is the hook's stdin, then close it so that the hook sees its end")
            let args = ((try? FileSystem.readString(argsFile)) ?? "").trimmed
            report.check("the hook ran with its args and env, exactly", args == "args=first second\nenv=given",
                         observed: args.isEmpty ? "\(argsFile) is missing" : args.replacingNewlines(),
                         expected: "args=first second · env=given",
                         hint: "step \"hook\": hook.args is the whole argv, argv[0] included; hook.env the whole environment")
            let mounts = shell.flatMap { try? MountInfo.table(of: $0) } ?? []
            for (link, host, key) in [("/isolation-evil", outside, "evil"), ("/isolation-climb", climbing, "climb")] {
                let mounted = mounts.last(where: { $0.mountPoint == host.string })
                report.check("\(link)'s tmpfs is where the container's symlink leads, inside its root", mounted?.fileSystemType == "tmpfs" && values[key] == "ok",
                             observed: "in its mountinfo at \(host): \(mounted.map { "\($0.fileSystemType)" } ?? "nothing"); writing \(link)/f → \(values[key] ?? "?")",
                             expected: "tmpfs at \(host) (below the container's /), writable through \(link)",
                             hint: "step \"resolve\": follow each symlink yourself, below rootfs: an absolute target starts again at rootfs, .. stops there")
            }
            let status = running.finish(timeout: 10)
            report.check("the exercise ends with the process's status", status == .exited(0), observed: "exercise-04-stretch \(status)", expected: "exited 0",
                         hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
        }
        // Whether or not the process ran: did the runtime make anything on the host?
        let appeared = [outside, climbing].filter { FileSystem.exists($0, followSymlinks: false) }
        report.check("nothing appeared on the host through the image's symlinks", appeared.isEmpty,
                     observed: appeared.isEmpty ? "\(outside) and \(climbing): still missing on the host" : "made on the host: " + appeared.map(\.string).joined(separator: ", "),
                     expected: "neither exists",
                     hint: "step \"resolve\": rootfs + destination lets mkdir(2) and mount(2) follow the image's symlinks on the host's terms, out of the root (CVE-2021-30465's family)")
        for path in [outside, climbing] { try? FileSystem.removeTree(path) }

        // Run 2: the first hook fails; the second must not run, nor the process.
        let second = folder.appending("second-hook-ran")
        try writeConfig([OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "exit 3"]),
                         OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "echo yes > \(second)"])])
        let failing = try Running(program, ["--bundle", bundle.string, "--name", name], environment: context.environment())
        let failedReady = failing.waitForLine("ready", timeout: 30)
        let failedStatus = failing.finish(timeout: 10)
        report.check("a failing hook stops the container before its process runs", !failedReady && failedStatus != .exited(0)
                        && !FileSystem.exists(second) && failing.stderr.contains("createRuntime[0]"),
                     observed: "exercise-04-stretch \(failedStatus); the process \(failedReady ? "ran" : "never ran"); the second hook \(FileSystem.exists(second) ? "ran" : "did not run")"
                        + "; it said: \(failing.stderr.trimmed.split(separator: "\n").first.map(String.init) ?? "nothing")",
                     expected: "a failure that names hooks.createRuntime[0], the process and the second hook never run",
                     hint: "step \"hook\": a hook that exits non-zero (here: 3) is an error: throw")

        // Run 3: a hook that hangs past its timeout is killed, and the container stopped.
        try writeConfig([OCIConfig.Hook(path: "/bin/sleep", args: ["sleep", "61.25"], timeout: 1)])
        let started = monotonicNow()
        let hanging = try Running(program, ["--bundle", bundle.string, "--name", name], environment: context.environment())
        let hungReady = hanging.waitForLine("ready", timeout: 20)
        let hungStatus = hanging.finish(timeout: 5)
        let took = monotonicNow() - started
        let sleepers = Proc.allPIDs().filter { Proc.cmdline($0) == ["sleep", "61.25"] }
        for pid in sleepers { kill(pid, SIGKILL) }
        report.check("a hook past its timeout is killed, and the container stopped", !hungReady && hungStatus != .exited(0) && took < 15 && sleepers.isEmpty,
                     observed: "exercise-04-stretch \(hungStatus) after \(String(format: "%.1f", took)) s; "
                        + (sleepers.isEmpty ? "no sleep 61.25 left" : "sleep 61.25 still running as \(sleepers.map(String.init).joined(separator: " ")) (now killed)"),
                     expected: "a failure within a few seconds of the 1 s timeout, and the hook gone",
                     hint: "step \"hook\": wait with a deadline (hook.timeout seconds), then kill(2) the hook with SIGKILL and reap it with waitpid(2)")
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a bundle in /tmp", hint: "run `swift run doctor`")
    }
}

extension String {
    func replacingNewlines() -> String { split(separator: "\n").joined(separator: " · ") }
}

/// `check 04 --stretch --hint`: level 1 the API, level 2 the shape of the answer.
let bundleStretchHints: [StepHint] = [
    StepHint(step: "hook",
             api: "makePipe() gives (read, write) descriptors; SpawnOptions.standardInput; ChildProcess.spawn(FilePath(hook.path), arguments: hook.args ?? [hook.path], environment: hook.env ?? [], options:); state.encodedJSON(); write(2), close(2); waitpid(2) with WNOHANG and ExitStatus(waitStatus:); child.signal(SIGKILL), child.wait().",
             shape: "Pipe; spawn with its read end as stdin; close the read end here; write the state JSON, close the write end (ignore SIGPIPE: a hook may not read); loop: waitpid WNOHANG — exited 0 returns, anything else throws; past hook.timeout: SIGKILL, reap, throw."),
    StepHint(step: "resolve",
             api: "FilePath(destination).components; FileSystem.isSymlink(_:) (lstat(2)) and FileSystem.readLink(_:) (readlink(2)); FilePath.isAbsolute. The library's own answer is FileSystem.resolve(_:inside:): write yours.",
             shape: "A stack of components still to walk and a list already resolved below rootfs. Pop one: \".\" skip; \"..\" drop the last resolved (never above rootfs); else if rootfs/resolved/name is a symlink, push its target's components (an absolute target empties the resolved list first), counting hops up to 40; else append it. Return rootfs + resolved."),
]
