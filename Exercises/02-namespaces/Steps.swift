// Exercise 02 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 02`: it compares your container's namespaces with the host's.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "clone-flags": the namespaces clone(2) creates for the container. The checker
/// expects a new hostname (UTS), PIDs, mount table, IPC objects and network.
func namespacesToCreate() throws -> Namespaces {
    try exerciseTODO("02", step: "clone-flags",
                     hint: "return a Namespaces option set (Sources/Isolation/Namespaces/Namespaces.swift) with one member per CLONE_NEW* flag: the container needs its own hostname, PIDs, mount table, IPC objects and network. Root needs no user namespace",
                     notes: "Chapters/02-namespaces/README.md#how-this-chapter-makes-one")
}

/// Step "sethostname": give the container its own name (we are in a new UTS namespace).
func setHostname(_ name: String) throws {
    try exerciseTODO("02", step: "sethostname",
                     hint: "sethostname(2): Identity.setHostname(name), or Glibc's sethostname(name, name.utf8.count) (and check what it returns)",
                     notes: "Chapters/02-namespaces/README.md#uts--hostname-and-nis-domain-name-2619")
}

/// Step "mount-proc": mount a new proc file system at `target` (the root filesystem's
/// /proc), so that ps and /proc inside show the container's PID namespace only.
func mountProc(at target: FilePath) throws {
    try exerciseTODO("02", step: "mount-proc",
                     hint: "mount(2) a file system of type \"proc\" (its source is just a name) onto target, with Mount.mount(source:target:type:flags:). It must happen in the child, after clone(2): proc shows the PID namespace of whoever mounts it",
                     notes: "Chapters/02-namespaces/README.md#pid--process-ids-2624")
}
