// Exercise 06: an image of three layers the checker writes (whiteouts of a file, of a
// directory and of a file the middle layer added; an opaque directory whose new entry
// comes before its marker; one file changed by every layer). The exercise flattens it
// (the tree is compared with the library's own unpack of the same image) and runs a
// probe on its overlay (the mount read from /proc/PID/mountinfo, the upper folder and
// the layers looked at from the host).
import Glibc
import Isolation
import IsolationImage
import SystemPackage

func checkImages(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("06")
        let layoutPath = folder.appending("layout")
        let manifest = try writeCheckImage(at: layoutPath, rootfs: try context.rootfs(in: folder, name: "base"))
        let reference = "oci:\(layoutPath):latest"
        report.note("image: \(reference) — 3 layers; layer 2 whites out /data/gone, /data/gone-dir and makes /data/opaque opaque; layer 3 whites out /data/from2")
        checkUnpack(&context, program, folder: folder, reference: reference)
        if interrupted() { return }
        checkOverlay(&context, program, folder: folder, reference: reference, manifest: manifest)
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "an OCI image layout in /tmp", hint: "run `swift run doctor`")
    }
}

/// The checker's image: the built-in root filesystem and a few files (layer 1), then two
/// layers of changes. Tar order matters: layer 2 lists data/opaque/new before the marker.
func writeCheckImage(at path: FilePath, rootfs: FilePath) throws -> Manifest {
    let layout = try ImageLayout.create(at: path)
    let scratch = path.appending("tars")
    try FileSystem.makeDirectories(scratch)
    defer { try? FileSystem.removeTree(scratch) }
    let epoch = 1_700_000_000

    let base = try LayerWriter(tarPath: scratch.appending("1.tar"))
    try base.addTree(rootfs)
    for directory in ["data", "data/gone-dir", "data/gone-dir/sub", "data/opaque"] { try base.addDirectory(directory, mtime: epoch) }
    for (name, text) in [("etc/isolation-layer", "1"), ("data/gone", "a file layer 2 deletes"), ("data/gone-dir/a", "a"),
                         ("data/gone-dir/sub/b", "b"), ("data/keep", "kept"), ("data/opaque/old1", "old"), ("data/opaque/old2", "old")] {
        try base.addFile(name, Array((text + "\n").utf8), mtime: epoch)
    }
    let (layer1, diff1) = try base.finish(into: layout)

    let middle = try LayerWriter(tarPath: scratch.appending("2.tar"))
    try middle.addDirectory("data", mtime: epoch)
    try middle.addWhiteout("data/gone", mtime: epoch)
    try middle.addWhiteout("data/gone-dir", mtime: epoch)
    try middle.addDirectory("data/opaque", mtime: epoch)
    try middle.addFile("data/opaque/new", Array("new in layer 2\n".utf8), mtime: epoch)
    try middle.addFile("data/opaque/" + LayerApplier.opaqueMarker, [], mtime: epoch)
    try middle.addFile("data/from2", Array("layer 3 deletes me\n".utf8), mtime: epoch)
    try middle.addFile("etc/isolation-layer", Array("2\n".utf8), mtime: epoch)
    let (layer2, diff2) = try middle.finish(into: layout)

    let top = try LayerWriter(tarPath: scratch.appending("3.tar"))
    try top.addWhiteout("data/from2", mtime: epoch)
    try top.addFile("etc/isolation-layer", Array("3\n".utf8), mtime: epoch)
    let (layer3, diff3) = try top.finish(into: layout, gzip: false)

    let config = ImageConfig(architecture: Platform.current.architecture, config: ImageConfig.Execution(cmd: ["/bin/sh"]),
                             rootfs: ImageConfig.RootFS(diffIDs: [diff1, diff2, diff3]))
    let configDescriptor = try layout.writeBlob(ImageLayout.encode(config), mediaType: MediaType.config)
    let manifest = Manifest(config: configDescriptor, layers: [layer1, layer2, layer3])
    var descriptor = try layout.writeBlob(ImageLayout.encode(manifest), mediaType: MediaType.manifest)
    descriptor.annotations = [Descriptor.refNameAnnotation: "latest"]
    try layout.writeIndex(ImageIndex(manifests: [descriptor]))
    return manifest
}

