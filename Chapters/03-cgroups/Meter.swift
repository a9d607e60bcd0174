// The live meter: what the kernel counts for the cgroup, several times a second.
import Glibc
import Isolation
import SystemPackage

/// One reading of the cgroup's files, kept for the summary and the plot.
struct Sample {
    var time: Double          // seconds since the act started (for the plot: since the run)
    var cpus: Double          // CPUs used since the previous sample
    var memoryBytes: UInt64
    var pids: UInt64
}

/// Reads a cgroup's stats and draws them: on a terminal, three bars redrawn in place;
/// piped, one plain line per second. Events (an OOM kill, refused forks) are printed as
/// they happen, between the workload's own output lines.
final class Meter {
    let cgroup: Cgroup
    let limits: ResourceLimits
    let style = Style.standardOutput
    let live: Bool
    var samples: [Sample] = []
    private var previousUsage: UInt64 = 0
    private var previousTime: Double = 0
    private let start: Double
    private let clockOffset: Double
    private var drawnLines = 0
    private var lastPlain: Double = -1
    private(set) var oomKills: UInt64 = 0
    private(set) var refusedForks: UInt64 = 0
    private(set) var throttled: UInt64 = 0
    private(set) var peakMemory: UInt64 = 0
    private(set) var peakPids: UInt64 = 0
    private var lastWorkloadLine = ""
    /// The limits in force, read from the cgroup's files at each update: a quota written
    /// by hand while the act runs (echo 50000 > cpu.cfs_quota_us) shows at once.
    private(set) var cpuLimit: Double?
    private(set) var memoryLimit: UInt64?
    private(set) var pidsLimit: UInt64?
    /// pids.current, read between the samples too (a fork bomb's peak lasts milliseconds).
    private let pidsCurrent: FilePath?

    init(cgroup: Cgroup, limits: ResourceLimits, clockOffset: Double = 0) {
        self.cgroup = cgroup
        self.limits = limits
        self.live = Style.standardOutput.enabled
        self.start = monotonicSeconds()
        self.clockOffset = clockOffset
        let stats = cgroup.stats()
        previousUsage = stats.cpuUsageMicroseconds ?? 0
        previousTime = start
        cpuLimit = limits.cpus
        memoryLimit = limits.memoryBytes
        pidsLimit = limits.pids.map { UInt64($0) }
        pidsCurrent = cgroup.directory(for: "pids")?.appending("pids.current")
    }

    /// Reads pids.current alone (one small file), for the peak between samples.
    func samplePids() {
        guard let pidsCurrent, let text = try? FileSystem.readString(pidsCurrent),
              let value = UInt64(text.split(separator: "\n").first ?? "") else { return }
        peakPids = max(peakPids, value)
    }

    var elapsed: Double { monotonicSeconds() - start }

    /// Reads the cgroup now, prints new events, and redraws.
    func update() {
        let now = monotonicSeconds()
        let stats = cgroup.stats()
        let usage = stats.cpuUsageMicroseconds ?? previousUsage
        let wall = max(now - previousTime, 0.001)
        let cpus = Double(usage &- previousUsage) / 1_000_000 / wall
        previousUsage = usage
        previousTime = now
        let sample = Sample(time: clockOffset + now - start, cpus: max(0, cpus), memoryBytes: stats.memoryBytes ?? 0, pids: stats.pids ?? 0)
        samples.append(sample)
        peakMemory = max(peakMemory, stats.memoryPeakBytes ?? sample.memoryBytes, sample.memoryBytes)
        peakPids = max(peakPids, sample.pids)
        throttled = stats.throttledPeriods ?? throttled
        let liveCPU = cgroup.cpuLimit()
        if liveCPU != cpuLimit {
            event(style.yellow("CPU quota changed") + ": now \(liveCPU.map { percent($0) } ?? "no limit") (read from the cgroup's files)")
            cpuLimit = liveCPU
        }
        if stats.memoryLimitBytes != memoryLimit {
            event(style.yellow("memory limit changed") + ": now \(stats.memoryLimitBytes.map(formatBytes) ?? "no limit")")
            memoryLimit = stats.memoryLimitBytes
        }
        if stats.pidsLimit != pidsLimit {
            event(style.yellow("pids limit changed") + ": now \(stats.pidsLimit.map(String.init) ?? "no limit")")
            pidsLimit = stats.pidsLimit
        }

        if let kills = stats.oomKills, kills > oomKills {
            event(style.red("OOM kill") + ": the kernel killed \(kills - oomKills) process(es) in the cgroup (\(cgroup.version == .v2 ? "memory.events oom_kill" : "memory.oom_control oom_kill") = \(kills))")
            oomKills = kills
        }
        if let refused = stats.pidsRefused, refused > refusedForks {
            event(style.yellow("fork refused") + " ×\(refused - refusedForks): pids.max reached (pids.events max = \(refused))")
            refusedForks = refused
            // The kernel refuses a fork only with pids.current at pids.max: the peak was
            // the limit, even if no sample caught it.
            if let pidsLimit { peakPids = max(peakPids, pidsLimit) }
        }
        draw(sample)
    }

