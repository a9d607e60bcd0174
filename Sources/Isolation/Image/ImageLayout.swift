#if canImport(FoundationEssentials)
import Isolation
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import SystemPackage

/// An OCI image layout (image-spec image-layout.md): a directory with
///
///     oci-layout              {"imageLayoutVersion": "1.0.0"}
///     index.json              the entry point: manifests, named by ref.name annotations
///     blobs/sha256/<hex>      every manifest, config and layer, named by its digest
///
/// `skopeo copy … oci:DIR:TAG` writes one, `umoci` works on one, and this project's image
/// store is one. Every blob is checked against its descriptor's size and digest before it
/// is used: a layout is untrusted input.
public struct ImageLayout: Sendable {
    public let path: FilePath

    /// Opens an existing layout, checking its `oci-layout` file.
    public init(opening path: FilePath) throws {
        self.path = path
        let marker = path.appending("oci-layout")
        guard let text = try? FileSystem.readFile(marker) else {
            throw IsolationError("\(path) is not an OCI image layout: it has no oci-layout file",
                                 hint: "make one with `skopeo copy docker-archive:FILE oci:\(path):latest` or `chapter-06 build`")
        }
        struct Header: Decodable { var imageLayoutVersion: String }
        let header = try Self.decode(Header.self, from: text, what: "\(marker)")
        guard header.imageLayoutVersion.hasPrefix("1.") else {
            throw IsolationError("\(marker): imageLayoutVersion \(header.imageLayoutVersion) is not supported (1.x is)")
        }
    }

    /// Creates an empty layout at `path` (made if missing), or opens the one there.
    public static func create(at path: FilePath) throws -> ImageLayout {
        if FileSystem.exists(path.appending("oci-layout")) { return try ImageLayout(opening: path) }
        try FileSystem.makeDirectories(path.appending("blobs/sha256"))
        try FileSystem.writeFile(path.appending("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}")
        let layout = try ImageLayout(opening: path)
        try layout.writeIndex(ImageIndex(manifests: []))
        return layout
    }

    public func blobPath(_ digest: Digest) -> FilePath {
        path.appending("blobs").appending(digest.algorithm).appending(digest.encoded)
    }

    // MARK: index.json

    public func index() throws -> ImageIndex {
        let file = path.appending("index.json")
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(file) } catch {
            throw IsolationError("cannot read \(file): \(error)")
        }
        return try Self.decode(ImageIndex.self, from: bytes, what: "\(file)")
    }

    /// Replaces index.json (written beside it and renamed, so a reader never sees half).
    public func writeIndex(_ index: ImageIndex) throws {
        let staging = path.appending("index.json.\(getpid())")
        try FileSystem.writeFile(staging, Self.encode(index))
        try pathCall(staging) { rename($0, path.appending("index.json").string) }
    }

    // MARK: blobs

