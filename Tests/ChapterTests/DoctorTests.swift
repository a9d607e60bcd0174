// doctor: the checks it prints, and --clean removing what the project left behind.
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("doctor")
struct DoctorTests {
    @Test("one line per check, with ✓ or ✗ or !, kernel and cgroup mode named")
    func checksArePrinted() throws {
        let result = try run(product("doctor"), [])
        let lines = result.stdout.split(separator: "\n").filter { $0.hasPrefix("✓") || $0.hasPrefix("✗") || $0.hasPrefix("!") }
        #expect(lines.count >= 14, "\(result)")
        for name in ["Linux kernel", "root", "uts namespace", "time namespace", "cgroups", "unprivileged userns", "busybox", "stress-ng", "libcap"] {
            #expect(lines.contains { $0.contains(name) }, "no line for \(name): \(result)")
        }
        #expect(result.stdout.contains(Preflight.kernelRelease()))
        let mode = CgroupMode.detect()
        #expect(result.stdout.contains(mode == .unified ? "v2" : mode == .legacy ? "v1" : "hybrid"))
        #expect(result.status == (result.stdout.contains("✗") ? 1 : 0))
    }

    @Test("--clean removes leftover mounts, temporary folders and the cache, and says so",
          .enabled(if: isRoot, "unmounting needs root"))
    func cleanRemovesLeftovers() throws {
        // In a private mount namespace with its own /tmp, /run, /var/cache and an empty
        // /sys/fs/cgroup, so that the clean-up cannot touch what other tests running now
        // have made. doctor is copied first: the checkout may itself live under /tmp.
        // (The host's own mounts under /tmp are copied into the namespace too, hidden
        // under the new /tmp: only the leftovers this script made are counted.)
        let script = """
        set -e
        mount -t tmpfs none /mnt; cp "$0" /mnt/doctor
        mount -t tmpfs none /tmp; mount -t tmpfs none /run; mount -t tmpfs none /var/cache; mount -t tmpfs none /sys/fs/cgroup
        mkdir -p /tmp/isolation-leftover-1/rootfs/proc /run/isolation/c1 /tmp/cache/rootfs-busybox/proc /tmp/unrelated
        mount -t proc proc /tmp/isolation-leftover-1/rootfs/proc
        mount -t proc proc /tmp/cache/rootfs-busybox/proc
        ip link add iso0123abcd type veth peer name isolation-peer; nft add table ip isolation-leftover
        mkdir -p /run/netns; touch /run/netns/isolation-leftover
        ISOLATION_CACHE_DIR=/tmp/cache /mnt/doctor --clean
        echo "--- after"
        ls /tmp /run
        grep -cE ' /tmp/(isolation-leftover-1|cache)/' /proc/self/mountinfo || true
        """
        // And in a network namespace of its own, with a leftover veth pair and nft table.
        let result = try run("/usr/bin/unshare", ["--mount", "--net", "--propagation", "private", "/bin/sh", "-c", script, product("doctor")])
        #expect(result.status == 0, "\(result)")
        let (report, after) = split(result.stdout)
        #expect(report.contains("unmounted /tmp/isolation-leftover-1/rootfs/proc"), "\(result)")
        #expect(report.contains("unmounted /tmp/cache/rootfs-busybox/proc"), "\(result)")
        #expect(report.contains("removed /tmp/isolation-leftover-1"))
        #expect(report.contains("removed /run/isolation"))
        #expect(report.contains("removed /tmp/cache"))
        #expect(report.contains("deleted nft table ip isolation-leftover"), "\(result)")
        #expect(report.contains("deleted link iso0123abcd"), "\(result)")
        #expect(report.contains("removed network namespace isolation-leftover"), "\(result)")
        let listing = after.split(separator: "\n").map(String.init)
        #expect(!listing.contains("isolation"), "/run/isolation is still there: \(after)")
        #expect(listing.suffix(3) == ["/tmp:", "unrelated", "0"], "only the unrelated folder may stay in /tmp, and none of the leftover mounts: \(after)")
    }

    @Test("--clean kills the processes in a leftover cgroup and removes it",
          .enabled(if: isRoot && FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/cgroup.procs"),
                   "needs root and a cgroup v1 pids hierarchy"))
    func cleanRemovesCgroups() throws {
        let parent = "/sys/fs/cgroup/pids/isolation/test-leftover-\(getpid())"
        try FileManager.default.createDirectory(atPath: parent + "/child", withIntermediateDirectories: true)
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["300"]
        try sleeper.run()
        try "\(sleeper.processIdentifier)".write(toFile: parent + "/child/cgroup.procs", atomically: false, encoding: .utf8)
        var lines: [String] = []
        let removed = Cleanup.removeCgroupTree(FilePath(parent), report: { lines.append($0) })
        sleeper.waitUntilExit()
        #expect(removed == 2, "\(lines)")
        #expect(sleeper.terminationReason == .uncaughtSignal && sleeper.terminationStatus == SIGKILL)
        #expect(!FileManager.default.fileExists(atPath: parent))
        #expect(lines.contains { $0.contains("killing 1 process") })
        rmdir("/sys/fs/cgroup/pids/isolation")  // only if empty: other tests may use it
    }

    func split(_ text: String) -> (String, String) {
        guard let range = text.range(of: "--- after\n") else { return (text, "") }
        return (String(text[..<range.lowerBound]), String(text[range.upperBound...]))
    }
}
