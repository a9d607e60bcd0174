// Credentials, capabilities, devices and descriptor passing for a container's init.
// Each function is here because Swift's Glibc module cannot express it: GNU-only
// declarations, variadic prctl(2), and macros (makedev, CMSG_*).
#define _GNU_SOURCE
#include "CIsolation.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int iso_setresuid(uid_t ruid, uid_t euid, uid_t suid) { return setresuid(ruid, euid, suid); }
int iso_setresgid(gid_t rgid, gid_t egid, gid_t sgid) { return setresgid(rgid, egid, sgid); }
int iso_set_keep_capabilities(int on) { return prctl(PR_SET_KEEPCAPS, on ? 1 : 0, 0, 0, 0); }
int iso_drop_bounding_capability(int capability) { return prctl(PR_CAPBSET_DROP, capability, 0, 0, 0); }
int iso_raise_ambient_capability(int capability) {
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, capability, 0, 0);
}
int iso_clear_ambient_capabilities(void) { return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); }
int iso_setrlimit(int resource, uint64_t soft, uint64_t hard) {
    struct rlimit limit = {.rlim_cur = (rlim_t)soft, .rlim_max = (rlim_t)hard};
    return setrlimit(resource, &limit);
}
uint64_t iso_makedev(uint32_t major, uint32_t minor) { return (uint64_t)makedev(major, minor); }

int iso_send_fd(int socket, int fd, const char *message) {
    char data[1] = {0};
    size_t length = message ? strlen(message) : 0;
    struct iovec io = {.iov_base = length ? (void *)message : data, .iov_len = length ? length : 1};
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {0};
    msg.msg_iov = &io;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buffer;
    msg.msg_controllen = sizeof(control.buffer);
    struct cmsghdr *header = CMSG_FIRSTHDR(&msg);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof(int));
    ssize_t sent;
    do { sent = sendmsg(socket, &msg, 0); } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -1 : 0;
}

int iso_seccomp_install(const void *instructions, unsigned short count) {
    struct sock_fprog program = {.len = count, .filter = (struct sock_filter *)instructions};
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0);
}

int iso_connect_unix(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(address.sun_path)) { errno = ENAMETOOLONG; return -1; }
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) { int saved = errno; close(fd); errno = saved; return -1; }
    return fd;
}

int iso_open_pty(int *master, int *slave, char *slave_name, size_t name_length) {
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -1;
    if (unlockpt(m) != 0 || ptsname_r(m, slave_name, name_length) != 0) { int saved = errno; close(m); errno = saved; return -1; }
    int s = open(slave_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) { int saved = errno; close(m); errno = saved; return -1; }
    *master = m;
    *slave = s;
    return 0;
}

int iso_set_controlling_terminal(int fd) { return ioctl(fd, TIOCSCTTY, 0); }

int iso_set_window_size(int fd, unsigned short rows, unsigned short columns) {
    struct winsize size = {.ws_row = rows, .ws_col = columns};
    return ioctl(fd, TIOCSWINSZ, &size);
}
