// Exercise 06, stretch: the way back from a container's changes to a layer. The checker
// makes an image of one layer, mounts it on overlayfs with an upper folder of its own,
// and changes the merged tree as a container would (adds, changes, chowns, deletes a
// file and a directory, deletes a directory and makes it again, replaces a file with a
// directory). It unmounts, asks the exercise for the layer, lists the tar, then unpacks
// base + new layer with umoci and with the library: both must be what the container saw.
import CIsolation
import Glibc
import Isolation
import IsolationImage
import SystemPackage

func checkImagesStretch(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("06-stretch")
        defer {
            let left = context.unmountLeftovers(under: folder)
            report.check("nothing it mounted is left on the host", left.isEmpty,
                         observed: left.isEmpty ? "no mount under \(folder) in the host's mount table" : "left mounted (now removed): " + left.joined(separator: ", "),
                         expected: "none", hint: "the checker unmounts its overlay before the exercise runs; did it crash?")
        }
        let lower = folder.appending("lower"), upper = folder.appending("upper")
        let work = folder.appending("work"), merged = folder.appending("merged")
        let layoutPath = folder.appending("layout")
        try writeStretchBase(lower, layout: layoutPath, tag: "base")

        // The container: an overlay of the base, and the changes it makes.
        for directory in [upper, work, merged] { try FileSystem.makeDirectories(directory) }
        do {
            try Mount.mount(source: "overlay", target: merged, type: "overlay", data: "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)")
        } catch let error as Errno {
            throw StageError(stage: "mount overlay on \(merged) (upperdir in \(folder))", errno: error,
                             detail: "overlayfs needs an upper folder on a file system with trusted.* xattrs and d_type (ext4, xfs, tmpfs), not on overlayfs")
        }
        let seen: [String: String]
        do {
            try changeAsAContainer(merged)
            seen = try treeSummary(merged).filter { $0.key != "/" }
            try Mount.unmount(merged)
        } catch {
            try? Mount.unmount(merged, detach: true)
            throw error
        }
        let recorded = overlayRecords(upper)
        report.note("overlay: lowerdir=lower (the base image), upperdir=upper, in\n    \(folder)")
        report.note("in merged, as a container would: added data/new (1000:1001, 0640, an\n"
                    + "  xattr), data/new-dir, data/link; changed data/changed; chowned data/owned;\n"
                    + "  deleted data/gone and data/gone-dir; deleted data/remade and made it\n"
                    + "  again; replaced the file data/was-file with a directory")
        report.note("what overlayfs left in upper:\n" + recorded.map { "    " + $0 }.joined(separator: "\n"))

        // The learner's program: the upper folder becomes a layer of a new image.
        let arguments = ["commit", "--upper", upper.string, "--layout", layoutPath.string, "--from", "base", "--tag", "committed"]
        let running = try Running(program, arguments, environment: context.environment())
        let status = running.finish(timeout: 120)
        guard status == .exited(0) else {
            let todos = running.stderr.todoSteps
            report.fail("exercise-06-stretch commit writes the layer",
                        observed: todos.isEmpty ? "exercise-06-stretch \(status)" : "it stopped at a TODO (\(status)): " + todos.map { "step \"\($0)\"" }.joined(separator: ", "),
                        expected: "exited 0, the image \"committed\" in \(layoutPath)",
                        hint: (todos.isEmpty ? "run it yourself (sudo \(running.commandLine)) and read its error:\n"
                               : "write that step in Exercises/06-images/Stretch/Steps.swift; the exercise printed:\n") + indent(running.stderr + running.stdout))
            report.skipped("the layer and the unpacked image")
            return
        }
        report.check("exercise-06-stretch commit writes the layer", true,
                     observed: "exited 0: the image \"committed\" is base + 1 layer", expected: "", hint: "")

        let layout = try ImageLayout(opening: layoutPath)
        let manifest = try layout.resolve(tag: "committed").manifest
        guard let layer = manifest.layers.last, manifest.layers.count == 2 else {
            report.fail("the image \"committed\" is the base plus one layer", observed: "\(manifest.layers.count) layers", expected: "2", hint: "the starter writes it; did you change Exercise06Stretch.swift?")
            return
        }
        let blob = layout.blobPath(layer.digest)

        // The tar as tar(1) lists it: the learner sees the whiteouts.
        let listing = try Command.run("/usr/bin/env", ["tar", "-tvzf", blob.string])
        let lines = listing.standardOutput.split(separator: "\n").map(String.init)
        report.note("tar -tvzf \(layer.digest.short) (\(lines.count) entries):\n" + lines.map { "    " + $0 }.joined(separator: "\n"))
        let names = try tarNames(blob)
        let markers = names.filter { $0.split(separator: "/").contains { $0.hasPrefix(LayerApplier.whiteoutPrefix) } }
        let devices = lines.filter { $0.hasPrefix("c") }.map { String($0.split(separator: " ").last ?? "") }
        let misplaced = markers.filter { path in path.split(separator: "/").dropLast().contains { $0.hasPrefix(LayerApplier.whiteoutPrefix) } }
        let wantedWhiteouts = ["data/.wh.gone", "data/.wh.gone-dir"]
        let deletions = markers.filter { !$0.hasSuffix(LayerApplier.opaqueMarker) }
        report.check("each deletion is a .wh.NAME entry next to the name it deletes", wantedWhiteouts.allSatisfy(names.contains) && misplaced.isEmpty && devices.isEmpty,
                     observed: (deletions.isEmpty ? "no .wh.NAME entry" : deletions.joined(separator: " "))
                        + (devices.isEmpty ? "" : "; character devices copied as they are: " + devices.joined(separator: " ")),
                     expected: wantedWhiteouts.joined(separator: " ") + ", and no 0:0 device",
                     hint: !misplaced.isEmpty
                        ? "step \"whiteout\": the marker lives in the directory of the deleted entry: data/.wh.gone, not .wh.data/gone (a tar reader makes a directory \".wh.data\" and deletes nothing)"
                        : "step \"whiteout\": overlayfs records a deletion as a character device 0:0 under the deleted name (overlayfs.rst); layer.md says it with an empty .wh.NAME in the same directory")
        let opaqueMarker = "data/remade/" + LayerApplier.opaqueMarker
        report.check("the directory made again carries the opaque marker", names.contains(opaqueMarker) && names.contains("data/remade"),
                     observed: names.filter { $0.hasSuffix(LayerApplier.opaqueMarker) }.joined(separator: " ").nonEmpty ?? "no .wh..wh..opq entry",
                     expected: "\(opaqueMarker), after the entry data/remade",
                     hint: "step \"opaque\": overlayfs marks a directory made over a deleted one with the xattr trusted.overlay.opaque=y (user.overlay.opaque with userxattr); layer.md says it with .wh..wh..opq inside it. Without it the old entries come back")

        // The digests the manifest and the config give.
        let config = try layout.config(of: manifest)
        let diffID = try DiffID.ofLayer(blob, mediaType: layer.mediaType)
        let blobOK = (try? layout.verifyBlob(layer)) != nil
        report.check("the layer's digest and diff_id are what the image says", blobOK && config.rootfs.diffIDs.last == diffID && config.rootfs.diffIDs.count == 2,
                     observed: blobOK && config.rootfs.diffIDs.last == diffID ? "the blob's bytes hash to \(layer.digest.short), the tar in it to diff_ids[1]"
                        : "blob \(layer.digest.short) \(blobOK ? "matches" : "does not match") its bytes; diff_ids[1] \(config.rootfs.diffIDs.last?.short ?? "none"), the tar's \(diffID.short)",
                     expected: "the manifest's digest = SHA-256 of the gzip blob, the config's diff_id = SHA-256 of the tar", hint: "the starter computes them; did you change Exercise06Stretch.swift?")

        // Both unpackers, base + the new layer, against what the container saw.
        let bundle = folder.appending("umoci")
        let umoci = try Command.run("/usr/bin/env", ["umoci", "unpack", "--image", "\(layoutPath):committed", bundle.string])
        if umoci.status != .exited(0) {
            report.fail("umoci unpack of base + the layer is what the container saw", observed: "umoci unpack \(umoci.status): \(umoci.standardError.trimmed.prefix(300))",
                        expected: "exited 0", hint: "umoci refuses a layer it cannot read: is every entry's path relative, below the root?")
        } else {
            compareWithSeen(report, "umoci", try treeSummary(bundle.appending("rootfs")), seen)
        }
        let ours = folder.appending("library")
        try FileSystem.makeDirectories(ours)
        for each in manifest.layers {
            var applier = LayerApplier(root: ours, mode: .flatten)
            try applier.apply(layer: layout.blobPath(each.digest), mediaType: each.mediaType)
        }
        compareWithSeen(report, "the library", try treeSummary(ours), seen)

        let note = "data/new"
        let values = [("the container", seenNote), ("umoci", attribute(bundle.appending("rootfs/\(note)"))), ("the library", attribute(ours.appending(note)))]
        report.check("a file's extended attribute goes with the layer", values.allSatisfy { $0.1 == "committed" },
                     observed: values.allSatisfy({ $0.1 == "committed" }) ? "user.isolation.note=committed in all three trees"
                        : values.map { "\($0.0): \($0.1 ?? "none")" }.joined(separator: "; "),
                     expected: "user.isolation.note=committed everywhere", hint: "the starter writes xattrs (LayerWriter.keepsExtendedAttributes); did you change Exercise06Stretch.swift?")

        // Rootless engines mount with userxattr: the opaque mark is user.overlay.opaque there.
        if interrupted() { return }
        try checkUserXattrOverlay(report, program, folder: folder, lower: lower, layoutPath: layoutPath, environment: context.environment())
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "an overlay mount and an OCI layout in /tmp", hint: "run `swift run doctor`")
    }
}

