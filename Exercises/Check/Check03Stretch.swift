// Exercise 03, stretch: a memory throttle that slows (v2 memory.high) or pauses (v1, the
// OOM killer off) a hog instead of killing it, then the limit raised from outside while
// the hog runs, which then finishes. Observed: the cgroup's files and the kernel's own
// counters (memory.events or memory.oom_control), the processes in cgroup.procs.
import Glibc
import Isolation
import SystemPackage

func checkCgroupsStretch(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    let name = "check-03s-\(getpid())"
    let throttle: UInt64 = 24 << 20
    let raised: UInt64 = 256 << 20
    do {
        let folder = try context.folder("03-stretch")
        let rootfs = try context.rootfs(in: folder)
        // After "ready": a 48 MiB hog in the background, then wait until the checker
        // raised the limit, then the hog's status.
        let probe = """
            echo "pid=$$"; echo ready; read x
            ( x=; i=0; while [ $i -lt 12 ]; do x="$x$(head -c 4194304 /dev/zero | tr '\\000' a)"; i=$((i+1)); done; echo hog-finished ) 2>/dev/null &
            echo ready2; read x
            wait $!; echo "hog=$?"; echo ready3; read x; echo done
            """
        let cgroup = try Cgroup.existing(path: "\(projectPrefix)/\(name)")
        defer {
            let left = cgroup.directories.values.filter { FileSystem.exists($0) }
            cgroup.destroy()
            report.check("the cgroup is removed when the exercise ends", left.isEmpty,
                         observed: left.isEmpty ? "no \(projectPrefix)/\(name) left" : "left (now removed): " + left.map(\.string).joined(separator: ", "),
                         expected: "gone", hint: "the starter removes it with cgroup.destroy(); did the exercise crash?")
            _ = context.unmountLeftovers(under: folder)
        }
        guard let running = startProbe(report, "03-stretch", program,
                                       ["run", "--rootfs", rootfs.string, "--memory", "24M", "--name", name, "--", "sh", "-c", probe],
                                       environment: context.environment()) else { return }
        defer { running.finish(timeout: 10) }
        let v2 = cgroup.version == .v2
        guard let memoryDir = cgroup.directory(for: "memory"), FileSystem.isDirectory(memoryDir) else {
            report.fail("the exercise's cgroup exists", observed: "no \(projectPrefix)/\(name) under /sys/fs/cgroup", expected: "the folder the starter made", hint: "run it with --name \(name)")
            return
        }
        func read(_ file: String) -> String { ((try? FileSystem.readString(memoryDir.appending(file))) ?? "").trimmed }
        func counters(_ file: String) -> [String: UInt64] { read(file).probeCounters }

        // 1. The throttle, as the files say.
        if v2 {
            let high = read("memory.high"), max = read("memory.max")
            report.check("the throttle is memory.high, and memory.max does not kill", UInt64(high) == throttle && max == "max",
                         observed: "memory.high = \(high), memory.max = \(max)", expected: "memory.high \(throttle) (24M), memory.max max",
                         hint: "step \"throttle\": memory.high slows and reclaims, memory.max kills; write the first, leave the second")
        } else {
            let limit = read("memory.limit_in_bytes")
            let oom = counters("memory.oom_control")
            report.check("the limit is set, and the OOM killer is off for the cgroup", UInt64(limit) == throttle && oom["oom_kill_disable"] == 1,
                         observed: "memory.limit_in_bytes = \(limit), memory.oom_control oom_kill_disable \(oom["oom_kill_disable"].map(String.init) ?? "?")",
                         expected: "\(throttle) (24M), oom_kill_disable 1",
                         hint: "step \"throttle\": cgroup v1 has no memory.high; a task at memory.limit_in_bytes waits instead of being killed when memory.oom_control is 1")
        }

        // 2. The hog reaches the throttle: held back, not killed.
        running.send("go\n")
        guard running.waitForLine("ready2", timeout: 30) else {
            report.fail("the probe starts its hog", observed: "no answer in 30 s: " + running.stdout.suffix(200), expected: "\"ready2\"", hint: "run the exercise yourself and read its errors:\n" + indent(running.stderr))
            return
        }
        let swaps = Cgroup.hostHasSwap()
        var held = false
        var observed = ""
        let end = monotonicNow() + 30
        repeat {
            usleep(200_000)
            if v2 {
                let events = counters("memory.events")
                held = (events["high"] ?? 0) > 0
                observed = "memory.events high \(events["high"] ?? 0), oom_kill \(events["oom_kill"] ?? 0); memory.current \(read("memory.current"))"
            } else {
                let oom = counters("memory.oom_control")
                let failcnt = UInt64(read("memory.failcnt")) ?? 0
                held = oom["under_oom"] == 1 || (swaps && failcnt > 0)
                observed = "memory.oom_control under_oom \(oom["under_oom"] ?? 0), oom_kill \(oom["oom_kill"] ?? 0); memory.failcnt \(failcnt); usage \(read("memory.usage_in_bytes"))"
            }
        } while !held && monotonicNow() < end && !interrupted()
        let killed = v2 ? (counters("memory.events")["oom_kill"] ?? 0) : (counters("memory.oom_control")["oom_kill"] ?? 0)
        let finishedEarly = running.stdout.contains("hog-finished")
        report.check(v2 ? "the hog is slowed at memory.high, not killed" : "the hog is paused at the limit, not killed",
                     held && killed == 0 && !finishedEarly,
                     observed: observed + (finishedEarly ? "; the hog already finished" : "; the hog still runs"),
                     expected: v2 ? "high > 0, oom_kill 0, the hog unfinished" : "under_oom 1\(swaps ? " (or failcnt > 0: this host swaps)" : ""), oom_kill 0, the hog unfinished",
                     hint: "step \"throttle\": " + (v2 ? "memory.high must hold the limit; with only memory.max the hog is killed" : "memory.oom_control must be 1 before the hog reaches memory.limit_in_bytes"))

        // 3. update, from outside, while it runs.
        let members = cgroup.processes()
        guard let target = members.first else {
            report.fail("the container is in its cgroup", observed: "\(memoryDir)/cgroup.procs is empty", expected: "the container's processes", hint: "did the container end early?")
            return
        }
        let startBefore = ProcessInfoStat(pid: target)
        let update = try Running(program, ["update", "--pid", "\(target)", "--memory", "256M"], environment: context.environment())
        let updateStatus = update.finish(timeout: 30)
        let todos = update.stderr.todoSteps
        let file = v2 ? "memory.high" : "memory.limit_in_bytes"
        let now = read(file)
        report.check("`update --pid \(target) --memory 256M` changes the running cgroup's \(file)", updateStatus == .exited(0) && UInt64(now) == raised,
                     observed: "exercise-03-stretch update \(updateStatus)" + (todos.isEmpty ? "" : ", at a TODO: " + todos.map { "step \"\($0)\"" }.joined(separator: ", "))
                        + "; \(file) = \(now)",
                     expected: "exited 0, \(file) \(raised) (256M)",
                     hint: todos.isEmpty ? "step \"find\" reads /proc/PID/cgroup for the memory controller's line; step \"update\" writes the file. It said:\n" + indent(update.stderr + update.stdout)
                                         : "write those steps in Exercises/03-cgroups/Stretch/Steps.swift")
        // The container's init (the lowest PID in the cgroup) is the same process after the
        // update: same PID, same start time (the hog's short-lived helpers come and go).
        let after = ProcessInfoStat(pid: target)
        let same = after != nil && after?.startTime == startBefore?.startTime && cgroup.processes().contains(target)
        report.check("the workload was not restarted", same,
                     observed: "the container's init \(target): started at tick \(startBefore.map { "\($0.startTime)" } ?? "?") before the update, "
                        + (after.map { "at tick \($0.startTime) after" } ?? "gone after") + (cgroup.processes().contains(target) ? ", still in cgroup.procs" : ", no longer in cgroup.procs"),
                     expected: "the same process, still in the cgroup", hint: "step \"update\" only writes a file: a limit is checked at every charge, nothing needs to restart")

        // 4. With room again, the hog finishes, never killed.
        running.send("go\n")
        let done = running.waitForLine("ready3", timeout: 90)
        let values = running.stdout.probeValues
        let killedAfter = v2 ? (counters("memory.events")["oom_kill"] ?? 0) : (counters("memory.oom_control")["oom_kill"] ?? 0)
        report.check("the hog finishes once the limit is raised", done && values["hog"] == "0" && running.stdout.contains("hog-finished") && killedAfter == 0,
                     observed: done ? "the hog \(running.stdout.contains("hog-finished") ? "finished" : "did not finish") (status \(values["hog"] ?? "?")); oom_kill \(killedAfter)" : "no answer in 90 s",
                     expected: "hog-finished, status 0, oom_kill 0",
                     hint: "step \"update\": " + (v2 ? "memory.high must be raised, or the hog stays throttled" : "memory.limit_in_bytes must be raised: the paused task resumes when there is room"))
        let status = running.finish(timeout: 15)
        report.check("the exercise ends with the command's status", status == .exited(0), observed: "exercise-03-stretch \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "cgroups and a root filesystem copy", hint: "run `swift run doctor`")
    }
}

/// `check 03 --stretch --hint`: level 1 the API, level 2 the shape of the answer.
let cgroupsStretchHints: [StepHint] = [
    StepHint(step: "throttle",
             api: "FileSystem.writeFile(path, text) in cgroup.folder. v2: memory.high (throttle and reclaim above it; memory.max is the one that kills, at \"max\" already). v1: memory.limit_in_bytes, and memory.oom_control, where \"1\" turns the OOM killer off for this cgroup.",
             shape: "if cgroup.version == .v2: one write, memory.high = \"\\(bytes)\". else: two writes, memory.limit_in_bytes = \"\\(bytes)\", then memory.oom_control = \"1\"."),
    StepHint(step: "find",
             api: "FileSystem.readString(\"/proc/\\(pid)/cgroup\"): one line per hierarchy, ID:CONTROLLERS:PATH, split on \":\" at most twice. v2's line is 0::PATH; a v1 line lists its controllers, comma-separated (\"4:memory:/isolation/x\").",
             shape: "For each line: on v2 take the one with ID 0 and no controllers; on v1 the one whose controllers contain \"memory\". Return hierarchy + PATH (PATH starts with /). No such line: throw an error that says so."),
    StepHint(step: "update",
             api: "The same file as the throttle, written again: FileSystem.writeFile(cgroup.folder.appending(…), \"\\(bytes)\"). v2 memory.high, v1 memory.limit_in_bytes.",
             shape: "One write, the file chosen by cgroup.version. Nothing else: the kernel compares at every charge, and a v1 task waiting at the old limit is woken when it is raised."),
]
