// The talk's own demo. Its slide "Let's Create a Container Using Namespaces & Cgroups"
// starts with `sudo apt install cgroup-tools` and `sudo apt install stress`: libcgroup's
// command-line tools make a cgroup (cgcreate), write its limits (cgset) and start a
// program in it (cgexec). This act runs them as the talk would have, then reads back the
// files they wrote and makes the same cgroup with this project's `Cgroup` API: the same
// files, the same values. There is no magic in either: a cgroup is a folder, a limit is
// a line written into one of its files, and joining is writing a PID into cgroup.procs.
//
// Read next: cgcreate(1), cgset(1), cgexec(1), cgdelete(1), stress(1), cgroups(7).
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

struct TalkDemo {
    /// The programs the demo runs, and the Debian packages that bring them.
    static let programs = ["cgcreate", "cgset", "cgexec", "cgdelete", "stress"]
    static let installLine = "sudo apt-get install cgroup-tools stress"

    /// The programs that are not installed (empty: the demo can run).
    static func missing() -> [String] { programs.filter { Command.find($0) == nil } }

    /// On v1, cpuacct (the CPU accounting read below) usually shares cpu's hierarchy
    /// (`cpu,cpuacct`): a cgroup made for cpu is then made for cpuacct too.
    static var cpuacctWithCPU: Bool {
        (try? FileSystem.realPath("/sys/fs/cgroup/cpu")) == (try? FileSystem.realPath("/sys/fs/cgroup/cpuacct"))
    }

    /// Seconds each stress run lasts.
    var seconds: Int
    /// The CPU limit: a fifth of a CPU, so the throttling is plain to see.
    let quota: UInt64 = 20_000, period: UInt64 = 100_000
    /// The memory limit, and what the memory hog asks for: twice as much.
    let memoryLimit: UInt64 = 64 << 20, hogBytes = "128M"

    struct Outcome {
        var cpusUsed: Double
        var oomKills: UInt64
        var interrupted: Bool
    }

    /// `isolation/talk-PID`: below the project's prefix like every cgroup it makes, so
    /// `doctor --clean` finds a leftover.
    var path: String { "isolation/talk-\(getpid())" }

