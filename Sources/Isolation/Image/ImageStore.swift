import Isolation
import Glibc
import SystemPackage

/// The project's image store, in the cache folder (`<cache>/images`, removed by
/// `doctor --clean`):
///
///     images/                       an OCI image layout: every blob once, by digest;
///       oci-layout, index.json      index.json names the images (ref.name annotations)
///       blobs/sha256/<hex>
///       layers/sha256-<hex>/        each layer unpacked once, for overlayfs (whiteouts
///                                   as 0:0 devices, opaque dirs as an xattr)
///       containers/<id>/            one container's root: upper/ and work/ of its own,
///                                   merged/ the overlay mount (or rootfs/, a copy)
///
/// Content addressing is what makes a second container cheap: its lowerdirs are the
/// same layer folders as the first one's, and only its upper folder is new.
public struct ImageStore: Sendable {
    public let root: FilePath
    public let layout: ImageLayout

    public static func defaultRoot() -> FilePath { RootFilesystem.cacheDirectory().appending("images") }

    /// Opens the store at `root`, making it when missing.
    public init(root: FilePath = ImageStore.defaultRoot()) throws {
        self.root = root
        layout = try ImageLayout.create(at: root)
        try FileSystem.makeDirectories(root.appending("layers"))
        try FileSystem.makeDirectories(root.appending("containers"))
    }

    /// An image in the store: its name, manifest and config.
    public struct Image: Sendable {
        public var name: String
        public var descriptor: Descriptor
        public var manifest: Manifest
        public var config: ImageConfig
        /// The manifest digest's first 12 hex digits: what `images` shows as the ID.
        public var id: String { String(descriptor.digest.encoded.prefix(12)) }
    }

    /// The images, as index.json names them.
    public func list() throws -> [(name: String, descriptor: Descriptor)] {
        try layout.index().manifests.compactMap { d in d.refName.map { ($0, d) } }
    }

    /// The image called `name`, or whose manifest digest starts with `name` (an ID).
    public func image(named name: String) throws -> Image? {
        let entries = try list()
        let found = entries.first { $0.name == name }
            ?? entries.first { name.count >= 6 && ($0.descriptor.digest.encoded.hasPrefix(name) || $0.descriptor.digest.description.hasPrefix(name)) }
        guard let found else { return nil }
        let (descriptor, manifest) = try layout.manifest(found.descriptor)
        return Image(name: found.name, descriptor: descriptor, manifest: manifest, config: try layout.config(of: manifest))
    }

