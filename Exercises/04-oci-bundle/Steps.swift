// Exercise 04 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 04`: it writes a bundle, runs it, and reads the container's mount
// table from outside. Stuck after a failed check? `swift run check 04 --hint` names the
// API, `--hint 2` the shape.
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
                     hint: "what must become true: the container's mountinfo shows each entry at its destination, of its type, with exactly its options (a bind mount that says ro is read-only). Some options are flags, some are data for the file system. Read mount(2), and its part on bind mounts and MS_REMOUNT, with care",
                     notes: "Chapters/04-oci-bundle/README.md#create-step-by-step-in-the-order-the-kernel-needs")
}

/// Step "pivot_root": `rootfs` (a mount point now) is this mount namespace's root, and
/// the host's root is gone from it, so that nothing above "/" is left to reach.
func pivotInto(_ rootfs: FilePath) throws {
    try exerciseTODO("04", step: "pivot_root",
                     hint: "what must become true: \"/\" in the container's mountinfo is the bundle's rootfs and no host mount is left in its mount table. chroot(2) is not enough: why? Read pivot_root(2), including NOTES (there is a way without a put_old folder)",
                     notes: "Chapters/02-namespaces/README.md#mount--the-mount-table-2419 and pivot_root(2), NOTES")
}