    /// A line the workload printed: shown above the meter (the last one is kept in it).
    func workloadOutput(_ line: String) {
        lastWorkloadLine = line
        clear()
        let width = terminalWidth()
        for part in wrapLines(line, first: width - 4, rest: width - 4) { say("  " + style.dim("│ ") + part) }
        redraw()
    }

    func event(_ text: String) {
        clear()
        let time = "t=" + format1(clockOffset + elapsed) + "s "
        let parts = wrapLines(text, first: terminalWidth() - 2 - time.count, rest: terminalWidth() - 4)
        say("  " + style.bold(time) + (parts.first ?? ""))
        for part in parts.dropFirst() { say("    " + part) }
        redraw()
    }

    private var lastSample: Sample?

    private func draw(_ sample: Sample) {
        lastSample = sample
        if live {
            clear()
            redraw()
        } else if sample.time - lastPlain >= 1 || lastPlain < 0 {
            lastPlain = sample.time
            sayWrapped(plainLine(sample), indent: "  ", hanging: "    ")
        }
    }

    private func redraw() {
        guard live, let sample = lastSample else { return }
        let lines = meterLines(sample)
        for line in lines { say(line) }
        drawnLines = lines.count
    }

    /// Moves the cursor up over the meter and clears it, so new lines go above it.
    func clear() {
        guard live, drawnLines > 0 else { return }
        _ = try? FileDescriptorWriter.write("\u{1B}[\(drawnLines)A\u{1B}[J")
        drawnLines = 0
    }

    /// Three bars, each against its limit. Without a limit a bar is drawn against what
    /// the machine has (its CPUs, its memory, the kernel's pid_max), so it never looks full.
    func meterLines(_ sample: Sample) -> [String] {
        var lines: [String] = []
        let cpuScale = max(cpuLimit ?? Double(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 0.01)
        lines.append("  CPU    " + bar(sample.cpus / cpuScale, over: cpuLimit != nil) + "  "
                     + "\(percent(sample.cpus)) of \(cpuLimit.map { percent($0) + " limit" } ?? "no limit")"
                     + (cpuLimit != nil ? " · throttled \(throttled)×" : ""))
        let memoryScale = Double(memoryLimit ?? Meter.machineMemory)
        lines.append("  MEMORY " + bar(Double(sample.memoryBytes) / memoryScale, over: memoryLimit != nil) + "  "
                     + "\(formatBytes(sample.memoryBytes)) of \(memoryLimit.map(formatBytes) ?? "no limit") · OOM kills \(oomKills)")
        let pidsScale = Double(pidsLimit ?? Meter.pidMax)
        lines.append("  PIDS   " + bar(Double(sample.pids) / pidsScale, over: pidsLimit != nil) + "  "
                     + "\(sample.pids) of \(pidsLimit.map(String.init) ?? "no limit") · forks refused \(refusedForks)")
        return lines
    }

    /// MemTotal from /proc/meminfo, in bytes (1 GiB if unreadable).
    static let machineMemory: UInt64 = {
        let text = (try? FileSystem.readString("/proc/meminfo")) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
        let kib = line.flatMap { UInt64($0.split(separator: " ").dropFirst().first ?? "") } ?? (1 << 20)
        return kib * 1024
    }()

    /// kernel.pid_max: the most tasks the machine can have.
    static let pidMax: UInt64 = UInt64(((try? FileSystem.readString("/proc/sys/kernel/pid_max")) ?? "").split(separator: "\n").first ?? "") ?? 32768

    func plainLine(_ sample: Sample) -> String {
        "t=\(format1(sample.time))s cpu=\(percent(sample.cpus))\(cpuLimit.map { "/" + percent($0) } ?? "") throttled=\(throttled)"
            + " memory=\(formatBytes(sample.memoryBytes))\(memoryLimit.map { "/" + formatBytes($0) } ?? "") oom_kills=\(oomKills)"
            + " pids=\(sample.pids)\(pidsLimit.map { "/\($0)" } ?? "") forks_refused=\(refusedForks)"
    }

    /// A 30-cell bar; full (red) at the limit.
    func bar(_ fraction: Double, over limited: Bool) -> String {
        let width = 30
        let filled = min(width, max(0, Int((fraction * Double(width)).rounded())))
        let body = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let colored = limited && fraction >= 0.95 ? style.red(body) : limited && fraction >= 0.7 ? style.yellow(body) : style.green(body)
        return "[" + colored + "]"
    }

    /// Forgets the meter on screen (it stays as the act's last picture).
    func finish() {
        if let sample = lastSample, !live { sayWrapped(plainLine(sample), indent: "  ", hanging: "    ") }
        drawnLines = 0
    }

    /// Average CPUs over the samples after the first second (the quota needs a period or two).
    var averageCPUs: Double {
        let steady = samples.filter { $0.time - (samples.first?.time ?? 0) >= 1 }
        guard !steady.isEmpty else { return samples.map(\.cpus).max() ?? 0 }
        return steady.map(\.cpus).reduce(0, +) / Double(steady.count)
    }
}

func percent(_ cpus: Double) -> String { "\(Int((cpus * 100).rounded()))%" }
func format1(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}

/// CLOCK_MONOTONIC in seconds.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Writes raw text (escape sequences) to standard output without a newline.
enum FileDescriptorWriter {
    static func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBufferPointer { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }
}
