// Exercise 02 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 02`: it compares your container's namespaces with the host's.
// Stuck after a failed check? `swift run check 02 --hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "clone-flags": the namespaces clone(2) creates for the container. The checker
/// expects a new hostname (UTS), PIDs, mount table, IPC objects and network.
func namespacesToCreate() throws -> Namespaces {
    try exerciseTODO("02", step: "clone-flags",
                     hint: "what must become true: /proc/PID/ns/{uts,pid,mnt,ipc,net} of the container differ from the host's. Which CLONE_NEW* flag gives a process its own copy of each? (namespaces(7) lists them; clone(2) takes them.) We are root already: which one is not needed?",
                     notes: "Chapters/02-namespaces/README.md#how-this-chapter-makes-one")
}

/// Step "sethostname": the container has a name of its own; the host keeps its name.
func setHostname(_ name: String) throws {
    try exerciseTODO("02", step: "sethostname",
                     hint: "what must become true: `hostname` inside prints the name given, and the host's name is unchanged. Why is that safe only now? Read uts_namespaces(7) and sethostname(2), and handle its failure",
                     notes: "Chapters/02-namespaces/README.md#uts--hostname-and-nis-domain-name-2619")
}

/// Step "mount-proc": /proc inside (at `target`, the root filesystem's /proc) shows the
/// container's PID namespace only, so that ps sees only the container.
func mountProc(at target: FilePath) throws {
    try exerciseTODO("02", step: "mount-proc",
                     hint: "what must become true: /proc inside lists only the container's processes, with its init as 1. /proc is a file system, not a folder: which PID namespace does a new one show? Read proc(5) (\"mount namespaces\" and pid_namespaces(7), \"/proc and PID namespaces\")",
                     notes: "Chapters/02-namespaces/README.md#pid--process-ids-2624")
}
