// Exercise 08: does every escape of chapter 08's catalogue fail against your config?
// The checker writes your config with the exercise, then runs its own chapter-08 on it.
import Glibc
import Isolation
import SystemPackage

func checkBreakingOut(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("08")
        let config = folder.appending("config.json")
        let written = try Command.run(FilePath(program), ["--output", config.string], environment: context.environment())
        let todos = written.standardError.todoSteps
        guard report.check("exercise-08 writes your config", written.status == .exited(0) && FileSystem.exists(config),
                           observed: "exercise-08 --output \(config) \(written.status)" + (todos.isEmpty ? "" : ", at a TODO: " + todos.map { "step \"\($0)\"" }.joined(separator: ", ")),
                           expected: "exited 0, and the file written",
                           hint: (todos.isEmpty ? "what it said:\n" : "write that step in Exercises/08-breaking-out/Steps.swift:\n") + indent(written.standardError)) else {
            report.skipped("the catalogue (no config to run it against)")
            return
        }
        // Our own chapter-08: the catalogue is not the learner's to change.
        let chapter = Identity.executablePath().removingLastComponent().appending("chapter-08")
        guard report.check("chapter-08 is built beside the checker", FileSystem.exists(chapter), observed: chapter.string,
                           expected: "the catalogue's program", hint: "swift build --product chapter-08") else { return }
        let table = try Command.run(chapter, ["--config", config.string], environment: context.environment())
        var cells: [String: String] = [:]
        for line in table.standardOutput.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            if words.count == 2, escapeHints[words[0]] != nil { cells[words[0]] = words[1] }
        }
        guard report.check("the catalogue ran against your config", table.status == .exited(0) && cells.count == escapeHints.count,
                           observed: "chapter-08 --config \(config) \(table.status), \(cells.count) escapes tried",
                           expected: "exited 0, \(escapeHints.count) escapes tried",
                           hint: "the runtime could not run your config, or the host was changed:\n" + indent(table.standardError + table.standardOutput)) else { return }
        for (name, hint) in escapeHints.sorted(by: { $0.key < $1.key }) {
            let cell = cells[name] ?? "?"
            report.check("the \(name) escape is stopped", cell != "ESCAPED" && cell != "?",
                         observed: "\(name): \(cell)", expected: "an errno (n/a where this machine offers no target)", hint: hint)
        }
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a folder in /tmp", hint: "run `swift run doctor`")
    }
}

/// Each escape of chapter 08, and what must become true when it gets through.
private let escapeHints: [String: String] = [
    "nested": "a process in the container can still make namespaces of its own (unshare(2)), and holds every capability in them: a layer must refuse those system calls, whoever calls them. seccomp(2); Chapters/08-breaking-out/README.md, \"nested\"",
    "setuid": "root in the container is root on the host: a program it leaves set-user-ID in a shared folder runs as root for anyone. user_namespaces(7): keep the user namespace",
    "chroot": "chroot(2) let the process climb out: the container needs its own mount namespace and pivot_root (chapter 02)",
    "disk": "the container may make device nodes and mount: capabilities(7), CAP_MKNOD and CAP_SYS_ADMIN must not be in its sets",
    "shocker": "open_by_handle_at(2) works: CAP_DAC_READ_SEARCH must not be in its sets (capabilities(7))",
    "core-pattern": "the container writes the host's /proc/sys: proc(5), and the runtime-spec's readonlyPaths",
    "sysrq": "the container may write /proc/sysrq-trigger: proc(5), and the runtime-spec's readonlyPaths",
    "kcore": "the container reads the kernel's memory: capabilities(7) (CAP_SYS_RAWIO), and maskedPaths",
    "dev-mem": "the container reads the machine's physical memory: capabilities(7), CAP_MKNOD and CAP_SYS_RAWIO must not be in its sets",
    "keyring": "the container reads a key of the host's root from root's user keyring: keyrings(7); a layer must refuse keyctl(2), or root inside must be another user (user_namespaces(7))",
    "firmware": "the container reads /sys/firmware: the runtime-spec's maskedPaths",
    "signal": "the container reaches the host's processes: pid_namespaces(7)",
    "ptrace": "the container traces the host's processes: pid_namespaces(7), ptrace(2)",
    "module": "the container loads kernel modules: capabilities(7), CAP_SYS_MODULE",
    "clock": "the container may set the clock: capabilities(7), CAP_SYS_TIME",
    "raw-socket": "the container opens a raw socket beside the host's interface: network_namespaces(7), CAP_NET_RAW",
    "mount-race": "a mount of your config landed outside the root, through a symlink swapped in a shared folder: no config fixes that, the runtime must mount onto the folder it opened inside the root (openat2(2) RESOLVE_IN_ROOT; Chapters/04-oci-bundle/README.md, \"The CVEs that shaped runc\")",
    "runtime-exe": "the container wrote the runtime's own file through /proc/PID/exe while an exec came in: no config fixes that, the runtime must enter from a file the container cannot write (Chapters/04-oci-bundle/README.md, \"What isorun defends against\")",
]

/// `check 08 --hint`: level 1 names the API, level 2 the shape of the answer.
let breakingOutHints: [StepHint] = [
    StepHint(step: "missing-layer",
             api: "config.json's linux.seccomp (OCIConfig.Seccomp, Sources/Isolation/OCI): a default action and rules by syscall name, compiled to BPF for every ABI of the machine. The library holds a deny-list profile for containers, `OCIConfig.Seccomp.containerDefault` (chapter 08's rung 4).",
             shape: "One assignment to config.linux?.seccomp. The escapes that still get through name the calls to refuse: unshare, setns, mount, clone with CLONE_NEW* flags."),
]