/// A second container on the same base, on an overlay mounted with `userxattr` (as
/// rootless podman's is): it deletes data/remade and makes it again.
func checkUserXattrOverlay(_ report: Report, _ program: String, folder: FilePath, lower: FilePath, layoutPath: FilePath, environment: [String]) throws {
    let upper = folder.appending("upper-userxattr"), work = folder.appending("work-userxattr"), merged = folder.appending("merged-userxattr")
    for directory in [upper, work, merged] { try FileSystem.makeDirectories(directory) }
    try Mount.mount(source: "overlay", target: merged, type: "overlay", data: "lowerdir=\(lower),upperdir=\(upper),workdir=\(work),userxattr")
    let seen: [String: String]
    do {
        try FileSystem.removeTree(merged.appending("data/remade"))
        try FileSystem.makeDirectories(merged.appending("data/remade"))
        try FileSystem.writeFile(merged.appending("data/remade/again"), "made again, rootless\n")
        seen = try treeSummary(merged).filter { $0.key != "/" }
        try Mount.unmount(merged)
    } catch {
        try? Mount.unmount(merged, detach: true)
        throw error
    }
    let name = "a rootless overlay (userxattr): the remade directory is opaque too"
    let running = try Running(program, ["commit", "--upper", upper.string, "--layout", layoutPath.string, "--from", "base", "--tag", "committed-userxattr"],
                              environment: environment)
    let status = running.finish(timeout: 120)
    guard status == .exited(0) else {
        report.fail(name, observed: "exercise-06-stretch commit --upper \(upper) \(status)", expected: "exited 0",
                    hint: "run it yourself (sudo \(running.commandLine)) and read its error:\n" + indent(running.stderr + running.stdout))
        return
    }
    let layout = try ImageLayout(opening: layoutPath)
    let manifest = try layout.resolve(tag: "committed-userxattr").manifest
    let names = try manifest.layers.last.map { try tarNames(layout.blobPath($0.digest)) } ?? []
    let ours = folder.appending("library-userxattr")
    try FileSystem.makeDirectories(ours)
    for each in manifest.layers {
        var applier = LayerApplier(root: ours, mode: .flatten)
        try applier.apply(layer: layout.blobPath(each.digest), mediaType: each.mediaType)
    }
    let tree = try treeSummary(ours).filter { $0.key != "/" }
    let differing = Set(tree.keys).union(seen.keys).sorted().filter { tree[$0] != seen[$0] }
    let marker = "data/remade/" + LayerApplier.opaqueMarker
    var value = [UInt8](repeating: 0, count: 8)
    let size = lgetxattr(upper.appending("data/remade").string, "user.overlay.opaque", &value, value.count)
    let userOpaque = size >= 0 ? String(decoding: value[0..<size], as: UTF8.self) : nil
    report.check(name, names.contains(marker) && differing.isEmpty,
                 observed: "upper: data/remade user.overlay.opaque=\(userOpaque ?? "none")\n        layer: "
                    + (names.contains(marker) ? marker : "no \(marker)")
                    + (differing.isEmpty ? "; unpacked: the merged view" : "\n        unpacked, not as merged: " + differing.prefix(4).joined(separator: " ")),
                 expected: "\(marker), and data/remade holds only again",
                 hint: "step \"opaque\": overlayfs mounted with userxattr (as rootless podman mounts it) writes user.overlay.opaque instead of trusted.overlay.opaque (overlayfs.rst, \"Permission model\"): read both")
}