    /// Names `descriptor` `name` in index.json (a previous image of that name loses it).
    public func tag(_ descriptor: Descriptor, as name: String) throws {
        var index = try layout.index()
        index.manifests.removeAll { $0.refName == name }
        var entry = Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size)
        entry.annotations = [Descriptor.refNameAnnotation: name]
        index.manifests.append(entry)
        try layout.writeIndex(index)
    }

    // MARK: importing

    /// The image `reference` names: from the store, or imported into it first (under the
    /// reference as written, with an absolute path), every blob verified.
    public func obtain(_ reference: ImageReference, log: (String) -> Void = { _ in }) throws -> Image {
        func absolute(_ path: FilePath) throws -> FilePath {
            guard FileSystem.exists(path) else { throw IsolationError("\(path) does not exist", hint: "check the path in \(reference)") }
            return try FileSystem.realPath(path)
        }
        switch reference {
        case .stored(let name):
            guard let image = try image(named: name) else {
                throw IsolationError("there is no image named '\(name)' in the store (\(root))",
                                     hint: "`chapter-06 images` lists them; `chapter-06 build` makes the local one; or name a file: oci:DIR:TAG, oci-archive:FILE, docker-archive:FILE")
            }
            return image
        case .ociLayout(let path, let tag):
            let path = try absolute(path)
            return try importImage(from: ImageLayout(opening: path), tag: tag, as: ImageReference.ociLayout(path, tag: tag).description, log: log)
        case .ociArchive(let path, let tag):
            let path = try absolute(path)
            return try importOCIArchive(path, tag: tag, as: ImageReference.ociArchive(path, tag: tag).description, log: log)
        case .dockerArchive(let path):
            let path = try absolute(path)
            return try importDockerArchive(path, as: ImageReference.dockerArchive(path).description, log: log)
        case .registry:
            if let image = try image(named: reference.description) { return image }
            throw IsolationError("\(reference) is not in the store yet", hint: "pull it first: chapter-06 pull \(reference)")
        }
    }

    /// Copies an image from another layout: every blob verified, the manifest last, the
    /// name last of all, so an import that fails leaves no image (only blobs that
    /// `prune` removes).
    @discardableResult
    public func importImage(from source: ImageLayout, tag: String?, as name: String, log: (String) -> Void = { _ in }) throws -> Image {
        let (descriptor, manifest) = try source.resolve(tag: tag)
        let config = try source.config(of: manifest)
        guard config.os == "linux" else { throw IsolationError("the image is for \(config.os), not linux") }
        guard manifest.layers.count == config.rootfs.diffIDs.count else {
            throw IsolationError("the manifest has \(manifest.layers.count) layers but the config lists \(config.rootfs.diffIDs.count) diff IDs")
        }
        // An image imported before: its manifest is stored only after every check passed,
        // so with it and all its blobs present there is nothing to copy or check again
        // (`run oci:DIR` of a cached image must not hash its layers on every start).
        let blobs = manifest.layers + [manifest.config, descriptor]
        if blobs.allSatisfy({ FileSystem.exists(layout.blobPath($0.digest)) }) {
            if try image(named: name)?.descriptor.digest != descriptor.digest { try self.tag(descriptor, as: name) }
            return Image(name: name, descriptor: descriptor, manifest: manifest, config: config)
        }
        // What this import adds, removed again if any part of it is refused.
        var added: [FilePath] = []
        do {
            for blob in blobs where !FileSystem.exists(layout.blobPath(blob.digest)) {
                try layout.copyBlob(blob, from: source)
                added.append(layout.blobPath(blob.digest))
            }
            // Each layer's blob is verified (its digest); its content must also be what
            // the config says (the diff ID, over the uncompressed tar).
            try DiffID.verify(manifest, config, in: layout)
            for layer in manifest.layers { log("layer \(layer.digest.short)  \(layer.size) bytes  verified") }
            try self.tag(descriptor, as: name)
        } catch {
            for path in added { try? FileSystem.removeTree(path) }
            throw error
        }
        return Image(name: name, descriptor: descriptor, manifest: manifest, config: config)
    }

    /// Imports an `oci-archive:` (a tar of an OCI layout, as `podman save --format
    /// oci-archive` writes it).
    @discardableResult
    public func importOCIArchive(_ file: FilePath, tag: String?, as name: String, log: (String) -> Void = { _ in }) throws -> Image {
        let folder = try extractArchive(file)
        defer { try? FileSystem.removeTree(folder) }
        return try importImage(from: ImageLayout(opening: folder), tag: tag, as: name, log: log)
    }

    /// Imports a `docker-archive:` (`docker save`): manifest.json lists the config file
    /// and the layer tars, which have no digests of their own. Each layer is hashed as it
    /// comes in and must match the config's diff ID, so even this format is verified.
    @discardableResult
    public func importDockerArchive(_ file: FilePath, as name: String, log: (String) -> Void = { _ in }) throws -> Image {
        let folder = try extractArchive(file)
        defer { try? FileSystem.removeTree(folder) }
        struct Entry: Decodable {
            var Config: String
            var RepoTags: [String]?
            var Layers: [String]
        }
        let entries = try ImageLayout.decode([Entry].self, from: FileSystem.readFile(folder.appending("manifest.json")), what: "\(file): manifest.json")
        guard entries.count == 1, let entry = entries.first else {
            throw IsolationError("\(file) holds \(entries.count) images; this project imports archives of one")
        }
        let configBytes = try FileSystem.readFile(try inside(folder, entry.Config))
        let config = try ImageLayout.decode(ImageConfig.self, from: configBytes, what: "\(file): \(entry.Config)")
        guard config.rootfs.diffIDs.count == entry.Layers.count else {
            throw IsolationError("\(file): \(entry.Layers.count) layers but the config lists \(config.rootfs.diffIDs.count) diff IDs")
        }
        var layers: [Descriptor] = []
        // Every layer is checked before any comes in (a compressed one decompressed to hash).
        var checked: [(path: FilePath, mediaType: String)] = []
        for (layerName, diffID) in zip(entry.Layers, config.rootfs.diffIDs) {
            let path = try inside(folder, layerName)
            let mediaType = try Self.sniffLayerType(path, docker: true)
            let digest = try DiffID.ofLayer(path, mediaType: mediaType)
            guard digest == diffID else {
                throw IsolationError("\(DiffID.isCompressed(mediaType) ? "diff ID" : "digest") mismatch: \(file): \(layerName) "
                                     + "\(DiffID.isCompressed(mediaType) ? "uncompressed " : "")hashes to \(digest), but the config's diff ID is \(diffID): refused",
                                     hint: "the archive was changed; save the image again")
            }
            checked.append((path, mediaType))
        }
        for (path, mediaType) in checked {
            let descriptor = try layout.adoptBlob(path, mediaType: mediaType)
            log("layer \(descriptor.digest.short)  \(descriptor.size) bytes  verified")
            layers.append(descriptor)
        }
        let configDescriptor = try layout.writeBlob(configBytes, mediaType: MediaType.dockerConfig)
        var manifest = Manifest(config: configDescriptor, layers: layers)
        manifest.mediaType = MediaType.dockerManifest
        let descriptor = try layout.writeBlob(ImageLayout.encode(manifest), mediaType: MediaType.dockerManifest)
        try tag(descriptor, as: name)
        return Image(name: name, descriptor: descriptor, manifest: manifest, config: config)
    }

    /// A path named inside an archive, which must stay inside its folder.
    func inside(_ folder: FilePath, _ name: String) throws -> FilePath {
        _ = try LayerApplier.components(of: name)
        return FilePath(folder.string + "/" + name)
    }

    /// A layer's media type from its first bytes: gzip (1f 8b), zstd (28 b5 2f fd), or tar.
    static func sniffLayerType(_ path: FilePath, docker: Bool) throws -> String {
        let fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        defer { try? fd.close() }
        var magic = [UInt8](repeating: 0, count: 4)
        _ = try magic.withUnsafeMutableBytes { try fd.read(into: $0) }
        if magic[0] == 0x1f && magic[1] == 0x8b { return docker ? MediaType.dockerLayerGzip : MediaType.layerGzip }
        if magic == [0x28, 0xb5, 0x2f, 0xfd] { return MediaType.layerZstd }
        return docker ? MediaType.dockerLayerTar : MediaType.layerTar
    }

    /// Extracts a tar (an OCI or Docker archive) into a temporary folder, with the same
    /// checks as a layer: no entry lands outside it.
    func extractArchive(_ file: FilePath) throws -> FilePath {
        guard FileSystem.exists(file) else { throw IsolationError("\(file) does not exist") }
        let folder = root.appending("tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileSystem.makeDirectories(folder)
        do {
            var applier = LayerApplier(root: folder, mode: .flatten)
            try applier.apply(layer: file, mediaType: MediaType.layerTar)
        } catch {
            try? FileSystem.removeTree(folder)
            throw error
        }
        return folder
    }

    /// Moves a downloaded file in as the blob `descriptor` names, after checking its size
    /// and digest; a file that does not match is deleted and refused. `source` names
    /// where it came from, for the error.
    public func adoptVerified(_ file: FilePath, as descriptor: Descriptor, source: String) throws {
        do {
            let (digest, size) = try Digest.ofFile(file)
            try ImageLayout.check(descriptor, size: size, digest: digest, file: source)
            try pathCall(file) { rename($0, layout.blobPath(descriptor.digest).string) }
        } catch {
            try? FileSystem.removeTree(file)
            throw error
        }
    }

    /// A file name for a download in progress, inside the store (so the rename into
    /// blobs/ stays on one file system), removed by `prune` if left behind.
    public func stagingFile() -> FilePath {
        root.appending("tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    // MARK: layers

    public func layerDirectory(_ layer: Descriptor) -> FilePath {
        root.appending("layers").appending("\(layer.digest.algorithm)-\(layer.digest.encoded)")
    }

    /// The layer unpacked for overlayfs, once: a second image or container with the same
    /// layer finds it there. Unpacked into a staging folder and renamed into place, so a
    /// refused layer leaves nothing. Returns what was done (nil when it was there already).
    @discardableResult
    public func unpackLayer(_ layer: Descriptor) throws -> LayerApplier.Summary? {
        let target = layerDirectory(layer)
        if FileSystem.exists(target) { return nil }
        try layout.verifyBlob(layer)
        let staging = FilePath(target.string + ".partial-\(getpid())")
        try? FileSystem.removeTree(staging)
        try FileSystem.makeDirectory(staging)
        do {
            var applier = LayerApplier(root: staging, mode: .overlay)
            try applier.apply(layer: layout.blobPath(layer.digest), mediaType: layer.mediaType)
            try pathCall(staging) { rename($0, target.string) }
            return applier.summary
        } catch {
            try? FileSystem.removeTree(staging)
            throw error
        }
    }

    /// Flattens an image into `directory/rootfs` (made; must not exist), layer after layer,
    /// as `umoci unpack` does. `each` hears each layer's summary.
    public func flatten(_ image: Image, into rootfs: FilePath, each: (Descriptor, LayerApplier.Summary) -> Void = { _, _ in }) throws {
        guard !FileSystem.exists(rootfs, followSymlinks: false) else {
            throw IsolationError("\(rootfs) exists already", hint: "give a folder that does not exist yet")
        }
        let staging = FilePath(rootfs.string + ".partial-\(getpid())")
        try FileSystem.makeDirectories(staging)
        do {
            for layer in image.manifest.layers {
                try layout.verifyBlob(layer)
                var applier = LayerApplier(root: staging, mode: .flatten)
                try applier.apply(layer: layout.blobPath(layer.digest), mediaType: layer.mediaType)
                each(layer, applier.summary)
            }
            try pathCall(staging) { rename($0, rootfs.string) }
        } catch {
            try? FileSystem.removeTree(staging)
            throw error
        }
    }

    // MARK: removing

    /// Forgets the name; `prune` then removes what nothing names.
    public func remove(name: String) throws {
        var index = try layout.index()
        guard index.manifests.contains(where: { $0.refName == name }) else {
            throw IsolationError("there is no image named '\(name)' in the store", hint: "`chapter-06 images` lists them")
        }
        index.manifests.removeAll { $0.refName == name }
        try layout.writeIndex(index)
    }

    /// Removes every blob and unpacked layer that no named image uses, and staging
    /// leftovers; a layer a running container uses stays (its image is named, or the
    /// container's mount keeps it). Returns what was removed.
    @discardableResult
    public func prune(report: (String) -> Void = { _ in }) throws -> Int {
        var keep = Set<String>()
        for (_, descriptor) in try list() {
            keep.insert(descriptor.digest.encoded)
            // A named index keeps the manifests it lists too.
            if MediaType.isIndex(descriptor.mediaType), let bytes = try? layout.readBlob(descriptor),
               let index = try? ImageLayout.decode(ImageIndex.self, from: bytes, what: "index") {
                for entry in index.manifests { keep.insert(entry.digest.encoded) }
            }
            if let (manifestDescriptor, manifest) = try? layout.manifest(descriptor) {
                keep.insert(manifestDescriptor.digest.encoded)
                keep.insert(manifest.config.digest.encoded)
                for layer in manifest.layers { keep.insert(layer.digest.encoded) }
            }
        }
        var removed = 0
        let blobs = root.appending("blobs/sha256")
        for name in try FileSystem.contentsOfDirectory(blobs) where !keep.contains(name) {
            try FileSystem.removeTree(blobs.appending(name))
            report("removed blob sha256:\(name.prefix(12))")
            removed += 1
        }
        let layers = root.appending("layers")
        // A container's layers stay while it exists, even when its image lost its name.
        for id in (try? FileSystem.contentsOfDirectory(root.appending("containers"))) ?? [] {
            let text = (try? FileSystem.readString(root.appending("containers").appending(id).appending("layers"))) ?? ""
            for line in text.split(separator: "\n") { keep.insert(String(line)) }
        }
        for name in try FileSystem.contentsOfDirectory(layers) {
            let hex = name.hasPrefix("sha256-") ? String(name.dropFirst(7)) : name
            guard !keep.contains(hex) || name.contains(".partial-") else { continue }
            try FileSystem.removeTree(layers.appending(name))
            report("removed layer \(name.prefix(19))")
            removed += 1
        }
        for name in try FileSystem.contentsOfDirectory(root) where name.hasPrefix("tmp-") || name.contains(".partial-") {
            try FileSystem.removeTree(root.appending(name))
            removed += 1
        }
        return removed
    }
}