/// Runs the exercise to its end (no probe): nil and a failed check when it stopped at a TODO or failed.
func runToEnd(_ report: Report, _ what: String, _ program: String, _ arguments: [String], environment: [String]) -> Running? {
    let running: Running
    do { running = try Running(program, arguments, environment: environment) } catch {
        report.fail(what, observed: "\(error)", expected: "a running exercise", hint: "is it built? swift build --product exercise-06")
        return nil
    }
    let status = running.finish(timeout: 300)
    if status == .exited(0) { return running }
    let todos = running.stderr.todoSteps
    report.fail(what, observed: todos.isEmpty ? "exercise-06 \(status)" : "it stopped at a TODO (\(status)): " + todos.map { "step \"\($0)\"" }.joined(separator: ", "),
                expected: "exited 0",
                hint: (todos.isEmpty ? "run it yourself (sudo \(program) \(arguments.map(shellQuote).joined(separator: " "))) and read its error:\n"
                       : "write that step in Exercises/06-images/Steps.swift; the exercise printed:\n") + indent(running.stderr + running.stdout))
    return nil
}

func checkUnpack(_ context: inout CheckContext, _ program: String, folder: FilePath, reference: String) {
    let report = context.report
    let rootfs = folder.appending("rootfs")
    guard runToEnd(report, "exercise-06 unpack flattens the image", program, ["unpack", reference, rootfs.string], environment: context.environment()) != nil else {
        report.skipped("the flattened tree")
        return
    }
    report.check("exercise-06 unpack flattens the image", true, observed: "exercise-06 unpack \(reference) \(rootfs) → exited 0", expected: "", hint: "")
    func exists(_ path: String) -> Bool { FileSystem.exists(rootfs.appending(path), followSymlinks: false) }
    func list(_ path: String) -> String {
        ((try? FileSystem.contentsOfDirectory(rootfs.appending(path)))?.sorted().joined(separator: " ")).map { $0.isEmpty ? "(empty)" : $0 } ?? "(missing)"
    }
    report.check("a whiteout deletes a file of a lower layer", !exists("data/gone") && exists("data/keep"),
                 observed: "/data holds: \(list("data"))", expected: "no gone (layer 2's data/.wh.gone), keep still there",
                 hint: "step \"whiteout\": the marker .wh.gone stands for the name gone in the same directory: that name must be deleted")
    report.check("a whiteout deletes a directory of a lower layer, with all it holds", !exists("data/gone-dir"),
                 observed: exists("data/gone-dir") ? "/data/gone-dir holds: \(list("data/gone-dir"))" : "no /data/gone-dir",
                 expected: "no gone-dir (layer 2's data/.wh.gone-dir)",
                 hint: "step \"whiteout\": the name may be a directory that is not empty; unlink(2) and rmdir(2) alone fail on it, delete the whole tree (without following symlinks)")
    report.check("a whiteout of the layer above deletes what the middle layer added", !exists("data/from2"),
                 observed: exists("data/from2") ? "/data/from2 is there" : "no /data/from2", expected: "no from2 (layer 3's data/.wh.from2)",
                 hint: "step \"whiteout\": every layer's whiteouts apply to everything below it, the layers are applied in the manifest's order")
    let markers = whiteoutMarkers(in: rootfs)
    report.check("no .wh. marker is left in the tree", markers.isEmpty,
                 observed: markers.isEmpty ? "no file named .wh.* under \(rootfs)" : "found: " + markers.prefix(5).joined(separator: " "),
                 expected: "none: a marker is an instruction, not a file of the image",
                 hint: "steps \"whiteout\" and \"opaque\": never write the marker itself into the tree")
    let opaque = list("data/opaque")
    report.check("an opaque directory hides what the layers below put in it", !exists("data/opaque/old1") && !exists("data/opaque/old2"),
                 observed: "/data/opaque holds: \(opaque)", expected: "no old1, old2 (layer 1's)",
                 hint: "step \"opaque\": .wh..wh..opq says nothing below this layer shows through that directory: remove what the lower layers left there")
    report.check("… and keeps what its own layer wrote before the marker", exists("data/opaque/new"),
                 observed: "/data/opaque holds: \(opaque)", expected: "new (layer 2 lists data/opaque/new before data/opaque/.wh..wh..opq)",
                 hint: "step \"opaque\": a tar's order is free, so the layer's own entries may come first: keep the names in addedByThisLayer")
    // The whole tree, against the library's own unpack of the same image.
    do {
        let expected = folder.appending("expected")
        let layout = try ImageLayout(opening: folder.appending("layout"))
        let manifest = try layout.resolve(tag: "latest").manifest
        try FileSystem.makeDirectories(expected)
        for layer in manifest.layers {
            var applier = LayerApplier(root: expected, mode: .flatten)
            try applier.apply(layer: layout.blobPath(layer.digest), mediaType: layer.mediaType)
        }
        let differences = try compareTrees(rootfs, expected)
        report.check("the whole tree is the image's (type, mode, owner, content of every entry)", differences.isEmpty,
                     observed: differences.isEmpty ? "the same \(try treeSummary(rootfs).count) entries as the reference unpack" : differences.prefix(6).joined(separator: "\n        "),
                     expected: "what chapter 06's LayerApplier makes of the same layers",
                     hint: "a whiteout removes exactly the name it stands for; an opaque marker only its directory's entries from lower layers")
    } catch {
        report.fail("the whole tree is the image's", observed: "\(error)", expected: "a reference unpack to compare with", hint: "run `swift run doctor`")
    }
}