/// The xattr the container set on data/new.
private let seenNote = "committed"

private func attribute(_ path: FilePath) -> String? {
    var value = [UInt8](repeating: 0, count: 256)
    let size = lgetxattr(path.string, "user.isolation.note", &value, value.count)
    return size >= 0 ? String(decoding: value[0..<size], as: UTF8.self) : nil
}

private extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}

/// The base image: a small tree written as one layer, tagged `tag` in a new layout.
func writeStretchBase(_ lower: FilePath, layout path: FilePath, tag: String) throws {
    for directory in ["data/gone-dir/sub", "data/remade/sub", "etc"] { try FileSystem.makeDirectories(lower.appending(directory)) }
    for (name, text) in [("etc/isolation-layer", "1"), ("data/keep", "kept"), ("data/gone", "the container deletes me"),
                         ("data/gone-dir/a", "a"), ("data/gone-dir/sub/b", "b"), ("data/remade/old1", "old"), ("data/remade/old2", "old"),
                         ("data/remade/sub/deep", "old"), ("data/was-file", "a file, then a directory"), ("data/changed", "before"),
                         ("data/owned", "root's, then 1000's")] {
        try FileSystem.writeFile(lower.appending(name), text + "\n")
    }
    let layout = try ImageLayout.create(at: path)
    let writer = try LayerWriter(tarPath: path.appending("base.tar"))
    writer.ownedByRoot = false
    try writer.addTree(lower)
    let (layer, diffID) = try writer.finish(into: layout)
    let config = ImageConfig(architecture: Platform.current.architecture, config: ImageConfig.Execution(cmd: ["/bin/sh"]),
                             rootfs: ImageConfig.RootFS(diffIDs: [diffID]))
    let configDescriptor = try layout.writeBlob(ImageLayout.encode(config), mediaType: MediaType.config)
    var descriptor = try layout.writeBlob(ImageLayout.encode(Manifest(config: configDescriptor, layers: [layer])), mediaType: MediaType.manifest)
    descriptor.annotations = [Descriptor.refNameAnnotation: tag]
    try layout.writeIndex(ImageIndex(manifests: [descriptor]))
}

