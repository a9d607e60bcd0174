// Chapter 05: Docker (`dockerd --add-runtime isorun=…`) driving isorun, each command run
// twice, once with `--runtime runc` and once with `--runtime isorun`, and the two
// compared. One private dockerd serves the whole suite (starting one takes seconds): its
// data, state, sockets and containerd live in a temporary folder, its containers' cgroups
// below the project's, and all of it is removed, and checked gone, when the suite ends.
import Foundation
import Isolation
import SystemPackage
import Testing

let dockerInstalled = Engines.missing(["dockerd", "docker", "containerd", "containerd-shim-runc-v2", "runc"]).isEmpty

/// dockerd started on a socket of its own, with the built isorun registered beside runc
/// and the project's root filesystem loaded as an image with `docker load`.
final class DockerUnderTest: @unchecked Sendable {
    /// The suite's daemon, set by `DockerDaemon` around the suite.
    nonisolated(unsafe) static var current: DockerUnderTest?

    let folder: TemporaryFolder
    let engine: Engines.Docker
    var daemon: ChildProcess? = nil
    let calls: CallLog
    let runDirectories = Engines.Docker.runDirectoriesExisting()
    let image = Engines.imageName

    init() throws {
        folder = try TemporaryFolder("ch05-docker")
        engine = Engines.Docker(folder: FilePath(folder.path), runtime: FilePath(product("isorun")))
        calls = try CallLog(root: engine.runtimeRoot.string)
        do {
            try engine.writeConfiguration()
            daemon = try engine.startDaemon()
            var ready = false
            for _ in 0..<300 where !ready {
                ready = try FileManager.default.fileExists(atPath: engine.socket.string) && docker(["version"], timeout: 5).status == 0
                if !ready { usleep(100_000) }
            }
            let log = (try? String(contentsOfFile: engine.log.string, encoding: .utf8)) ?? ""
            try #require(ready, "dockerd did not answer on \(engine.socket) within 30 s: \(log.suffix(2000))")
            let archive = try Engines.Docker.writeImageArchive(of: FilePath(try builtInRootfs()), name: image, in: FilePath(folder.path + "/image"))
            let loaded = try docker(["load", "--input", archive.string])
            try #require(loaded.status == 0 && loaded.stdout.contains("Loaded image: \(image)"), "docker load: \(loaded)")
            try? FileManager.default.removeItem(atPath: folder.path + "/image")
        } catch {
            remove()
            throw error
        }
    }

    func docker(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) throws -> RunResult {
        var environment = ProcessInfo.processInfo.environment
        for pair in engine.clientEnvironment {
            let parts = pair.split(separator: "=", maxSplits: 1)
            environment[String(parts[0])] = String(parts[1])
        }
        return try runEngine(Engines.find("docker")!.string, arguments, environment: environment, stdin: stdin, in: folder.path, timeout: timeout)
    }

    /// `docker run --rm --network none --runtime RUNTIME <options> IMAGE <command>`.
    func run(_ runtime: String, _ options: [String], _ command: [String], stdin: String? = nil) throws -> RunResult {
        try docker(["run", "--rm", "--network", "none", "--runtime", runtime] + options + [image] + command, stdin: stdin)
    }

    /// The same `docker run` with runc and with isorun; isorun's must have gone through
    /// isorun (a `create` in its call log).
    func both(_ options: [String], _ command: [String], stdin: String? = nil,
              sourceLocation: SourceLocation = #_sourceLocation) throws -> (runc: RunResult, isorun: RunResult) {
        let runc = try run("runc", options, command, stdin: stdin)
        let before = calls.createdIDs().count
        let isorun = try run("isorun", options, command, stdin: stdin)
        #expect(calls.createdIDs().count == before + 1, "isorun was not called to create the container", sourceLocation: sourceLocation)
        return (runc, isorun)
    }