/// Paths of files named `.wh.*` under `root`.
func whiteoutMarkers(in root: FilePath, relative: String = "") -> [String] {
    var found: [String] = []
    let directory = relative.isEmpty ? root : root.appending(relative)
    for name in (try? FileSystem.contentsOfDirectory(directory)) ?? [] {
        let path = relative.isEmpty ? name : relative + "/" + name
        if name.hasPrefix(LayerApplier.whiteoutPrefix) { found.append("/" + path) }
        var info = stat()
        if lstat(root.appending(path).string, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            found += whiteoutMarkers(in: root, relative: path)
        }
    }
    return found
}

/// Every entry under `root`: type, mode, owner, and size and SHA-256 for files, the target for symlinks.
func treeSummary(_ root: FilePath) throws -> [String: String] {
    var entries: [String: String] = [:]
    func walk(_ relative: String) throws {
        let path = relative.isEmpty ? root.string : root.string + "/" + relative
        var info = stat()
        guard lstat(path, &info) == 0 else { throw currentErrno() }
        var text = "mode \(String(info.st_mode & 0o7777, radix: 8)) owner \(info.st_uid):\(info.st_gid)"
        switch info.st_mode & S_IFMT {
        case S_IFREG: text = "file " + text + " \(info.st_size) bytes " + (try Digest.ofFile(FilePath(path)).digest.short)
        case S_IFDIR: text = "directory " + text
        case S_IFLNK: text = "symlink → " + (try FileSystem.readLink(FilePath(path)).string)
        default: text = "device or fifo " + text + " \(info.st_rdev)"
        }
        entries["/" + relative] = text
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in try FileSystem.contentsOfDirectory(FilePath(path)) { try walk(relative.isEmpty ? name : relative + "/" + name) }
        }
    }
    try walk("")
    return entries
}

func compareTrees(_ ours: FilePath, _ expected: FilePath) throws -> [String] {
    let a = try treeSummary(ours), b = try treeSummary(expected)
    return Set(a.keys).union(b.keys).sorted().filter { a[$0] != b[$0] }.map { "\($0): yours \(a[$0] ?? "absent") · expected \(b[$0] ?? "absent")" }
}

