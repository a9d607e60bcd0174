import Isolation
import CLibarchive
import Glibc
import SystemPackage

/// A layer's diff ID (image-spec config.md, `rootfs.diff_ids`): the digest of the layer's
/// tar *uncompressed*. The manifest names the compressed blob, the config names what is
/// inside it; checking both ties the config to the very layers it was built with, however
/// they were compressed on the way.
public enum DiffID {
    /// Whether the media type says the blob is compressed (then its digest is not its diff ID).
    public static func isCompressed(_ mediaType: String) -> Bool {
        mediaType.hasSuffix("gzip") || mediaType.hasSuffix("zstd")
    }

    /// The SHA-256 of `file` decompressed as `mediaType` says (gzip or zstd, by libarchive's
    /// filters over its "raw" format: one stream, no archive), in 1 MiB pieces.
    public static func ofLayer(_ file: FilePath, mediaType: String) throws -> Digest {
        guard isCompressed(mediaType) else { return try Digest.ofFile(file).digest }
        guard let archive = archive_read_new() else { throw IsolationError("libarchive: out of memory") }
        defer { archive_read_free(archive) }
        if mediaType.hasSuffix("gzip") { archive_read_support_filter_gzip(archive) }
        if mediaType.hasSuffix("zstd") { archive_read_support_filter_zstd(archive) }
        archive_read_support_format_raw(archive)
        var entry: OpaquePointer?
        guard archive_read_open_filename(archive, file.string, 1 << 20) == ARCHIVE_OK,
              archive_read_next_header(archive, &entry) == ARCHIVE_OK else {
            throw IsolationError("cannot decompress the layer \(file) (\(mediaType)): \(LayerApplier.message(archive))")
        }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
            if count == 0 { break }
            guard count > 0 else {
                throw IsolationError("cannot decompress the layer \(file) (\(mediaType)): \(LayerApplier.message(archive))",
                                     hint: "the blob is not valid \(mediaType.hasSuffix("zstd") ? "zstd" : "gzip") data")
            }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return hasher.finish()
    }

    /// Checks every layer of `manifest` (its blob in `layout`) against `config`'s diff IDs,
    /// in order. A mismatch is refused, naming the layer, both digests and the index.
    public static func verify(_ manifest: Manifest, _ config: ImageConfig, in layout: ImageLayout) throws {
        guard manifest.layers.count == config.rootfs.diffIDs.count else {
            throw IsolationError("the manifest has \(manifest.layers.count) layers but the config lists \(config.rootfs.diffIDs.count) diff IDs")
        }
        for (number, (layer, expected)) in zip(manifest.layers, config.rootfs.diffIDs).enumerated() {
            let found = try ofLayer(layout.blobPath(layer.digest), mediaType: layer.mediaType)
            guard found == expected else {
                throw IsolationError("diff ID mismatch: the layer \(layer.digest.short) uncompressed hashes to \(found), "
                                     + "but the config's rootfs.diff_ids[\(number)] is \(expected): refused",
                                     hint: "the config and the layers do not belong together: the image was built or changed wrongly; get it again from its source")
            }
        }
    }
}