/// What a container does to its root: every kind of change a layer must carry.
func changeAsAContainer(_ root: FilePath) throws {
    func path(_ name: String) -> FilePath { root.appending(name) }
    func must(_ what: String, _ result: Int32) throws {
        guard result == 0 else { throw StageError(stage: "\(what) in the overlay", errno: Errno(rawValue: errno)) }
    }
    try FileSystem.writeFile(path("data/new"), "added by the container\n", mode: 0o640)
    try must("chown data/new", chown(path("data/new").string, 1000, 1001))
    try must("setxattr data/new", setxattr(path("data/new").string, "user.isolation.note", seenNote, seenNote.utf8.count, 0))
    try FileSystem.makeDirectories(path("data/new-dir"))
    try FileSystem.writeFile(path("data/new-dir/file"), "in a new directory\n")
    try must("symlink data/link", symlink("keep", path("data/link").string))
    try FileSystem.writeFile(path("data/changed"), "after: the container changed it\n")
    try must("chown data/owned", chown(path("data/owned").string, 1000, 1000))
    try must("chmod data/owned", chmod(path("data/owned").string, 0o600))
    try FileSystem.writeFile(path("etc/isolation-layer"), "2\n")
    try must("unlink data/gone", unlink(path("data/gone").string))
    try FileSystem.removeTree(path("data/gone-dir"))
    try FileSystem.removeTree(path("data/remade"))
    try FileSystem.makeDirectories(path("data/remade"))
    try FileSystem.writeFile(path("data/remade/new"), "the only entry now\n")
    try must("unlink data/was-file", unlink(path("data/was-file").string))
    try FileSystem.makeDirectories(path("data/was-file"))
    try FileSystem.writeFile(path("data/was-file/inside"), "a directory now\n")
}

