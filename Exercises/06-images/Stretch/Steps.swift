// Exercise 06, stretch · your steps. Replace each `try exerciseTODO(...)` with your code,
// then run `swift run check 06 --stretch`: it mounts an overlay, changes the tree the way a
// container does (adds, changes, deletes, deletes a directory and makes it again), asks
// your program for the layer, and unpacks the image with umoci and with the library to
// compare both with what the container saw. Stuck after a failed check? `--hint` names
// the API, `--hint 2` the shape.
import CIsolation
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "whiteout": `relative` is an entry of the overlay's upper folder (such as
/// "data/gone"), `info` what lstat(2) says of it. When it is overlayfs' record that the
/// container deleted that name, return the name of the layer entry that deletes it from
/// the layers below (an empty file is written under that name); nil for anything else.
func whiteoutEntry(for relative: String, info: stat) throws -> String? {
    try exerciseTODO("06-stretch", step: "whiteout",
                     hint: "what must become true: a name the container deleted is gone again when the image's layers are applied, by umoci and by anyone, and nothing else is touched. How does overlayfs record a deletion in upperdir (the kernel's Documentation/filesystems/overlayfs.rst, \"whiteouts and opaque directories\"), and how does a layer say it (image-spec layer.md, \"Whiteouts\": where does the marker go)? stat(2), makedev(3)",
                     notes: "Chapters/06-images/README.md#how-a-whiteout-works")
}

/// Step "opaque": `directory` is a directory of the upper folder, `relative` its path in
/// the layer (such as "data/remade"); its own entry is written already. When overlayfs
/// recorded that nothing of the lower layers shows through it, return the name of the
/// layer entry that says so; nil otherwise.
func opaqueEntry(for relative: String, directory: FilePath) throws -> String? {
    try exerciseTODO("06-stretch", step: "opaque",
                     hint: "what must become true: a directory the container deleted and made again holds, once the layers are applied, only what the container put in it: nothing of the old one comes back. overlayfs.rst, \"whiteouts and opaque directories\" and \"Permission model\"/userxattr (which attribute, in which namespace); image-spec layer.md, \"Opaque Whiteout\"; getxattr(2), xattr(7)",
                     notes: "Chapters/06-images/README.md#how-a-whiteout-works")
}
