import CIsolation
import Glibc
import SystemPackage

/// What a new process gets besides its program: namespaces, standard streams, and
/// whether it waits for its parent before it execs.
public struct SpawnOptions {
    /// New namespaces for the child, created by clone(2) itself. `.time` is created by
    /// unshare(CLONE_NEWTIME) in the child, because clone(2) cannot take that flag, and
    /// the child then enters it with setns(2) before execve (on every kernel).
    public var namespaces: Namespaces = []
    /// Offsets for a new time namespace, in seconds (time_namespaces(7)).
    public var monotonicOffset: Int64 = 0
    public var boottimeOffset: Int64 = 0
    /// Descriptors for the child's 0, 1 and 2; nil inherits ours.
    public var standardInput: FileDescriptor?
    public var standardOutput: FileDescriptor?
    public var standardError: FileDescriptor?
    /// The child blocks before exec until `ChildProcess.release()`: the parent uses
    /// that window to write the child's uid/gid maps or join it to a cgroup.
    public var waitForRelease = false
    /// After the release, become root (uid and gid 0) of the child's user namespace: a new
    /// one, whose maps the parent wrote meanwhile, or one the parent joined (needs `waitForRelease`).
    public var becomeNamespaceRoot = false
    /// setsid(2) in the child.
    public var newSession = false
    /// After setsid, the child's standard input (a terminal) becomes its controlling
    /// terminal: ioctl(0, TIOCSCTTY), tty_ioctl(4). Needs `newSession`.
    public var controllingTerminal = false
    /// The signal the child gets when its parent dies (prctl PR_SET_PDEATHSIG).
    public var parentDeathSignal: Int32 = 0
    /// chdir(2) to this directory before exec.
    public var workingDirectory: FilePath?
    /// The file to execute, as an open descriptor: execveat(2) with AT_EMPTY_PATH runs it,
    /// and the path given to `spawn` only names it in errors. (A runtime runs its init
    /// from a copy the container cannot write: `RuntimeExecutable`.)
    public var executableDescriptor: FileDescriptor?

    public init() {}
}

/// A process this process started with `spawn`, and nothing else.
///
/// `spawn` calls the C function `iso_spawn`, which clone(2)s and, in the child, runs
/// nothing but system calls until execve(2): no Swift code runs between fork and exec.
public final class ChildProcess {
    public let pid: pid_t
    private var raw: iso_child
    private var execChecked = false
    private let executable: String

    /// Starts `executable` with `arguments` (argv, including argv[0]) and `environment`
    /// ("KEY=value"). Unless `options.waitForRelease` is set, returns once the child
    /// has exec'd, and throws `StageError` if it could not.
    public static func spawn(
        _ executable: FilePath,
        arguments: [String],
        environment: [String],
        options: SpawnOptions = SpawnOptions()
    ) throws -> ChildProcess {
        let timeNamespace = options.namespaces.contains(.time)
        let cloneFlags = options.namespaces.subtracting(.time).rawValue
        let path = executable.string
        var child = iso_child(pid: 0, release_fd: -1, status_fd: -1)
        let result: Int32 = withCStringArray(arguments) { argv in
            withCStringArray(environment) { envp in
                path.withCString { cPath in
                    withOptionalCString(options.workingDirectory?.string) { cwd in
                        argv.withUnsafeBufferPointer { argvBuffer in
                            envp.withUnsafeBufferPointer { envpBuffer in
                                var attr = iso_spawn_attr(
                                    path: cPath,
                                    argv: argvBuffer.baseAddress,
                                    envp: envpBuffer.baseAddress,
                                    clone_flags: cloneFlags,
                                    new_time_namespace: timeNamespace ? 1 : 0,
                                    monotonic_offset_seconds: options.monotonicOffset,
                                    boottime_offset_seconds: options.boottimeOffset,
                                    stdin_fd: options.standardInput?.rawValue ?? -1,
                                    stdout_fd: options.standardOutput?.rawValue ?? -1,
                                    stderr_fd: options.standardError?.rawValue ?? -1,
                                    wait_for_release: options.waitForRelease ? 1 : 0,
                                    become_root: options.becomeNamespaceRoot ? 1 : 0,
                                    new_session: options.newSession ? 1 : 0,
                                    controlling_terminal: options.controllingTerminal ? 1 : 0,
                                    parent_death_signal: options.parentDeathSignal,
                                    working_directory: cwd,
                                    exec_fd: options.executableDescriptor?.rawValue ?? -1)
                                return iso_spawn(&attr, &child)
                            }
                        }
                    }
                }
            }
        }
        if result != 0 {
            let error = currentErrno()
            var hint: String? = nil
            if error == .notPermitted || error == .permissionDenied {
                hint = options.namespaces.isEmpty ? nil : namespacePermissionHint(options.namespaces)
            }
            throw StageError(stage: "clone(\(options.namespaces.isEmpty ? "SIGCHLD" : options.namespaces.subtracting(.time).cloneFlagName))",
                             errno: error, detail: hint)
        }
        let process = ChildProcess(raw: child, executable: path)
        if !options.waitForRelease { try process.checkExec() }
        return process
    }