/// The overlay options of the mount at "/" in `pid`'s mount table: lowerdir (split at
/// ":"; "lowerdir+=" entries appended), upperdir, workdir. nil when "/" is no overlay.
func overlayOptions(of pid: pid_t) -> (type: String, lower: [String], upper: String?, work: String?)? {
    guard let text = try? FileSystem.readString(FilePath("/proc/\(pid)/mountinfo")) else { return nil }
    var found: (String, [String], String?, String?)?
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ").map(String.init)
        guard let dash = fields.firstIndex(of: "-"), fields.count > dash + 3, fields.count > 4, fields[4] == "/" else { continue }
        var lower: [String] = [], upper: String?, work: String?
        // Super options: commas inside a path are escaped as "\,".
        var options: [String] = [], current = ""
        var escaped = false
        for character in fields[dash + 3] {
            if escaped { current.append(character); escaped = false; continue }
            if character == "\\" { escaped = true; current.append(character); continue }
            if character == "," { options.append(current); current = "" } else { current.append(character) }
        }
        options.append(current)
        for option in options {
            if option.hasPrefix("lowerdir=") { lower += option.dropFirst(9).split(separator: ":").map { unescapeOctal(String($0)) } }
            if option.hasPrefix("lowerdir+=") { lower.append(unescapeOctal(String(option.dropFirst(10)))) }
            if option.hasPrefix("upperdir=") { upper = unescapeOctal(String(option.dropFirst(9))) }
            if option.hasPrefix("workdir=") { work = unescapeOctal(String(option.dropFirst(8))) }
        }
        found = (fields[dash + 1], lower, upper, work)   // the last mount at "/" is the one seen
    }
    return found.map { (type: $0.0, lower: $0.1, upper: $0.2, work: $0.3) }
}

