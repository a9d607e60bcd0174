// Exercise 03 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 03`: it reads your cgroup's files and watches the limits bite.
// Stuck after a failed check? `swift run check 03 --hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "limits": the memory limit (bytes) and the most processes at once (pids) are in
/// force for the cgroup. `cgroup.version` says which files this host has.
func writeLimits(_ cgroup: CgroupFolders, memoryBytes: UInt64, pids: Int) throws {
    try exerciseTODO("03", step: "limits",
                     hint: "what must become true: reading the cgroup's memory limit file and its pids limit file gives back these two numbers. Which files are they, in which folder, on cgroup v1 and on v2? Read the kernel's Documentation/admin-guide/cgroup-v2.rst (memory, pids) or cgroups(7)",
                     notes: "Chapters/03-cgroups/README.md#reading-the-files")
}

/// Step "join": `container` is cloned but waits before execve(2). Afterwards it is in
/// the cgroup (v2: one folder; v1: the memory and the pids hierarchy) and runs.
func joinThenRelease(_ container: HeldProcess, _ cgroup: CgroupFolders) throws {
    try exerciseTODO("03", step: "join",
                     hint: "what must become true: every process of the container is in the cgroup, from its first instruction on, and it runs. How does a process change cgroup, and in how many places on v1? What does a child inherit at fork? Read cgroups(7), \"Creating cgroups and moving processes\"",
                     notes: "Chapters/03-cgroups/README.md#join-before-the-workload-starts")
}
