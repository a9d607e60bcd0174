// The process fields of an OCI config that glibc does not wrap: sched_setattr(2),
// ioprio_set(2), personality(2).
#define _GNU_SOURCE
#include "CIsolation.h"

#include <stdint.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

// include/uapi/linux/sched/types.h, SCHED_ATTR_SIZE_VER0 (48 bytes).
struct iso_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int iso_sched_setattr(uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                      uint64_t runtime, uint64_t deadline, uint64_t period) {
    struct iso_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.sched_policy = policy;
    attr.sched_flags = flags;
    attr.sched_nice = nice;
    attr.sched_priority = priority;
    attr.sched_runtime = runtime;
    attr.sched_deadline = deadline;
    attr.sched_period = period;
    return (int)syscall(SYS_sched_setattr, 0, &attr, 0);
}

int iso_ioprio_set(int io_class, int level) {
    // IOPRIO_WHO_PROCESS (1), ourselves (0), IOPRIO_PRIO_VALUE(class, level).
    return (int)syscall(SYS_ioprio_set, 1, 0, (io_class << 13) | level);
}

int iso_personality(unsigned long persona) {
    return personality(persona) == -1 ? -1 : 0;
}