    /// A field of `docker inspect`.
    func inspect(_ container: String, _ format: String) throws -> String {
        try docker(["inspect", "--format", format, container]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The container's cgroup directories that exist now (`<cgroup parent>/<ID>`).
    func cgroups(_ id: String) -> [String] {
        Cleanup.cgroupParents().map { $0.string + "/\(engine.cgroupName)/\(id)" }.filter { FileManager.default.fileExists(atPath: $0) }
    }

    func remove() {
        if daemon != nil {
            let all = ((try? docker(["ps", "--all", "--quiet"]))?.stdout ?? "").split(separator: "\n").map(String.init)
            if !all.isEmpty { _ = try? docker(["rm", "--force"] + all) }
            _ = try? docker(["rmi", "--force", image])
        }
        if let daemon {
            _ = try? daemon.signal(SIGTERM)
            _ = try? daemon.wait()
        }
        // containerd and its shims name our folder on their command lines.
        Engines.stopProcessesAndMounts(under: FilePath(folder.path))
        engine.removeCgroups()
        Engines.Docker.removeRunDirectories(existedBefore: runDirectories)
        calls.remove()
        folder.remove()
    }

    /// Nothing of dockerd is left: no process, mount, cgroup, socket or folder.
    func expectNothingLeft() {
        #expect(Engines.processes(mentioning: folder.path).isEmpty, "processes left: \(Engines.processes(mentioning: folder.path))")
        #expect(mounts(under: folder.path).isEmpty, "mounts left: \(mounts(under: folder.path))")
        let cgroups = Cleanup.cgroupParents().map { $0.string + "/" + engine.cgroupName }.filter { FileManager.default.fileExists(atPath: $0) }
        #expect(cgroups.isEmpty, "cgroups left: \(cgroups)")
        #expect(!FileManager.default.fileExists(atPath: folder.path), "\(folder.path) left")
        // (/run/containerd is removed too when we made it, but another containerd may
        // have made it meanwhile: only dockerd's own is checked.)
        if runDirectories["/run/docker"] == false {
            #expect(!FileManager.default.fileExists(atPath: "/run/docker"), "/run/docker left")
        }
    }
}

/// One dockerd around the whole suite: started before its first test, removed after
/// its last, and then checked gone.
struct DockerDaemon: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let docker = try DockerUnderTest()
        DockerUnderTest.current = docker
        defer {
            DockerUnderTest.current = nil
            docker.remove()
            docker.expectNothingLeft()
        }
        try await function()
    }
}

/// Outputs compared: the same status and standard output under both runtimes.
func expectSame(_ pair: (runc: RunResult, isorun: RunResult), sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(pair.runc.status == pair.isorun.status && pair.runc.stdout == pair.isorun.stdout,
            "runc:\n\(pair.runc)\nisorun:\n\(pair.isorun)", sourceLocation: sourceLocation)
}

@Suite("chapter-05: dockerd --add-runtime runs isorun, compared with runc", .serialized, .enabled(if: isRoot, "engines need root"),
       .enabled(if: dockerInstalled, "dockerd is not installed: apt-get install docker.io (it brings containerd, runc and docker-init)"),
       DockerDaemon())
struct Chapter05DockerTests {
    var docker: DockerUnderTest { DockerUnderTest.current! }

    @Test("docker run: output, exit codes, 127 and 126, -i with stdin, --user 1000, --read-only, --cap-drop ALL, --init")
    func runs() throws {
        let hello = try docker.both(["--hostname", "probe"], ["sh", "-c", "echo hello from $(hostname), PID $$"])
        expectSame(hello)
        #expect(hello.isorun.status == 0 && hello.isorun.stdout == "hello from probe, PID 1\n", "\(hello.isorun)")
        let three = try docker.both([], ["sh", "-c", "echo out; exit 3"])
        expectSame(three)
        #expect(three.isorun.status == 3)
        // The runtime's reason reaches Docker through the --log file (log.json).
        let missing = try docker.both([], ["no-such-program"])
        expectSame(missing)
        #expect(missing.isorun.status == 127 && missing.isorun.stderr.contains("executable file not found"), "\(missing.isorun)")
        let notExecutable = try docker.both([], ["/etc/passwd"])
        expectSame(notExecutable)
        #expect(notExecutable.isorun.status == 126 && notExecutable.isorun.stderr.contains("permission denied"), "\(notExecutable.isorun)")

        let input = try docker.both(["-i"], ["sh", "-c", "read line; echo got: $line"], stdin: "piped in\n")
        expectSame(input)
        #expect(input.isorun.stdout == "got: piped in\n", "\(input.isorun)")
        let user = try docker.both(["--user", "1000"], ["sh", "-c", "id -u; id -g; touch /root-owned 2>/dev/null || echo refused"])
        expectSame(user)
        #expect(user.isorun.stdout == "1000\n0\nrefused\n", "\(user.isorun)")
        let readOnly = try docker.both(["--read-only"], ["sh", "-c", "touch /new 2>&1; echo status=$?; touch /tmp/new; echo tmp=$?"])
        expectSame(readOnly)
        #expect(readOnly.isorun.stdout.contains("Read-only file system") && readOnly.isorun.stdout.contains("status=1"), "\(readOnly.isorun)")
        let noCaps = try docker.both(["--cap-drop", "ALL"], ["grep", "-E", "^Cap(Inh|Prm|Eff|Bnd|Amb)", "/proc/self/status"])
        expectSame(noCaps)
        #expect(noCaps.isorun.stdout.split(separator: "\n").count == 5 && noCaps.isorun.stdout.split(separator: "\n").allSatisfy { $0.hasSuffix("0000000000000000") }, "\(noCaps.isorun)")
        // --init: docker-init (tini) is PID 1 and runs the command as its child. (The
        // PIDs differ: runc's own init takes a few numbers in the namespace first.)
        let initialized = try docker.both(["--init"], ["sh", "-c", "cat /proc/1/comm; cat /proc/$$/comm; true"])
        expectSame(initialized)
        #expect(initialized.isorun.stdout == "docker-init\nsh\n", "\(initialized.isorun)")
    }