    func run() throws -> Outcome {
        let v2 = CgroupMode.detect() == .unified
        // v1 has one hierarchy per controller (cpu and cpuacct share one on most hosts);
        // v2 has one tree, where CPU accounting comes with the cpu controller.
        let controllers = v2 || TalkDemo.cpuacctWithCPU ? "cpu,memory" : "cpu,cpuacct,memory"
        let group = "\(controllers):\(path)"
        say()
        say(style.bold("▶ The talk's demo · cgroup-tools and stress") + style.dim("  (its cgroup slide)"))
        say(style.dim("  libcgroup's tools as the talk ran them (cgroup \(v2 ? "v2" : "v1") here), each run as printed."))

        // Whatever happens below, the cgroup goes: cgdelete, then our own clean-up, which
        // also kills a stress that an interrupt left behind.
        var created = false
        defer {
            if created {
                shell(["cgdelete", "-r", "-g", group])
                if let leftover = try? Cgroup.existing(path: path) { leftover.destroy() }
            }
        }

        // 1. cgcreate: one folder per controller's hierarchy (v1), or one folder (v2).
        try shell(["cgcreate", "-g", group], must: true)
        created = true
        let cgroup = try Cgroup.existing(path: path)
        if v2, let dir = cgroup.directory(for: ""), !FileSystem.exists(dir.appending("cpu.max")) {
            // A v2 controller exists in a folder only when its parent lists it in
            // cgroup.subtree_control; cgroup-tools 2.0 does not always turn it on.
            say(style.yellow("  note: ") + "cgcreate left the cpu controller off here; turning it on in the parents as the kernel requires:")
            for parent in ["/sys/fs/cgroup", "/sys/fs/cgroup/isolation"] {
                say("  " + style.syscall("echo \"+cpu +memory\" > \(parent)/cgroup.subtree_control"))
                try FileSystem.writeFile(FilePath(parent + "/cgroup.subtree_control"), "+cpu +memory")
            }
        }

        // 2. cgset: each -r writes one value into one file of the cgroup.
        var settings = v2
            ? ["cpu.max=\(quota) \(period)", "memory.max=64M"]
            : ["cpu.cfs_period_us=\(period)", "cpu.cfs_quota_us=\(quota)", "memory.limit_in_bytes=64M"]
        // Without a swap limit, a host that swaps would let the hog swap instead of dying.
        let swapFile = v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes"
        let memoryDirectory = cgroup.directory(for: v2 ? "" : "memory")
        if let memoryDirectory, FileSystem.exists(memoryDirectory.appending(swapFile)) {
            settings.append(v2 ? "memory.swap.max=0" : "memory.memsw.limit_in_bytes=64M")
        } else if Cgroup.hostHasSwap() {
            say(style.yellow("  note: ") + "this host swaps and cannot limit swap per cgroup: the memory hog may swap before it is killed")
        }
        for setting in settings { try shell(["cgset", "-r", setting, path], must: true) }

        // 3. What those tools wrote: the files, read back.
        say(style.dim("  What cgcreate and cgset wrote, read back (paths below /sys/fs/cgroup/):"))
        var written: [(file: String, value: String)] = []
        for setting in settings {
            let file = String(setting.prefix(while: { $0 != "=" }))
            let controller = v2 ? "" : (file.hasPrefix("memory.") ? "memory" : "cpu")
            guard let dir = cgroup.directory(for: controller) else { continue }
            let value = readValue(dir.appending(file))
            written.append((file, value))
            let shown = String(dir.appending(file).string.dropFirst("/sys/fs/cgroup/".count))
            say("    " + pad(shown, 56) + " " + value)
        }

        // 4. The same limits through this project's API: the same files, the same values.
        say(style.dim("  The same limits written by this project's Cgroup API, as the acts below do:"))
        var limits = ResourceLimits(cpus: Double(quota) / Double(period), memoryBytes: memoryLimit)
        limits.cpuPeriodMicroseconds = Int(period)
        if settings.contains(where: { $0.hasPrefix(swapFile) }) { limits.swapBytes = 0 }
        let ours = try Cgroup.create(name: "talk-api-\(getpid())", limits: limits, log: { path, value in
            say("    " + style.syscall("echo \(value) > \(path.string.dropFirst("/sys/fs/cgroup/".count))"))
        })
        var same = 0
        for (file, value) in written {
            let controller = v2 ? "" : (file.hasPrefix("memory.") ? "memory" : "cpu")
            guard let dir = ours.directory(for: controller) else { continue }
            let theirs = readValue(dir.appending(file))
            if theirs == value { same += 1 } else {
                say(style.yellow("    differs: ") + "\(file): cgset \(value), Cgroup \(theirs)")
            }
        }
        ours.destroy()
        say("  " + style.bold("→ ") + "\(same) of \(written.count) files hold the same value either way:")
        say("    cgset is one way to write a file.")
        if interruptRequested() { return Outcome(cpusUsed: 0, oomKills: 0, interrupted: true) }

        // 5. cgexec: the new process writes its own PID into cgroup.procs, then execs.
        let before = cgroup.stats().cpuUsageMicroseconds ?? 0
        let started = now()
        try shell(["cgexec", "-g", group, "stress", "--cpu", "1", "--timeout", "\(seconds)s"], must: true)
        let wall = now() - started
        let stats = cgroup.stats()
        let used = Double((stats.cpuUsageMicroseconds ?? before) - before) / 1_000_000
        let cpus = wall > 0 ? used / wall : 0
        let limit = Double(quota) / Double(period)
        var line = "\(fixed(used)) s of CPU in \(fixed(wall)) s: \(fixed(cpus)) CPU under a \(fixed(limit)) limit"
        if let throttled = stats.throttledPeriods { line += ", \(throttled)× throttled" }
        say("  " + style.bold("→ ") + line)
        say("    one busy loop, slowed, not killed")
        if interruptRequested() { return Outcome(cpusUsed: cpus, oomKills: 0, interrupted: true) }

        // The memory hog gets a whole CPU again (a limit changed while the cgroup lives):
        // at a fifth of a CPU a slow machine may not reach 64M before its time is up.
        try shell(["cgset", "-r", v2 ? "cpu.max=max \(period)" : "cpu.cfs_quota_us=-1", path], must: true)
        // It ends at the OOM kill; the timeout only stops a hog that is never killed.
        try shell(["cgexec", "-g", group, "stress", "--vm", "1", "--vm-bytes", hogBytes, "--timeout", "\(max(seconds, 10))s"], must: false)
        let kills = cgroup.stats().oomKills ?? 0
        let source = v2 ? "memory.events" : "memory.oom_control"
        say("  " + style.bold("→ ") + "oom_kill \(kills) in \(source): the hog asked for \(hogBytes)")
        say("    under a 64M limit, and the kernel killed it")

        // 6. cgdelete removes the folders (the defer above checks it did).
        created = false
        shell(["cgdelete", "-r", "-g", group])
        if let leftover = try? Cgroup.existing(path: path), leftover.directories.values.contains(where: { FileSystem.exists($0) }) {
            leftover.destroy()
        }
        if v2 {
            say(style.dim("  On cgroup v2, cgroup-tools 2.0 passes file names through: write v2's names"))
            say(style.dim("  (cpu.max, memory.max), not v1's (cpu.cfs_quota_us); 3.0 translates (cgxset)."))
            say(style.dim("  Its daemon cgrulesengd and lssubsys think in v1's per-controller hierarchies."))
        }
        return Outcome(cpusUsed: cpus, oomKills: kills, interrupted: false)
    }

