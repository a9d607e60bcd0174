// Exercise 08, stretch · your steps. Each returns classic BPF instructions
// (SeccompFilter.Instruction: BPF_STMT and BPF_JUMP in Swift); the program runs them in
// this order as one seccomp filter, installed right before the container's execve. A
// step falls through to the next for a call it lets go on. Then run
// `swift run check 08 --stretch`: a probe in the container makes calls through the three
// ABIs an x86_64 kernel answers. Stuck after a failed check? `--hint` names the API,
// `--hint 2` the shape. `exercise-08-stretch --print` shows your filter.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "arch": the filter's first instructions. Only calls made through the x86_64 ABI
/// go on to the next step.
func checkArchitecture() throws -> [SeccompFilter.Instruction] {
    try exerciseTODO("08-stretch", step: "arch",
                     hint: "what must become true: a call whose seccomp_data.arch is not x86_64's is refused (killed, or EPERM: your choice) before any number is looked at. On x86_64, int 0x80 reaches the i386 table, where unshare is 310, not 272: a filter that only compares numbers is walked around. Read seccomp(2), \"arch\" and the NOTES on checking it, and the kernel's Documentation/userspace-api/seccomp_filter.rst",
                     notes: "Chapters/08-breaking-out/README.md#the-seccomp-profile")
}

/// Step "x32": the calls that get past "arch" and that the next step must not see.
func refuseX32() throws -> [SeccompFilter.Instruction] {
    try exerciseTODO("08-stretch", step: "x32",
                     hint: "what must become true: a call through the x32 ABI is refused by the filter (EPERM, or killed), whatever its number. x32 arrives with the same arch value as x86_64; what tells it apart is in the number itself. Read seccomp(2) NOTES (__X32_SYSCALL_BIT), and syscall(2) on x32",
                     notes: "Chapters/08-breaking-out/README.md#the-seccomp-profile")
}

/// Step "deny": the last instructions. The nested escape's call fails, everything else runs.
func denyTheEscape() throws -> [SeccompFilter.Instruction] {
    try exerciseTODO("08-stretch", step: "deny",
                     hint: "what must become true: unshare(2), the call of chapter 08's nested escape, returns -1 with errno EPERM; every other call (write, getpid, execve…) runs. Do not count on what an earlier step left in the accumulator. Read seccomp(2), SECCOMP_RET_ERRNO and SECCOMP_RET_ALLOW, and the notes' nested escape",
                     notes: "Chapters/08-breaking-out/README.md#the-escapes-and-what-stops-them")
}
