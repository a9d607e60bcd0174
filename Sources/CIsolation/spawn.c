// The clone(2) ... execve(2) window, written in C so that nothing but system calls
// run in the child. See CIsolation.h for why this file exists at all.
#define _GNU_SOURCE
#include "CIsolation.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

// Report (stage, errno) to the parent through the status pipe and exit. Only
// async-signal-safe calls: write(2) and _exit(2).
static void iso_child_fail(int status_fd, int stage) __attribute__((noreturn));
static void iso_child_fail(int status_fd, int stage) {
    int report[2] = {stage, errno};
    ssize_t ignored = write(status_fd, report, sizeof(report));
    (void)ignored;
    _exit(127);
}

// Write a decimal number without stdio (snprintf is not async-signal-safe).
static size_t iso_format_i64(char *out, int64_t value) {
    char digits[24];
    size_t n = 0, len = 0;
    uint64_t v = value < 0 ? (uint64_t)(-value) : (uint64_t)value;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v > 0);
    if (value < 0) out[len++] = '-';
    while (n > 0) out[len++] = digits[--n];
    return len;
}

static int iso_write_time_offsets(const struct iso_spawn_attr *attr) {
    // time_namespaces(7): offsets may only be written before any process has entered
    // the namespace, i.e. now, between unshare(CLONE_NEWTIME) and our setns into it.
    char buffer[128];
    size_t len = 0;
    memcpy(buffer + len, "monotonic ", 10); len += 10;
    len += iso_format_i64(buffer + len, attr->monotonic_offset_seconds);
    memcpy(buffer + len, " 0\nboottime ", 12); len += 12;
    len += iso_format_i64(buffer + len, attr->boottime_offset_seconds);
    memcpy(buffer + len, " 0\n", 3); len += 3;
    int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    // The kernel parses one offset per write.
    char *second = memchr(buffer, '\n', len) + 1;
    size_t first_len = (size_t)(second - buffer);
    if (write(fd, buffer, first_len) < 0 || write(fd, second, len - first_len) < 0) {
        int saved = errno; close(fd); errno = saved; return -1;
    }
    close(fd);
    return 0;
}

// setns(2) into /proc/self/ns/time_for_children: the namespace unshare just made.
static int iso_enter_time_for_children(void) {
    int fd = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (syscall(SYS_setns, fd, ISO_CLONE_NEWTIME) != 0) { int saved = errno; close(fd); errno = saved; return -1; }
    close(fd);
    return 0;
}

static void iso_child(const struct iso_spawn_attr *attr, int release_read, int status_write) {
    // The parent may have blocked signals (to wait for them with sigwaitinfo); a new
    // program must start with an empty mask and default SIGPIPE.
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    signal(SIGPIPE, SIG_DFL);

    if (attr->wait_for_release) {
        // Block until the parent has written our uid_map/gid_map (user_namespaces(7)).
        char byte;
        ssize_t got;
        do { got = read(release_read, &byte, 1); } while (got < 0 && errno == EINTR);
        if (got != 1) { if (got == 0) errno = EPIPE; iso_child_fail(status_write, ISO_STAGE_WAIT_RELEASE); }
        close(release_read);
    }
    if (attr->become_root) {
        // In a new user namespace our IDs are still the parent's host IDs, which the maps
        // need not cover (0 inside → 100000 outside leaves host root unmapped): execve
        // would then see no root and drop every capability. Become the namespace's root
        // first, as runc's nsexec does. Raw system calls: glibc's wrappers would signal
        // the parent's threads, which this child does not have.
        // setgroups may be denied (/proc/PID/setgroups is "deny" for unprivileged maps): keep the groups then.
        if (syscall(SYS_setgroups, 0, NULL) != 0 && errno != EPERM) iso_child_fail(status_write, ISO_STAGE_BECOME_ROOT);
        if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0) iso_child_fail(status_write, ISO_STAGE_BECOME_ROOT);
    }
    if (attr->new_time_namespace) {
        // CLONE_NEWTIME shares its bit with CSIGNAL, so clone(2) cannot take it, and
        // unshare moves only our *children* into the new namespace (time_for_children).
        // Newer kernels (6.18 here) also move us at execve, 6.1 (Debian 12) does not: the
        // init execs the user's program rather than forking it, so it stayed outside.
        // setns(2) into our own time_for_children moves us now, on every kernel: a
        // single-threaded process may, with CAP_SYS_ADMIN in the user namespace that owns
        // the new one (ours, new or joined: we made it). Offsets first: they freeze once a
        // process is inside (time_namespaces(7)).
        if (syscall(SYS_unshare, ISO_CLONE_NEWTIME) != 0) iso_child_fail(status_write, ISO_STAGE_TIME_NAMESPACE);
        if (iso_write_time_offsets(attr) != 0) iso_child_fail(status_write, ISO_STAGE_TIME_NAMESPACE);
        if (iso_enter_time_for_children() != 0) iso_child_fail(status_write, ISO_STAGE_ENTER_TIME_NAMESPACE);
    }
    int fds[3] = {attr->stdin_fd, attr->stdout_fd, attr->stderr_fd};
    for (int target = 0; target < 3; target++) {
        if (fds[target] < 0) continue;
        if (fds[target] == target) {
            // dup2 to itself would keep FD_CLOEXEC: clear it instead.
            int flags = fcntl(target, F_GETFD);
            if (flags < 0 || fcntl(target, F_SETFD, flags & ~FD_CLOEXEC) < 0) iso_child_fail(status_write, ISO_STAGE_STDIO);
        } else if (dup2(fds[target], target) < 0) {
            iso_child_fail(status_write, ISO_STAGE_STDIO);
        }
    }
    if (attr->new_session && setsid() < 0) iso_child_fail(status_write, ISO_STAGE_SESSION);
    // A session leader without a terminal takes the first one it asks for (tty_ioctl(4)).
    if (attr->controlling_terminal && ioctl(0, TIOCSCTTY, 0) != 0) iso_child_fail(status_write, ISO_STAGE_CONTROLLING_TERMINAL);
    if (attr->parent_death_signal > 0) {
        if (prctl(PR_SET_PDEATHSIG, attr->parent_death_signal, 0, 0, 0) != 0) iso_child_fail(status_write, ISO_STAGE_PARENT_DEATH);
    }
    if (attr->working_directory && chdir(attr->working_directory) != 0) iso_child_fail(status_write, ISO_STAGE_CHDIR);
    if (attr->exec_fd >= 0) iso_execveat(attr->exec_fd, attr->argv, attr->envp);
    else execve(attr->path, attr->argv, attr->envp);
    iso_child_fail(status_write, ISO_STAGE_EXEC);
}

