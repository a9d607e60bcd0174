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
        for name in ["Linux kernel", "root", "uts namespace", "time namespace", "cgroups", "unprivileged userns", "rootless network", "busybox", "stress-ng", "libcap"] {
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
        c=/tmp/cache/images/containers/c; mkdir -p /tmp/cache/images/layers/l $c/upper $c/work $c/merged
        mount -t overlay overlay -o lowerdir=/tmp/cache/images/layers/l,upperdir=$c/upper,workdir=$c/work $c/merged
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
        #expect(report.contains("unmounted /tmp/cache/images/containers/c/merged"), "chapter 06's container root: \(result)")
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
        let sleeper = try TestProcess("/bin/sleep", ["300"])
        try "\(sleeper.pid)".write(toFile: parent + "/child/cgroup.procs", atomically: false, encoding: .utf8)
        var lines: [String] = []
        let removed = Cleanup.removeCgroupTree(FilePath(parent), report: { lines.append($0) })
        let ended = sleeper.wait(timeout: 30)
        #expect(removed == 2, "\(lines)")
        #expect(ended == .signaled(SIGKILL), "\(ended)")
        #expect(!FileManager.default.fileExists(atPath: parent))
        #expect(lines.contains { $0.contains("killing 1 process") })
        rmdir("/sys/fs/cgroup/pids/isolation")  // only if empty: other tests may use it
    }

    @Test("--clean leaves what still runs (a container, a process in a cgroup, a folder in use) and says how to stop it; doctor lists first; --force stops them",
          .enabled(if: isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), "needs root and unshare(1)"))
    func cleanLeavesRunning() throws {
        // In a private mount namespace with its own /tmp, /run, /var/cache and a tmpfs as
        // /sys/fs/cgroup (so nothing of other tests can be touched): a leftover folder, a
        // folder a process works in, a stopped and a running container's state, an empty
        // cgroup and one with a process. The processes are sleeps of this script.
        let script = #"""
        set -e
        mount -t tmpfs none /mnt; cp "$0" /mnt/doctor
        mount -t tmpfs none /tmp; mount -t tmpfs none /run; mount -t tmpfs none /var/cache; mount -t tmpfs none /sys/fs/cgroup
        export ISOLATION_CACHE_DIR=/tmp/isolation-cache
        mkdir -p /tmp/isolation-leftover-1 /tmp/isolation-busy-1 /run/isolation/gone /run/isolation/keepme
        mkdir -p /sys/fs/cgroup/pids/isolation/empty-1 /sys/fs/cgroup/pids/isolation/busy-1
        (cd /tmp/isolation-busy-1 && exec sleep 301) &
        busy=$!
        sleep 302 &
        inCgroup=$!
        echo $inCgroup > /sys/fs/cgroup/pids/isolation/busy-1/cgroup.procs
        sleep 303 &
        container=$!
        trap 'kill $busy $inCgroup $container 2>/dev/null || true' EXIT  # nothing outlives the test
        sleep 0.2
        start=$(cut -d')' -f2 /proc/$container/stat | awk '{print $20}')
        printf '{"ociVersion":"1.2.0","id":"keepme","bundle":"/tmp/isolation-bundle-k","rootfs":"/tmp/isolation-bundle-k/rootfs","pid":%s,"startTime":%s,"created":0,"cgroupPath":"isolation/keepme"}' $container $start > /run/isolation/keepme/record.json
        mkdir -p /tmp/isolation-bundle-k/rootfs
        printf '{"ociVersion":"1.2.0","id":"gone","bundle":"/nonexistent","rootfs":"/nonexistent","pid":999999,"startTime":1,"created":0,"cgroupPath":"isolation/gone"}' > /run/isolation/gone/record.json
        echo "=== doctor"
        /mnt/doctor || true
        echo "=== clean"
        /mnt/doctor --clean
        echo "=== after clean"
        ls /tmp /run/isolation /sys/fs/cgroup/pids/isolation
        for p in $busy $inCgroup $container; do kill -0 $p && echo "alive $p"; done
        echo "=== force"
        /mnt/doctor --clean --force
        echo "=== after force"
        ls /tmp /run
        sleep 0.2
        for p in $inCgroup $container; do if kill -0 $p 2>/dev/null && ! grep -q '^State:.*Z' /proc/$p/status; then echo "still alive $p"; fi; done
        """#
        let result = try run("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script, product("doctor")], timeout: 60)
        #expect(result.status == 0, "\(result)")
        func section(_ name: String) -> String {
            guard let start = result.stdout.range(of: "=== \(name)\n") else { return "" }
            let rest = result.stdout[start.upperBound...]
            return String(rest[..<(rest.range(of: "\n=== ")?.lowerBound ?? rest.endIndex)])
        }
        // doctor alone lists what --clean would remove, and what runs.
        let listing = section("doctor")
        for expected in ["the state of stopped container 'gone'", "the empty cgroup /sys/fs/cgroup/pids/isolation/empty-1", "/tmp/isolation-leftover-1",
                         "container 'keepme' (running", "delete --force keepme", "cgroup /sys/fs/cgroup/pids/isolation/busy-1: PID",
                         "/tmp/isolation-busy-1: in use by PID", "/tmp/isolation-bundle-k: in use by container 'keepme'"] {
            #expect(listing.contains(expected), "doctor does not list \(expected): \(listing)")
        }
        // --clean removes the leftovers only, and lists what runs with how to stop it.
        let clean = section("clean")
        #expect(clean.contains("removed the state of stopped container 'gone'"), "\(clean)")
        #expect(clean.contains("removed /tmp/isolation-leftover-1") && clean.contains("removed cgroup /sys/fs/cgroup/pids/isolation/empty-1"), "\(clean)")
        #expect(clean.contains("stop: sudo chapter-04 delete --force keepme"), "\(clean)")
        let after = section("after clean").split(separator: "\n").map(String.init)
        #expect(after.contains("isolation-busy-1") && after.contains("isolation-bundle-k") && !after.contains("isolation-leftover-1"), "\(after)")
        #expect(after.contains("keepme") && !after.contains("gone"), "\(after)")
        #expect(after.contains("busy-1") && !after.contains("empty-1"), "\(after)")
        #expect(after.filter { $0.hasPrefix("alive ") }.count == 3, "--clean stopped something that ran: \(after)")
        // --force lists them first, then stops the container and the cgroup's process.
        let force = section("force")
        let listed = force.range(of: "container 'keepme'"), stopped = force.range(of: "stopped and deleted container 'keepme'")
        #expect(listed != nil && stopped != nil && listed!.lowerBound < stopped!.lowerBound, "\(force)")
        let afterForce = section("after force")
        #expect(!afterForce.contains("still alive"), "\(afterForce)")
        #expect(!afterForce.contains("isolation"), "--force left the project's folders: \(afterForce)")
    }

    @Test("a marker file alone (/.dockerenv in a VM made from an image) is not a container; with overlay, an engine's cgroup or container= it is")
    func containerEvidence() {
        #expect(Preflight.containerEvidence(marker: "/.dockerenv", rootType: "ext4", pid1Cgroup: "0::/\n", pid1Environment: "HOME=/\0") == nil)
        #expect(Preflight.containerEvidence(marker: "/.dockerenv", rootType: "overlay", pid1Cgroup: "0::/\n", pid1Environment: "") != nil)
        #expect(Preflight.containerEvidence(marker: nil, rootType: "ext4", pid1Cgroup: "12:pids:/docker/3f2a\n", pid1Environment: "") != nil)
        #expect(Preflight.containerEvidence(marker: nil, rootType: "ext4", pid1Cgroup: "0::/\n", pid1Environment: "container=podman\0") != nil)
        #expect(Preflight.containerEvidence(marker: nil, rootType: "overlay", pid1Cgroup: "0::/init.scope\n", pid1Environment: "") == nil)
    }

    func split(_ text: String) -> (String, String) {
        guard let range = text.range(of: "--- after\n") else { return (text, "") }
        return (String(text[..<range.lowerBound]), String(text[range.upperBound...]))
    }
}
