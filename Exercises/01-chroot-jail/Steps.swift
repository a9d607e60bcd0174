// Exercise 01 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 01`: it runs your jail and looks at it from outside.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "chroot": make `rootfs` this process's root directory, so that "/" means it.
func changeRoot(_ rootfs: FilePath) throws {
    try exerciseTODO("01", step: "chroot",
                     hint: "chroot(2) changes what \"/\" means for this process: FileSystem.changeRoot(rootfs), or Glibc's chroot(rootfs.string) (and check what it returns)",
                     notes: "Chapters/01-chroot-jail/README.md#what-chroot2-changes-in-the-kernel")
}

/// Step "chdir": chroot(2) does not move the working directory. Move it into the jail.
func moveIntoJail() throws {
    try exerciseTODO("01", step: "chdir",
                     hint: "after chroot, \".\" is still the directory you started in, outside the jail: FileSystem.changeDirectory(\"/\"), that is chdir(\"/\")",
                     notes: "Chapters/01-chroot-jail/README.md#the-escape")
}
