// Chapter 06: images. umoci is the oracle: the same images are unpacked by chapter-06 and
// by `umoci unpack`, and the two trees and config.json processes must agree. skopeo makes
// the Docker v2s2 forms. Every store lives in a temporary folder (ISOLATION_CACHE_DIR),
// removed with its mounts after each test.
import Foundation
import CIsolation
import Glibc
import Isolation
import IsolationImage
import SystemPackage
import Testing

let imageToolsInstalled = Engines.missing(["umoci", "skopeo", "tar", "gzip"]).isEmpty

/// One file system object as the comparison sees it: type, mode, owner, size, link
/// target, content hash (directories' sizes and every mtime are left out).
func treeEntries(_ root: String) throws -> [String: String] {
    var entries: [String: String] = [:]
    func walk(_ relative: String) throws {
        let path = relative.isEmpty ? root : root + "/" + relative
        var info = stat()
        guard lstat(path, &info) == 0 else { throw Errno(rawValue: errno) }
        let type = info.st_mode & S_IFMT
        var text = "mode \(String(info.st_mode & 0o7777, radix: 8)) owner \(info.st_uid):\(info.st_gid)"
        switch type {
        case S_IFREG:
            text = "file " + text + " size \(info.st_size) " + (try Digest.ofFile(FilePath(path)).digest.short) + " links \(info.st_nlink)"
        case S_IFDIR: text = "dir " + text
        case S_IFLNK: text = "symlink → " + (try FileSystem.readLink(FilePath(path)).string) + " owner \(info.st_uid):\(info.st_gid)"
        case S_IFCHR, S_IFBLK: text = (type == S_IFCHR ? "char " : "block ") + text + " dev \(info.st_rdev)"
        case S_IFIFO: text = "fifo " + text
        default: text = "other " + text
        }
        entries[relative.isEmpty ? "/" : "/" + relative] = text
        if type == S_IFDIR {
            for name in try FileSystem.contentsOfDirectory(FilePath(path)) { try walk(relative.isEmpty ? name : relative + "/" + name) }
        }
    }
    try walk("")
    return entries
}

/// The differences between two trees, one line each (empty: they agree).
func treeDifferences(_ ours: String, _ theirs: String) throws -> [String] {
    let a = try treeEntries(ours), b = try treeEntries(theirs)
    var lines: [String] = []
    for key in Set(a.keys).union(b.keys).sorted() where a[key] != b[key] {
        lines.append("\(key): ours \(a[key] ?? "absent") · umoci \(b[key] ?? "absent")")
    }
    return lines
}

/// config.json's process, the parts conversion.md decides.
func processSummary(_ bundle: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))
    let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    let process = json["process"] as? [String: Any] ?? [:]
    let user = process["user"] as? [String: Any] ?? [:]
    let args = process["args"] as? [String] ?? [], env = process["env"] as? [String] ?? []
    let groups = (user["additionalGids"] as? [NSNumber] ?? []).map(\.intValue)
    return "args \(args) env \(env) cwd \(process["cwd"] as? String ?? "-") "
        + "uid \((user["uid"] as? NSNumber)?.intValue ?? -1) gid \((user["gid"] as? NSNumber)?.intValue ?? -1) additionalGids \(groups)"
}

/// A test's world: a temporary folder, and the environment that puts chapter-06's store in it.
struct ImageTestFolder {
    let folder: TemporaryFolder
    var path: String { folder.path }
    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["ISOLATION_CACHE_DIR"] = path + "/cache"
        return env
    }
    var store: String { path + "/cache/images" }
    init(_ purpose: String) throws { folder = try TemporaryFolder(purpose) }
    func chapter(_ arguments: [String], timeout: TimeInterval = 120) throws -> RunResult {
        try run(product("chapter-06"), arguments, environment: environment, timeout: timeout)
    }
    /// Unmounts what a test left mounted in the store, then removes the folder.
    func remove() {
        for point in mounts(under: path).sorted(by: { $0.count > $1.count }) { umount2(point, Int32(MNT_DETACH)) }
        folder.remove()
    }
}

/// Writes an OCI layout at `layout` from layer tars (the first gzip-compressed with
/// `gzip -n`, the others plain, or zstd-compressed when `zstd`), with `execution` as the
/// image's config. The tars are kept.
func writeLayout(_ layout: String, tars: [String], execution: ImageConfig.Execution, zstd: Bool = false) throws {
    let target = try ImageLayout.create(at: FilePath(layout))
    var layers: [Descriptor] = [], diffIDs: [Digest] = []
    for (n, tar) in tars.enumerated() {
        diffIDs.append(try Digest.ofFile(FilePath(tar)).digest)
        let (command, suffix, type) = n == 0 ? ("gzip -n -c", ".gz", MediaType.layerGzip)
            : zstd ? ("zstd -q -c", ".zst", MediaType.layerZstd) : ("cat", ".copy", MediaType.layerTar)
        let compressed = try run("/bin/sh", ["-c", "\(command) '\(tar)' > '\(tar)\(suffix)'"])
        #expect(compressed.status == 0, "\(command): \(compressed)")
        layers.append(try target.adoptBlob(FilePath(tar + suffix), mediaType: type))
    }
    let config = ImageConfig(architecture: Platform.current.architecture, config: execution, rootfs: ImageConfig.RootFS(diffIDs: diffIDs))
    let configDescriptor = try target.writeBlob(ImageLayout.encode(config), mediaType: MediaType.config)
    var descriptor = try target.writeBlob(ImageLayout.encode(Manifest(config: configDescriptor, layers: layers)), mediaType: MediaType.manifest)
    descriptor.annotations = [Descriptor.refNameAnnotation: "latest"]
    var index = try target.index()
    index.manifests = [descriptor]
    try target.writeIndex(index)
}

