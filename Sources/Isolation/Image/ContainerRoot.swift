import Isolation
import CIsolation
import Glibc
import SystemPackage

/// One container's root filesystem, made from an image in the store:
///
///     mount("overlay", "containers/ID/merged", "overlay", 0,
///           "lowerdir=layers/L2:layers/L1,upperdir=containers/ID/upper,workdir=containers/ID/work")
///
/// The layers are shared, read-only, by every container of the image; a write goes to
/// the container's own upper folder (a file of a lower layer is copied up first, whole);
/// a delete leaves a whiteout there. Where overlayfs cannot be mounted (no overlay
/// module, a file system it cannot stack on), the layers are copied instead, and
/// `copiedBecause` says why.
public struct ContainerRoot: Sendable {
    public let id: String
    public let folder: FilePath
    /// What the container's root.path is: `merged` (overlay) or `rootfs` (a copy).
    public let rootfs: FilePath
    public let upper: FilePath?
    /// The layer folders, topmost first, as lowerdir lists them.
    public let lowerDirectories: [FilePath]
    /// The data argument of mount(2), when overlayfs is used.
    public let mountData: String?
    /// Why the layers were copied (nil: overlayfs).
    public let copiedBecause: String?

    /// Makes the root of container `id` from `image`: unpacks the layers not yet in the
    /// store, then mounts the overlay (or copies). `log` hears each step.
    public static func make(id: String, image: ImageStore.Image, store: ImageStore, log: (String) -> Void = { _ in }) throws -> ContainerRoot {
        guard !id.isEmpty, !id.contains("/"), id != ".", id != ".." else { throw IsolationError("'\(id)' is not a container ID") }
        let folder = store.root.appending("containers").appending(id)
        guard !FileSystem.exists(folder, followSymlinks: false) else {
            throw IsolationError("a container root named \(id) exists already in \(folder)",
                                 hint: "choose another ID, or remove it with `chapter-06 rm \(id)`")
        }
        // A store on overlayfs itself (a CI runner, Docker-in-Docker) can hold neither
        // overlayfs' whiteouts (mknod 0:0 is refused there) nor an upper folder.
        if iso_statfs_type(store.root.string) == 0x794c_7630 {
            return try copy(id: id, image: image, store: store, folder: folder, log: log,
                            reason: "the store \(store.root) is on overlayfs, which can be neither a lower layer with whiteouts nor an upper folder")
        }
        for layer in image.manifest.layers {
            if let summary = try store.unpackLayer(layer) {
                log("unpacked layer \(layer.digest.short) once into \(store.layerDirectory(layer)) (\(summary.entries) entries)")
            } else {
                log("layer \(layer.digest.short) is in the store already: nothing to unpack")
            }
        }
        try FileSystem.makeDirectories(folder)
        let lowers = image.manifest.layers.reversed().map { store.layerDirectory($0) }
        try FileSystem.writeFile(folder.appending("layers"), image.manifest.layers.map { $0.digest.encoded + "\n" }.joined())
        let upper = folder.appending("upper"), work = folder.appending("work"), merged = folder.appending("merged")
        do {
            for dir in [upper, work, merged] { try FileSystem.makeDirectory(dir) }
            let data = "lowerdir=\(lowers.map(\.string).joined(separator: ":")),upperdir=\(upper),workdir=\(work)"
            do {
                try Mount.mount(source: "overlay", target: merged, type: "overlay", data: data)
                return ContainerRoot(id: id, folder: folder, rootfs: merged, upper: upper, lowerDirectories: lowers,
                                     mountData: data, copiedBecause: nil)
            } catch let error as Errno {
                let reason = "mount(\"overlay\") failed with \(errnoName(error)) (\(error)); overlayfs needs root, the overlay module, "
                    + "and a store on a file system it can stack on: \(store.root)"
                for dir in [upper, work, merged] { try? FileSystem.removeTree(dir) }
                return try copy(id: id, image: image, store: store, folder: folder, log: log, reason: reason)
            }
        } catch {
            try? FileSystem.removeTree(folder)
            throw error
        }
    }

    /// The fallback: the layers flattened into `folder/rootfs`, a full copy.
    static func copy(id: String, image: ImageStore.Image, store: ImageStore, folder: FilePath,
                     log: (String) -> Void, reason: String) throws -> ContainerRoot {
        log("copying the layers instead: " + reason)
        do {
            try FileSystem.makeDirectories(folder)
            try FileSystem.writeFile(folder.appending("layers"), image.manifest.layers.map { $0.digest.encoded + "\n" }.joined())
            let rootfs = folder.appending("rootfs")
            try store.flatten(image, into: rootfs)
            return ContainerRoot(id: id, folder: folder, rootfs: rootfs, upper: nil,
                                 lowerDirectories: image.manifest.layers.reversed().map { store.layerDirectory($0) },
                                 mountData: nil, copiedBecause: reason)
        } catch {
            try? FileSystem.removeTree(folder)
            throw error
        }
    }

    /// Unmounts the overlay (when mounted) and removes the container's folder, its upper
    /// folder with it. The layers stay for the next container.
    public static func remove(id: String, store: ImageStore) throws {
        let folder = store.root.appending("containers").appending(id)
        guard FileSystem.exists(folder, followSymlinks: false) else {
            throw IsolationError("there is no container root named \(id) in \(store.root.appending("containers"))")
        }
        let merged = folder.appending("merged")
        if ((try? MountInfo.table()) ?? []).contains(where: { $0.mountPoint == merged.string }) {
            try Mount.unmount(merged, detach: true)
        }
        try FileSystem.removeTree(folder)
    }

    /// The IDs of the container roots in the store.
    public static func list(store: ImageStore) -> [String] {
        ((try? FileSystem.contentsOfDirectory(store.root.appending("containers"))) ?? []).sorted()
    }
}