/// overlayfs' records in the upper folder: its whiteouts and opaque directories.
func overlayRecords(_ upper: FilePath, _ relative: String = "") -> [String] {
    var found: [String] = []
    let directory = relative.isEmpty ? upper : upper.appending(relative)
    for name in ((try? FileSystem.contentsOfDirectory(directory)) ?? []).sorted() {
        let path = relative.isEmpty ? name : relative + "/" + name
        var info = stat()
        guard lstat(upper.appending(path).string, &info) == 0 else { continue }
        if (info.st_mode & S_IFMT) == S_IFCHR { found.append("\(path) " + (info.st_rdev == 0 ? "c 0,0 (a whiteout)" : "c \(info.st_rdev)")) }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            if LayerWriter.isOverlayOpaque(upper.appending(path)) { found.append("\(path)/ trusted.overlay.opaque=y") }
            found += overlayRecords(upper, path)
        }
    }
    return found
}

/// The entries' names in a layer (gzip tar), without a leading "./".
func tarNames(_ blob: FilePath) throws -> [String] {
    let result = try Command.run("/usr/bin/env", ["tar", "-tzf", blob.string])
    guard result.status == .exited(0) else { throw IsolationError("tar -tzf \(blob): \(result.standardError.trimmed)") }
    return result.standardOutput.split(separator: "\n").map { line in
        var name = String(line)
        while name.hasPrefix("./") { name.removeFirst(2) }
        return name.hasSuffix("/") ? String(name.dropLast()) : name
    }
}

/// One unpacker's tree against the merged view, entry by entry.
func compareWithSeen(_ report: Report, _ who: String, _ tree: [String: String], _ seen: [String: String]) {
    let unpacked = tree.filter { $0.key != "/" }
    let differing = Set(unpacked.keys).union(seen.keys).sorted().filter { unpacked[$0] != seen[$0] }
    let lines = differing.prefix(6).map { "\($0): \(who) \(unpacked[$0] ?? "absent") · the container \(seen[$0] ?? "absent")" }
    let hint: String
    if differing.contains(where: { $0.hasPrefix("/data/remade/") }) {
        hint = "step \"opaque\": the old entries of data/remade came back: the layer must say that nothing below shows through that directory"
    } else if differing.contains(where: { $0.hasPrefix("/data/gone") || $0.hasPrefix("/.wh.") || $0.contains("/.wh.") }) {
        hint = "step \"whiteout\": a deleted name must be gone after the layers are applied; the marker is .wh.NAME in the deleted entry's own directory"
    } else {
        hint = "every entry of the upper folder goes into the layer with its type, mode, owner and content"
    }
    report.check("\(who == "umoci" ? "umoci unpack" : "the library's unpack") of base + the layer is what the container saw", differing.isEmpty,
                 observed: differing.isEmpty ? "the same \(seen.count) entries: type, mode, owner, size, SHA-256, target" : lines.joined(separator: "\n        "),
                 expected: "the merged view of the container's overlay, entry by entry", hint: hint)
}

/// `check 06 --stretch --hint`: level 1 the API, level 2 the shape of the answer.
let imageStretchHints: [StepHint] = [
    StepHint(step: "whiteout",
             api: "info.st_mode & S_IFMT == S_IFCHR and info.st_rdev == 0 is overlayfs' whiteout (stat(2), inode(7)); the prefix is \".wh.\"; split relative at \"/\" into its directory and its name. The library's own answer is LayerWriter.isOverlayWhiteout and addWhiteout: write yours.",
             shape: "Not a 0:0 character device: nil. Else the directory part of relative, then \".wh.\" + the last component: \"data/gone\" → \"data/.wh.gone\", \"top\" → \".wh.top\"."),
    StepHint(step: "opaque",
             api: "lgetxattr(2) on directory.string for \"trusted.overlay.opaque\", and for \"user.overlay.opaque\" (a mount with userxattr); the value \"y\" means opaque; lgetxattr is in CIsolation (sys/xattr.h). The marker's name is \".wh..wh..opq\". The library's own answer is LayerWriter.isOverlayOpaque: write yours.",
             shape: "For each of the two names: a buffer of a few bytes, lgetxattr; size 1 and the byte \"y\" → return relative + \"/.wh..wh..opq\" (inside the directory). Neither → nil."),
]
