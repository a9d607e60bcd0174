// Exercise 03 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 03`: it reads your cgroup's files and watches the limits bite.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "limits": write the memory limit (bytes) and the most processes (pids) into the
/// cgroup's files. `cgroup.version` says which files this host has.
func writeLimits(_ cgroup: CgroupFolders, memoryBytes: UInt64, pids: Int) throws {
    try exerciseTODO("03", step: "limits",
                     hint: "a limit is a number written into a file: v2 memory.max and pids.max (in cgroup.memory and cgroup.pids, the same folder); v1 memory.limit_in_bytes in cgroup.memory and pids.max in cgroup.pids. FileSystem.writeFile(path, text) writes one",
                     notes: "Chapters/03-cgroups/README.md#reading-the-files")
}

/// Step "join": `container` is cloned but waits before execve(2). Move it into the cgroup
/// (v2: one folder; v1: the memory and the pids hierarchy), then let it exec.
func joinThenRelease(_ container: HeldProcess, _ cgroup: CgroupFolders) throws {
    try exerciseTODO("03", step: "join",
                     hint: "write \"\\(container.pid)\" into cgroup.procs of each folder (cgroup.memory, cgroup.pids), then container.release(). In that order: children inherit the cgroup at fork, so the workload is limited from its first instruction",
                     notes: "Chapters/03-cgroups/README.md#join-before-the-workload-starts")
}
