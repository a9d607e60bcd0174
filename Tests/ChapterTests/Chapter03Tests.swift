// Chapter 03: limits enforced on what runs in the container, as the learner sees them,
// and nothing left behind — also when the demo is interrupted.
import Foundation
import Isolation
import Testing

/// The cgroup folders chapter-03 process `pid` made, if any are left.
func chapter03Cgroups(of pid: Int32) -> [String] {
    Cleanup.cgroupParents().flatMap { parent in
        ((try? FileManager.default.contentsOfDirectory(atPath: parent.string)) ?? [])
            .filter { $0.hasPrefix("chapter-03-\(pid)-") }.map { parent.string + "/" + $0 }
    }
}

/// chapter-03 cgroups whose chapter-03 process is gone: leftovers, whoever made them.
func orphanedChapter03Cgroups() -> [String] {
    Cleanup.cgroupParents().flatMap { parent in
        ((try? FileManager.default.contentsOfDirectory(atPath: parent.string)) ?? []).filter { name in
            guard name.hasPrefix("chapter-03-"), let pid = Int32(name.split(separator: "-")[2]) else { return false }
            return kill(pid, 0) != 0
        }.map { parent.string + "/" + $0 }
    }
}

@Suite("chapter-03: cgroup limits under stress", .enabled(if: isRoot && CgroupMode.detect() != .none, "cgroups need root"))
struct Chapter03Tests {
    @Test("the three acts: throttled, OOM-killed, forks refused; the plot is written; nothing remains")
    func demo() throws {
        let folder = try TemporaryFolder("ch03-plot")
        defer { folder.remove() }
        let plot = folder.path + "/demo.svg"
        let result = try run(product("chapter-03"), ["--seconds", "3", "--plot", plot], timeout: 120)
        #expect(result.status == 0, "\(result)")
        for expected in ["Act 1", "cpu=", "throttled", "Act 2", "OOM kill", "Act 3", "fork refused", "echo \"", "cgroup.procs"] {
            #expect(result.stdout.contains(expected), "the demo's output lacks \(expected)")
        }
        let wide = result.stdout.split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "lines over 80 columns: \(wide)")
        let svg = try String(contentsOfFile: plot, encoding: .utf8)
        // Three charts (pids too), every limit with its unit, ticks on the time axis.
        #expect(svg.hasPrefix("<svg") && svg.matches(of: /<polyline/).count == 9, "\(svg)")
        for label in ["limit 0.5 CPUs", "limit 64 MiB", "limit 32 tasks", "tasks (pids)", "time (s)", ">0</text>", ">2</text>"] {
            #expect(svg.contains(label), "the plot lacks \(label)")
        }
        // The fork bomb holds at its limit until the chapter stops it, and its peak is
        // the limit (the kernel refused forks only there).
        let act3 = try #require(result.stdout.components(separatedBy: "Act 3").last)
        #expect(act3.contains("time is up") && act3.contains("at most 32 of 32 tasks"), "\(act3)")
        // Forks are refused (the count is at pids.max) from the first refusal until the
        // chapter stops the act: the bomb does not burn out on its own.
        let refusals = act3.matches(of: /t=(\d+\.\d)s fork refused/).compactMap { Double($0.1) }
        let stop = act3.matches(of: /t=(\d+\.\d)s time is up/).compactMap { Double($0.1) }.first
        #expect(refusals.count >= 3 && stop != nil && stop! - refusals.filter { $0 <= stop! }.max()! <= 0.6,
                "the bomb stopped before its time: refusals at \(refusals), stopped at \(String(describing: stop))")
        #expect(orphanedChapter03Cgroups().isEmpty, "left: \(orphanedChapter03Cgroups())")
    }

    @Test("a CPU quota changed by hand while the command runs: the meter says so and shows the new limit",
          .enabled(if: FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpu/cpu.cfs_quota_us") || CgroupMode.detect() == .unified, "needs the cpu controller"))
    func liveQuota() throws {
        let process = try TestProcess(product("chapter-03"), ["--cpus", "0.5", "--", "sleep", "3"],
                                      environment: ["NO_COLOR": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        let unified = CgroupMode.detect() == .unified
        let name = "chapter-03-\(process.pid)-0"
        let file = unified ? "/sys/fs/cgroup/isolation/\(name)/cpu.max" : "/sys/fs/cgroup/cpu/isolation/\(name)/cpu.cfs_quota_us"
        for _ in 0..<200 where !process.stdout.contains("pids=") { usleep(20_000) }
        try (unified ? "20000 100000" : "20000").write(toFile: file, atomically: false, encoding: .utf8)
        let result = process.result(timeout: 60)
        let output = result.stdout
        #expect(result.status == 0, "\(result)")
        #expect(output.contains("CPU quota changed: now 20%"), "\(output)")
        #expect(output.contains("cpu=0%/20%") || output.split(separator: "\n").last(where: { $0.contains("cpu=") })?.contains("/20%") == true, "\(output)")
    }

    @Test("a command past its memory limit is OOM-killed: status 137, the event shown")
    func memoryCommand() throws {
        let result = try run(product("chapter-03"), ["--memory", "32M", "--", "sh", "-c", "x=$(head -c 104857600 /dev/zero | tr '\\000' a); echo survived"])
        #expect(result.status == 137, "\(result)")
        #expect(result.stdout.contains("OOM kill"), "\(result)")
        #expect(!result.stdout.contains("survived"))
        // The OOM killer may take more than one process of the cgroup (the shell and tr).
        let kills = result.stdout.matches(of: /oom_kills=(\d+)/).compactMap { Int($0.1) }.max() ?? 0
        #expect(kills >= 1, "\(result)")
    }

    @Test("a command under a pids limit: forks refused, never more tasks than the limit, its own exit status")
    func pidsCommand() throws {
        let result = try run(product("chapter-03"), ["--pids", "8", "--", "sh", "-c", "sh -c 'for i in $(seq 20); do sleep 1 & done; wait' 2>/dev/null; exit 3"])
        #expect(result.status == 3, "\(result)")
        #expect(result.stdout.contains("fork refused"), "\(result)")
        let counts = result.stdout.matches(of: /pids=(\d+)\/8/).compactMap { Int($0.1) }
        #expect(!counts.isEmpty && counts.allSatisfy { $0 <= 8 }, "\(counts)")
    }

    @Test("a limit written wrong is a clear error and creates nothing", arguments: [
        ["--memory", "64X"], ["--cpus", "half"], ["--pids", "0"], ["--swap", "1M"],
    ])
    func badLimits(arguments: [String]) throws {
        let result = try run(product("chapter-03"), arguments + ["--", "true"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.hasPrefix("chapter-03: "), "\(result)")
        #expect(result.stderr.contains("→") || result.stderr.contains("needs"), "the error should say what to write: \(result)")
        #expect(!result.stdout.contains("echo"), "something was written: \(result)")
    }

    @Test("Ctrl-C mid-demo stops the act, removes its cgroup and leaves no process")
    func interrupted() throws {
        let process = try TestProcess(product("chapter-03"), ["--seconds", "30"])
        let pid = process.pid
        // Wait until the first act's cgroup exists and the hog runs in it.
        var seen = false
        for _ in 0..<100 where !seen {
            usleep(100_000)
            seen = chapter03Cgroups(of: pid).contains { dir in
                ((try? String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").count >= 2
            }
        }
        #expect(seen, "the demo never started its first act")
        let cgroups = chapter03Cgroups(of: pid)
        kill(pid, SIGINT)
        let result = process.result(timeout: 60)
        let output = result.stdout + result.stderr
        #expect(result.status == 130, "\(result)")
        #expect(output.contains("interrupted"), "\(output)")
        #expect(chapter03Cgroups(of: pid).isEmpty, "left: \(chapter03Cgroups(of: pid))")
        for dir in cgroups { #expect(!FileManager.default.fileExists(atPath: dir)) }
    }
}