@Suite("Chapter 06 · images", .serialized, .enabled(if: isRoot, "device nodes, owners and overlayfs need root"),
       .enabled(if: imageToolsInstalled, "umoci, skopeo, tar and gzip are the oracle (apt-get install umoci skopeo)"))
struct Chapter06Tests {
    /// A two-layer image made with GNU tar from the busybox root filesystem: whiteouts, an
    /// opaque directory, hard links, symlinks, setuid and setgid, a sticky directory,
    /// device nodes, a FIFO, owners, and a file replaced by a directory in the second layer.
    func layeredImage(in world: ImageTestFolder) throws -> String {
        let rootfs = try builtInRootfs()
        let l1 = world.path + "/l1", l2 = world.path + "/l2", layout = world.path + "/layout"
        let script = """
            set -e
            mkdir -p \(l1) \(l2); chmod 755 \(l1) \(l2)
            cd \(l1)
            cp -a \(rootfs)/. .
            mkdir -p data/opaque data/keep data/sticky home/app
            echo a > data/opaque/old1; echo b > data/opaque/old2; echo c > data/keep/file
            echo x > data/gone; echo y > data/thing; echo hello > data/hard1; ln data/hard1 data/hard2
            ln -s ../data/keep/file data/link; ln -s /etc/passwd data/abs-link
            echo s > data/suid; chmod 4755 data/suid; mkdir data/sgid; chmod 2775 data/sgid; chmod 1777 data/sticky
            mknod data/null c 1 3; mknod data/loop b 7 0; mkfifo data/fifo
            chown 1000:1001 data/keep/file home/app; chmod 0640 data/keep/file
            echo 'app:x:1000:1001:app:/home/app:/bin/sh' >> etc/passwd
            printf 'app:x:1001:\\nextra:x:2000:root,app\\n' >> etc/group
            tar --numeric-owner -C \(l1) -cf \(world.path)/l1.tar .
            cd \(l2)
            mkdir -p data/opaque data/thing/inner
            : > data/opaque/.wh..wh..opq; echo new > data/opaque/new
            : > data/.wh.gone; : > data/.wh.abs-link
            echo in > data/thing/inner/f; echo changed > data/hard1
            tar --numeric-owner -C \(l2) -cf \(world.path)/l2.tar .
            """
        let made = try run("/bin/sh", ["-c", script])
        #expect(made.status == 0, "making the layers: \(made)")
        try writeLayout(layout, tars: [world.path + "/l1.tar", world.path + "/l2.tar"],
                        execution: ImageConfig.Execution(user: "app", env: ["PATH=/bin:/usr/bin", "FOO=bar"],
                                                         entrypoint: ["/bin/sh", "-c"], cmd: ["echo hi"], workingDir: "/data"))
        return layout
    }

    func umociUnpack(_ layout: String, into bundle: String) throws {
        let result = try run("/usr/bin/env", ["umoci", "unpack", "--image", layout + ":latest", bundle])
        #expect(result.status == 0, "umoci unpack: \(result)")
    }

    @Test("our own image (two layers, a whiteout): our unpack and umoci's agree, tree and process")
    func ownImageAgreesWithUmoci() throws {
        let world = try ImageTestFolder("images-own")
        defer { world.remove() }
        let layout = world.path + "/layout"
        let built = try world.chapter(["build", "--layout", layout])
        #expect(built.status == 0, "\(built)")
        try umociUnpack(layout, into: world.path + "/umoci")
        let ours = try world.chapter(["unpack", "oci:\(layout):latest", world.path + "/ours"])
        #expect(ours.status == 0, "\(ours)")
        #expect(ours.stdout.contains("1 whiteouts"), "\(ours)")
        #expect(try treeDifferences(world.path + "/ours/rootfs", world.path + "/umoci/rootfs") == [])
        #expect(!FileManager.default.fileExists(atPath: world.path + "/ours/rootfs/etc/isolation-rootfs"))
        #expect(try processSummary(world.path + "/ours") == processSummary(world.path + "/umoci"))
    }

