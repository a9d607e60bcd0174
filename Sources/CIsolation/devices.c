// Device access on cgroup v2: an eBPF program instead of v1's devices.allow/deny files.
// Read next: the kernel's Documentation/admin-guide/cgroup-v2.rst ("Device controller"),
// bpf(2), and samples/bpf or tools/testing/selftests/bpf/progs/dev_cgroup.c.
#include "CIsolation.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define LOAD_WORD(dst, src, offset) INSN(BPF_LDX | BPF_MEM | BPF_W, dst, src, offset, 0)
#define ALU32_IMM(op, dst, value) INSN(BPF_ALU | (op) | BPF_K, dst, 0, 0, value)
#define MOV32_REG(dst, src) INSN(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV64_IMM(dst, value) INSN(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, value)
#define JNE_IMM(dst, value) INSN(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, value)
#define JNE_REG(dst, src) INSN(BPF_JMP | BPF_JNE | BPF_X, dst, src, 0, 0)
#define EXIT INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

int iso_attach_device_program(int cgroup_fd, const struct iso_device_rule *rules, int count, int default_allow,
                              char *log, size_t log_size) {
    if (count < 0) { errno = EINVAL; return -1; }
    struct bpf_insn *program = calloc((size_t)count * 9 + 8, sizeof(struct bpf_insn));
    if (!program) return -1;
    int n = 0;
    // r1 points at struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
    // access_type is (access << 16) | type. Unpack it once into r2…r5.
    program[n++] = LOAD_WORD(2, 1, 0);
    program[n++] = ALU32_IMM(BPF_AND, 2, 0xffff);           // r2: BPF_DEVCG_DEV_BLOCK (1) or _CHAR (2)
    program[n++] = LOAD_WORD(3, 1, 0);
    program[n++] = ALU32_IMM(BPF_RSH, 3, 16);               // r3: the access asked for
    program[n++] = LOAD_WORD(4, 1, 4);                      // r4: major
    program[n++] = LOAD_WORD(5, 1, 8);                      // r5: minor
    // The last matching rule wins, as when they are written one by one to v1's files:
    // so test them from the last to the first, and answer at the first match.
    for (int index = count - 1; index >= 0; index--) {
        const struct iso_device_rule *rule = &rules[index];
        int jumps[4], jumpCount = 0;
        if (rule->type == 'c' || rule->type == 'b') {
            jumps[jumpCount++] = n;
            program[n++] = JNE_IMM(2, rule->type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK);
        }
        int all = ISO_DEVICE_MKNOD | ISO_DEVICE_READ | ISO_DEVICE_WRITE;
        if ((rule->access & all) != all) {
            // Matches only if every access asked for is in the rule: (asked & rule) == asked.
            program[n++] = MOV32_REG(1, 3);
            program[n++] = ALU32_IMM(BPF_AND, 1, rule->access & all);
            jumps[jumpCount++] = n;
            program[n++] = JNE_REG(1, 3);
        }
        if (rule->major >= 0) { jumps[jumpCount++] = n; program[n++] = JNE_IMM(4, (int32_t)rule->major); }
        if (rule->minor >= 0) { jumps[jumpCount++] = n; program[n++] = JNE_IMM(5, (int32_t)rule->minor); }
        program[n++] = MOV64_IMM(0, rule->allow ? 1 : 0);
        program[n++] = EXIT;
        // A failed test jumps past this rule's end, to the next rule.
        for (int j = 0; j < jumpCount; j++) program[jumps[j]].off = (int16_t)(n - jumps[j] - 1);
    }
    program[n++] = MOV64_IMM(0, default_allow ? 1 : 0);
    program[n++] = EXIT;

    union bpf_attr load;
    memset(&load, 0, sizeof load);
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = (uint64_t)(uintptr_t)program;
    load.insn_cnt = (uint32_t)n;
    load.license = (uint64_t)(uintptr_t)"Apache-2.0";
    if (log && log_size > 0) {
        log[0] = 0;
        load.log_buf = (uint64_t)(uintptr_t)log;
        load.log_size = (uint32_t)log_size;
        load.log_level = 1;
    }
    int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    int saved = errno;
    free(program);
    if (fd < 0) { errno = saved; return -1; }

    union bpf_attr attach;
    memset(&attach, 0, sizeof attach);
    attach.target_fd = (uint32_t)cgroup_fd;
    attach.attach_bpf_fd = (uint32_t)fd;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;  // the parents' programs still have their say
    int result = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach);
    saved = errno;
    close(fd);  // the attachment holds the program for as long as the cgroup lives
    errno = saved;
    return result;
}
