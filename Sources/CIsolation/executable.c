// The runtime's own executable, kept out of a container's reach (CVE-2019-5736), and the
// other per-process protections a runtime takes before it enters a container: the
// system calls glibc wraps late (open_tree, mount_setattr: glibc 2.36) or not at all.
#define _GNU_SOURCE
#include "CIsolation.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
struct mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

int iso_readonly_clone(const char *path) {
    // open_tree(2) OPEN_TREE_CLONE: a bind mount of `path` that is attached nowhere (no
    // mount table shows it, nothing propagates) and lives as long as a descriptor or a
    // running program refers to it.
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0) return -1;
    // mount_setattr(2): that mount, and only it, read-only (and nosuid, nodev).
    struct mount_attr attr = {0};
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
        int saved = errno; close(fd); errno = saved; return -1;
    }
    return fd;
}

int iso_sealed_copy(int source, const char *name) {
    struct stat info;
    if (fstat(source, &info) != 0) return -1;
    // memfd_create(2): a file in memory, on no filesystem. MFD_EXEC where the kernel
    // knows it (6.3+: vm.memfd_noexec may otherwise make it non-executable).
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    // sendfile(2): the kernel copies page by page, nothing passes through our memory.
    off_t offset = 0;
    while (offset < info.st_size) {
        ssize_t n = sendfile(fd, source, &offset, (size_t)(info.st_size - offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { int saved = n < 0 ? errno : EIO; close(fd); errno = saved; return -1; }
    }
    // fcntl(2) F_ADD_SEALS: from now on nobody may write, shrink or grow it, nor remove
    // the seals (memfd_create(2) "File sealing").
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
        int saved = errno; close(fd); errno = saved; return -1;
    }
    return fd;
}

int iso_cannot_be_written(int fd) {
    struct statvfs info;
    if (fstatvfs(fd, &info) == 0 && (info.f_flag & ST_RDONLY)) return 1;
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & F_SEAL_WRITE) && (seals & F_SEAL_SEAL);
}

int iso_execveat(int fd, char *const argv[], char *const envp[]) {
    return (int)syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
}

int iso_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0); }
int iso_is_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }

long iso_join_session_keyring(const char *name) {
    return syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, name);
}
