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
        let svg = try String(contentsOfFile: plot, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("polyline") && svg.contains("limit 0.5") && svg.contains("limit 64.0"))
        #expect(orphanedChapter03Cgroups().isEmpty, "left: \(orphanedChapter03Cgroups())")
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: product("chapter-03"))
        process.arguments = ["--seconds", "30"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let pid = process.processIdentifier
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
        process.waitUntilExit()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 130, "\(output)")
        #expect(output.contains("interrupted"), "\(output)")
        #expect(chapter03Cgroups(of: pid).isEmpty, "left: \(chapter03Cgroups(of: pid))")
        for dir in cgroups { #expect(!FileManager.default.fileExists(atPath: dir)) }
    }
}