    @Test("docker run --memory 32m (an OOM kill: 137), --pids-limit, --cpus: the same under both runtimes")
    func limits() throws {
        let probe = """
            cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
            { cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us && cat /sys/fs/cgroup/cpu/cpu.cfs_period_us; } 2>/dev/null | paste -sd ' ' || cat /sys/fs/cgroup/cpu.max
            cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max
            """
        let read = try docker.both(["--memory", "32m", "--cpus", "0.5", "--pids-limit", "20"], ["sh", "-c", probe])
        expectSame(read)
        #expect(read.isorun.status == 0 && read.isorun.stdout == "33554432\n50000 100000\n20\n", "\(read.isorun)")

        // A string that doubles until the kernel kills the shell at the limit.
        let hog = try docker.both(["--memory", "32m"], ["sh", "-c", "echo hogging; x=a; while :; do x=$x$x; done"])
        expectSame(hog)
        #expect(hog.isorun.status == 137 && hog.isorun.stdout == "hogging\n", "\(hog.isorun)")

        let forks = try docker.both(["--pids-limit", "5"], ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; echo all started"])
        expectSame(forks)
        #expect(forks.isorun.status != 0 && forks.isorun.stderr.contains("can't fork"), "\(forks.isorun)")
    }

    /// A detached container under `runtime`, with a shell as PID 1 that traps TERM and USR1.
    func startDetached(_ runtime: String, name: String) throws -> String {
        let script = "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 7' TERM; echo started; while :; do sleep 0.1; done"
        let started = try docker.docker(["run", "-d", "--name", name, "--network", "none", "--runtime", runtime, docker.image, "sh", "-c", script])
        try #require(started.status == 0, "\(started)")
        for _ in 0..<50 where !(try docker.docker(["logs", name])).stdout.contains("started") { usleep(100_000) }
        return started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("docker run -d, logs, exec (status, -i, -u, -w, a missing program), kill -s, pause, unpause, stop (SIGTERM), rm")
    func detached() throws {
        var results: [String: [String]] = [:]
        for runtime in ["runc", "isorun"] {
            let name = "detached-\(runtime)"
            let id = try startDetached(runtime, name: name)
            var seen: [String] = []
            func record(_ result: RunResult) { seen.append("\(result.status) \(result.stdout)") }
            #expect(try docker.inspect(name, "{{.State.Status}}") == "running")
            let pid = try docker.inspect(name, "{{.State.Pid}}")
            // The init's parent is containerd's shim, a subreaper; the runtime has exited.
            let parent = ProcessInfoStat(pid: pid_t(pid) ?? 0)?.parent ?? 0
            let parentName = (try? String(contentsOfFile: "/proc/\(parent)/comm", encoding: .utf8)) ?? ""
            #expect(parentName.hasPrefix("containerd-shim"), "\(runtime): the init \(pid) has parent \(parent) '\(parentName)'")
            #expect(!docker.cgroups(id).isEmpty, "\(runtime): no cgroup \(docker.engine.cgroupParent)/\(id)")

            let exec = try docker.docker(["exec", name, "sh", "-c", "echo in $(hostname), PID 1 is $(cat /proc/1/comm); exit 4"])
            #expect(exec.status == 4 && exec.stdout == "in \(id.prefix(12)), PID 1 is sh\n", "\(runtime): \(exec)")
            seen.append("\(exec.status)")
            let fields = try docker.docker(["exec", "-u", "1000", "-w", "/tmp", "-e", "X=y", name, "sh", "-c", "echo $(id -u) $(pwd) $X; cat /proc/self/oom_score_adj"])
            #expect(fields.stdout == "1000 /tmp y\n0\n", "\(runtime): \(fields)")
            record(fields)
            let input = try docker.docker(["exec", "-i", name, "cat"], stdin: "through exec\n")
            #expect(input.stdout == "through exec\n", "\(runtime): \(input)")
            record(input)
            // Errors from exec reach Docker through the --log file too (the client prints
            // them on its standard output; each runtime in its own words).
            let missing = try docker.docker(["exec", name, "no-such-program"])
            #expect(missing.status == 126 && missing.stdout.contains("executable file not found"), "\(runtime): \(missing)")
            seen.append("\(missing.status)")
            let noDirectory = try docker.docker(["exec", "-w", "/no-such-directory", name, "pwd"])
            #expect(noDirectory.status == 126 && noDirectory.stdout.contains("no-such-directory"), "\(runtime): \(noDirectory)")
            seen.append("\(noDirectory.status)")

            let signalled = try docker.docker(["kill", "--signal", "USR1", name])
            #expect(signalled.status == 0, "\(runtime): \(signalled)")
            for _ in 0..<50 where !(try docker.docker(["logs", name])).stdout.contains("got USR1") { usleep(100_000) }

            #expect(try docker.docker(["pause", name]).status == 0)
            #expect(try docker.inspect(name, "{{.State.Status}}") == "paused")
            let frozen = docker.cgroups(id).compactMap { try? String(contentsOfFile: $0 + "/freezer.state", encoding: .utf8) }
            #expect(frozen.isEmpty || frozen == ["FROZEN\n"], "\(runtime): \(frozen)")
            #expect(try docker.docker(["unpause", name]).status == 0)
            #expect(try docker.inspect(name, "{{.State.Status}}") == "running")

            let stop = try docker.docker(["stop", "-t", "10", name])
            #expect(stop.status == 0, "\(runtime): \(stop)")
            #expect(try docker.inspect(name, "{{.State.ExitCode}}") == "7", "\(runtime): SIGTERM reached the trap")
            let logs = try docker.docker(["logs", name])
            #expect(logs.stdout == "started\ngot USR1\ngot TERM\n", "\(runtime): \(logs)")
            record(logs)
            #expect(try docker.docker(["rm", name]).status == 0)
            #expect(docker.cgroups(id).isEmpty, "\(runtime): cgroup of \(id) left")
            results[runtime] = seen
            if runtime == "isorun" {
                let calls = docker.calls.calls(for: id)
                for expected in ["create --bundle", "start \(id)", "exec --process", "kill \(id) 10", "pause \(id)", "resume \(id)", "kill \(id) 15", "delete"] {
                    #expect(calls.contains { $0.contains(expected) }, "no call with '\(expected)' in \(calls)")
                }
                #expect(calls.allSatisfy { $0.contains("--log-format json") }, "\(calls)")
            }
        }
        #expect(results["runc"] == results["isorun"], "runc: \(results["runc"] ?? [])\nisorun: \(results["isorun"] ?? [])")
    }

    @Test("docker stop of a PID 1 without a handler (SIGTERM, then SIGKILL: 137), rm -f of a running container")
    func forcedEnds() throws {
        var statuses: [String: [String]] = [:]
        for runtime in ["runc", "isorun"] {
            let sleeper = "sleeper-\(runtime)"
            let started = try docker.docker(["run", "-d", "--name", sleeper, "--network", "none", "--runtime", runtime, docker.image, "sleep", "300"])
            try #require(started.status == 0, "\(started)")
            // sleep as PID 1 has no SIGTERM handler, and the kernel ignores a signal
            // without one for a namespace's init: after 1 s Docker sends SIGKILL.
            let begin = Date()
            let stop = try docker.docker(["stop", "-t", "1", sleeper])
            let took = Date().timeIntervalSince(begin)
            #expect(stop.status == 0 && took >= 1, "\(runtime): \(stop), \(took) s")
            let status = try docker.inspect(sleeper, "{{.State.ExitCode}}")
            #expect(status == "137", "\(runtime)")
            _ = try docker.docker(["rm", sleeper])

            let running = "running-\(runtime)"
            let id = try docker.docker(["run", "-d", "--name", running, "--network", "none", "--runtime", runtime, docker.image, "sleep", "300"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let pid = pid_t(try docker.inspect(running, "{{.State.Pid}}")) ?? 0
            let removed = try docker.docker(["rm", "--force", running])
            #expect(removed.status == 0 && removed.stdout == "\(running)\n", "\(runtime): \(removed)")
            #expect(pid > 0 && kill(pid, 0) != 0, "\(runtime): the container's init \(pid) still runs")
            #expect(docker.cgroups(id).isEmpty, "\(runtime): cgroup of \(id) left")
            #expect(try docker.docker(["ps", "--all", "--quiet", "--filter", "name=\(running)"]).stdout.isEmpty)
            statuses[runtime] = [status, "\(removed.status)"]
        }
        #expect(statuses["runc"] == statuses["isorun"], "\(statuses)")
    }

    @Test("docker run --restart on-failure:2: created again by the same runtime, twice, then left exited")
    func restarts() throws {
        var seen: [String: String] = [:]
        for runtime in ["runc", "isorun"] {
            let name = "restart-\(runtime)"
            let before = docker.calls.createdIDs().count
            let started = try docker.docker(["run", "-d", "--name", name, "--network", "none", "--restart", "on-failure:2", "--runtime", runtime,
                                             docker.image, "sh", "-c", "echo run; exit 3"])
            try #require(started.status == 0, "\(started)")
            var state = ""
            for _ in 0..<100 {
                state = try docker.inspect(name, "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}")
                if state == "2 exited 3" { break }
                usleep(100_000)
            }
            let logs = try docker.docker(["logs", name]).stdout
            #expect(state == "2 exited 3" && logs == "run\nrun\nrun\n", "\(runtime): \(state), \(logs)")
            seen[runtime] = state + " " + logs
            if runtime == "isorun" { #expect(docker.calls.createdIDs().count == before + 3, "\(docker.calls.createdIDs())") }
            _ = try docker.docker(["rm", name])
        }
        #expect(seen["runc"] == seen["isorun"], "\(seen)")
    }

    @Test("docker run -it and exec -it: the terminal's master through --console-socket",
          .enabled(if: Command.find("script") != nil, "script(1) gives the docker client a terminal: apt-get install bsdutils"))
    func terminals() throws {
        let script = Command.find("script")!.string
        let client = Engines.find("docker")!.string
        var environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TERM": "xterm"]
        for pair in docker.engine.clientEnvironment {
            let parts = pair.split(separator: "=", maxSplits: 1)
            environment[String(parts[0])] = String(parts[1])
        }
        /// The docker client, with a terminal of its own from script(1). A NUL byte from
        /// the client's side (with no input) sometimes reaches the container's terminal,
        /// which echoes it as `^@`, under runc as under isorun, depending on timing: it
        /// is left out.
        func withTerminal(_ command: String) throws -> RunResult {
            var result = try runEngine(script, ["-qec", "\(client) \(command)", "/dev/null"], environment: environment, in: docker.folder.path)
            result.stdout = result.stdout.replacingOccurrences(of: "^@", with: "")
            return result
        }
        var seen: [String: [String]] = [:]
        for runtime in ["runc", "isorun"] {
            let run = try withTerminal("run --rm -it --network none --runtime \(runtime) \(docker.image) sh -c 'tty; [ -t 0 ] && echo stdin-is-a-tty; exit 6'")
            #expect(run.status == 6 && run.stdout == "/dev/pts/0\r\nstdin-is-a-tty\r\n", "\(runtime): \(run)")
            let name = "tty-\(runtime)"
            let started = try docker.docker(["run", "-d", "--name", name, "--network", "none", "--runtime", runtime, docker.image, "sleep", "300"])
            try #require(started.status == 0, "\(started)")
            let exec = try withTerminal("exec -it \(name) sh -c 'tty; exit 5'")
            #expect(exec.status == 5 && exec.stdout.hasPrefix("/dev/pts/") && exec.stdout.hasSuffix("\r\n"), "\(runtime): \(exec)")
            _ = try docker.docker(["rm", "--force", name])
            seen[runtime] = ["\(run.status) \(run.stdout)", "\(exec.status) \(exec.stdout)"]
        }
        #expect(seen["runc"] == seen["isorun"], "\(seen)")
        let calls = docker.calls.calls(for: "--console-socket")
        #expect(calls.contains { $0.contains(" create ") } && calls.contains { $0.contains(" exec ") }, "isorun got no --console-socket: \(calls)")
    }
}