int iso_spawn(const struct iso_spawn_attr *attr, struct iso_child *child) {
    int status_pipe[2];
    int release_pipe[2] = {-1, -1};
    if (pipe2(status_pipe, O_CLOEXEC) != 0) return -1;
    if (attr->wait_for_release && pipe2(release_pipe, O_CLOEXEC) != 0) {
        int saved = errno; close(status_pipe[0]); close(status_pipe[1]); errno = saved; return -1;
    }
    // A fork-like clone: no CLONE_VM and no new stack, so the child runs on a copy of
    // our memory, exactly as after fork(2), but it can start in new namespaces.
    long pid = syscall(SYS_clone, (unsigned long)(attr->clone_flags | SIGCHLD), NULL, NULL, NULL, NULL);
    if (pid == 0) {
        close(status_pipe[0]);
        if (release_pipe[1] >= 0) close(release_pipe[1]);
        iso_child(attr, release_pipe[0], status_pipe[1]);
    }
    int saved = errno;
    close(status_pipe[1]);
    if (release_pipe[0] >= 0) close(release_pipe[0]);
    if (pid < 0) {
        close(status_pipe[0]);
        if (release_pipe[1] >= 0) close(release_pipe[1]);
        errno = saved;
        return -1;
    }
    child->pid = (pid_t)pid;
    child->status_fd = status_pipe[0];
    child->release_fd = release_pipe[1];
    return 0;
}

pid_t iso_warm_cgroup_migration(const char *procs) {
    // Every cgroup migration takes cgroup_threadgroup_rwsem for writing, a per-CPU
    // rwsem whose writer first waits for an RCU grace period (rcu_sync_enter), unless
    // another writer passed one a moment ago. That wait is milliseconds. A child that
    // migrates (itself, to the cgroup it is already in) starts the grace period now,
    // and the caller's own cgroup.procs write later finds it passed or passing.
    long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) (void)!write(fd, "0", 1);
        _exit(0);
    }
    return (pid_t)pid;
}

int iso_spawn_release(struct iso_child *child) {
    if (child->release_fd < 0) return 0;
    char byte = 1;
    ssize_t n;
    do { n = write(child->release_fd, &byte, 1); } while (n < 0 && errno == EINTR);
    int saved = errno;
    close(child->release_fd);
    child->release_fd = -1;
    if (n != 1) { errno = saved; return -1; }
    return 0;
}

int iso_spawn_await_exec(struct iso_child *child, int *stage, int *error) {
    if (child->release_fd >= 0) { close(child->release_fd); child->release_fd = -1; }
    int report[2] = {0, 0};
    size_t got = 0;
    while (got < sizeof(report)) {
        ssize_t n = read(child->status_fd, (char *)report + got, sizeof(report) - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { int saved = errno; close(child->status_fd); child->status_fd = -1; errno = saved; return -1; }
        if (n == 0) break;
        got += (size_t)n;
    }
    close(child->status_fd);
    child->status_fd = -1;
    if (got < sizeof(report)) return 0; // EOF: the pipe closed on exec
    *stage = report[0];
    *error = report[1];
    return 1;
}

int iso_unshare(int flags) { return unshare(flags); }
int iso_setns(int fd, int nstype) { return setns(fd, nstype); }
int iso_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
int iso_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
int iso_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0); }
int iso_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0); }
int iso_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
int64_t iso_statfs_type(const char *path) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    return (int64_t)info.f_type;
}