    private init(raw: iso_child, executable: String) {
        self.raw = raw
        self.pid = raw.pid
        self.executable = executable
    }

    deinit {
        if raw.release_fd >= 0 { close(raw.release_fd) }
        if raw.status_fd >= 0 { close(raw.status_fd) }
    }

    /// Lets a child spawned with `waitForRelease` go on to exec, and reports whether it could.
    public func release() throws {
        if iso_spawn_release(&raw) != 0 {
            // The child is gone already; its status pipe says why.
            try checkExec()
            throw StageError(stage: "release child \(pid)", errno: currentErrno())
        }
        try checkExec()
    }

    private func checkExec() throws {
        guard !execChecked else { return }
        execChecked = true
        var stage: Int32 = 0
        var error: Int32 = 0
        let outcome = iso_spawn_await_exec(&raw, &stage, &error)
        if outcome == 0 { return }
        if outcome < 0 { throw StageError(stage: "read exec status of \(pid)", errno: currentErrno()) }
        // The child failed before exec and exited with 127: reap it, then report.
        _ = try? wait()
        throw StageError(stage: ChildProcess.stageName(stage, executable: executable), errno: Errno(rawValue: error))
    }

    static func stageName(_ stage: Int32, executable: String) -> String {
        switch UInt32(stage) {
        case ISO_STAGE_WAIT_RELEASE.rawValue: return "waiting for the parent"
        case ISO_STAGE_TIME_NAMESPACE.rawValue: return "unshare(CLONE_NEWTIME) and timens_offsets"
        case ISO_STAGE_STDIO.rawValue: return "dup2 of the standard streams"
        case ISO_STAGE_SESSION.rawValue: return "setsid()"
        case ISO_STAGE_PARENT_DEATH.rawValue: return "prctl(PR_SET_PDEATHSIG)"
        case ISO_STAGE_CHDIR.rawValue: return "chdir()"
        case ISO_STAGE_CONTROLLING_TERMINAL.rawValue: return "ioctl(TIOCSCTTY)"
        case ISO_STAGE_ENTER_TIME_NAMESPACE.rawValue: return "setns(/proc/self/ns/time_for_children, CLONE_NEWTIME)"
        case ISO_STAGE_BECOME_ROOT.rawValue: return "setresuid(0, 0, 0) in the new user namespace (is 0 in uidMappings and gidMappings?)"
        case ISO_STAGE_EXEC.rawValue: return "execve(\"\(executable)\")"
        default: return "child setup stage \(stage)"
        }
    }

    private var reaped: ExitStatus?

    /// waitpid(2) for this child, retrying on EINTR.
    @discardableResult
    public func wait() throws -> ExitStatus {
        if let reaped { return reaped }
        var status: Int32 = 0
        try valueOrErrno { waitpid(pid, &status, 0) }
        let result = ExitStatus(waitStatus: status)
        reaped = result
        return result
    }

    /// Marks the child as reaped by someone else (a supervisor's `waitpid(-1)`).
    func markReaped(_ status: ExitStatus) { reaped = status }

    /// kill(2).
    public func signal(_ signal: Int32) throws {
        try valueOrErrno { kill(pid, signal) }
    }
}

/// The `hint` for EPERM when creating namespaces: usually not being root.
func namespacePermissionHint(_ namespaces: Namespaces) -> String {
    if geteuid() == 0 {
        return "root may not create \(namespaces) namespaces here: are we inside a container that forbids it? Run `doctor`."
    }
    if namespaces.contains(.user) {
        return "unprivileged user namespaces look disabled here; `doctor` says which setting to change"
    }
    return "creating \(namespaces) namespaces needs root (CAP_SYS_ADMIN); add the user namespace to do it unprivileged"
}

func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let string else { return try body(nil) }
    return try string.withCString { try body($0) }
}