    /// Prints `$ COMMAND` and runs it on the host; its output is shown dimmed, indented.
    @discardableResult
    func shell(_ words: [String], must: Bool = false) throws -> ExitStatus {
        // As a shell would take it, continued with a backslash to stay within 80 columns.
        var lines = ["$"]
        for word in words.map(shellQuote) {
            if lines[lines.count - 1].count + word.count > 72 { lines[lines.count - 1] += " \\"; lines.append("   ") }
            lines[lines.count - 1] += " " + word
        }
        for line in lines { say("  " + style.syscall(line)) }
        guard let program = Command.find(words[0]) else {
            throw IsolationError("\(words[0]) is not installed", hint: TalkDemo.installLine)
        }
        let result = try Command.run(program, Array(words.dropFirst()))
        for line in (result.standardOutput + result.standardError).split(separator: "\n") {
            say(style.dim("      " + line))
        }
        if must && result.status != .exited(0) {
            throw IsolationError("\(words[0]) failed (\(result.status))", hint: "see its message above")
        }
        return result.status
    }

    /// `shell` for clean-up, where a failure is only reported.
    func shell(_ words: [String]) {
        _ = try? shell(words, must: false) as ExitStatus
    }

    /// A cgroup file's value without its newline ("?" when it cannot be read).
    func readValue(_ path: FilePath) -> String {
        guard let text = try? FileSystem.readString(path) else { return "?" }
        return text.split(whereSeparator: { $0 == "\n" }).first.map(String.init) ?? ""
    }

    /// `x` with two decimals (no Foundation in the chapters).
    func fixed(_ x: Double) -> String {
        let hundredths = Int((x * 100).rounded())
        let fraction = abs(hundredths) % 100
        return "\(hundredths < 0 ? "-" : "")\(abs(hundredths) / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

/// True when Ctrl-C (or another forwarded signal) arrived while the signals are blocked
/// (`blockSignalsForSupervision`); consumes it.
func interruptRequested() -> Bool {
    var set = sigset_t()
    sigemptyset(&set)
    for signal in forwardedSignals { sigaddset(&set, signal) }
    var zero = timespec(tv_sec: 0, tv_nsec: 0)
    var info = siginfo_t()
    return sigtimedwait(&set, &info, &zero) > 0
}

/// `chapter-03 talk`: only the talk's demo.
struct Talk: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "talk",
        abstract: "The talk's own demo: cgcreate, cgset and cgexec with stress (apt: cgroup-tools stress).")

    @Option(help: ArgumentHelp("Seconds each stress run lasts.", valueName: "SECONDS"))
    var seconds: Int = 3

    func run() throws {
        continueOnClosedOutput()
        var code: Int32 = 0
        reportingErrors("chapter-03") {
            guard (1...60).contains(seconds) else { throw IsolationError("--seconds must be between 1 and 60") }
            try Container.preflight([], rootWhy: "cgcreate and cgexec write to /sys/fs/cgroup, which needs root")
            try Preflight.require([Preflight.cgroups()])
            let missing = TalkDemo.missing()
            guard missing.isEmpty else {
                throw IsolationError("the talk's demo needs \(missing.joined(separator: ", "))", hint: TalkDemo.installLine)
            }
            blockSignalsForSupervision()
            let outcome = try TalkDemo(seconds: seconds).run()
            if outcome.interrupted { code = 130 }
        }
        if code != 0 { throw ExitCode(code) }
    }
}
