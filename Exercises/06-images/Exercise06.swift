// Exercise 06 — images. Your steps are in Steps.swift: what a whiteout does when layers
// are flattened, and how overlayfs stacks them. This file is the rest of chapter 06,
// written with the Isolation libraries: reading the layout, the tar and its path checks,
// the store, the container around the overlay.
//
//   sudo .build/debug/exercise-06 unpack oci:DIR[:TAG] ROOTFS            flatten the layers, your whiteouts
//   sudo .build/debug/exercise-06 run oci:DIR[:TAG] [--store DIR] -- CMD  CMD on your overlay of the layers
//   swift run check 06
//
// The solution is chapter 06 itself: LayerApplier.swift and ContainerRoot.swift in
// Sources/Isolation/Image/.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import IsolationImage
import SystemPackage

@main
struct Exercise06: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-06",
        abstract: "Exercise 06: an OCI image's layers, flattened and stacked on overlayfs (your steps: Steps.swift).",
        subcommands: [Unpack.self, RunImage.self, Init.self])
}

/// The image an `oci:DIR[:TAG]` reference names, read from its layout: manifest and layers.
func openImage(_ text: String) throws -> (layout: ImageLayout, tag: String?, manifest: Manifest) {
    guard case .ociLayout(let path, let tag) = try ImageReference.parse(text) else {
        throw IsolationError("'\(text)' is not an OCI layout reference", hint: "write it oci:DIR[:TAG] (chapter-06 build --layout DIR makes one)")
    }
    let layout = try ImageLayout(opening: path)
    return (layout, tag, try layout.resolve(tag: tag).manifest)
}

/// `unpack`: every layer applied in turn to one folder, as `umoci unpack` does. The tar,
/// the path checks (no entry lands outside ROOTFS) and the metadata are the library's;
/// the two kinds of whiteout are your steps.
struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Flatten an image's layers into ROOTFS (made; must not exist).")

    @Argument(help: "The image: oci:DIR[:TAG].") var image: String
    @Argument(help: "The folder to make.") var rootfs: String

    func run() throws {
        runExercise("06") {
            try Preflight.require([Preflight.root(why: "a layer's owners and device nodes need root")])
            let (layout, _, manifest) = try openImage(image)
            let root = FilePath(rootfs)
            guard !FileSystem.exists(root, followSymlinks: false) else {
                throw IsolationError("\(root) exists already", hint: "give a folder that does not exist yet")
            }
            try FileSystem.makeDirectories(root)
            do {
                for (number, layer) in manifest.layers.enumerated() {
                    // Size and SHA-256 first: a blob is used only once it is what the manifest says.
                    try layout.verifyBlob(layer)
                    var applier = LayerApplier(root: root, mode: .flatten)
                    applier.removeWhiteout = { marker, directory in try applyWhiteout(marker, in: directory) }
                    applier.emptyOpaque = { directory, kept in try applyOpaque(in: directory, addedByThisLayer: kept) }
                    try applier.apply(layer: layout.blobPath(layer.digest), mediaType: layer.mediaType)
                    let summary = applier.summary
                    say("layer \(number + 1) \(layer.digest.short): \(summary.entries) entries"
                        + (summary.whiteouts.isEmpty ? "" : "; whiteouts: " + summary.whiteouts.joined(separator: " "))
                        + (summary.opaqueDirectories.isEmpty ? "" : "; opaque: " + summary.opaqueDirectories.joined(separator: " ")))
                }
            } catch {
                try? FileSystem.removeTree(root)
                throw error
            }
            say("unpacked \(manifest.layers.count) layers into \(root)")
        }
    }
}

/// `run`: the layers unpacked once each into the store (overlayfs' form: a whiteout is a
/// 0:0 device there), a folder of the container's own, and a child in new namespaces
/// that stacks the overlay (your step), makes it its root and execs CMD.
struct RunImage: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run CMD on an overlay of the image's layers.")

    @Argument(help: "The image: oci:DIR[:TAG].") var image: String
    @Option(help: ArgumentHelp("The image store (default: chapter 06's, in the cache).", valueName: "DIR")) var store: String?
    @Argument(parsing: .postTerminator, help: "The command (default: sh).") var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("06") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "overlayfs, device nodes and namespaces need root")])
            let (layout, tag, _) = try openImage(image)
            let images = try ImageStore(root: store.map { FilePath($0) } ?? ImageStore.defaultRoot())
            let found = try images.importImage(from: layout, tag: tag, as: "\(projectPrefix)-exercise-06:\(image)")
            // Each layer once, into a folder named by its digest: the next run finds it there.
            for layer in found.manifest.layers { try images.unpackLayer(layer) }
            let layers = found.manifest.layers.map { images.layerDirectory($0) }

            // The container's own folders; the overlay is mounted inside its mount
            // namespace, so it goes away with the container.
            let folder = images.root.appending("containers").appending("\(projectPrefix)-exercise-06-\(getpid())")
            let upper = folder.appending("upper"), work = folder.appending("work"), merged = folder.appending("merged")
            defer { try? FileSystem.removeTree(folder) }
            for directory in [upper, work, merged] { try FileSystem.makeDirectories(directory) }
            printError(Style.standardError.dim("  (\(layers.count) layers, each unpacked once in \(images.root)/layers;"))
            printError(Style.standardError.dim("   this container's writes go to \(upper))"))

            blockSignalsForSupervision()
            let child = try Container.start(
                arguments: ["exercise-06", "init", "--upper", upper.string, "--work", work.string, "--merged", merged.string]
                    + layers.flatMap { ["--layer", $0.string] } + ["--"] + (command.isEmpty ? ["sh"] : command),
                environment: exerciseEnvironment(), namespaces: [.mount, .uts, .ipc, .pid])
            status = try child.waitForwardingSignals()
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }
}

/// The container's init (hidden): your overlay, then pivot_root into it, /proc, execve(2).
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(internal) stack the layers, enter them, exec COMMAND.", shouldDisplay: false)

    @Option var upper: String
    @Option var work: String
    @Option var merged: String
    @Option var layer: [String] = []
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        runExercise("06") {
            // Nothing mounted here may propagate to the host (mount_namespaces(7)).
            try Mount.mount(source: "none", target: "/", flags: [.recursive, .slave])
            try Identity.setHostname("isolation-ex06")

            // The layers become one tree at merged (your step "overlay").
            let root = FilePath(merged)
            try stackLayers(layer.map { FilePath($0) }, upper: FilePath(upper), work: FilePath(work), on: root)

            // merged becomes "/", the host's root goes (chapter 04's pivot_root(".", ".")).
            do {
                try FileSystem.changeDirectory(root)
                try Mount.pivotRoot(newRoot: ".", putOld: ".")
                try Mount.unmount(".", detach: true)
                try FileSystem.changeDirectory("/")
            } catch let error as Errno {
                throw StageError(stage: "pivot_root into \(root) (is it a mount point? your step \"overlay\" mounts it)", errno: error)
            }
            if FileSystem.isDirectory("/proc") { try Mount.mount(source: "proc", target: "/proc", type: "proc") }
            try Exec.replaceProcess(try Exec.resolve(command[0]), arguments: command, environment: exerciseEnvironment())
        }
    }
}
