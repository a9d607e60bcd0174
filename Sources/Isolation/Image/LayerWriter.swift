import Isolation
import CLibarchive
import Glibc
import SystemPackage

/// Writes a layer: a tar (POSIX pax) of files taken from a directory or given as bytes,
/// and whiteouts. libarchive writes the format; `finish` compresses it with gzip and
/// returns both digests an image needs: the blob's (the manifest names it) and the
/// uncompressed tar's, the diff ID (the config's `rootfs.diff_ids` names it).
public final class LayerWriter {
    let tarPath: FilePath
    let archive: OpaquePointer
    /// Files already written with more than one link: (device, inode) → first path.
    var linked: [String: String] = [:]
    var finished = false

    /// Writes into the file `tarPath` (created).
    public init(tarPath: FilePath) throws {
        self.tarPath = tarPath
        guard let archive = archive_write_new() else { throw IsolationError("libarchive: out of memory") }
        self.archive = archive
        archive_write_set_format_pax_restricted(archive)
        guard archive_write_open_filename(archive, tarPath.string) == ARCHIVE_OK else {
            let message = LayerApplier.message(archive)
            archive_write_free(archive)
            throw IsolationError("cannot write the layer \(tarPath): \(message)")
        }
    }

    deinit { if !finished { archive_write_free(archive) } }

    /// Entries from `addTree` and `addFile(from:)` belong to root (uid and gid 0), whoever
    /// owns the files on this host (the cache may belong to the user who built the package).
    public var ownedByRoot = true

    /// Adds `directory`'s whole tree, as paths relative to it (sorted, so the same tree
    /// makes the same tar).
    public func addTree(_ directory: FilePath, prefix: String = "") throws {
        for name in try FileSystem.contentsOfDirectory(directory).sorted() {
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            let path = directory.appending(name)
            var info = stat()
            try pathCall(path) { lstat($0, &info) }
            try addFile(from: path, as: relative, info: info)
            if (info.st_mode & S_IFMT) == S_IFDIR { try addTree(path, prefix: relative) }
        }
    }

    /// Adds one file system object as `name`, with its type, mode, owner and times.
    public func addFile(from path: FilePath, as name: String, info: stat) throws {
        guard let entry = archive_entry_new() else { throw IsolationError("libarchive: out of memory") }
        defer { archive_entry_free(entry) }
        var info = info
        archive_entry_copy_stat(entry, &info)
        archive_entry_set_pathname(entry, name)
        if ownedByRoot {
            archive_entry_set_uid(entry, 0)
            archive_entry_set_gid(entry, 0)
        }
        let type = info.st_mode & S_IFMT
        if type == S_IFLNK {
            archive_entry_set_symlink(entry, try FileSystem.readLink(path).string)
        }
        if type == S_IFREG && info.st_nlink > 1 {
            let key = "\(info.st_dev):\(info.st_ino)"
            if let first = linked[key] {
                archive_entry_set_hardlink(entry, first)
                archive_entry_set_size(entry, 0)
                return try writeHeader(entry, name)
            }
            linked[key] = name
        }
        try writeHeader(entry, name)
        if type == S_IFREG { try writeData(from: path, name) }
    }

