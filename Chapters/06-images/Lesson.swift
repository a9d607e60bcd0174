// The lesson: build an image, read it, unpack it layer by layer, stack it with overlayfs,
// run it, and start a second container that copies nothing.
import ArgumentParser
import Glibc
import Isolation
import IsolationImage
import SystemPackage

struct Lesson: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson", abstract: "Build the local image and run it on overlayfs, narrated (the default).")

    func run() throws {
        continueOnClosedOutput()
        let style = Style.standardOutput
        reportingErrors("chapter-06") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "overlayfs, device nodes and namespaces need root")])
            let rootfs = try RootFilesystem.builtIn(log: { say(style.dim("  (\($0))")) })
            say(style.bold("Chapter 06 · Images: layers, digests, overlayfs"))
            say("2013: Docker ships a root filesystem as a stack of tar layers. 2017: the OCI writes it")
            say("down as the image-spec. Every blob is named by its SHA-256; layers stack on overlayfs.")
            say()

            // 1. Build: an OCI layout with two layers, written by us from the busybox rootfs.
            let folder = try FileSystem.makeTemporaryDirectory(purpose: "image")
            defer { try? FileSystem.removeTree(folder) }
            let built = try ImageBuilder.build(at: folder, from: rootfs)
            say(style.bold("Step 1 · Build an OCI image layout") + "  \(folder)")
            for name in ["oci-layout", "index.json"] {
                say("  \(pad(name, 16)) " + style.dim(try FileSystem.readString(folder.appending(name))))
            }
            for name in try FileSystem.contentsOfDirectory(folder.appending("blobs/sha256")).sorted() {
                let (_, size) = try Digest.ofFile(folder.appending("blobs/sha256").appending(name))
                let what = name == built.manifest.digest.encoded ? "manifest" : name == built.config.digest.encoded ? "config"
                    : name == built.layers[0].digest.encoded ? "layer 1 (busybox)" : "layer 2 (a change)"
                say("  blobs/sha256/\(name.prefix(12))…  \(pad(byteCount(size), 8)) \(what)")
            }
            say()

            // 2. Read it the way a runtime's image tool does: index → manifest → config.
            say(style.bold("Step 2 · index.json → manifest → config") + "  (each blob checked: size and SHA-256)")
            let (descriptor, manifest) = try built.layout.resolve(tag: ImageBuilder.tag)
            say("  manifest \(descriptor.digest.short)  config \(manifest.config.digest.short)")
            for (n, layer) in manifest.layers.enumerated() {
                say("  layer \(n + 1)  \(layer.digest.short)  \(pad(byteCount(layer.size), 8)) \(layer.mediaType)")
            }
            let config = try built.layout.config(of: manifest)
            say("  config: Cmd \(config.config?.cmd ?? [])  Env \(config.config?.env ?? [])")
            say("          rootfs.diff_ids (the layers uncompressed): \(config.rootfs.diffIDs.map(\.short).joined(separator: ", "))")
            say()

            // 3. Unpack layer by layer into one folder, as umoci does: the whiteout at work.
            say(style.bold("Step 3 · Unpack layer by layer") + "  (layer.md: a file named .wh.NAME deletes NAME)")
            let store = try ImageStore()
            let image = try store.importImage(from: built.layout, tag: ImageBuilder.tag, as: ImageBuilder.defaultName)
            let flat = try FileSystem.makeTemporaryDirectory(purpose: "unpack")
            defer { try? FileSystem.removeTree(flat) }
            for (n, layer) in image.manifest.layers.enumerated() {
                var applier = LayerApplier(root: flat, mode: .flatten)
                try applier.apply(layer: store.layout.blobPath(layer.digest), mediaType: layer.mediaType)
                let etc = try FileSystem.contentsOfDirectory(flat.appending("etc")).sorted()
                say("  after layer \(n + 1): \(applier.summary.entries) entries; /etc holds: \(etc.joined(separator: " "))")
                for path in applier.summary.whiteouts { say("    " + style.yellow("whiteout: \(path) deleted")) }
            }
            say()

            // 4. The store keeps each layer unpacked once, in overlayfs' own format, and a
            //    container's root is an overlay mount of them.
            say(style.bold("Step 4 · mount overlay") + "  (each layer unpacked once; a whiteout becomes a 0:0 device)")
            let first = "\(projectPrefix)-06-\(getpid())-a"
            let second = "\(projectPrefix)-06-\(getpid())-b"
            defer {
                try? ContainerRoot.remove(id: first, store: store)
                try? ContainerRoot.remove(id: second, store: store)
            }
            func short(_ text: String) -> String { shorten(text, store: store) }
            say(style.dim("  (STORE is \(store.root); digests are cut to 12 digits)"))
            let rootA = try ContainerRoot.make(id: first, image: image, store: store, log: { say(style.dim("  " + short($0))) })
            let topLayer = store.layerDirectory(image.manifest.layers[1])
            say("  in layer 2's folder: " + (try entry(topLayer.appending("etc/isolation-rootfs"))))
            if let reason = rootA.copiedBecause {
                say(style.yellow("  overlayfs could not be mounted, so the layers were copied: \(reason)"))
            } else {
                say("  " + style.syscall("mount(\"overlay\", \"\(short(rootA.rootfs.string))\", \"overlay\", 0,"))
                say("  " + style.syscall("      \"\(short(rootA.mountData ?? ""))\")"))
                if let line = try mountLine(rootA.rootfs) { say(style.dim("  /proc/self/mountinfo: \(short(line))")) }
            }
            say()

            // 5. Run it with chapter 04's runtime; the container writes and deletes.
            say(style.bold("Step 5 · Run it with chapter 04's runtime") + "  (image config → config.json, conversion.md)")
            let script = "cat /etc/hostname /etc/motd; ls /etc/isolation-rootfs 2>&1; echo written > /root/note; rm /etc/motd"
            let status = try runContainer(id: first, image: image, root: rootA, command: ["sh", "-c", script])
            say(style.dim("  the process \(status)"))
            if let upper = rootA.upper {
                say("  the upper folder now holds what the container changed:")
                for line in try tree(upper) { say("    " + line) }
                say("  and layer 2 still has /etc/motd: " + (try entry(topLayer.appending("etc/motd"))))
            }
            say()

            // 6. A second container: no unpack, no copy; its own empty upper folder.
            say(style.bold("Step 6 · A second container") + "  (the same lowerdirs, a new empty upper)")
            let start = monotonicNow()
            let rootB = try ContainerRoot.make(id: second, image: image, store: store, log: { say(style.dim("  " + short($0))) })
            say("  its root was ready in \(String(format3((monotonicNow() - start) * 1000))) ms; upper folder entries: \(rootB.upper.map { (try? FileSystem.contentsOfDirectory($0).count) ?? 0 } ?? -1)")
            let statusB = try runContainer(id: second, image: image, root: rootB,
                                           command: ["sh", "-c", "cat /root/note 2>&1; head -1 /etc/motd"])
            say(style.dim("  the process \(statusB): it sees neither the first container's note nor its deletion"))
            say()
            say("Both container roots are unmounted and removed now; the layers stay in \(store.root) for the next run.")
            say("`chapter-06 images`, `inspect`, `unpack IMAGE DIR`, `run IMAGE -- CMD` and `prune` work on that store.")
        }
    }

    /// `c--------- 0,0 /path` or `-rw-r--r-- 50 B /path`: what ls -l would say.
    func entry(_ path: FilePath, shown: String? = nil) throws -> String {
        var info = stat()
        guard lstat(path.string, &info) == 0 else { return "\(path): absent" }
        let type: String
        switch info.st_mode & S_IFMT {
        case S_IFCHR: type = "character device \(major(info.st_rdev)),\(minor(info.st_rdev)) (an overlayfs whiteout)"
        case S_IFDIR: type = "directory"
        case S_IFLNK: type = "symlink"
        default: type = "file, \(info.st_size) bytes"
        }
        return "\(shown ?? path.lastComponent?.string ?? "") — \(type)"
    }

    func tree(_ folder: FilePath, prefix: String = "") throws -> [String] {
        var lines: [String] = []
        for name in try FileSystem.contentsOfDirectory(folder).sorted() {
            let path = folder.appending(name)
            lines.append(prefix + (try entry(path, shown: prefix.isEmpty ? "/" + name : name)))
            if FileSystem.isDirectory(path) && !FileSystem.isSymlink(path) {
                lines += try tree(path, prefix: prefix + "  ")
            }
        }
        return lines
    }

    func mountLine(_ point: FilePath) throws -> String? {
        let text = try FileSystem.readString("/proc/self/mountinfo")
        return text.split(separator: "\n").first { $0.split(separator: " ").dropFirst(4).first.map(String.init) == point.string }.map(String.init)
    }
}

/// The store's path as STORE, and each 64-digit digest cut to 12: a mount line that fits
/// on a projector.
func shorten(_ text: String, store: ImageStore) -> String {
    var result = ""
    var rest = Substring(text.split(separator: store.root.string, omittingEmptySubsequences: false).joined(separator: "STORE"))
    while let start = rest.firstIndex(where: { $0.isHexDigit }) {
        result += rest[..<start]
        let run = rest[start...].prefix(while: { $0.isHexDigit })
        result += run.count == 64 ? run.prefix(12) + "…" : run
        rest = rest[run.endIndex...]
    }
    return result + rest
}

func major(_ device: dev_t) -> UInt32 { UInt32((device >> 8) & 0xfff) | UInt32((device >> 32) & ~0xfff) }
func minor(_ device: dev_t) -> UInt32 { UInt32(device & 0xff) | UInt32((device >> 12) & ~0xff) }

func format3(_ value: Double) -> String {
    let rounded = (value * 10).rounded() / 10
    return "\(rounded)"
}

