// Exercise 08, stretch — a seccomp filter written by hand, one BPF instruction at a time,
// that no second door of the kernel walks around. Exercise 08's missing layer was a
// profile the library compiled; here you write the program the kernel runs on every
// system call: your steps (Steps.swift) are its first instructions, this file is the
// rest — a container (chapter 04's BundleSetup: namespaces, pivot_root, capabilities,
// no_new_privs) whose process starts under your filter.
//
//   sudo .build/debug/exercise-08-stretch --bundle DIR     run the bundle's process under it
//   .build/debug/exercise-08-stretch --print               your filter, one instruction a line
//   swift run check 08 --stretch
//
// The solution is what chapter 04's compiler writes for a profile (SeccompFilter.swift):
// the arch test and the x32 test that begin each block.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise08Stretch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-08-stretch",
        abstract: "Exercise 08, stretch: a seccomp filter by hand that the i386 and x32 ABIs cannot walk around (your steps: Steps.swift).",
        subcommands: [RunBundle.self, Init.self],
        defaultSubcommand: RunBundle.self)
}

/// Your filter: the three steps, in order. Each falls through to the next for a call it
/// lets go on; the last returns for every call that reaches it.
func yourFilter() throws -> SeccompFilter {
    try SeccompFilter(instructions: try checkArchitecture() + refuseX32() + denyTheEscape())
}

/// The parent: read config.json, build your filter (a TODO stops us before anything is
/// made), clone the init in the config's namespaces, wait.
struct RunBundle: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the bundle under your filter (the default).")

    @Option(help: ArgumentHelp("The bundle: a folder with config.json.", valueName: "DIR")) var bundle: String = "."
    @Flag(help: "Print your filter's instructions and stop.") var print = false

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("08-stretch") {
            let filter = try yourFilter()
            if print {
                for (index, instruction) in filter.instructions.enumerated() { say(disassemble(instruction, at: index)) }
                return
            }
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "namespaces and mounts need root")])
            let bundlePath = try FileSystem.realPath(FilePath(bundle))
            let config = try OCIConfig.load(bundle: bundlePath)
            _ = try BundleSetup.rootfs(of: config, bundle: bundlePath)
            guard config.linux?.seccomp == nil else {
                throw IsolationError("config.json has linux.seccomp: here the filter is yours", hint: "remove linux.seccomp from config.json")
            }
            guard config.process?.noNewPrivileges == true else {
                throw IsolationError("config.json lacks process.noNewPrivileges: without it, installing a filter needs CAP_SYS_ADMIN (seccomp(2))",
                                     hint: "set \"noNewPrivileges\": true")
            }
            let kinds = config.linux?.namespaceKinds ?? []
            guard kinds.contains(.mount) else {
                throw IsolationError("config.json has no mount namespace: mounts and pivot_root would change the host", hint: "add {\"type\": \"mount\"} to linux.namespaces")
            }
            guard !kinds.contains(.user) else {
                throw IsolationError("this exercise runs as root without a user namespace", hint: "remove {\"type\": \"user\"} from linux.namespaces")
            }
            blockSignalsForSupervision()
            let child = try Container.start(arguments: ["exercise-08-stretch", "init", "--bundle", bundlePath.string],
                                            environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], namespaces: kinds.subtracting(.cgroup))
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The container's init (hidden): chapter 04's set-up from inside, then your filter as
/// the very last step before execve(2), as runc installs it.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) set up the bundle, install your filter, exec its process.", shouldDisplay: false)

    @Option var bundle: String

    func run() throws {
        runExercise("08-stretch") {
            let config = try OCIConfig.load(bundle: FilePath(bundle))
            guard let process = config.process else { throw IsolationError("config.json has no process") }
            let filter = try yourFilter()
            let setup = BundleSetup(config: config, bundle: FilePath(bundle), namespaces: config.linux?.namespaceKinds ?? [])
            try setup.prepareRoot()   // the mounts, below the root filesystem
            try setup.enterRoot()     // pivot_root
            try setup.applyProcess()  // hostname, capabilities, no_new_privs
            let environment = process.env ?? []
            let path = environment.first(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) } ?? Exec.containerPath
            let program = try Exec.resolve(process.args[0], path: path)
            // seccomp(2): with no_new_privs set, any process may install a filter; from
            // here on every system call of this process and its children goes through it.
            try filter.install()
            try Exec.replaceProcess(program, arguments: process.args, environment: environment)
        }
    }
}

/// One instruction as the kernel's bpf_dbg would show it, with seccomp's names.
func disassemble(_ instruction: SeccompFilter.Instruction, at index: Int) -> String {
    let k = instruction.k
    let hex = "0x" + String(k, radix: 16)
    let target = { (skip: UInt8) in "\(index + 1 + Int(skip))" }
    let text: String
    switch instruction.code {
    case SeccompFilter.loadWord:
        text = "ld  [\(k)]" + (k == SeccompFilter.offsetArch ? "   ; seccomp_data.arch" : k == SeccompFilter.offsetNumber ? "   ; seccomp_data.nr" : "   ; seccomp_data.args…")
    case SeccompFilter.jumpEqual: text = "jeq \(hex), \(target(instruction.jt)), \(target(instruction.jf))"
    case SeccompFilter.jumpGreater: text = "jgt \(hex), \(target(instruction.jt)), \(target(instruction.jf))"
    case SeccompFilter.jumpGreaterEqual: text = "jge \(hex), \(target(instruction.jt)), \(target(instruction.jf))"
    case SeccompFilter.jumpSet: text = "jset \(hex), \(target(instruction.jt)), \(target(instruction.jf))"
    case SeccompFilter.jumpAlways: text = "ja  \(index + 1 + Int(k))"
    case SeccompFilter.andConstant: text = "and \(hex)"
    case SeccompFilter.returnConstant:
        let name: String
        switch k & 0xffff_0000 {
        case SeccompFilter.returnAllow: name = "ALLOW"
        case SeccompFilter.returnKillProcess: name = "KILL_PROCESS"
        case SeccompFilter.returnKillThread: name = "KILL_THREAD"
        case 0x0005_0000: name = "ERRNO(\(errnoName(Errno(rawValue: Int32(k & 0xffff)))))"
        default: name = hex
        }
        text = "ret \(name)"
    default: text = "code 0x\(String(instruction.code, radix: 16)) k \(hex)"
    }
    return (index < 10 ? " " : "") + "\(index): \(text)"
}
