// The systems the talk names, run for real where Debian packages them: its cgroup-tools
// demo (chapter 03) and LXC's lxc-unshare (chapter 02). Each is observed from outside:
// the cgroup's files while the tools' workload runs in it, the namespace inodes against
// this test process's own (the host's).
import Foundation
import Isolation
import Testing

/// Whether every program in `names` is installed (CI installs them: .ci/run).
func installed(_ names: [String]) -> Bool { names.allSatisfy { Command.find($0) != nil } }

@Suite("The talk's cgroup-tools demo (chapter 03)",
       .enabled(if: isRoot && CgroupMode.detect() != .none, "cgcreate and cgexec need root"),
       .enabled(if: installed(["cgcreate", "cgset", "cgexec", "cgdelete", "stress"]), "apt-get install cgroup-tools stress"))
struct TalkDemoTests {
    /// The folder cgcreate makes for the CPU controller, for chapter-03 process `pid`.
    func cpuFolder(_ pid: Int32) -> String {
        CgroupMode.detect() == .unified ? "/sys/fs/cgroup/isolation/talk-\(pid)" : "/sys/fs/cgroup/cpu/isolation/talk-\(pid)"
    }

    func commands(in folder: String) -> [String] {
        let procs = (try? String(contentsOfFile: folder + "/cgroup.procs", encoding: .utf8)) ?? ""
        return procs.split(separator: "\n").compactMap { pid in
            (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test("cgset's quota is in the cgroup's file while cgexec's stress runs in it; it is throttled, then OOM-killed; nothing remains")
    func talkDemo() throws {
        let process = try TestProcess(product("chapter-03"), ["talk", "--seconds", "2"])
        let folder = cpuFolder(process.pid)
        var quota: String?
        var sawStress = false
        let deadline = Date().addingTimeInterval(600)
        while process.isRunning && Date() < deadline {
            if quota == nil || !sawStress {
                let file = CgroupMode.detect() == .unified ? "/cpu.max" : "/cpu.cfs_quota_us"
                if let text = try? String(contentsOfFile: folder + file, encoding: .utf8), text.hasPrefix("20000") {
                    quota = text.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                if quota != nil && commands(in: folder).contains("stress") { sawStress = true }
            }
            usleep(20_000)
        }
        let result = process.result(timeout: 0)
        let output = result.stdout + result.stderr
        #expect(result.status == 0 && result.reason == .exit, "\(output)")
        #expect(quota != nil, "cgset's quota was never seen in \(folder): \(output)")
        #expect(sawStress, "no stress process was seen in \(folder)/cgroup.procs: \(output)")
        // What the chapter read from the cgroup's files.
        let cpus = output.firstMatch(of: /: (\d+\.\d+) CPU under a 0\.20 limit/).flatMap { Double($0.1) }
        #expect(cpus.map { $0 > 0.05 && $0 < 0.3 } == true, "the CPU hog was not held near 0.2 CPU: \(output)")
        let kills = output.firstMatch(of: /oom_kill (\d+) in memory/).flatMap { Int($0.1) }
        #expect((kills ?? 0) >= 1, "no OOM kill was counted: \(output)")
        let same = output.firstMatch(of: /(\d+) of (\d+) files hold the same value/)
        #expect(same.map { $0.1 == $0.2 && Int($0.2)! >= 3 } == true, "cgset and the Cgroup API wrote different values: \(output)")
        #expect(!FileManager.default.fileExists(atPath: folder), "\(folder) was left behind")
        #expect(!FileManager.default.fileExists(atPath: folder.replacingOccurrences(of: "talk-", with: "talk-api-")))
        let strays = Engines.processes(mentioning: "stress --")
        #expect(strays.isEmpty, "stress processes left: \(strays)")
    }
}

@Suite("LXC's lxc-unshare beside chapter 02",
       .enabled(if: isRoot, "lxc-unshare makes namespaces as root"),
       .enabled(if: installed(["lxc-unshare"]), "apt-get install lxc"))
struct LXCTests {
    @Test("lxc-unshare's namespaces differ from the host's exactly where chapter 02's do, bar cgroup and time")
    func sameNamespaces() throws {
        let result = try run(product("chapter-02"), ["lxc"], timeout: 120)
        #expect(result.status == 0, "\(result)")
        let host = Namespaces.identity()  // this test process: the host's namespaces
        var rows: [String: (host: UInt64, ours: UInt64, lxc: UInt64)] = [:]
        for match in result.stdout.matches(of: /\n  (\w+) +(\d+) +(\d+) (?:new|shared) +(\d+) (?:new|shared)/) {
            rows[String(match.1)] = (UInt64(match.2)!, UInt64(match.3)!, UInt64(match.4)!)
        }
        for kind in Namespaces.supportedByKernel().kinds {
            let name = kind.procName
            guard let row = rows[name] else { Issue.record("no row for \(name): \(result)"); continue }
            #expect(row.host == host[name], "the host column of \(name) is not this process's namespace")
            #expect(row.ours != row.host, "chapter 02 did not make a new \(name) namespace")
            if kind == .cgroup || kind == .time {
                #expect(row.lxc == row.host, "lxc-unshare has no flag for \(name), yet it is new")
            } else {
                #expect(row.lxc != row.host, "lxc-unshare did not make a new \(name) namespace")
            }
        }
        #expect(result.stdout.contains("hostname container"), "\(result)")
    }
}
