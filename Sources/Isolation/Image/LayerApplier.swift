import Isolation
import CIsolation
import CLibarchive
import Glibc
import SystemPackage

/// Applies one layer (a tar, maybe gzip- or zstd-compressed) to a directory, as image-spec
/// layer.md says. libarchive reads the tar format; what each entry means, where it may
/// land, and the whiteouts are decided here.
///
/// Two ways to apply, for the two ways an image becomes a root filesystem:
/// - `.flatten`: onto the layers below, in the same directory (what `umoci unpack` does):
///   `.wh.NAME` deletes NAME, `.wh..wh..opq` empties its directory of what lower layers
///   put there.
/// - `.overlay`: into an empty directory of the layer's own, to be one of overlayfs'
///   lowerdirs: `.wh.NAME` becomes overlayfs' own whiteout (a character device 0:0), and
///   `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.
///
/// Every entry's path is checked before anything is written for it: an absolute path, a
/// `..`, or a path through a symlink this layer planted ("tar slip") is refused. Callers
/// apply into a staging directory and rename it into place, so that a refused layer
/// leaves nothing half-written.
public struct LayerApplier {
    public enum Mode: Sendable { case flatten, overlay }

    /// What a layer did, for the lesson to show.
    public struct Summary: Sendable {
        public var files = 0, directories = 0, symlinks = 0, hardLinks = 0, devices = 0
        /// The paths that a `.wh.` entry removed (flatten) or hid (overlay).
        public var whiteouts: [String] = []
        /// The directories made opaque.
        public var opaqueDirectories: [String] = []
        public var entries: Int { files + directories + symlinks + hardLinks + devices + whiteouts.count + opaqueDirectories.count }
    }

    public static let whiteoutPrefix = ".wh."
    public static let opaqueMarker = ".wh..wh..opq"

    /// What `.flatten` does with the two kinds of whiteout, once the entry's path has been
    /// checked: `removeWhiteout(marker, directory)` for `.wh.NAME` in `directory` (NAME is
    /// known not to be empty, `.` or `..`), `emptyOpaque(directory, kept)` for
    /// `.wh..wh..opq`, where `kept` are the names in `directory` that this layer itself
    /// wrote. The project's own are `standardRemoveWhiteout` and `standardEmptyOpaque`;
    /// exercise 06 puts the learner's steps here.
    public var removeWhiteout: (_ marker: String, _ directory: FilePath) throws -> Void = LayerApplier.standardRemoveWhiteout
    public var emptyOpaque: (_ directory: FilePath, _ kept: Set<String>) throws -> Void = LayerApplier.standardEmptyOpaque

    /// `.wh.NAME` deletes NAME, whatever it is (a directory with everything in it).
    public static func standardRemoveWhiteout(_ marker: String, in directory: FilePath) throws {
        try FileSystem.removeTree(directory.appending(String(marker.dropFirst(whiteoutPrefix.count))))
    }

    /// `.wh..wh..opq` removes what lower layers put in the directory, not what this layer adds.
    public static func standardEmptyOpaque(_ directory: FilePath, keeping kept: Set<String>) throws {
        for child in try FileSystem.contentsOfDirectory(directory) where !kept.contains(child) {
            try FileSystem.removeTree(directory.appending(child))
        }
    }

    let root: FilePath
    let mode: Mode
    let isRoot = geteuid() == 0
    /// Symlinks this layer made (relative paths): a later entry may not go through them.
    var planted = Set<String>()
    /// Everything this layer made: an opaque marker must not remove those.
    var created = Set<String>()
    /// Directories' times are set last: the entries written into them change them.
    var directoryTimes: [(path: String, time: timespec)] = []
    public private(set) var summary = Summary()

    public init(root: FilePath, mode: Mode) {
        self.root = root
        self.mode = mode
    }

