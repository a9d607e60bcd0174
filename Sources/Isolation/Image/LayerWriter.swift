import Isolation
import CIsolation
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

    /// Entries from `addTree` and `addFile(from:)` carry the file's extended attributes
    /// (read with llistxattr(2) and lgetxattr(2), written as pax `SCHILY.xattr.NAME`
    /// records, as `tar --xattrs` does): a file capability, `user.*` ones. overlayfs' own
    /// markers (`trusted.overlay.*`, `user.overlay.*`) are never written: they describe
    /// one overlay's directories, not the image.
    public var keepsExtendedAttributes = false

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
        if keepsExtendedAttributes {
            for (key, value) in try Self.extendedAttributes(of: path) where !Self.isOverlayMarker(key) {
                value.withUnsafeBytes { archive_entry_xattr_add_entry(entry, key, $0.baseAddress, $0.count) }
            }
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

    /// Adds the opaque marker of `directory` (a path of the layer): an empty file
    /// `.wh..wh..opq` inside it, which says that nothing the layers below put there shows
    /// through (layer.md "Opaque Whiteout"). The directory's own entry goes before it.
    public func addOpaqueMarker(_ directory: String, mtime: Int = 0) throws {
        let parts = directory.split(separator: "/").map(String.init)
        try addFile((parts + [LayerApplier.opaqueMarker]).joined(separator: "/"), [], mode: 0o644, mtime: mtime)
    }

    /// Adds what a container changed, read from its overlayfs upper directory (the mount's
    /// `upperdir`, read once the container is stopped or the overlay unmounted): the way
    /// back from a container to a layer, as `podman commit` and a build's RUN step make it.
    /// overlayfs records a deletion as a character device 0:0, which becomes `.wh.NAME` in
    /// the same directory; a directory that hides everything below it (deleted and made
    /// again) carries `trusted.overlay.opaque=y` (`user.overlay.opaque=y` on a mount with
    /// `userxattr`, as rootless ones are), which becomes `.wh..wh..opq` inside it.
    /// Everything else is copied with its type, mode, owner, times and extended
    /// attributes, in sorted order. A directory renamed with `redirect_dir` or a file
    /// copied up with `metacopy` (overlayfs.rst) needs the lower layers to be read: it is
    /// refused, naming the path. Returns the paths whited out and the opaque directories.
    @discardableResult
    public func addOverlayChanges(from upper: FilePath) throws -> (whiteouts: [String], opaqueDirectories: [String]) {
        let (owners, attributes) = (ownedByRoot, keepsExtendedAttributes)
        defer { (ownedByRoot, keepsExtendedAttributes) = (owners, attributes) }
        ownedByRoot = false
        keepsExtendedAttributes = true
        var whiteouts: [String] = [], opaque: [String] = []
        func walk(_ directory: FilePath, _ prefix: String) throws {
            for name in try FileSystem.contentsOfDirectory(directory).sorted() {
                let relative = prefix.isEmpty ? name : prefix + "/" + name
                let path = directory.appending(name)
                var info = stat()
                try pathCall(path) { lstat($0, &info) }
                if Self.isOverlayWhiteout(info) {
                    try addWhiteout(relative, mtime: Int(info.st_mtim.tv_sec))
                    whiteouts.append(relative)
                    continue
                }
                if let unsupported = try Self.extendedAttributes(of: path).map(\.name)
                    .first(where: { $0.hasSuffix("overlay.redirect") || $0.hasSuffix("overlay.metacopy") }) {
                    throw IsolationError("\(path) carries \(unsupported): its content is in a lower layer, which this writer does not read",
                                         hint: "mount the overlay without redirect_dir and metacopy (their defaults are off)")
                }
                try addFile(from: path, as: relative, info: info)
                guard (info.st_mode & S_IFMT) == S_IFDIR else { continue }
                if Self.isOverlayOpaque(path) {
                    try addOpaqueMarker(relative, mtime: Int(info.st_mtim.tv_sec))
                    opaque.append(relative)
                }
                try walk(path, relative)
            }
        }
        try walk(upper, "")
        return (whiteouts, opaque)
    }

    /// Whether `info` (from lstat(2)) is overlayfs' whiteout: a character device 0:0.
    public static func isOverlayWhiteout(_ info: stat) -> Bool {
        (info.st_mode & S_IFMT) == S_IFCHR && info.st_rdev == 0
    }

    /// Whether overlayfs marked `directory` opaque: `trusted.overlay.opaque` (or
    /// `user.overlay.opaque`) is "y" (getxattr(2)).
    public static func isOverlayOpaque(_ directory: FilePath) -> Bool {
        ["trusted.overlay.opaque", "user.overlay.opaque"].contains { name in
            var value = [UInt8](repeating: 0, count: 8)
            let size = lgetxattr(directory.string, name, &value, value.count)
            return size == 1 && value[0] == UInt8(ascii: "y")
        }
    }

    /// Names overlayfs keeps for itself.
    static func isOverlayMarker(_ name: String) -> Bool {
        name.hasPrefix("trusted.overlay.") || name.hasPrefix("user.overlay.")
    }

    /// `path`'s extended attributes, without following a symlink (llistxattr(2),
    /// lgetxattr(2)); none where the file system has none.
    static func extendedAttributes(of path: FilePath) throws -> [(name: String, value: [UInt8])] {
        var names = [CChar](repeating: 0, count: 1024)
        var length = llistxattr(path.string, &names, names.count)
        if length < 0 && errno == ERANGE {
            length = llistxattr(path.string, nil, 0)
            if length > 0 {
                names = [CChar](repeating: 0, count: length + 1)
                length = llistxattr(path.string, &names, names.count)
            }
        }
        if length < 0 {
            if errno == ENOTSUP { return [] }
            throw IsolationError("cannot list the extended attributes of \(path): \(currentErrno())")
        }
        var result: [(name: String, value: [UInt8])] = []
        for raw in names[0..<max(length, 0)].split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let size = lgetxattr(path.string, name, nil, 0)
            guard size >= 0 else { continue }
            var value = [UInt8](repeating: 0, count: size)
            let read = lgetxattr(path.string, name, &value, size)
            guard read >= 0 else { continue }
            result.append((name, Array(value[0..<read])))
        }
        return result
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
