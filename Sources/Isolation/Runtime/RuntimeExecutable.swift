import CIsolation
import Glibc
import SystemPackage

/// The runtime's own executable, as the processes that enter a container run it.
///
/// CVE-2019-5736: a process inside the container sees the runtime's processes that are in
/// its PID namespace (the init until its execve, the process `exec` starts until its
/// execve, the runtime itself when a `#!/proc/self/exe` program makes the kernel run it
/// there). It opens their /proc/PID/exe, which is the runtime's executable on the host,
/// waits until nothing runs it, reopens it for writing and replaces the runtime that the
/// next `create` runs as root. Two defences, as runc and crun take them:
///
/// - those processes run a copy the container cannot write: a read-only mount of the
///   executable that is attached nowhere (open_tree(2) + mount_setattr(2), Linux 5.12;
///   nothing is copied), else a sealed copy in memory (memfd_create(2), as runc did);
/// - they are not dumpable until their execve (prctl PR_SET_DUMPABLE 0), so that a
///   process without CAP_SYS_PTRACE cannot open their /proc/PID/exe at all.
public enum RuntimeExecutable {
    /// How the copy is made.
    public enum Kind: String, Sendable {
        /// The executable is on a read-only mount already: it is used as it is.
        case readOnlyAlready = "read-only already"
        /// A read-only bind mount of it, attached nowhere.
        case readOnlyMount = "read-only mount"
        /// A sealed copy in memory.
        case sealedMemory = "sealed memfd"
    }

    /// `ISOLATION_RUNTIME_COPY=memfd` makes the sealed copy even where a read-only mount
    /// would do (to compare their costs, and to test both).
    static var forceMemory: Bool { getenv("ISOLATION_RUNTIME_COPY").map { String(cString: $0) == "memfd" } ?? false }

    /// Our executable as a descriptor (close-on-exec) that nobody can write through: give it
    /// to `SpawnOptions.executableDescriptor`, or `reexecute`.
    public static func protectedCopy() throws -> (descriptor: FileDescriptor, kind: Kind) {
        let exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        guard exe >= 0 else { throw StageError(stage: "open /proc/self/exe", errno: currentErrno()) }
        if iso_cannot_be_written(exe) == 1 { return (FileDescriptor(rawValue: exe), .readOnlyAlready) }
        if !forceMemory {
            let clone = iso_readonly_clone("/proc/self/exe")
            if clone >= 0 { close(exe); return (FileDescriptor(rawValue: clone), .readOnlyMount) }
        }
        // ENOSYS before 5.12, EPERM without CAP_SYS_ADMIN over our mount namespace.
        let copy = iso_sealed_copy(exe, "isorun")
        let error = currentErrno()
        close(exe)
        guard copy >= 0 else {
            throw StageError(stage: "make a sealed copy of /proc/self/exe (memfd_create, sendfile, F_ADD_SEALS)", errno: error,
                             detail: "the container's processes would run the runtime's own executable, which they could overwrite (CVE-2019-5736)")
        }
        return (FileDescriptor(rawValue: copy), .sealedMemory)
    }

    /// Whether we run from a copy nobody can write (a read-only mount, a sealed memfd).
    public static var isProtected: Bool {
        let exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        guard exe >= 0 else { return false }
        defer { close(exe) }
        return iso_cannot_be_written(exe) == 1
    }

    /// Starts this program again from a protected copy, with the same arguments and
    /// environment (execveat(2)); returns at once when we already run from one. A command
    /// whose own process enters a container (`exec`) calls this first.
    public static func reexecuteProtected(arguments: [String] = CommandLine.arguments) throws {
        if isProtected { return }
        let (copy, _) = try protectedCopy()
        var environment: [String] = []
        var entry = environ
        while let pointer = entry.pointee { environment.append(String(cString: pointer)); entry += 1 }
        withCStringArray(arguments) { argv in
            withCStringArray(environment) { envp in
                argv.withUnsafeBufferPointer { argvBuffer in
                    envp.withUnsafeBufferPointer { envpBuffer in
                        _ = iso_execveat(copy.rawValue, argvBuffer.baseAddress, envpBuffer.baseAddress)
                    }
                }
            }
        }
        let error = currentErrno()
        try? copy.close()
        throw StageError(stage: "execveat(the read-only copy of /proc/self/exe)", errno: error)
    }

    /// prctl(PR_SET_DUMPABLE, 0): our /proc/PID files become root's, and another process
    /// needs CAP_SYS_PTRACE to open our /proc/PID/exe, fd or mem, or to ptrace us. execve
    /// makes a process dumpable again, so the program a container runs is as usual.
    public static func becomeNonDumpable() throws {
        if iso_set_dumpable(0) != 0 { throw StageError(stage: "prctl(PR_SET_DUMPABLE, 0)", errno: currentErrno()) }
    }
}