    /// Adds a regular file with `bytes`.
    public func addFile(_ name: String, _ bytes: [UInt8], mode: mode_t = 0o644, mtime: Int = 0) throws {
        guard let entry = archive_entry_new() else { throw IsolationError("libarchive: out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
        archive_entry_set_perm(entry, mode)
        archive_entry_set_size(entry, la_int64_t(bytes.count))
        archive_entry_set_mtime(entry, mtime, 0)
        try writeHeader(entry, name)
        let written = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw IsolationError("cannot write '\(name)' to \(tarPath): \(LayerApplier.message(archive))") }
    }

    /// Adds a directory entry.
    public func addDirectory(_ name: String, mode: mode_t = 0o755, mtime: Int = 0) throws {
        guard let entry = archive_entry_new() else { throw IsolationError("libarchive: out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_filetype(entry, UInt32(Glibc.S_IFDIR))
        archive_entry_set_perm(entry, mode)
        archive_entry_set_mtime(entry, mtime, 0)
        try writeHeader(entry, name)
    }

    /// Adds a hard link `name` to `target` (a path of the same layer, written before it).
    public func addHardLink(_ name: String, to target: String) throws {
        guard let entry = archive_entry_new() else { throw IsolationError("libarchive: out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
        archive_entry_set_perm(entry, 0o644)
        archive_entry_set_hardlink(entry, target)
        archive_entry_set_size(entry, 0)
        try writeHeader(entry, name)
    }

    /// Adds the whiteout that deletes `path` from the layers below: an empty file named
    /// `.wh.` + its name, in the same directory (layer.md "Whiteouts").
    public func addWhiteout(_ path: String, mtime: Int = 0) throws {
        var parts = path.split(separator: "/").map(String.init)
        guard let name = parts.popLast() else { throw IsolationError("cannot white out the root directory") }
        try addFile((parts + [LayerApplier.whiteoutPrefix + name]).joined(separator: "/"), [], mode: 0o644, mtime: mtime)
    }

    func writeHeader(_ entry: OpaquePointer, _ name: String) throws {
        guard archive_write_header(archive, entry) == ARCHIVE_OK else {
            throw IsolationError("cannot add '\(name)' to \(tarPath): \(LayerApplier.message(archive))")
        }
    }

    func writeData(from path: FilePath, _ name: String) throws {
        let fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        defer { try? fd.close() }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            if count == 0 { break }
            let written = buffer.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, count) }
            guard written == count else { throw IsolationError("cannot write '\(name)' to \(tarPath): \(LayerApplier.message(archive))") }
        }
    }

    /// Closes the tar, and stores it in `layout` gzip-compressed (or as is). Returns the
    /// layer's descriptor and its diff ID.
    public func finish(into layout: ImageLayout, gzip: Bool = true) throws -> (descriptor: Descriptor, diffID: Digest) {
        finished = true
        let closed = archive_write_close(archive)
        archive_write_free(archive)
        guard closed == ARCHIVE_OK else { throw IsolationError("cannot finish the layer \(tarPath)") }
        let diffID = try Digest.ofFile(tarPath).digest
        guard gzip else {
            return (try layout.adoptBlob(tarPath, mediaType: MediaType.layerTar), diffID)
        }
        let compressed = FilePath(tarPath.string + ".gz")
        defer { try? FileSystem.removeTree(compressed); try? FileSystem.removeTree(tarPath) }
        try Self.gzip(tarPath, into: compressed)
        return (try layout.adoptBlob(compressed, mediaType: MediaType.layerGzip), diffID)
    }

    /// gzip(1) by libarchive: the "raw" format (one stream, no archive) through its gzip
    /// filter.
    static func gzip(_ source: FilePath, into target: FilePath) throws {
        guard let archive = archive_write_new() else { throw IsolationError("libarchive: out of memory") }
        defer { archive_write_free(archive) }
        archive_write_add_filter_gzip(archive)
        // No time in the gzip header: the same tar always makes the same blob (and digest).
        archive_write_set_filter_option(archive, "gzip", "timestamp", nil)
        archive_write_set_format_raw(archive)
        guard archive_write_open_filename(archive, target.string) == ARCHIVE_OK,
              let entry = archive_entry_new() else { throw IsolationError("cannot write \(target): \(LayerApplier.message(archive))") }
        defer { archive_entry_free(entry) }
        archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
        archive_entry_set_pathname(entry, "layer.tar")
        guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw IsolationError("cannot write \(target): \(LayerApplier.message(archive))") }
        let fd = try FileDescriptor.open(source, .readOnly, options: .closeOnExec)
        defer { try? fd.close() }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            if count == 0 { break }
            let written = buffer.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, count) }
            guard written == count else { throw IsolationError("cannot compress into \(target): \(LayerApplier.message(archive))") }
        }
        guard archive_write_close(archive) == ARCHIVE_OK else { throw IsolationError("cannot finish \(target): \(LayerApplier.message(archive))") }
    }
}
