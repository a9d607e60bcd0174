// The three acts of the demo: one hog, one limit each.
import Isolation

struct Act {
    var number = 0
    var title: String
    var limits: ResourceLimits
    var command: [String]
    /// The chapter stops the act after this many seconds (nil: when the workload ends).
    var stopAfter: Double?
    var explanation: String

    static func all(seconds: Double, stressNG: Bool) -> [Act] {
        let cpuHog = stressNG
            ? ["stress-ng", "--cpu", "2", "--timeout", "\(Int(seconds.rounded(.up)) + 2)"]
            : ["sh", "-c", "echo 'two busy loops (install stress-ng to use it instead)'; for i in 1 2; do while :; do :; done & done; wait"]
        // A shell that holds 4 MiB more every quarter second, so the climb is visible.
        let memoryHog = ["sh", "-c", "i=0; x=; while :; do x=\"$x$(head -c 4194304 /dev/zero | tr '\\000' a)\"; i=$((i+4)); echo \"holding $i MiB\"; sleep 0.25; done"]
        // A fork bomb that holds: each copy starts a copy and waits for it, and starts
        // another when that one dies. A refused fork ends only the shell that asked (a
        // shell exits when it cannot fork); its parent fills the slot again at once, so
        // the cgroup sits at pids.max for as long as the act lasts. The top shell
        // becomes a sleep (exec, no fork): the act ends when the chapter stops it.
        let forkBomb = ["sh", "-c", "echo 'bomb() { while :; do bomb & wait; done; }; bomb'; bomb() { while :; do bomb & wait; done; }; bomb 2>/dev/null & exec sleep 86400"]
        // Swap off for the hog, where the kernel can limit it (see Chapter03.swift).
        let noSwap: UInt64? = !Cgroup.hostHasSwap() || Cgroup.swapAccounting() ? 0 : nil
        var acts = [
            Act(title: "Act 1 · a CPU hog under 0.5 CPU", limits: ResourceLimits(cpus: 0.5), command: cpuHog, stopAfter: seconds,
                explanation: "CFS bandwidth control: 50 ms of CPU time per 100 ms period, then the cgroup waits"),
            Act(title: "Act 2 · a memory hog under 64 MiB", limits: ResourceLimits(memoryBytes: 64 << 20, swapBytes: noSwap), command: memoryHog,
                stopAfter: max(seconds, 30), explanation: "past the limit the kernel reclaims, finds nothing to reclaim, and OOM-kills"),
            Act(title: "Act 3 · a fork bomb under 32 pids", limits: ResourceLimits(pids: 32), command: forkBomb, stopAfter: seconds,
                explanation: "fork(2) fails with EAGAIN once the cgroup holds 32 tasks"),
        ]
        for index in acts.indices { acts[index].number = index + 1 }
        return acts
    }

    /// One line that says what happened, in the cgroup's own numbers.
    func summary(_ meter: Meter, _ status: ExitStatus) -> String {
        var parts: [String] = []
        if let cpus = limits.cpus {
            parts.append("CPU averaged \(percent(meter.averageCPUs)) under a \(percent(cpus)) limit, throttled \(meter.throttled)× — slowed, not killed")
        }
        if let memory = limits.memoryBytes {
            parts.append("memory peaked at \(formatBytes(meter.peakMemory)) of \(formatBytes(memory)); OOM kills: \(meter.oomKills)"
                         + (meter.oomKills > 0 ? " — killed, the workload \(status)" : ""))
        }
        if let pids = limits.pids {
            parts.append("at most \(meter.peakPids) of \(pids) tasks; \(meter.refusedForks) forks refused")
        }
        if parts.isEmpty { parts.append("no limits; the workload \(status)") }
        return Style.standardOutput.bold("→ ") + parts.joined(separator: "; ")
    }
}