    @Test("a layered image made with GNU tar, as OCI, Docker v2s2, docker-archive and oci-archive: the same tree and process as umoci's")
    func layeredImageAgreesWithUmoci() throws {
        let world = try ImageTestFolder("images-layered")
        defer { world.remove() }
        let layout = try layeredImage(in: world)
        try umociUnpack(layout, into: world.path + "/umoci")
        let theirs = world.path + "/umoci/rootfs"
        // What umoci made is what the layers say (the oracle is checked too).
        #expect(!FileManager.default.fileExists(atPath: theirs + "/data/opaque/old1"))
        #expect(FileManager.default.fileExists(atPath: theirs + "/data/thing/inner/f"))

        let v2 = world.path + "/v2", archive = world.path + "/docker.tar", ociArchive = world.path + "/oci.tar"
        for copy in [["skopeo", "copy", "--format", "v2s2", "oci:\(layout):latest", "oci:\(v2):latest"],
                     ["skopeo", "copy", "oci:\(layout):latest", "oci-archive:\(ociArchive):v1"],
                     ["skopeo", "copy", "oci:\(layout):latest", "docker-archive:\(archive):isolation/layered:latest"]] {
            let result = try run("/usr/bin/env", copy)
            #expect(result.status == 0, "\(copy.joined(separator: " ")): \(result)")
        }
        let v2Index = try String(contentsOfFile: v2 + "/index.json", encoding: .utf8)
        #expect(v2Index.contains(MediaType.dockerManifest), "skopeo wrote Docker v2s2: \(v2Index)")
        for (name, reference) in [("oci", "oci:\(layout):latest"), ("v2s2", "oci:\(v2):latest"), ("archive", "docker-archive:\(archive)"),
                                  ("oci-archive", "oci-archive:\(ociArchive):v1")] {
            let bundle = world.path + "/ours-" + name
            let result = try world.chapter(["unpack", reference, bundle])
            #expect(result.status == 0, "\(reference): \(result)")
            let differences = try treeDifferences(bundle + "/rootfs", theirs)
            #expect(differences == [], "\(reference): \(differences.joined(separator: "\n"))")
            #expect(try processSummary(bundle) == processSummary(world.path + "/umoci"), "\(reference)")
        }
        let summary = try processSummary(world.path + "/ours-oci")
        #expect(summary.contains("uid 1000 gid 1001 additionalGids [2000]"), "User app resolved in the image's own /etc/passwd and /etc/group: \(summary)")
    }

    @Test("a zstd-compressed layer gives the same tree as the same layer uncompressed", .enabled(if: Command.find("zstd") != nil, "zstd (apt-get install zstd)"))
    func zstdLayer() throws {
        let world = try ImageTestFolder("images-zstd")
        defer { world.remove() }
        let layout = try layeredImage(in: world)
        try writeLayout(world.path + "/zstd", tars: [world.path + "/l1.tar", world.path + "/l2.tar"],
                        execution: ImageConfig.Execution(cmd: ["sh"]), zstd: true)
        let zstdIndex = try ImageLayout(opening: FilePath(world.path + "/zstd")).resolve(tag: "latest").manifest
        #expect(zstdIndex.layers[1].mediaType == MediaType.layerZstd)
        for (name, reference) in [("plain", "oci:\(layout):latest"), ("zstd", "oci:\(world.path)/zstd:latest")] {
            let result = try world.chapter(["unpack", reference, world.path + "/bundle-" + name])
            #expect(result.status == 0, "\(reference): \(result)")
        }
        let differences = try treeDifferences(world.path + "/bundle-zstd/rootfs", world.path + "/bundle-plain/rootfs")
        #expect(differences == [], "\(differences.joined(separator: "\n"))")
    }

