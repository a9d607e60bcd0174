// CIsolation: the few things Swift's Glibc module cannot express.
//
// Every symbol here starts with `iso_`. Each one is here for a reason that is stated
// next to it; everything else lives in Swift, in the `Isolation` module.
//
// Why a C shim at all?
// - clone(2) must be followed, in the child, by nothing but system calls until execve(2):
//   the child of a multi-threaded (or Swift-runtime) process may only call
//   async-signal-safe functions. Writing that window in C guarantees that no Swift code
//   (no allocation, no runtime lock, no retain/release) runs between fork and exec.
// - unshare(2), setns(2), pipe2(2) and the CLONE_NEW* constants are only declared by
//   glibc under _GNU_SOURCE, which Swift's Glibc module does not define.
// - pivot_root(2) has no glibc wrapper at all; prctl(2) and syscall(2) are variadic,
//   which Swift cannot call.
#ifndef CISOLATION_H
#define CISOLATION_H

#include <sys/types.h>
#include <stdint.h>
// setxattr(2): overlayfs keeps an opaque directory as the xattr trusted.overlay.opaque.
#include <sys/xattr.h>

// MARK: Namespace flags (see namespaces(7)). <sched.h> hides them without _GNU_SOURCE.
enum {
    ISO_CLONE_NEWNS = 0x00020000,     // mount namespace, Linux 2.4.19
    ISO_CLONE_NEWCGROUP = 0x02000000, // cgroup namespace, Linux 4.6
    ISO_CLONE_NEWUTS = 0x04000000,    // hostname and NIS domain name, Linux 2.6.19
    ISO_CLONE_NEWIPC = 0x08000000,    // System V IPC and POSIX message queues, Linux 2.6.19
    ISO_CLONE_NEWUSER = 0x10000000,   // user and group IDs, capabilities, Linux 3.8
    ISO_CLONE_NEWPID = 0x20000000,    // process IDs, Linux 2.6.24
    ISO_CLONE_NEWNET = 0x40000000,    // network devices, stacks, ports, Linux 2.6.29
    ISO_CLONE_NEWTIME = 0x00000080,   // CLOCK_MONOTONIC/BOOTTIME offsets, Linux 5.6
};

// MARK: Spawning a child: clone(2) ... execve(2) with nothing but system calls between.

/// Where the child failed before (or at) execve, reported through a close-on-exec pipe.
enum iso_spawn_stage {
    ISO_STAGE_NONE = 0,
    ISO_STAGE_WAIT_RELEASE = 1, // waiting for the parent (uid/gid maps)
    ISO_STAGE_TIME_NAMESPACE = 2, // unshare(CLONE_NEWTIME) or writing timens_offsets
    ISO_STAGE_STDIO = 3,         // dup2 of stdin/stdout/stderr
    ISO_STAGE_SESSION = 4,       // setsid
    ISO_STAGE_PARENT_DEATH = 5,  // prctl(PR_SET_PDEATHSIG)
    ISO_STAGE_CHDIR = 6,         // chdir to the working directory
    ISO_STAGE_EXEC = 7,          // execve
    ISO_STAGE_CONTROLLING_TERMINAL = 8, // ioctl(0, TIOCSCTTY)
    ISO_STAGE_BECOME_ROOT = 9,   // setresgid/setresuid(0, 0, 0) in a new user namespace
    ISO_STAGE_ENTER_TIME_NAMESPACE = 10, // setns(/proc/self/ns/time_for_children, CLONE_NEWTIME)
};

struct iso_spawn_attr {
    const char *path;        // executable, as for execve(2)
    char *const *argv;       // NULL-terminated
    char *const *envp;       // NULL-terminated
    int clone_flags;         // ISO_CLONE_NEW* (except NEWTIME); 0 is a plain fork
    int new_time_namespace;  // 1: the child unshares CLONE_NEWTIME and enters it before execve
    int64_t monotonic_offset_seconds; // written to timens_offsets when new_time_namespace
    int64_t boottime_offset_seconds;
    int stdin_fd;            // -1 inherits the parent's
    int stdout_fd;
    int stderr_fd;
    int wait_for_release;    // 1: the child blocks until iso_spawn_release()
    int become_root;         // 1: after the release, setresgid/setresuid(0, 0, 0): root of our user namespace (new or joined)
    int new_session;         // 1: setsid() in the child
    int controlling_terminal; // 1: after setsid, stdin (a terminal) becomes the controlling terminal
    int parent_death_signal; // 0: none; else prctl(PR_SET_PDEATHSIG, signal)
    const char *working_directory; // NULL: inherit
    int exec_fd;             // >= 0: execveat(exec_fd, "", AT_EMPTY_PATH) runs this file; `path` only names it
};

struct iso_child {
    pid_t pid;
    int release_fd; // write end the child waits on (-1 when not waiting)
    int status_fd;  // read end: EOF means execve succeeded
};

