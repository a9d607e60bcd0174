// Chapter 03 — cgroup limits under stress (Google's control groups, Linux 2.6.24, 2008).
//
// Namespaces decide what a container can *see*; cgroups decide how much it can *use*.
// This chapter runs three hogs in the chapter 02 container, each under one limit, and
// shows the kernel's own accounting live: a CPU limit slows, a memory limit kills, a
// pids limit refuses forks.
//
//   chapter-03 [--rootfs DIR]                                   the three acts
//   chapter-03 [--cpus N] [--memory SIZE] [--pids N] -- COMMAND  COMMAND under those limits
//   --plot FILE.svg                                             a chart for slides
//   chapter-03 talk                                             only the talk's cgroup-tools demo
//
// Read next: cgroups(7), Documentation/admin-guide/cgroup-v2.rst, sched(7) (CFS bandwidth).
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

@main
struct Chapter03: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-03",
        abstract: "cgroup limits under stress: CPU throttled, memory OOM-killed, forks refused.",
        subcommands: [Demo.self, Talk.self, Init.self],
        defaultSubcommand: Demo.self)
}

let style = Style.standardOutput

/// The namespaces of the chapter 02 container the hogs run in. Not `user` (cgroups are
/// written by root on the host) and not `cgroup` (see the notes: its root is fixed at clone).
let containerNamespaces: Namespaces = [.uts, .pid, .mount, .ipc, .network]

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The live demo (the default), or run COMMAND under the given limits after --.")

    @Option(name: .long, help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR"))
    var rootfs: String?
    @Option(help: ArgumentHelp("CPU limit in CPUs, e.g. 0.5.", valueName: "N")) var cpus: String?
    @Option(help: ArgumentHelp("Memory limit, e.g. 64M or 1.5G.", valueName: "SIZE")) var memory: String?
    @Option(help: ArgumentHelp("Swap allowed besides --memory (default 0, so the limit is felt).", valueName: "SIZE")) var swap: String?
    @Option(help: ArgumentHelp("Most processes at once, e.g. 32.", valueName: "N")) var pids: String?
    @Option(help: ArgumentHelp("Write a chart of CPU and memory over time.", valueName: "FILE.svg")) var plot: String?
    @Option(help: ArgumentHelp("Seconds each act runs (the memory act ends at the OOM kill).", valueName: "SECONDS"))
    var seconds: Double = 8
    @Argument(parsing: .postTerminator, help: "A command to run under the limits.") var command: [String] = []

    func run() throws {
        continueOnClosedOutput()
        var code: Int32 = 0
        reportingErrors("chapter-03") {
            // Every value is checked before anything is created.
            var limits = ResourceLimits()
            limits.cpus = try cpus.map(ResourceLimits.parseCPUs)
            limits.memoryBytes = try memory.map(ResourceLimits.parseSize)
            limits.swapBytes = try swap.map { $0 == "0" ? 0 : try ResourceLimits.parseSize($0) }
            if swap == nil && limits.memoryBytes != nil {
                // No swap by default, so that the memory limit is felt. Where the kernel
                // cannot limit swap and the host swaps, say so instead of failing.
                if !Cgroup.hostHasSwap() || Cgroup.swapAccounting() {
                    limits.swapBytes = 0
                } else {
                    sayWrapped("note: this host swaps and cannot limit swap per cgroup: the hog may swap before the OOM kill (sudo swapoff -a avoids it)", hanging: "      ")
                }
            }
            limits.pids = try pids.map(ResourceLimits.parsePids)
            if swap != nil && memory == nil { throw IsolationError("--swap needs --memory", hint: "for example: --memory 64M --swap 32M") }
            if let plot, !plot.hasSuffix(".svg") { throw IsolationError("--plot writes SVG: name the file FILE.svg") }
            guard seconds > 0 && seconds <= 600 else { throw IsolationError("--seconds must be between 0 and 600") }
            try Container.preflight(containerNamespaces, rootWhy: "creating cgroups and namespaces needs root")
            let cgroups = Preflight.cgroups()
            try Preflight.require([cgroups])
            let (root, layer) = try RootFilesystem.forRun(given: rootfs, log: note)
            defer { layer?.remove() }
            blockSignalsForSupervision()  // Ctrl-C: we stop the act and remove its cgroup first

            var segments: [PlotSegment] = []
            if command.isEmpty {
                // stress-ng is optional: without it the acts use shell loops.
                if rootfs != nil { try root.requirePrograms(["sh", "head", "tr", "sleep"], for: "the three acts") }
                say(style.bold("Chapter 03 · cgroup limits under stress"))
                sayWrapped("2006–2008: Google's engineers add control groups to Linux (2.6.24). LMCTFY, Borg and every container since put each workload in one.", hanging: "")
                sayWrapped("This host: \(cgroups.detail).", hanging: "  ")
                // The talk's own demo first, when its tools are installed.
                if TalkDemo.missing().isEmpty {
                    if try TalkDemo(seconds: max(1, min(3, Int(seconds)))).run().interrupted { code = 130 }
                } else {
                    sayWrapped("(The talk's own demo uses cgroup-tools and stress: \(TalkDemo.installLine), then run chapter-03 talk.)", hanging: " ")
                }
                for act in Act.all(seconds: seconds, stressNG: Command.find("stress-ng", root: root.path) != nil) where code == 0 {
                    let result = try run(act, root: root, offset: segments.last?.samples.last?.time ?? 0)
                    segments.append(PlotSegment(title: act.title, samples: result.meter.samples, limits: act.limits))
                    if result.interrupted { code = 130; break }
                }
                if code == 0 {
                    say()
                    say(style.bold("A CPU limit slows, a memory limit kills, a pids limit refuses."))
                    say("Next: chapter 04 puts namespaces and cgroups together, as an OCI runtime does.")
                }
            } else {
                let act = Act(title: "your command", limits: limits, command: command, stopAfter: nil,
                              explanation: "runs until it exits")
                let result = try run(act, root: root, offset: 0)
                segments.append(PlotSegment(title: command.joined(separator: " "), samples: result.meter.samples, limits: limits))
                code = result.interrupted ? 130 : result.status.shellCode
            }
            if let plot, code != 130 {
                try Plot.write(segments, to: FilePath(plot))
                say("Chart written to \(plot)")
            }
        }
        if code != 0 { throw ExitCode(code) }
    }

    struct ActResult {
        var status: ExitStatus
        var meter: Meter
        var interrupted: Bool
    }

    /// One act: a cgroup with `act.limits`, the container started *in* it (joined before
    /// exec), the meter until the workload ends or the act's time is up, then clean-up.
    func run(_ act: Act, root: RootFilesystem, offset: Double) throws -> ActResult {
        say()
        say(style.bold("▶ \(act.title)"))
        sayWrapped(act.explanation, indent: "  ", hanging: "  ", style: style.dim)
        say(style.dim("  1. create the cgroup and write its limits:"))
        let cgroup = try Cgroup.create(name: "chapter-03-\(getpid())-\(act.number)", limits: act.limits, log: { path, value in
            sayWrapped("echo \"\(value)\" > \(path)", indent: "     ", hanging: "         ", style: style.syscall)
        })
        defer {
            cgroup.destroy()
            sayWrapped("4. kill what is left and rmdir the cgroup: \(cgroup.relativePath) removed", indent: "  ", hanging: "     ", style: style.dim)
        }
        sayWrapped("2. start the container (chapter 02) and, while it waits before exec, join it:", indent: "  ", hanging: "     ", style: style.dim)
        let fds = try makePipe()
        let output = FileDescriptor(rawValue: fds.write)
        let container: ChildProcess
        do {
            container = try Container.start(
                arguments: ["chapter-03", "init", "--rootfs", root.path.string, "--"] + act.command,
                environment: containerEnvironment(),
                namespaces: containerNamespaces,
                standardOutput: output, standardError: output,
                beforeRelease: { pid in
                    try cgroup.addProcess(pid)
                    sayWrapped("(PID \(pid) is still held before execve: the workload never runs unlimited)", indent: "     ", hanging: "      ", style: style.dim)
                })
        } catch {
            close(fds.read); close(fds.write)
            throw error
        }
        close(fds.write)
        defer { close(fds.read) }
        sayWrapped("3. watch the kernel's accounting (\(cgroup.version == .v2 ? "cpu.stat, memory.current, memory.events, pids.current, pids.events" : "cpuacct.usage, cpu.stat, memory.usage_in_bytes, memory.oom_control, pids.current, pids.events")):",
                   indent: "  ", hanging: "     ", style: style.dim)
        let meter = Meter(cgroup: cgroup, limits: act.limits, clockOffset: offset)
        let (status, interrupted) = supervise(container, output: fds.read, meter: meter, stopAfter: act.stopAfter)
        meter.finish()
        if interrupted {
            say(style.yellow("  interrupted: stopping the container and removing its cgroup"))
        } else {
            sayWrapped(act.summary(meter, status), indent: "  ", hanging: "    ")
        }
        return ActResult(status: status, meter: meter, interrupted: interrupted)
    }

    /// The meter loop: poll the workload's output, sample the cgroup five times a
    /// second, and pick up signals (blocked, so read with sigtimedwait).
    func supervise(_ container: ChildProcess, output: Int32, meter: Meter, stopAfter: Double?) -> (ExitStatus, Bool) {
        var pending = ""
        var outputOpen = true
        var status: ExitStatus? = nil
        var interrupted = false
        var stopped = false
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGCHLD] + forwardedSignals { sigaddset(&signals, signal) }
        var nextSample = 0.0
        while status == nil || outputOpen {
            var fd = pollfd(fd: outputOpen ? output : -1, events: Int16(POLLIN), revents: 0)
            _ = poll(&fd, 1, 50)
            if outputOpen && fd.revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 8192)
                let n = read(output, &buffer, buffer.count)
                if n > 0 {
                    pending += String(decoding: buffer[0..<n], as: UTF8.self)
                    while let newline = pending.firstIndex(of: "\n") {
                        meter.workloadOutput(String(pending[..<newline]))
                        pending = String(pending[pending.index(after: newline)...])
                    }
                } else if n == 0 || errno != EINTR {
                    outputOpen = false
                    if !pending.isEmpty { meter.workloadOutput(pending) }
                }
            }
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            var info = siginfo_t()
            while true {
                let signal = sigtimedwait(&signals, &info, &zero)
                if signal <= 0 { break }
                if signal != SIGCHLD && !interrupted {
                    interrupted = true
                    _ = try? container.signal(SIGKILL)
                }
            }
            if status == nil {
                var raw: Int32 = 0
                if waitpid(container.pid, &raw, WNOHANG) == container.pid {
                    status = ExitStatus(waitStatus: raw)
                }
            }
            if status == nil { meter.samplePids() }
            if meter.elapsed >= nextSample && status == nil {
                meter.update()
                nextSample = meter.elapsed + 0.2
            }
            if let stopAfter, !stopped, meter.elapsed >= stopAfter {
                stopped = true
                meter.event("time is up: the chapter stops the act (SIGKILL to the container's PID 1)")
                _ = try? container.signal(SIGKILL)
            }
            if interrupted && status != nil { break }
        }
        meter.update()
        return (status ?? .signaled(SIGKILL), interrupted)
    }
}

/// The environment inside the container.
func containerEnvironment() -> [String] {
    ["PATH=\(Exec.containerPath)", "HOME=/root", "TERM=\(environmentValue("TERM") ?? "xterm")"]
}
