// Exercise 03, stretch · your steps. In exercise 03 a workload over its memory limit was
// killed. Here it must be slowed down (cgroup v2) or paused (v1) instead, and its limit
// raised from outside while it runs, after which it finishes. Replace each
// `try exerciseTODO(...)` with your code, then run `swift run check 03 --stretch`.
// Stuck after a failed check? `--hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "throttle" (in `run`, before the container joins): a workload that reaches
/// `bytes` is held back there, and the kernel never kills it for it.
func throttleMemory(_ cgroup: MemoryCgroup, bytes: UInt64) throws {
    try exerciseTODO("03-stretch", step: "throttle",
                     hint: "what must become true: past `bytes` the workload is slowed (v2) or paused (v1), and the OOM killer leaves it alone. v2 has a limit that throttles and one that kills: which is which? v1 has only one that can kill: what can you turn off instead? Read Documentation/admin-guide/cgroup-v2.rst (memory interface files) and cgroup-v1/memory.rst (the OOM control)",
                     notes: "Chapters/03-cgroups/README.md#slowed-killed-refused")
}

/// Step "find" (in `update`): the folder with the memory controller's files of the
/// cgroup that process `pid` is in. `hierarchy` is where that controller's hierarchy is
/// mounted (/sys/fs/cgroup with v2, /sys/fs/cgroup/memory with v1).
func memoryFolder(of pid: pid_t, version: Cgroup.Version, hierarchy: FilePath) throws -> FilePath {
    try exerciseTODO("03-stretch", step: "find",
                     hint: "what must become true: the folder returned is the one the kernel charges pid's memory to. The kernel says which cgroup a process is in, per hierarchy, in one file under /proc/PID: which one, and which of its lines is the memory controller's on v1 (a v1 host may list a v2 line too)? Read cgroups(7), /proc/[pid]/cgroup",
                     notes: "Chapters/03-cgroups/README.md#v1-or-v2")
}

/// Step "update" (in `update`): the running workload's throttle is now `bytes`, and it
/// goes on without being restarted.
func updateThrottle(_ cgroup: MemoryCgroup, bytes: UInt64) throws {
    try exerciseTODO("03-stretch", step: "update",
                     hint: "what must become true: reading the throttle back gives `bytes`, the same processes stay in the cgroup, and one that was held at the old value goes on. Is a limit read once, at join, or every time memory is charged? Read cgroup-v2.rst (memory) or cgroup-v1/memory.rst (\"Setting resource limits\", and what a lower limit than usage does)",
                     notes: "Chapters/03-cgroups/README.md#reading-the-files")
}