/// clone(2) a child that runs `attr` and execve(2)s. Returns 0, or -1 with errno set.
int iso_spawn(const struct iso_spawn_attr *attr, struct iso_child *child);

/// Let a child that waits (wait_for_release) go on to execve. Returns 0 or -1/errno.
int iso_spawn_release(struct iso_child *child);
/// Starts a short-lived child that writes "0" to `procs` (a cgroup.procs file: "move
/// myself there") and exits, so that the RCU grace period every first cgroup migration
/// waits for passes while the caller goes on. Returns the child's PID (reap it), or -1.
pid_t iso_warm_cgroup_migration(const char *procs);

/// Wait until the child has exec'd (returns 0) or failed before exec (returns 1 and fills
/// `stage` and `error`). Returns -1 with errno if reading the status pipe failed.
int iso_spawn_await_exec(struct iso_child *child, int *stage, int *error);

// MARK: System calls glibc does not wrap, or wraps only under _GNU_SOURCE.

/// unshare(2): move the calling process into new namespaces.
int iso_unshare(int flags);
/// setns(2): join the namespace that `fd` (an open /proc/PID/ns/* file) refers to.
int iso_setns(int fd, int nstype);
/// pivot_root(2): no glibc wrapper exists; this is syscall(SYS_pivot_root, ...).
int iso_pivot_root(const char *new_root, const char *put_old);
/// pipe2(2) with O_CLOEXEC, so that no pipe leaks into an exec'd program by accident.
int iso_pipe_cloexec(int fds[2]);
/// prctl(PR_SET_PDEATHSIG): prctl is variadic.
int iso_set_parent_death_signal(int signal);
/// prctl(PR_SET_CHILD_SUBREAPER): orphans of our descendants are re-parented to us.
int iso_set_child_subreaper(int on);
/// prctl(PR_SET_NO_NEW_PRIVS).
int iso_set_no_new_privs(void);
/// statfs(2)'s f_type: the filesystem's magic number (CGROUP2_SUPER_MAGIC, TMPFS_MAGIC ...).
/// <sys/vfs.h> is not part of Swift's Glibc module. Returns -1 with errno on failure.
int64_t iso_statfs_type(const char *path);

// MARK: Paths inside a root filesystem (openat2.c)

/// RESOLVE_* flags of openat2(2) (<linux/openat2.h>, Linux 5.6).
enum {
    ISO_RESOLVE_NO_XDEV = 0x01,       // never cross a mount point
    ISO_RESOLVE_NO_MAGICLINKS = 0x02, // never follow /proc/PID/fd/N-style links
    ISO_RESOLVE_NO_SYMLINKS = 0x04,   // never follow any symlink
    ISO_RESOLVE_BENEATH = 0x08,       // fail rather than leave dirfd
    ISO_RESOLVE_IN_ROOT = 0x10,       // dirfd is "/": absolute symlinks and ".." stay below it
    ISO_O_PATH = 010000000,           // open(2) O_PATH: a handle, no I/O (<fcntl.h> hides it without _GNU_SOURCE)
};
/// openat2(2) with a struct open_how of `flags`, `mode` and `resolve`. Returns the
/// descriptor or -1 with errno (ENOSYS before Linux 5.6; EAGAIN when a rename raced a
/// "..": try again; EXDEV or ELOOP when `resolve` forbids the path).
int iso_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

// MARK: The runtime's own executable and the per-process protections (executable.c)