func checkOverlay(_ context: inout CheckContext, _ program: String, folder: FilePath, reference: String, manifest: Manifest) {
    let report = context.report
    do {
        let store = try ImageStore(root: folder.appending("store"))
        let layers = manifest.layers.map { store.layerDirectory($0).string }
        let probe = "echo \"pid=$$\"; echo \"layer=$(cat /etc/isolation-layer)\"; echo \"data=$(ls /data | tr '\\n' ' ')\"; "
            + "echo \"opaque=$(ls /data/opaque | tr '\\n' ' ')\"; echo written > /isolation-written && echo write=ok; echo ready; read x; echo done"
        defer {
            let left = context.unmountLeftovers(under: folder)
            report.check("nothing it mounted is left on the host", left.isEmpty,
                         observed: left.isEmpty ? "no mount under \(folder) in the host's mount table" : "left mounted (now removed): " + left.joined(separator: ", "),
                         expected: "none: the overlay lives in the container's mount namespace",
                         hint: "the starter makes / rslave before your step; mount only inside the container's init")
        }
        guard let running = startProbe(report, "06", program, ["run", reference, "--store", store.root.string, "--", "sh", "-c", probe],
                                       environment: context.environment(), timeout: 180) else { return }
        defer { running.finish(timeout: 10) }
        let values = running.stdout.probeValues
        guard let shell = Proc.waitForDescendant(of: running.child.pid, named: "sh", timeout: 5) else {
            report.fail("find the container's process on the host", observed: "no sh below exercise-06", expected: "the probe", hint: "the init must exec the command")
            return
        }
        guard let overlay = overlayOptions(of: shell), overlay.type == "overlay" else {
            let seen = overlayOptions(of: shell).map { "a \($0.type) mount" } ?? "nothing readable"
            report.fail("the container's root is an overlay mount", observed: "\"/\" in /proc/\(shell)/mountinfo: \(seen)", expected: "overlay",
                        hint: "step \"overlay\": merged must be an overlayfs mount (mount(8), \"Mount options for overlay\")")
            return
        }
        report.check("the container's root is an overlay mount", true,
                     observed: "\"/\" in /proc/\(shell)/mountinfo: overlay, \(overlay.lower.count) lowerdirs", expected: "", hint: "")
        func shortList(_ paths: [String]) -> String {
            paths.map { path in layers.firstIndex(of: path).map { "layer \($0 + 1)" } ?? path }.joined(separator: ":")
        }
        let topFirst = Array(layers.reversed())
        let orderHint = overlay.lower == layers
            ? "step \"overlay\": lowerdir lists the top layer first (overlayfs.rst, \"Multiple lower layers\"), and the manifest lists the base first (manifest.md \"layers\"): give them in reverse"
            : "step \"overlay\": lowerdir must name every layer folder you were given, top layer first"
        report.check("lowerdir is the image's layers, the top one first", overlay.lower == topFirst,
                     observed: "lowerdir=\(shortList(overlay.lower))", expected: "lowerdir=\(shortList(topFirst)) (the store's layer folders)", hint: orderHint)
        report.check("the container reads a file from its top layer", values["layer"] == "3",
                     observed: "cat /etc/isolation-layer → \(values["layer"] ?? "nothing") (layers 1, 2 and 3 each wrote their number)",
                     expected: "3",
                     hint: overlay.lower == layers ? orderHint : "step \"overlay\": the layer the manifest lists last must be the top of the stack")
        report.check("whiteouts and the opaque directory hide what they should", values["data"] == "keep opaque " && values["opaque"] == "new ",
                     observed: "ls /data → \(values["data"] ?? "?"); ls /data/opaque → \(values["opaque"] ?? "?")",
                     expected: "keep opaque; new",
                     hint: "the layer folders hold overlayfs' whiteouts (0:0 devices) and opaque xattrs; they hide what is below them only when the stack's order is right")
        let upperFolder = overlay.upper.map { FilePath($0) }
        let inUpper = upperFolder.map { FileSystem.exists($0.appending("isolation-written")) } ?? false
        let ownFolder = overlay.upper.map { $0.hasPrefix(store.root.appending("containers").string + "/") && !layers.contains($0) } ?? false
        report.check("a write in the container lands in its upper folder", values["write"] == "ok" && inUpper && ownFolder,
                     observed: "echo written > /isolation-written → \(values["write"] ?? "failed"); upperdir=\(overlay.upper ?? "none"); "
                        + "on the host \(upperFolder.map { $0.appending("isolation-written").string } ?? "?") \(inUpper ? "exists" : "does not exist")",
                     expected: "the file in the container's own upper folder (under \(store.root)/containers/)",
                     hint: "step \"overlay\": upperdir= is where writes go; workdir= must be an empty folder on the same file system")
        let touched = layers.filter { FileSystem.exists(FilePath($0).appending("isolation-written")) }
        report.check("the layers are unchanged", touched.isEmpty,
                     observed: touched.isEmpty ? "no layer folder has /isolation-written" : "written into: " + touched.joined(separator: " "),
                     expected: "the layers read-only, shared by every container of the image",
                     hint: "step \"overlay\": a layer folder must never be the upperdir")
        let status = running.finish(timeout: 10)
        report.check("the exercise ends with the process's status", status == .exited(0), observed: "exercise-06 \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
        let containers = (try? FileSystem.contentsOfDirectory(store.root.appending("containers"))) ?? []
        report.check("the container's folder is removed after the run", containers.isEmpty,
                     observed: containers.isEmpty ? "\(store.root)/containers is empty" : "left: " + containers.joined(separator: " "),
                     expected: "empty: upper, work and merged go with the container", hint: "the starter removes them; did the exercise crash?")
    } catch {
        report.fail("set up the overlay check", observed: "\(error)", expected: "an image store in /tmp", hint: "run `swift run doctor`")
    }
}

/// mountinfo's `\040`-style escapes (space, tab, newline, backslash) undone.
func unescapeOctal(_ text: String) -> String {
    var bytes: [UInt8] = []
    let utf8 = Array(text.utf8)
    var index = 0
    while index < utf8.count {
        if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
           let value = UInt8(String(decoding: utf8[index + 1...index + 3], as: UTF8.self), radix: 8) {
            bytes.append(value)
            index += 4
        } else {
            bytes.append(utf8[index])
            index += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// `check 06 --hint`: level 1 names the API, level 2 the shape of the answer.
let imageHints: [StepHint] = [
    StepHint(step: "whiteout",
             api: "The marker's name minus \".wh.\" is the entry to delete in the directory the marker sits in; FileSystem.removeTree(_:) deletes a file, a symlink or a whole directory without following symlinks.",
             shape: "let name = marker without its \".wh.\" prefix; removeTree(directory.appending(name)). Nothing is written for the marker itself."),
    StepHint(step: "opaque",
             api: "FileSystem.contentsOfDirectory(_:) lists the directory; addedByThisLayer holds the names the same layer wrote there before its \".wh..wh..opq\" marker.",
             shape: "For every name in the directory not in addedByThisLayer: removeTree. What the layer itself wrote stays."),
    StepHint(step: "overlay",
             api: "Mount.mount(source:target:type:data:) with type \"overlay\" and data \"lowerdir=A:B:C,upperdir=U,workdir=W\" (mount(2), overlayfs.rst). overlayfs reads lowerdir top first; a manifest lists its layers base first.",
             shape: "lowerdir = the layer folders reversed, joined with \":\"; one mount of \"overlay\" on merged with upperdir and workdir."),
]