    /// The blob's bytes, checked against the descriptor (for manifests and configs: small).
    public func readBlob(_ descriptor: Descriptor, limit: Int64 = 8 << 20) throws -> [UInt8] {
        guard descriptor.size <= limit else {
            throw IsolationError("the blob \(descriptor.digest.short) (\(descriptor.mediaType)) claims \(descriptor.size) bytes; a JSON document over \(limit) is refused")
        }
        let file = blobPath(descriptor.digest)
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(file) } catch {
            throw IsolationError("the blob \(descriptor.digest) is missing from \(path): \(error)",
                                 hint: "the layout is incomplete; copy the image again")
        }
        try Self.check(descriptor, size: Int64(bytes.count), digest: Digest.of(bytes), file: file)
        return bytes
    }

    /// Checks a (large) blob file against its descriptor, reading it once.
    public func verifyBlob(_ descriptor: Descriptor) throws {
        let file = blobPath(descriptor.digest)
        guard FileSystem.exists(file) else {
            throw IsolationError("the blob \(descriptor.digest) is missing from \(path)", hint: "the layout is incomplete; copy the image again")
        }
        let (digest, size) = try Digest.ofFile(file)
        try Self.check(descriptor, size: size, digest: digest, file: file)
    }

    static func check(_ descriptor: Descriptor, size: Int64, digest: Digest, file: some CustomStringConvertible) throws {
        guard descriptor.digest.algorithm == "sha256" else {
            throw IsolationError("\(descriptor.digest): only sha256 digests can be verified here")
        }
        guard size == descriptor.size else {
            throw IsolationError("the blob \(file) has \(size) bytes, but its descriptor says \(descriptor.size): refused",
                                 hint: "the blob was changed or cut short; copy the image again")
        }
        guard digest == descriptor.digest else {
            throw IsolationError("digest mismatch: the blob \(file) hashes to \(digest), but its descriptor says \(descriptor.digest): refused",
                                 hint: "the blob's bytes were changed; copy the image again from a source you trust")
        }
    }

    /// Stores `bytes` as a blob (written under a temporary name, then renamed).
    @discardableResult
    public func writeBlob(_ bytes: [UInt8], mediaType: String) throws -> Descriptor {
        let descriptor = Descriptor(mediaType: mediaType, digest: Digest.of(bytes), size: Int64(bytes.count))
        let target = blobPath(descriptor.digest)
        if !FileSystem.exists(target) {
            let staging = FilePath(target.string + ".partial-\(getpid())")
            try FileSystem.writeFile(staging, bytes)
            try pathCall(staging) { rename($0, target.string) }
        }
        return descriptor
    }

    /// Moves (or copies) the file `source` in as a blob, hashing it on the way. The file
    /// must not be used by the caller afterwards.
    public func adoptBlob(_ source: FilePath, mediaType: String) throws -> Descriptor {
        let (digest, size) = try Digest.ofFile(source)
        let descriptor = Descriptor(mediaType: mediaType, digest: digest, size: size)
        let target = blobPath(digest)
        if FileSystem.exists(target) {
            try? FileSystem.removeTree(source)
        } else if rename(source.string, target.string) != 0 {
            let staging = FilePath(target.string + ".partial-\(getpid())")
            try FileSystem.copyFile(from: source, to: staging)
            try pathCall(staging) { rename($0, target.string) }
            try? FileSystem.removeTree(source)
        }
        return descriptor
    }

    /// Copies a blob from another layout, verified first: nothing unverified comes in.
    public func copyBlob(_ descriptor: Descriptor, from source: ImageLayout) throws {
        let target = blobPath(descriptor.digest)
        if FileSystem.exists(target) { return }
        try source.verifyBlob(descriptor)
        let staging = FilePath(target.string + ".partial-\(getpid())")
        defer { try? FileSystem.removeTree(staging) }
        if link(source.blobPath(descriptor.digest).string, staging.string) != 0 {
            try FileSystem.copyFile(from: source.blobPath(descriptor.digest), to: staging)
        }
        chmod(staging.string, 0o644)
        // Checked again as copied: the source may have changed since.
        let (digest, size) = try Digest.ofFile(staging)
        try Self.check(descriptor, size: size, digest: digest, file: source.blobPath(descriptor.digest))
        try pathCall(staging) { rename($0, target.string) }
    }

    // MARK: manifests

    /// The manifest named `tag` (the ref.name annotation; the only one when `tag` is nil),
    /// through an image index when there is one, for `platform`.
    public func resolve(tag: String?, platform: Platform = .current) throws -> (descriptor: Descriptor, manifest: Manifest) {
        let entries = try index().manifests
        let chosen: Descriptor
        if let tag {
            guard let found = entries.first(where: { $0.refName == tag }) else {
                let known = entries.compactMap(\.refName)
                throw IsolationError("\(path) has no image tagged '\(tag)'",
                                     hint: known.isEmpty ? "its index.json names no tags" : "its tags: \(known.joined(separator: ", "))")
            }
            chosen = found
        } else {
            guard entries.count == 1 else {
                throw IsolationError("\(path) holds \(entries.count) images; say which one with :TAG",
                                     hint: "tags: \(entries.compactMap(\.refName).joined(separator: ", "))")
            }
            chosen = entries[0]
        }
        return try manifest(chosen, platform: platform)
    }

    /// Follows a descriptor to a manifest, choosing `platform` in an index.
    public func manifest(_ descriptor: Descriptor, platform: Platform = .current, depth: Int = 0) throws -> (descriptor: Descriptor, manifest: Manifest) {
        let bytes = try readBlob(descriptor)
        if MediaType.isIndex(descriptor.mediaType) {
            guard depth < 4 else { throw IsolationError("image indexes nested too deep at \(descriptor.digest.short)") }
            let index = try Self.decode(ImageIndex.self, from: bytes, what: "the image index \(descriptor.digest.short)")
            guard let entry = index.manifest(for: platform) else {
                let platforms = index.manifests.compactMap { $0.platform?.description }
                throw IsolationError("the image has no manifest for \(platform)",
                                     hint: "it is built for: \(platforms.joined(separator: ", "))")
            }
            return try manifest(entry, platform: platform, depth: depth + 1)
        }
        guard MediaType.isManifest(descriptor.mediaType) else {
            throw IsolationError("\(descriptor.digest.short) is a \(descriptor.mediaType), not an image manifest or index")
        }
        let manifest = try Self.decode(Manifest.self, from: bytes, what: "the manifest \(descriptor.digest.short)")
        guard manifest.schemaVersion == 2 else {
            throw IsolationError("the manifest \(descriptor.digest.short) has schemaVersion \(manifest.schemaVersion); only 2 is supported")
        }
        guard MediaType.isConfig(manifest.config.mediaType) else {
            throw IsolationError("the manifest \(descriptor.digest.short)'s config is a \(manifest.config.mediaType), not an image config")
        }
        for layer in manifest.layers where !MediaType.isLayer(layer.mediaType) {
            throw IsolationError("the manifest \(descriptor.digest.short) has a layer of type \(layer.mediaType), which this project cannot unpack")
        }
        return (descriptor, manifest)
    }

    public func config(of manifest: Manifest) throws -> ImageConfig {
        try Self.decode(ImageConfig.self, from: readBlob(manifest.config), what: "the image config \(manifest.config.digest.short)")
    }

    // MARK: JSON

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw IsolationError("\(what) is not valid: \(describe(error))")
        } catch {
            throw IsolationError("\(what) is not valid JSON: \(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let text = JSONPath(context.codingPath).description
            return text.isEmpty ? "" : "\(text): "
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context))\(key.stringValue) is required"
        case .typeMismatch(let type, let context): return "\(path(context))expected \(type)"
        case .valueNotFound(let type, let context): return "\(path(context))expected \(type), found null"
        case .dataCorrupted(let context): return "\(path(context))\(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    /// JSON as the image tools write it: compact, keys sorted (so the same document
    /// always has the same digest), no `\/`.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }
}
