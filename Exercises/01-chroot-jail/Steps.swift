// Exercise 01 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 01`: it runs your jail and looks at it from outside. Stuck after
// a failed check? `swift run check 01 --hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "chroot": afterwards "/" means `rootfs` for this process and what it execs.
func changeRoot(_ rootfs: FilePath) throws {
    try exerciseTODO("01", step: "chroot",
                     hint: "what must become true: every absolute path this process resolves starts at rootfs (\"/bin/sh\" is the jail's). One system call does it, and it can fail: a failure must stop the jail, not be ignored. Read chroot(2) and path_resolution(7)",
                     notes: "Chapters/01-chroot-jail/README.md#what-chroot2-changes-in-the-kernel")
}

/// Step "chdir": afterwards "." is inside the jail too.
func moveIntoJail() throws {
    try exerciseTODO("01", step: "chdir",
                     hint: "what must become true: /proc/PID/cwd lies inside the root filesystem. Ask yourself what the previous step did to \".\" (chroot(2), DESCRIPTION and NOTES), and why a \".\" outside the jail is a way out",
                     notes: "Chapters/01-chroot-jail/README.md#the-escape")
}
