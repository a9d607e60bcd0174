// Exercise 01, stretch · your steps. The base exercise's jail falls to a root process
// that calls chroot(2) again (`chapter-01 escape`). Make one it cannot leave. Replace each
// `try exerciseTODO(...)` with your code, then run `swift run check 01 --stretch`: it
// runs the escape inside your jail and looks from outside where it ended.
// Stuck after a failed check? `--hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "propagation": this process is in a new mount namespace (the starter cloned it
/// with CLONE_NEWNS). Afterwards no mount it makes or removes reaches the host.
func keepMountsPrivate() throws {
    try exerciseTODO("01-stretch", step: "propagation",
                     hint: "what must become true: after the jail ends, the host's mount table is exactly as before. A new mount namespace is a copy, but a copy of mounts that may be *shared* with the host (systemd makes / shared). Read mount_namespaces(7), \"Shared subtree\"",
                     notes: "Chapters/02-namespaces/README.md#mount--the-mount-table-2419")
}

/// Step "mount-point": afterwards `rootfs` is a mount point of its own (it is a plain
/// folder now), as the next step requires.
func makeMountPoint(_ rootfs: FilePath) throws {
    try exerciseTODO("01-stretch", step: "mount-point",
                     hint: "what must become true: /proc/self/mountinfo has a mount whose mount point is rootfs and that shows the same files. Which kind of mount shows a folder somewhere else, here on top of itself? Read mount(2) and pivot_root(2), the list of requirements on new_root",
                     notes: "Chapters/02-namespaces/README.md#mount--the-mount-table-2419")
}

/// Step "pivot_root": afterwards `rootfs` is this mount namespace's root, the host's root
/// is no longer in the namespace at all, and "." is inside.
func pivotInto(_ rootfs: FilePath) throws {
    try exerciseTODO("01-stretch", step: "pivot_root",
                     hint: "what must become true: \"/\" in this process's mountinfo is rootfs and it is the only mount left: nothing above \"/\" is left for `..` to climb to. Why does chroot(2) not do that, and what does the other call do with the old root? Read pivot_root(2), DESCRIPTION and NOTES",
                     notes: "Chapters/01-chroot-jail/README.md#the-escape and Chapters/02-namespaces/README.md#mount--the-mount-table-2419")
}