    @Test("run: chapter 04's runtime runs the image on overlayfs, as the image's user, in its WorkingDir; nothing is left")
    func runOnOverlay() throws {
        let world = try ImageTestFolder("images-run")
        defer { world.remove() }
        let layout = try layeredImage(in: world)
        let script = #"id -u; id -G; pwd; echo $FOO; ls /data/opaque; cat /data/hard2; awk '$5 == "/" { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }' /proc/self/mountinfo"#
        let result = try world.chapter(["run", "oci:\(layout):latest", "--", script])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "1000\n1001 2000\n/data\nbar\nnew\nhello\noverlay\n", "\(result)")
        #expect(mounts(under: world.store).isEmpty, "the overlay was unmounted")
        #expect(try FileSystem.contentsOfDirectory(FilePath(world.store + "/containers")).isEmpty, "the container's folder was removed")
        let status = try world.chapter(["run", "oci:\(layout):latest", "--", "exit 7"])
        #expect(status.status == 7, "the process's status is the chapter's: \(status)")
    }

    @Test("a second container from a cached image copies nothing: the same layer folders as lowerdirs, an empty upper; each sees its own writes; removal unmounts")
    func secondContainerCopiesNothing() throws {
        let world = try ImageTestFolder("images-second")
        defer { world.remove() }
        let store = try ImageStore(root: FilePath(world.store))
        let built = try ImageBuilder.build(at: FilePath(world.path + "/layout"), from: RootFilesystem.validate(FilePath(try builtInRootfs())))
        let image = try store.importImage(from: built.layout, tag: "latest", as: "test")
        let first = try ContainerRoot.make(id: "isolation-test-a", image: image, store: store)
        defer { try? ContainerRoot.remove(id: "isolation-test-a", store: store) }
        var unpacked: [String] = []
        let second = try ContainerRoot.make(id: "isolation-test-b", image: image, store: store, log: { unpacked.append($0) })
        defer { try? ContainerRoot.remove(id: "isolation-test-b", store: store) }
        #expect(unpacked.allSatisfy { $0.contains("nothing to unpack") }, "\(unpacked)")
        #expect(first.copiedBecause == nil && second.copiedBecause == nil)

        // The kernel's own account of each mount: lowerdir is the store's layer folders.
        let layerDirs = image.manifest.layers.reversed().map { store.layerDirectory($0).string }.joined(separator: ":")
        // mountinfo is made afresh for each read(2): when other programs mount and unmount
        // meanwhile, a read in several pieces can miss a line. Read it again until both show.
        var table: [Substring] = []
        for _ in 0..<20 {
            table = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).split(separator: "\n")
            let found = [first, second].allSatisfy { root in table.contains { $0.split(separator: " ")[4] == Substring(root.rootfs.string) } }
            if found { break }
            usleep(50_000)
        }
        for root in [first, second] {
            let line = table.first { $0.split(separator: " ")[4] == Substring(root.rootfs.string) }
            #expect(line?.contains(" - overlay ") == true, "\(root.rootfs) is an overlay mount: \(line ?? "none")")
            #expect(line?.contains("lowerdir=\(layerDirs),upperdir=\(root.upper!.string),") == true, "\(line ?? "none")")
        }
        #expect(try FileSystem.contentsOfDirectory(second.upper!).isEmpty, "the second upper folder starts empty")
        let layersBefore = try treeEntries(store.root.appending("layers").string)

        try FileSystem.writeFile(first.rootfs.appending("root/note"), "first\n")
        try FileSystem.removeTree(first.rootfs.appending("etc/motd"))
        #expect(FileSystem.exists(first.upper!.appending("root/note")), "the write landed in the first upper folder")
        #expect(!FileSystem.exists(second.rootfs.appending("root/note")), "the second container does not see it")
        #expect(FileSystem.exists(second.rootfs.appending("etc/motd")), "nor the first one's delete")
        #expect(try treeEntries(store.root.appending("layers").string) == layersBefore, "the layers are untouched")

        try ContainerRoot.remove(id: "isolation-test-a", store: store)
        #expect(mounts(under: first.folder.string).isEmpty && !FileSystem.exists(first.folder), "delete removes the mount and the upper folder")
        #expect(FileSystem.exists(second.rootfs.appending("bin/sh"), followSymlinks: false), "the second container keeps its root")
    }

    @Test("where overlayfs cannot be mounted (a store on overlayfs), the layers are copied and the reason is given")
    func copyWhereOverlayCannotMount() throws {
        let world = try ImageTestFolder("images-fallback")
        defer { world.remove() }
        for dir in ["lower", "upper", "work", "cache"] {
            try FileManager.default.createDirectory(atPath: world.path + "/" + dir, withIntermediateDirectories: true)
        }
        // The store itself on an overlay: overlayfs refuses an upper folder on overlayfs.
        try Mount.mount(source: "overlay", target: FilePath(world.path + "/cache"), type: "overlay",
                        data: "lowerdir=\(world.path)/lower,upperdir=\(world.path)/upper,workdir=\(world.path)/work")
        let store = try ImageStore(root: FilePath(world.store))
        let built = try ImageBuilder.build(at: FilePath(world.path + "/layout"), from: RootFilesystem.validate(FilePath(try builtInRootfs())))
        let image = try store.importImage(from: built.layout, tag: "latest", as: "test")
        var log: [String] = []
        let root = try ContainerRoot.make(id: "isolation-test-copy", image: image, store: store, log: { log.append($0) })
        defer { try? ContainerRoot.remove(id: "isolation-test-copy", store: store) }
        #expect(root.copiedBecause?.contains("is on overlayfs") == true, "\(root.copiedBecause ?? "mounted")")
        #expect(log.contains { $0.contains("copying the layers instead") }, "\(log)")
        #expect(root.rootfs.string.hasSuffix("/rootfs") && mounts(under: root.folder.string).isEmpty)
        #expect(FileSystem.exists(root.rootfs.appending("bin/busybox")) && FileSystem.exists(root.rootfs.appending("etc/motd")))
        #expect(!FileSystem.exists(root.rootfs.appending("etc/isolation-rootfs"), followSymlinks: false), "the whiteout applied to the copy")
        try ContainerRoot.remove(id: "isolation-test-copy", store: store)
        #expect(!FileSystem.exists(root.folder))
    }

    @Test("the lesson runs end to end and leaves no mount, container folder or temporary folder")
    func lesson() throws {
        let world = try ImageTestFolder("images-lesson")
        defer { world.remove() }
        let temporaryBefore = Set(try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("isolation-image") || $0.hasPrefix("isolation-unpack") || $0.hasPrefix("isolation-bundle") })
        let result = try world.chapter([], timeout: 300)
        #expect(result.status == 0, "\(result)")
        for expected in ["whiteout: /etc/isolation-rootfs deleted", "isolation-rootfs — character device 0,0", "lowerdir=STORE/layers/sha256-",
                         "/proc/self/mountinfo:", "- overlay overlay", "note — file, 8 bytes", "motd — character device 0,0",
                         "upper folder entries: 0", "can't open '/root/note'", "nothing to unpack"] {
            #expect(result.stdout.contains(expected), "'\(expected)' in:\n\(result.stdout)")
        }
        #expect(mounts(under: world.store).isEmpty)
        #expect(try FileSystem.contentsOfDirectory(FilePath(world.store + "/containers")).isEmpty)
        let temporaryAfter = Set(try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("isolation-image") || $0.hasPrefix("isolation-unpack") || $0.hasPrefix("isolation-bundle") })
        #expect(temporaryAfter.subtracting(temporaryBefore).isEmpty, "\(temporaryAfter.subtracting(temporaryBefore))")
    }

    @Test("tar slip: ../, an absolute path, a write through a symlink the layer planted, a hard link out are refused; nothing lands outside, nothing is half-written",
          arguments: ["dotdot", "absolute", "symlink", "relative-symlink", "hardlink"])
    func tarSlipRefused(kind: String) throws {
        let world = try ImageTestFolder("images-slip")
        defer { world.remove() }
        let outside = world.path + "/outside"
        try "secret\n".write(toFile: world.path + "/secret", atomically: false, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let scratch = world.path + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let writer = try LayerWriter(tarPath: FilePath(world.path + "/slip.tar"))
        try writer.addFile("harmless", Array("ok\n".utf8))
        switch kind {
        case "dotdot":
            try writer.addFile("../../../../../../..\(outside)/escaped", Array("out\n".utf8))
        case "absolute":
            try writer.addFile(outside + "/escaped", Array("out\n".utf8))
        case "hardlink":
            // A hard link to a host file would let the container write it.
            try writer.addHardLink("shadow", to: "../../../../../../..\(world.path)/secret")
        default:
            let target = kind == "symlink" ? outside : "../../../../../../../../..\(outside)"
            try FileManager.default.createSymbolicLink(atPath: scratch + "/evil", withDestinationPath: target)
            var info = stat()
            lstat(scratch + "/evil", &info)
            try writer.addFile(from: FilePath(scratch + "/evil"), as: "evil", info: info)
            try writer.addFile("evil/escaped", Array("out\n".utf8))
        }
        let layout = try ImageLayout.create(at: FilePath(world.path + "/layout"))
        let (layer, diffID) = try writer.finish(into: layout)
        let config = try layout.writeBlob(ImageLayout.encode(ImageConfig(architecture: Platform.current.architecture,
            config: ImageConfig.Execution(cmd: ["/harmless"]), rootfs: ImageConfig.RootFS(diffIDs: [diffID]))), mediaType: MediaType.config)
        var manifest = try layout.writeBlob(ImageLayout.encode(Manifest(config: config, layers: [layer])), mediaType: MediaType.manifest)
        manifest.annotations = [Descriptor.refNameAnnotation: "latest"]
        try layout.writeIndex(ImageIndex(manifests: [manifest]))

        let bundle = world.path + "/bundle"
        let unpacked = try world.chapter(["unpack", "oci:\(layout.path):latest", bundle])
        #expect(unpacked.status != 0, "\(unpacked)")
        #expect(unpacked.stderr.contains("refusing the layer entry"), "\(unpacked)")
        #expect(!FileManager.default.fileExists(atPath: bundle), "no half-written bundle")
        let ran = try world.chapter(["run", "oci:\(layout.path):latest"])
        #expect(ran.status != 0 && ran.stderr.contains("refusing the layer entry"), "\(ran)")
        #expect(try FileSystem.contentsOfDirectory(FilePath(outside)).isEmpty, "nothing landed outside the root")
        var secret = stat()
        #expect(lstat(world.path + "/secret", &secret) == 0 && secret.st_nlink == 1, "no hard link to a host file")
        #expect(try FileSystem.contentsOfDirectory(FilePath(world.store + "/layers")).isEmpty, "no layer folder, not even a partial one")
        #expect(try FileSystem.contentsOfDirectory(FilePath(world.store + "/containers")).isEmpty)
        #expect(mounts(under: world.store).isEmpty)
    }

    @Test("a blob whose bytes changed is refused with a digest error, and the store keeps nothing of the image")
    func tamperedBlobRefused() throws {
        let world = try ImageTestFolder("images-tamper")
        defer { world.remove() }
        let layout = world.path + "/layout"
        #expect(try world.chapter(["build", "--layout", layout]).status == 0)
        let image = try ImageLayout(opening: FilePath(layout)).resolve(tag: "latest")
        let blob = layout + "/blobs/sha256/" + image.manifest.layers[1].digest.encoded
        // Same size, one byte changed.
        var bytes = try FileSystem.readFile(FilePath(blob))
        bytes[bytes.count / 2] ^= 0x55
        try FileSystem.writeFile(FilePath(blob), bytes)
        // A fresh store: the image must not be in it afterwards.
        let otherWorld = try ImageTestFolder("images-tamper-store")
        defer { otherWorld.remove() }
        let result = try otherWorld.chapter(["inspect", "oci:\(layout):latest"])
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("digest mismatch") && result.stderr.contains(image.manifest.layers[1].digest.encoded), "\(result)")
        let store = try ImageStore(root: FilePath(otherWorld.store))
        #expect(try store.list().isEmpty, "no image was named")
        let blobs = try FileSystem.contentsOfDirectory(FilePath(otherWorld.store + "/blobs/sha256"))
        #expect(!blobs.contains { $0.hasPrefix(image.manifest.layers[1].digest.encoded) }, "the tampered blob was not kept: \(blobs)")
        #expect(!blobs.contains { $0.contains(".partial") }, "\(blobs)")
    }

    @Test("extended attributes in a layer (a file capability, user.* on a file and a directory) are kept as umoci keeps them; trusted.overlay.* from a layer is not",
          .enabled(if: Command.find("setcap") != nil, "setcap (apt-get install libcap2-bin)"))
    func extendedAttributes() throws {
        let world = try ImageTestFolder("images-xattr")
        defer { world.remove() }
        let source = world.path + "/l1"
        let made = try run("/bin/sh", ["-c", """
            set -e
            mkdir -p \(source)/data/dir \(source)/bin; chmod 755 \(source) \(source)/data \(source)/data/dir \(source)/bin
            cp /bin/busybox \(source)/bin/pinger 2>/dev/null || echo binary > \(source)/bin/pinger
            chmod 755 \(source)/bin/pinger; setcap cap_net_raw,cap_net_bind_service+ep \(source)/bin/pinger
            echo tagged > \(source)/data/tagged; mkdir \(source)/data/opaque-looking
            """])
        #expect(made.status == 0, "\(made)")
        for (path, name, value) in [("data/tagged", "user.isolation.note", "hello"), ("data/dir", "user.isolation.dir", "a directory's"),
                                    ("data/opaque-looking", "trusted.overlay.opaque", "y")] {
            #expect(setxattr(source + "/" + path, name, value, value.utf8.count, 0) == 0, "setxattr \(name) on \(path): \(errno)")
        }
        let tar = try run("/usr/bin/env", ["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", source, "-cf", world.path + "/l1.tar", "."])
        #expect(tar.status == 0, "\(tar)")
        let layout = world.path + "/layout"
        try writeLayout(layout, tars: [world.path + "/l1.tar"], execution: ImageConfig.Execution(cmd: ["/bin/pinger"]))
        try umociUnpack(layout, into: world.path + "/umoci")
        let ours = try world.chapter(["unpack", "oci:\(layout):latest", world.path + "/ours"])
        #expect(ours.status == 0, "\(ours)")

        func attributes(_ path: String) -> [String: [UInt8]] {
            var names = [CChar](repeating: 0, count: 4096)
            let length = llistxattr(path, &names, names.count)
            guard length > 0 else { return [:] }
            var result: [String: [UInt8]] = [:]
            for name in names[0..<length].split(separator: 0).map({ String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }) {
                var value = [UInt8](repeating: 0, count: 4096)
                let size = lgetxattr(path, name, &value, value.count)
                if size >= 0 { result[name] = Array(value[0..<size]) }
            }
            return result
        }
        let capability = attributes(world.path + "/ours/rootfs/bin/pinger")["security.capability"]
        #expect(capability != nil, "the file capability is kept: \(attributes(world.path + "/ours/rootfs/bin/pinger").keys)")
        #expect(capability == attributes(source + "/bin/pinger")["security.capability"], "the same capability as the source file")
        let getcap = try run("/usr/bin/env", ["getcap", world.path + "/ours/rootfs/bin/pinger"])
        #expect(getcap.stdout.contains("cap_net_bind_service,cap_net_raw=ep"), "getcap reads it: \(getcap)")
        for path in ["bin/pinger", "data/tagged", "data/dir"] {
            let a = attributes(world.path + "/ours/rootfs/" + path).filter { !$0.key.hasPrefix("trusted.") }
            let b = attributes(world.path + "/umoci/rootfs/" + path).filter { !$0.key.hasPrefix("trusted.") }
            #expect(!a.isEmpty && a == b, "\(path): ours \(a.keys.sorted()) · umoci \(b.keys.sorted())")
        }
        #expect(attributes(world.path + "/ours/rootfs/data/opaque-looking")["trusted.overlay.opaque"] == nil,
                "overlayfs' own markers are never taken from a layer")

        // The store's layer folder, what overlayfs stacks, has them too.
        let store = try ImageStore(root: FilePath(world.store))
        let image = try store.obtain(.ociLayout(FilePath(layout), tag: "latest"))
        try store.unpackLayer(image.manifest.layers[0])
        let folder = store.layerDirectory(image.manifest.layers[0]).string
        #expect(attributes(folder + "/bin/pinger")["security.capability"] == capability)
        #expect(attributes(folder + "/data/opaque-looking")["trusted.overlay.opaque"] == nil)
    }

    @Test("a gzip layer whose uncompressed tar is not the config's diff ID is refused, and the store keeps nothing of the image")
    func diffIDMismatchRefused() throws {
        let world = try ImageTestFolder("images-diffid")
        defer { world.remove() }
        let path = world.path + "/layout"
        #expect(try world.chapter(["build", "--layout", path]).status == 0)
        // The same two valid layers, but the config names their diff IDs swapped: every
        // blob still matches its descriptor, only the uncompressed contents do not match.
        let layout = try ImageLayout(opening: FilePath(path))
        let (_, manifest) = try layout.resolve(tag: "latest")
        var config = try layout.config(of: manifest)
        let right = config.rootfs.diffIDs
        #expect(try DiffID.ofLayer(layout.blobPath(manifest.layers[0].digest), mediaType: manifest.layers[0].mediaType) == right[0],
                "the gzip layer's uncompressed digest is its diff ID")
        config.rootfs.diffIDs = [right[1], right[0]]
        let configDescriptor = try layout.writeBlob(ImageLayout.encode(config), mediaType: MediaType.config)
        var descriptor = try layout.writeBlob(ImageLayout.encode(Manifest(config: configDescriptor, layers: manifest.layers)), mediaType: MediaType.manifest)
        descriptor.annotations = [Descriptor.refNameAnnotation: "latest"]
        try layout.writeIndex(ImageIndex(manifests: [descriptor]))

        let fresh = try ImageTestFolder("images-diffid-store")
        defer { fresh.remove() }
        for arguments in [["run", "oci:\(path):latest", "--", "true"], ["unpack", "oci:\(path):latest", fresh.path + "/bundle"]] {
            let result = try fresh.chapter(arguments)
            #expect(result.status != 0, "\(arguments[0]): \(result)")
            #expect(result.stderr.contains("diff ID mismatch") && result.stderr.contains("rootfs.diff_ids[0]")
                    && result.stderr.contains(right[0].description) && result.stderr.contains(right[1].description), "\(arguments[0]): \(result)")
        }
        #expect(!FileManager.default.fileExists(atPath: fresh.path + "/bundle"), "no bundle")
        #expect(try ImageStore(root: FilePath(fresh.store)).list().isEmpty, "no image was named")
        for folder in ["blobs/sha256", "layers", "containers"] {
            let left = try FileSystem.contentsOfDirectory(FilePath(fresh.store + "/" + folder))
            #expect(left.isEmpty, "the store's \(folder) keeps nothing: \(left)")
        }
        #expect(mounts(under: fresh.store).isEmpty)
    }

    @Test("references are read as skopeo writes them; bad ones get a clear error")
    func references() throws {
        #expect(try ImageReference.parse("oci:/tmp/x:v1") == .ociLayout("/tmp/x", tag: "v1"))
        #expect(try ImageReference.parse("oci:/tmp/x") == .ociLayout("/tmp/x", tag: nil))
        #expect(try ImageReference.parse("oci-archive:/tmp/a.tar:t") == .ociArchive("/tmp/a.tar", tag: "t"))
        #expect(try ImageReference.parse("docker-archive:/tmp/d.tar") == .dockerArchive("/tmp/d.tar"))
        #expect(try ImageReference.parse("docker://busybox") == .registry(host: "docker.io", repository: "library/busybox", tag: "latest", digest: nil))
        #expect(try ImageReference.parse("docker://127.0.0.1:5000/a/b:2") == .registry(host: "127.0.0.1:5000", repository: "a/b", tag: "2", digest: nil))
        #expect(try ImageReference.parse("localhost/isolation-busybox:latest") == .stored("localhost/isolation-busybox:latest"))
        #expect(throws: IsolationError.self) { try ImageReference.parse("docker://Busy Box") }
        #expect(throws: IsolationError.self) { try Digest("sha256:../../etc/passwd") }
        let world = try ImageTestFolder("images-ref")
        defer { world.remove() }
        let missing = try world.chapter(["inspect", "no-such-image"])
        #expect(missing.status != 0 && missing.stderr.contains("there is no image named 'no-such-image'"), "\(missing)")
        let notLayout = try world.chapter(["inspect", "oci:\(world.path):latest"])
        #expect(notLayout.status != 0 && notLayout.stderr.contains("is not an OCI image layout"), "\(notLayout)")
    }
}

