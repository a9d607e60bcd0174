// Exercise 04 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 04`: it writes a bundle, runs it, and reads the container's mount
// table from outside.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "mounts": one entry of config.json's `mounts`, onto `target` (already resolved
/// inside the root filesystem and created). `source` is absolute for bind mounts.
/// `mount.type` is the file system ("proc", "tmpfs", "bind", ...), `mount.options` a list
/// such as ["nosuid", "mode=755", "size=65536k"] or ["rbind", "ro"].
func applyMount(_ mount: OCIConfig.Mount, source: String, target: FilePath) throws {
    try exerciseTODO("04", step: "mounts",
                     hint: "MountOptions(mount.options ?? []) sorts the options into mount(2) flags and a data string. A typed mount is one mount(2) call with both. A bind mount is different: mount(2) ignores flags such as ro on MS_BIND, so a second call is needed",
                     notes: "Chapters/04-oci-bundle/README.md#create-step-by-step-in-the-order-the-kernel-needs")
}

/// Step "pivot_root": make `rootfs` (a mount point now) this mount namespace's root and
/// get rid of the host's root, so that nothing above "/" is left to reach.
func pivotInto(_ rootfs: FilePath) throws {
    try exerciseTODO("04", step: "pivot_root",
                     hint: "chdir into rootfs, pivot_root(\".\", \".\") (Mount.pivotRoot), then the old root is stacked on top of \".\": unmount it with MNT_DETACH, and chdir(\"/\")",
                     notes: "Chapters/02-namespaces/README.md#mount--the-mount-table-2419 and pivot_root(2), NOTES")
}