/// open_tree(2) OPEN_TREE_CLONE of `path` (a file), then mount_setattr(2) to make that
/// detached mount read-only, nosuid and nodev. Returns its descriptor (close-on-exec; it can
/// be executed with iso_execveat) or -1 with errno (ENOSYS before Linux 5.12).
int iso_readonly_clone(const char *path);
/// memfd_create(2) + sendfile(2) of `source` + F_ADD_SEALS (seal, shrink, grow, write):
/// a copy in memory that nobody can change. Returns it (close-on-exec) or -1 with errno.
int iso_sealed_copy(int source, const char *name);
/// 1 when no one can open `fd`'s file for writing through it: it is on a read-only mount,
/// or a memfd sealed against writes (and against removing the seal).
int iso_cannot_be_written(int fd);
/// execveat(2) of the file `fd` refers to (AT_EMPTY_PATH). Returns only on failure.
int iso_execveat(int fd, char *const argv[], char *const envp[]);
/// prctl(PR_SET_DUMPABLE) and PR_GET_DUMPABLE: a process that is not dumpable has its
/// /proc/PID files owned by root, and needs CAP_SYS_PTRACE to be ptraced or to have its
/// /proc/PID/exe, fd, mem opened by another process (ptrace(2) "Ptrace access mode checking").
int iso_set_dumpable(int on);
int iso_is_dumpable(void);
/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a new session keyring (or the one named
/// so that we may search), instead of the one inherited (keyrings(7)). Its ID or -1/errno.
long iso_join_session_keyring(const char *name);

// MARK: Credentials, capabilities, devices, file descriptors (process.c): what an OCI
// runtime's init needs and Swift's Glibc module does not declare.

/// setresuid(2)/setresgid(2): GNU extensions, hidden without _GNU_SOURCE.
int iso_setresuid(uid_t ruid, uid_t euid, uid_t suid);
int iso_setresgid(gid_t rgid, gid_t egid, gid_t sgid);
/// prctl(PR_SET_KEEPCAPS): keep permitted capabilities across a change away from uid 0.
int iso_set_keep_capabilities(int on);
/// prctl(PR_CAPBSET_DROP): remove one capability from the bounding set, for good.
int iso_drop_bounding_capability(int capability);
/// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE / CLEAR_ALL): ambient capabilities survive
/// execve of a program without file capabilities (capabilities(7)).
int iso_raise_ambient_capability(int capability);
int iso_clear_ambient_capabilities(void);
/// setrlimit(2) by number: glibc declares the resource as an enum Swift imports awkwardly.
int iso_setrlimit(int resource, uint64_t soft, uint64_t hard);
/// sched_setattr(2) for ourselves (glibc has no wrapper): an OCI process.scheduler.
int iso_sched_setattr(uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                      uint64_t runtime, uint64_t deadline, uint64_t period);
/// ioprio_set(2) for ourselves: class 1 realtime, 2 best-effort, 3 idle; level 0–7.
int iso_ioprio_set(int io_class, int level);
/// personality(2): PER_LINUX (0) or PER_LINUX32 (8). Returns 0, or -1 with errno.
int iso_personality(unsigned long persona);
/// makedev(3) is a macro.
uint64_t iso_makedev(uint32_t major, uint32_t minor);
/// sendmsg(2) with one SCM_RIGHTS descriptor (CMSG_* are macros): how a runtime hands a
/// terminal's master end to the engine over --console-socket.
int iso_send_fd(int socket, int fd, const char *message);
/// prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog): install a classic BPF filter of
/// `count` instructions (struct sock_filter, 8 bytes each). Needs no_new_privs or
/// CAP_SYS_ADMIN.
int iso_seccomp_install(const void *instructions, unsigned short count);

// MARK: Terminals (process.c)

/// socket(AF_UNIX, SOCK_STREAM) + connect(2) to `path` (sockaddr_un is awkward in Swift).
/// Returns the descriptor (close-on-exec) or -1 with errno.
int iso_connect_unix(const char *path);
/// A new pseudo-terminal from /dev/ptmx (of the devpts we see): unlockpt, ptsname, and the
/// slave opened. Returns 0, or -1 with errno. Both descriptors are close-on-exec.
int iso_open_pty(int *master, int *slave, char *slave_name, size_t name_length);
/// ioctl(TIOCSCTTY): make `fd`, a terminal, the controlling terminal of our new session.
int iso_set_controlling_terminal(int fd);
/// ioctl(TIOCSWINSZ).
int iso_set_window_size(int fd, unsigned short rows, unsigned short columns);

// MARK: Seccomp (syscalls.c)

/// The native number of the system call `name`, or -1 if this architecture has none.
int iso_syscall_number(const char *name);
/// The AUDIT_ARCH_* value seccomp reports for this architecture's native calls.
uint32_t iso_audit_arch(void);
/// The number of `name` in the i386 ABI (`int 0x80` on x86_64), or -1 (syscalls_i386.c).
int iso_syscall_number_i386(const char *name);
/// The number of `name` in the x32 ABI, __X32_SYSCALL_BIT included, or -1 (syscalls_x32.c).
int iso_syscall_number_x32(const char *name);

// MARK: Device access on cgroup v2 (devices.c)

/// One device rule, as the cgroup v1 devices controller writes it ("c 1:3 rwm").
struct iso_device_rule {
    int allow;       // 1 allow, 0 deny
    char type;       // 'a' (any), 'c' (character), 'b' (block)
    int64_t major;   // -1: any
    int64_t minor;   // -1: any
    int access;      // ISO_DEVICE_MKNOD | ISO_DEVICE_READ | ISO_DEVICE_WRITE
};
#define ISO_DEVICE_MKNOD 1 // the values of BPF_DEVCG_ACC_*
#define ISO_DEVICE_READ 2
#define ISO_DEVICE_WRITE 4

/// cgroup v2 has no devices.allow file: a BPF_PROG_TYPE_CGROUP_DEVICE program, run at
/// every open(2) and mknod(2) of a device, answers instead. Builds one from `rules`
/// (the last matching rule wins, else `default_allow`), loads it with bpf(2) and attaches
/// it to the cgroup directory `cgroup_fd` (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI).
/// Returns 0, or -1 with errno; the verifier's complaint, if any, goes into `log`.
int iso_attach_device_program(int cgroup_fd, const struct iso_device_rule *rules, int count, int default_allow,
                              char *log, size_t log_size);

#endif