    /// Applies the layer in `file` (of `mediaType`, which says its compression).
    public mutating func apply(layer file: FilePath, mediaType: String) throws {
        guard let archive = archive_read_new() else { throw IsolationError("libarchive: out of memory") }
        defer { archive_read_free(archive) }
        archive_read_support_format_tar(archive)
        if mediaType.hasSuffix("gzip") { archive_read_support_filter_gzip(archive) }
        if mediaType.hasSuffix("zstd") { archive_read_support_filter_zstd(archive) }
        guard archive_read_open_filename(archive, file.string, 1 << 20) == ARCHIVE_OK else {
            throw IsolationError("cannot read the layer \(file): \(Self.message(archive))")
        }
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw IsolationError("the layer \(file) is not a valid \(mediaType): \(Self.message(archive))")
            }
            try applyEntry(entry, archive: archive)
        }
        // Deepest first, so that setting a parent's times comes after its children's.
        for (path, time) in directoryTimes.reversed() {
            var times = [time, time]
            utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
        }
        directoryTimes = []
    }

    static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }

    /// A refused entry: what it was, and why it may not be written.
    static func slip(_ name: String, _ why: String) -> IsolationError {
        IsolationError("refusing the layer entry '\(name)': \(why) (a \"tar slip\" would write outside the root filesystem)",
                       hint: "this layer is malformed or malicious; nothing of it was kept")
    }

    /// The entry's path as components below the root: `./etc/passwd` → [etc, passwd].
    static func components(of name: String) throws -> [String] {
        if name.hasPrefix("/") { throw slip(name, "an absolute path") }
        let parts = name.split(separator: "/").map(String.init).filter { $0 != "." }
        if parts.contains("..") { throw slip(name, "its path climbs with '..'") }
        return parts
    }

    mutating func applyEntry(_ entry: OpaquePointer, archive: OpaquePointer) throws {
        guard let rawName = archive_entry_pathname(entry) else {
            throw IsolationError("a layer entry has a name libarchive cannot read")
        }
        let name = String(cString: rawName)
        var parts = try Self.components(of: name)
        guard let base = parts.popLast() else {
            // "./": the root directory itself; only its metadata.
            try setMetadata(root.string, entry, isDirectory: true)
            return
        }
        // Whiteouts first: they are names, not files.
        if base == Self.opaqueMarker {
            guard let directory = try parent(parts, name: name, create: mode == .overlay) else { return }
            switch mode {
            case .flatten:
                let relative = parts.joined(separator: "/")
                var kept = Set<String>()
                for child in try FileSystem.contentsOfDirectory(FilePath(directory)) {
                    if created.contains(relative.isEmpty ? child : relative + "/" + child) { kept.insert(child) }
                }
                try emptyOpaque(FilePath(directory), kept)
            case .overlay:
                guard setxattr(directory, "trusted.overlay.opaque", "y", 1, 0) == 0 else {
                    throw IsolationError("cannot mark \(directory) opaque for overlayfs: \(currentErrno())",
                                         hint: "the trusted.* xattrs need root (CAP_SYS_ADMIN) and a file system that keeps them")
                }
            }
            summary.opaqueDirectories.append("/" + parts.joined(separator: "/"))
            return
        }
        if base.hasPrefix(Self.whiteoutPrefix) {
            let hidden = String(base.dropFirst(Self.whiteoutPrefix.count))
            guard !hidden.isEmpty, hidden != ".", hidden != ".." else { throw Self.slip(name, "a whiteout of '\(hidden)'") }
            let shown = "/" + (parts + [hidden]).joined(separator: "/")
            guard let directory = try parent(parts, name: name, create: mode == .overlay) else {
                summary.whiteouts.append(shown)
                return
            }
            let path = directory + "/" + hidden
            switch mode {
            case .flatten:
                try removeWhiteout(base, FilePath(directory))
            case .overlay:
                try FileSystem.removeTree(FilePath(path))
                guard mknod(path, S_IFCHR | 0o000, 0) == 0 else {
                    throw IsolationError("cannot make the overlayfs whiteout \(path): \(currentErrno())", hint: "mknod(2) of a 0:0 device needs root")
                }
            }
            summary.whiteouts.append(shown)
            return
        }

        guard let directory = try parent(parts, name: name, create: true) else { return }
        let path = directory + "/" + base
        let relative = (parts + [base]).joined(separator: "/")
        let type = archive_entry_filetype(entry) & mode_t(Glibc.S_IFMT)
        let hardLink = archive_entry_hardlink(entry).map { String(cString: $0) }

        // What is there already is replaced, unless both are directories (then the
        // directory stays, with its contents, and takes the new metadata).
        var existing = stat()
        if lstat(path, &existing) == 0 {
            if !(type == S_IFDIR && hardLink == nil && (existing.st_mode & S_IFMT) == S_IFDIR) {
                try FileSystem.removeTree(FilePath(path))
            }
        }
        planted.remove(relative)
        created.insert(relative)
        let permissions = mode_t(archive_entry_perm(entry))

        if let hardLink {
            var targetParts = try Self.components(of: hardLink)
            guard let targetBase = targetParts.popLast(),
                  let targetDirectory = try parent(targetParts, name: hardLink, create: false) else {
                throw IsolationError("the layer entry '\(name)' is a hard link to '\(hardLink)', which the layer does not hold")
            }
            let target = targetDirectory + "/" + targetBase
            guard linkat(AT_FDCWD, target, AT_FDCWD, path, 0) == 0 else {
                throw IsolationError("cannot hard link \(path) to \(target): \(currentErrno())")
            }
            summary.hardLinks += 1
            return
        }

        switch type {
        case S_IFDIR:
            if mkdir(path, 0o700) != 0 && Glibc.errno != EEXIST { throw IsolationError("cannot make the directory \(path): \(currentErrno())") }
            summary.directories += 1
            try setMetadata(path, entry, isDirectory: true)
        case S_IFREG:
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw IsolationError("cannot create \(path): \(currentErrno())") }
            let copied = archive_read_data_into_fd(archive, fd)
            close(fd)
            guard copied == ARCHIVE_OK || copied == ARCHIVE_WARN else {
                throw IsolationError("cannot read '\(name)' from the layer: \(Self.message(archive))")
            }
            summary.files += 1
            try setMetadata(path, entry, isDirectory: false)
        case S_IFLNK:
            guard let target = archive_entry_symlink(entry) else { throw IsolationError("the symlink '\(name)' has no target") }
            guard symlink(target, path) == 0 else { throw IsolationError("cannot make the symlink \(path): \(currentErrno())") }
            planted.insert(relative)
            summary.symlinks += 1
            try setMetadata(path, entry, isDirectory: false, isSymlink: true)
        case S_IFCHR, S_IFBLK, S_IFIFO:
            let device = type == S_IFIFO ? 0 : dev_t(iso_makedev(UInt32(archive_entry_rdevmajor(entry)), UInt32(archive_entry_rdevminor(entry))))
            guard mknod(path, type | permissions, device) == 0 else {
                throw IsolationError("cannot make the device node \(path): \(currentErrno())", hint: "mknod(2) needs root (CAP_MKNOD)")
            }
            summary.devices += 1
            try setMetadata(path, entry, isDirectory: false)
        default:
            throw IsolationError("the layer entry '\(name)' has a type this project does not unpack (mode \(String(type, radix: 8)))")
        }
    }

    /// The host path of the directory `parts` (below the root), each component checked:
    /// a missing one is made (when `create`), a symlink this layer planted is refused, a
    /// symlink from a lower layer (flatten) is followed as the container would, never
    /// leaving the root. nil when a component is missing and `create` is false.
    mutating func parent(_ parts: [String], name: String, create: Bool) throws -> String? {
        var current = root.string
        var relative: [String] = []
        for component in parts {
            relative.append(component)
            let key = relative.joined(separator: "/")
            let path = current + "/" + component
            var info = stat()
            if lstat(path, &info) != 0 {
                guard create else { return nil }
                guard mkdir(path, 0o755) == 0 else { throw IsolationError("cannot make the directory \(path): \(currentErrno())") }
                created.insert(key)
                current = path
                continue
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                current = path
            case S_IFLNK:
                if planted.contains(key) {
                    let target = (try? FileSystem.readLink(FilePath(path)).string) ?? "?"
                    throw Self.slip(name, "it goes through the symlink /\(key) → \(target) that this layer planted")
                }
                // A lower layer's symlink: resolved inside the root, as the container sees it.
                let resolved = try FileSystem.resolve(FilePath("/" + key), inside: root)
                guard FileSystem.isDirectory(resolved) else {
                    throw IsolationError("the layer entry '\(name)': /\(key) is a symlink to something that is not a directory")
                }
                current = resolved.string
            default:
                throw IsolationError("the layer entry '\(name)': /\(key) is not a directory")
            }
        }
        return current
    }

    /// Owner, then mode (chown(2) clears setuid bits, so chmod comes after), then extended
    /// attributes (chown also clears file capabilities), then times.
    mutating func setMetadata(_ path: String, _ entry: OpaquePointer, isDirectory: Bool, isSymlink: Bool = false) throws {
        if isRoot {
            guard lchown(path, uid_t(archive_entry_uid(entry)), gid_t(archive_entry_gid(entry))) == 0 else {
                throw IsolationError("cannot change the owner of \(path): \(currentErrno())")
            }
        }
        if !isSymlink {
            guard chmod(path, mode_t(archive_entry_perm(entry))) == 0 else {
                throw IsolationError("cannot change the mode of \(path): \(currentErrno())")
            }
        }
        try setExtendedAttributes(path, entry, isSymlink: isSymlink)
        let time = timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry))
        if isDirectory {
            directoryTimes.append((path, time))
        } else {
            var times = [time, time]
            utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
        }
    }

    /// The entry's extended attributes (pax `SCHILY.xattr.NAME` records, as GNU tar
    /// --xattrs, buildah and Docker write them), with lsetxattr(2): file capabilities
    /// (`security.capability`, what setcap(8) writes: ping's cap_net_raw) and any
    /// `user.*` ones. `trusted.overlay.*` is never taken from a layer: those are
    /// overlayfs' own markers (an opaque directory, a redirect), which only this code may
    /// set. A symlink cannot carry user.* attributes (xattr(7)): those are left out.
    func setExtendedAttributes(_ path: String, _ entry: OpaquePointer, isSymlink: Bool) throws {
        guard archive_entry_xattr_reset(entry) > 0 else { return }
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
            guard let name else { continue }
            let key = String(cString: name)
            if key.hasPrefix("trusted.overlay.") { continue }
            if isSymlink && key.hasPrefix("user.") { continue }
            guard lsetxattr(path, name, value, size, 0) == 0 else {
                let error = currentErrno()
                throw IsolationError("cannot set the extended attribute \(key) on \(path): \(error)",
                                     hint: key.hasPrefix("security.") || key.hasPrefix("trusted.") ? "security.* and trusted.* attributes need root (CAP_SYS_ADMIN or CAP_SETFCAP)"
                                        : "the store's file system must keep extended attributes (ext4, xfs, btrfs and tmpfs do)")
            }
        }
    }
}
