// Exercise 06 · your steps. Replace each `try exerciseTODO(...)` with your code, then
// run `swift run check 06`: it builds an image of three layers, unpacks it with your
// whiteouts, stacks it with your overlay, and looks at the trees and the mount from outside.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "whiteout": the layer being applied holds the entry `marker` (".wh." followed by
/// a name) in `directory`, a folder of the root filesystem being unpacked (its path is
/// checked already: it is inside the root). What the layers below put under that name
/// must be gone afterwards.
func applyWhiteout(_ marker: String, in directory: FilePath) throws {
    try exerciseTODO("06", step: "whiteout",
                     hint: "afterwards the name the marker stands for must be gone from directory, whatever it was (a directory goes with everything in it), and no .wh. file may be left in the tree. image-spec layer.md, \"Whiteouts\"",
                     notes: "Chapters/06-images/README.md#how-a-whiteout-works")
}

/// Step "opaque": the layer holds `.wh..wh..opq` in `directory`. `addedByThisLayer` are
/// the names in `directory` that this same layer wrote (a tar may list them before the
/// marker).
func applyOpaque(in directory: FilePath, addedByThisLayer: Set<String>) throws {
    try exerciseTODO("06", step: "opaque",
                     hint: "afterwards directory must hold only what this layer put there: nothing of the layers below shows through, and nothing this layer wrote is lost. image-spec layer.md, \"Opaque Whiteout\"",
                     notes: "Chapters/06-images/README.md#how-a-whiteout-works")
}

/// Step "overlay": `layers` are the image's layers, each unpacked into a folder of its
/// own, in the order the manifest lists them. Make `merged` show them as one tree, the
/// way the image means it, with every write going to `upper` (`work` is overlayfs'
/// scratch folder, empty, on the same file system as `upper`).
func stackLayers(_ layers: [FilePath], upper: FilePath, work: FilePath, on merged: FilePath) throws {
    try exerciseTODO("06", step: "overlay",
                     hint: "afterwards merged is an overlay mount: a file that several layers hold shows the last layer's content, and a write lands in upper, never in a layer. image-spec manifest.md \"layers\" (which end is the base) and the kernel's Documentation/filesystems/overlayfs.rst \"Multiple lower layers\" (which end of lowerdir is the top); mount(8), \"Mount options for overlay\"",
                     notes: "Chapters/06-images/README.md#why-overlayfs-makes-a-start-cheap")
}
