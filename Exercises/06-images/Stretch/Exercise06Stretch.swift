// Exercise 06, stretch — the way back: from what a container changed to an OCI layer, as
// `podman commit` and a build's RUN step make it. The container ran on overlayfs; every
// change it made is in the overlay's upper folder, in overlayfs' own form. Your steps
// (Steps.swift) turn overlayfs' two kinds of record into layer.md's: a deletion, and a
// directory that hides everything below it. This file is the rest: the walk, the tar,
// gzip, the digests, the new image.
//
//   sudo .build/debug/exercise-06-stretch commit --upper DIR --layout DIR --from TAG --tag NEW
//   swift run check 06 --stretch
//
// The solution is chapter 06's LayerWriter.addOverlayChanges(from:) in
// Sources/Isolation/Image/LayerWriter.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import IsolationImage
import SystemPackage

@main
struct Exercise06Stretch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-06-stretch",
        abstract: "Exercise 06, stretch: a container's overlay upper folder becomes a new layer of its image (your steps: Steps.swift).",
        subcommands: [Commit.self],
        defaultSubcommand: Commit.self)
}

/// `commit`: the upper folder as a layer tar (your steps say what overlayfs' records
/// become), gzip-compressed into the layout; then the image FROM plus that layer, tagged NEW.
struct Commit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the changes in an overlay's upper folder as a new layer on top of an image.")

    @Option(help: ArgumentHelp("The overlay's upper folder (the overlay unmounted, or the container stopped).", valueName: "DIR")) var upper: String
    @Option(help: ArgumentHelp("The OCI layout that holds the image the container ran.", valueName: "DIR")) var layout: String
    @Option(help: ArgumentHelp("The image's tag in the layout (the container's lower layers).", valueName: "TAG")) var from: String
    @Option(help: ArgumentHelp("The tag of the new image (FROM's layers and the new one).", valueName: "TAG")) var tag: String

    func run() throws {
        runExercise("06-stretch") {
            try Preflight.require([Preflight.root(why: "the upper folder's owners and overlayfs' trusted.* xattrs need root")])
            let upperPath = FilePath(upper)
            guard FileSystem.isDirectory(upperPath) else {
                throw IsolationError("\(upperPath) is not a folder", hint: "give the overlay's upperdir")
            }
            let images = try ImageLayout(opening: FilePath(layout))
            let base = try images.resolve(tag: from).manifest
            var config = try images.config(of: base)

            // The tar, uncompressed first: its SHA-256 is the diff ID the config lists.
            let tarPath = images.path.appending("\(projectPrefix)-layer-\(getpid()).tar")
            defer { try? FileSystem.removeTree(tarPath) }
            let layer = try LayerWriter(tarPath: tarPath)
            layer.ownedByRoot = false               // the container's owners, as they are
            layer.keepsExtendedAttributes = true    // file capabilities, user.* attributes
            var whiteouts: [String] = [], opaque: [String] = [], entries = 0

            // Sorted, parents before what they hold: the same changes make the same tar.
            func walk(_ directory: FilePath, _ prefix: String) throws {
                for name in try FileSystem.contentsOfDirectory(directory).sorted() {
                    let relative = prefix.isEmpty ? name : prefix + "/" + name
                    let path = directory.appending(name)
                    var info = stat()
                    guard lstat(path.string, &info) == 0 else { throw StageError(stage: "lstat \(path)", errno: Errno(rawValue: errno)) }

                    // Your step "whiteout": is this overlayfs' record of a deletion?
                    if let marker = try whiteoutEntry(for: relative, info: info) {
                        try layer.addFile(marker, [], mode: 0o644, mtime: Int(info.st_mtim.tv_sec))
                        whiteouts.append(marker)
                        continue
                    }
                    // Anything else is the container's: its type, mode, owner, times, xattrs.
                    try layer.addFile(from: path, as: relative, info: info)
                    entries += 1
                    guard (info.st_mode & S_IFMT) == S_IFDIR else { continue }

                    // Your step "opaque": does this directory hide all that is below it?
                    if let marker = try opaqueEntry(for: relative, directory: path) {
                        try layer.addFile(marker, [], mode: 0o644, mtime: Int(info.st_mtim.tv_sec))
                        opaque.append(marker)
                    }
                    try walk(path, relative)
                }
            }
            try walk(upperPath, "")

            // gzip, the blob's digest (the manifest's) and the tar's (the config's diff ID).
            let (descriptor, diffID) = try layer.finish(into: images)
            config.rootfs.diffIDs.append(diffID)
            config.history = (config.history ?? []) + [ImageConfig.History(createdBy: "exercise-06-stretch commit --upper \(upper)")]
            let configDescriptor = try images.writeBlob(ImageLayout.encode(config), mediaType: MediaType.config)
            var manifest = try images.writeBlob(ImageLayout.encode(Manifest(config: configDescriptor, layers: base.layers + [descriptor])),
                                                mediaType: MediaType.manifest)
            manifest.annotations = [Descriptor.refNameAnnotation: tag]
            var index = try images.index()
            index.manifests = index.manifests.filter { $0.refName != tag } + [manifest]
            try images.writeIndex(index)

            say("layer \(descriptor.digest) (\(descriptor.size) bytes gzip), diff_id \(diffID)")
            say("  \(entries) entries" + (whiteouts.isEmpty ? "" : "; whiteouts: " + whiteouts.joined(separator: " "))
                + (opaque.isEmpty ? "" : "; opaque: " + opaque.joined(separator: " ")))
            say("image \(tag): \(base.layers.count) + 1 layers, in \(images.path)")
        }
    }
}