let registryInstalled = Engines.missing(["docker-registry", "skopeo"]).isEmpty

/// Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1 and a free
/// port, its storage and config in a temporary folder; stopped by `stop()`.
struct LocalRegistry {
    let folder: String
    let port: Int
    let pid: pid_t
    var address: String { "127.0.0.1:\(port)" }

    /// `auth`: more of config.yml (an `auth:` section), as it is written there.
    init(in folder: String, auth: String = "") throws {
        self.folder = folder
        port = try LocalRegistry.freePort()
        let config = """
            version: 0.1
            log:
              level: error
            storage:
              filesystem:
                rootdirectory: \(folder)/data
            http:
              addr: 127.0.0.1:\(port)

            """ + auth
        try config.write(toFile: folder + "/config.yml", atomically: true, encoding: .utf8)
        let executable = Command.find("docker-registry")?.string ?? "/usr/bin/docker-registry"
        pid = try LocalRegistry.spawnServer(executable, ["serve", folder + "/config.yml"], log: folder + "/log")
        // Ready when it accepts a connection.
        for _ in 0..<100 where !LocalRegistry.accepts(port) { usleep(50_000) }
        #expect(LocalRegistry.accepts(port), "docker-registry did not start: \((try? String(contentsOfFile: folder + "/log", encoding: .utf8)) ?? "")")
    }

