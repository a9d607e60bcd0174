// Exercise 03: the limits in the cgroup's files, every process in the cgroup, joined
// before exec, and the kernel's own count of the limits being hit.
import Glibc
import Isolation
import SystemPackage

func checkCgroups(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    let name = "check-03-\(getpid())"
    let memoryLimit: UInt64 = 32 << 20
    let pidsLimit = 16
    do {
        let folder = try context.folder("03")
        let rootfs = try context.rootfs(in: folder)
        let releaseReport = folder.appending("released")
        // After "ready": a hog in a subshell that wants 96 MiB, then a subshell that starts
        // 40 sleeps in the background (a refused fork ends that subshell, not the probe).
        let probe = """
            echo "pid=$$"; echo ready; read x
            ( x=; i=0; while [ $i -lt 24 ]; do x="$x$(head -c 4194304 /dev/zero | tr '\\000' a)"; i=$((i+1)); done; echo hog-finished ) 2>/dev/null
            echo "hog=$?"
            ( i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done ) 2>/dev/null
            echo "forks=$?"; echo ready2; read x; echo done
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
        guard let running = startProbe(report, "03", program,
                                       ["--rootfs", rootfs.string, "--memory", "32M", "--pids", "\(pidsLimit)", "--name", name, "--", "sh", "-c", probe],
                                       environment: context.environment(report: releaseReport)) else { return }
        defer { running.finish(timeout: 10) }
        let v2 = cgroup.version == .v2
        guard let memoryDir = cgroup.directory(for: "memory"), let pidsDir = cgroup.directory(for: "pids"), FileSystem.isDirectory(memoryDir) else {
            report.fail("the exercise's cgroup exists", observed: "no \(projectPrefix)/\(name) under /sys/fs/cgroup", expected: "the folder the starter made", hint: "run it with --name \(name)")
            return
        }
        // 1. The limits, as the files say.
        let memoryFile = memoryDir.appending(v2 ? "memory.max" : "memory.limit_in_bytes")
        let memoryValue = ((try? FileSystem.readString(memoryFile)) ?? "").trimmed
        report.check("the memory limit is in the cgroup's file", UInt64(memoryValue) == memoryLimit,
                     observed: "\(memoryFile) = \(memoryValue)", expected: "\(memoryLimit) (32M)",
                     hint: "step \"limits\": write the number of bytes into \(v2 ? "memory.max" : "memory.limit_in_bytes") (cgroup \(cgroup.version))")
        let pidsFile = pidsDir.appending("pids.max")
        let pidsValue = ((try? FileSystem.readString(pidsFile)) ?? "").trimmed
        report.check("the pids limit is in the cgroup's file", pidsValue == "\(pidsLimit)",
                     observed: "\(pidsFile) = \(pidsValue)", expected: "\(pidsLimit)",
                     hint: "step \"limits\": write the number into pids.max, in the pids controller's folder")
        // 2. Who is in it: the container's init and the probe, nobody left outside.
        let members = Set(cgroup.processes())
        let tree = Proc.descendants(of: running.child.pid)
        let outside = tree.filter { !members.contains($0) }
        report.check("every process of the container is in the cgroup", !tree.isEmpty && outside.isEmpty,
                     observed: "container processes \(tree.map(String.init).joined(separator: " ")); in cgroup.procs: \(members.sorted().map(String.init).joined(separator: " "))"
                        + (outside.isEmpty ? "" : "; outside: \(outside.map { "\($0) (\(Proc.comm($0)))" }.joined(separator: ", "))"),
                     expected: "all of them (children inherit the cgroup at fork)",
                     hint: "step \"join\": write the container's PID into cgroup.procs\(v2 ? "" : " of each hierarchy (memory and pids)") before it forks anything")
        // 3. When: at release, before execve.
        let released = ((try? FileSystem.readString(releaseReport)) ?? "").split(separator: "\n").first.map(String.init)
        if let released {
            let memberships = released.components(after: "cgroup=").split(separator: ";").map(String.init)
            let needed = v2 ? ["0::/\(projectPrefix)/\(name)"] : ["memory", "pids"].map { controller in "\(controller):/\(projectPrefix)/\(name)" }
            let missing = needed.filter { need in !memberships.contains(where: { $0.hasSuffix(need) && ($0.hasPrefix("0::") || $0.contains(":" + need)) }) }
            report.check("it was in the cgroup before it could exec (joined, then released)", missing.isEmpty,
                         observed: "at release, /proc/PID/cgroup said: " + memberships.filter { v2 || $0.contains(":memory:") || $0.contains(":pids:") }.joined(separator: " · "),
                         expected: needed.joined(separator: " · "),
                         hint: "step \"join\": write cgroup.procs *while the process is held*, then release() it. Released first, it execs and runs (and may allocate and fork) before any limit applies: that first instant is unlimited, and memory it touched stays charged to the old cgroup")
        } else {
            report.fail("it was in the cgroup before it could exec (joined, then released)", observed: "the container was never released through HeldProcess.release()",
                        expected: "a line in \(releaseReport)", hint: "step \"join\": call container.release() once the PID is in cgroup.procs")
        }
        // 4. The limits bite: the kernel's own counters.
        running.send("go\n")
        guard running.waitForLine("ready2", timeout: 90) else {
            report.fail("the probe's hog and fork storm finish", observed: "no answer in 90 s: " + running.stdout.suffix(200), expected: "\"ready2\"",
                        hint: "without a memory limit the hog takes 96 MiB and more time; is the limit written?")
            return
        }
        let values = running.stdout.probeValues
        if v2 {
            let events = ((try? FileSystem.readString(memoryDir.appending("memory.events"))) ?? "").probeCounters
            report.check("the kernel enforced the memory limit", (events["max"] ?? 0) > 0 || (events["oom_kill"] ?? 0) > 0,
                         observed: "memory.events: max \(events["max"] ?? 0), oom_kill \(events["oom_kill"] ?? 0); the 96 MiB hog \(values["hog"] == "0" ? "finished" : "ended with status \(values["hog"] ?? "?")")",
                         expected: "max > 0 (the limit was hit) and an OOM kill of the hog",
                         hint: "step \"limits\": memory.max must hold the limit, and the hog must run inside the cgroup")
        } else {
            let failcnt = UInt64(((try? FileSystem.readString(memoryDir.appending("memory.failcnt"))) ?? "").trimmed) ?? 0
            let oom = ((try? FileSystem.readString(memoryDir.appending("memory.oom_control"))) ?? "").probeCounters
            report.check("the kernel enforced the memory limit", failcnt > 0 || (oom["oom_kill"] ?? 0) > 0,
                         observed: "memory.failcnt \(failcnt), memory.oom_control oom_kill \(oom["oom_kill"] ?? 0); the 96 MiB hog \(values["hog"] == "0" ? "finished" : "ended with status \(values["hog"] ?? "?")")",
                         expected: "failcnt > 0 (the limit was hit) and an OOM kill of the hog",
                         hint: "step \"limits\": memory.limit_in_bytes must hold the limit, and the hog must run inside the cgroup")
        }
        let pidsEvents = ((try? FileSystem.readString(pidsDir.appending("pids.events"))) ?? "").probeCounters
        let current = Int(((try? FileSystem.readString(pidsDir.appending("pids.current"))) ?? "").trimmed) ?? -1
        report.check("the kernel refused forks past the pids limit", (pidsEvents["max"] ?? 0) > 0 && current <= pidsLimit,
                     observed: "pids.events max \(pidsEvents["max"] ?? 0) (forks refused); pids.current \(current) after 40 background sleeps",
                     expected: "max > 0 and pids.current ≤ \(pidsLimit)",
                     hint: "step \"limits\": pids.max in the pids folder; step \"join\": the container in that folder's cgroup.procs")
        let status = running.finish(timeout: 15)
        report.check("the exercise ends with the command's status", status == .exited(0), observed: "exercise-03 \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "cgroups and a root filesystem copy", hint: "run `swift run doctor`")
    }
}

extension String {
    /// `key value` lines (memory.events, pids.events, memory.oom_control).
    var probeCounters: [String: UInt64] {
        var values: [String: UInt64] = [:]
        for line in split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = UInt64(parts[1]) { values[String(parts[0])] = value }
        }
        return values
    }

    func components(after marker: String) -> String {
        guard let range = firstRange(of: marker) else { return "" }
        return String(self[range.upperBound...])
    }
}

/// `check 03 --hint`: level 1 the API, level 2 the shape of the answer.
let cgroupsHints: [StepHint] = [
    StepHint(step: "limits",
             api: "FileSystem.writeFile(path, text) writes one file. v2: memory.max and pids.max, both in one folder (cgroup.memory and cgroup.pids are the same path). v1: memory.limit_in_bytes in cgroup.memory, pids.max in cgroup.pids. cgroup.version is .v1 or .v2.",
             shape: "Two writes: the memory file (its name chosen by cgroup.version) in cgroup.memory gets \"\\(memoryBytes)\", cgroup.pids's pids.max gets \"\\(pids)\"."),
    StepHint(step: "join",
             api: "A process joins a cgroup when its PID is written into that folder's cgroup.procs: FileSystem.writeFile(folder.appending(\"cgroup.procs\"), \"\\(container.pid)\"). v1 has one hierarchy per controller: memory and pids each need it. container.release() lets the held process exec.",
             shape: "For each distinct folder of cgroup.memory and cgroup.pids (one on v2, two on v1): write the PID into its cgroup.procs. Then, and only then, try container.release()."),
]