    /// Starts a server with its output in `log`, stdin /dev/null, and every descriptor
    /// above 2 closed (posix_spawn): a server that inherited one of the test's pipes would
    /// keep it open, and whoever reads that pipe would wait forever. Its signal mask is
    /// emptied and every signal's action is the default: the test process blocks most
    /// signals, and a server that inherited that (Python's does) would not end on SIGTERM.
    static func spawnServer(_ executable: String, _ arguments: [String], log: String) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            if let fd = Int32(name), fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL) }
        return child
    }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }
}

@Suite("Chapter 06 · pulling from a registry", .serialized, .enabled(if: isRoot, "running the pulled image needs root"),
       .enabled(if: registryInstalled, "Debian's docker-registry and skopeo (apt-get install docker-registry skopeo)"))
struct Chapter06RegistryTests {
    @Test("images pushed with skopeo (one platform, and a two-platform index) are pulled, verified and run; a tampered blob is refused and the store keeps nothing")
    func pullFromLocalRegistry() throws {
        let world = try ImageTestFolder("images-registry")
        defer { world.remove() }
        try FileManager.default.createDirectory(atPath: world.path + "/registry", withIntermediateDirectories: true)
        let registry = try LocalRegistry(in: world.path + "/registry")
        defer { registry.stop() }
        let layout = world.path + "/layout"
        #expect(try world.chapter(["build", "--layout", layout]).status == 0)

        // A two-platform index: our manifest for this machine, and one for another
        // architecture (its own config, the same layers).
        let source = try ImageLayout(opening: FilePath(layout))
        let (ours, manifest) = try source.resolve(tag: "latest")
        var otherConfig = try source.config(of: manifest)
        otherConfig.architecture = Platform.current.architecture == "amd64" ? "arm64" : "amd64"
        let otherConfigDescriptor = try source.writeBlob(ImageLayout.encode(otherConfig), mediaType: MediaType.config)
        let other = try source.writeBlob(ImageLayout.encode(Manifest(config: otherConfigDescriptor, layers: manifest.layers)), mediaType: MediaType.manifest)
        var forThis = ours, forOther = other
        forThis.platform = Platform.current
        forOther.platform = Platform(architecture: otherConfig.architecture)
        var indexDescriptor = try source.writeBlob(ImageLayout.encode(ImageIndex(manifests: [forOther, forThis])), mediaType: MediaType.index)
        indexDescriptor.annotations = [Descriptor.refNameAnnotation: "multi"]
        var index = try source.index()
        index.manifests.append(indexDescriptor)
        try source.writeIndex(index)

        for (tag, extra) in [("latest", [String]()), ("multi", ["--all"])] {
            let pushed = try run("/usr/bin/env", ["skopeo", "copy", "--dest-tls-verify=false"] + extra
                                 + ["oci:\(layout):\(tag)", "docker://\(registry.address)/isolation/test:\(tag)"])
            #expect(pushed.status == 0, "skopeo copy: \(pushed)")
        }

        let pulled = try world.chapter(["pull", "\(registry.address)/isolation/test:latest"])
        #expect(pulled.status == 0, "\(pulled)")
        #expect(pulled.stdout.contains("manifest \(ours.digest.short)"), "\(pulled)")
        let multi = try world.chapter(["pull", "docker://\(registry.address)/isolation/test:multi"])
        #expect(multi.status == 0 && multi.stdout.contains("2 platforms, \(Platform.current) is \(ours.digest.short)"), "\(multi)")
        let byDigest = try world.chapter(["pull", "\(registry.address)/isolation/test@\(ours.digest)"])
        #expect(byDigest.status == 0, "\(byDigest)")
        // run pulls in a process of its own when the image is not in the store yet.
        let fresh = try ImageTestFolder("images-registry-run")
        defer { fresh.remove() }
        let ran = try fresh.chapter(["run", "docker://\(registry.address)/isolation/test:latest", "--", "cat", "/etc/hostname"])
        #expect(ran.status == 0 && ran.stdout == "image\n", "\(ran)")

        // The top layer's bytes changed on the registry's disk: refused, nothing kept.
        let top = manifest.layers[1].digest.encoded
        let onDisk = "\(registry.folder)/data/docker/registry/v2/blobs/sha256/\(top.prefix(2))/\(top)/data"
        var bytes = try FileSystem.readFile(FilePath(onDisk))
        bytes[bytes.count / 2] ^= 0x55
        try FileSystem.writeFile(FilePath(onDisk), bytes)
        let victim = try ImageTestFolder("images-registry-tampered")
        defer { victim.remove() }
        let refused = try victim.chapter(["pull", "\(registry.address)/isolation/test:latest"])
        #expect(refused.status != 0 && refused.stderr.contains("digest mismatch") && refused.stderr.contains(top), "\(refused)")
        let blobs = try FileSystem.contentsOfDirectory(FilePath(victim.store + "/blobs/sha256"))
        #expect(blobs.isEmpty, "the store keeps nothing of the refused image: \(blobs)")
        #expect(try FileSystem.contentsOfDirectory(FilePath(victim.store)).allSatisfy { !$0.hasPrefix("tmp-") })
        #expect(try ImageStore(root: FilePath(victim.store)).list().isEmpty)
    }

    @Test("plain HTTP only for this machine's loopback, or with --insecure")
    func schemes() {
        #expect(ImageReference.registryScheme(host: "127.0.0.1:5000", insecure: false) == "http")
        #expect(ImageReference.registryScheme(host: "localhost", insecure: false) == "http")
        #expect(ImageReference.registryScheme(host: "[::1]:5000", insecure: false) == "http")
        #expect(ImageReference.registryScheme(host: "registry.example:5000", insecure: false) == "https")
        #expect(ImageReference.registryScheme(host: "docker.io", insecure: false) == "https")
        #expect(ImageReference.registryScheme(host: "10.0.0.1:5000", insecure: true) == "http")
    }
}
