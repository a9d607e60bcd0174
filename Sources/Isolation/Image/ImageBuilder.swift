import Isolation
import Glibc
import SystemPackage

/// Builds this project's own image, with no download: an OCI layout whose two layers are
///
/// 1. the built-in root filesystem (busybox), whole;
/// 2. a change on top: /etc/hostname rewritten, /etc/motd added, and
///    /etc/isolation-rootfs (the builder's marker, meaningless in an image) deleted, which
///    a layer can only say with a whiteout, `etc/.wh.isolation-rootfs`.
public enum ImageBuilder {
    public static let tag = "latest"
    public static let defaultName = "localhost/\(projectPrefix)-busybox:latest"

    /// What `build` made.
    public struct Result: Sendable {
        public var layout: ImageLayout
        public var manifest: Descriptor
        public var config: Descriptor
        public var layers: [Descriptor]
    }

    /// Writes the image into the layout at `path` (made if missing), tagged `tag`.
    public static func build(at path: FilePath, from rootfs: RootFilesystem, tag: String = tag) throws -> Result {
        let layout = try ImageLayout.create(at: path)
        let scratch = try FileSystem.makeTemporaryDirectory(purpose: "image-build")
        defer { try? FileSystem.removeTree(scratch) }
        // A fixed time, so that the same root filesystem always makes the same digests.
        let epoch = 1_700_000_000

        let base = try LayerWriter(tarPath: scratch.appending("layer1.tar"))
        try base.addTree(rootfs.path)
        let (layer1, diff1) = try base.finish(into: layout)

        let change = try LayerWriter(tarPath: scratch.appending("layer2.tar"))
        try change.addDirectory("etc", mode: 0o755, mtime: epoch)
        try change.addFile("etc/hostname", Array("image\n".utf8), mtime: epoch)
        try change.addFile("etc/motd", Array("This root filesystem is two layers on overlayfs.\n".utf8), mtime: epoch)
        try change.addWhiteout("etc/isolation-rootfs", mtime: epoch)
        let (layer2, diff2) = try change.finish(into: layout)

        let config = ImageConfig(
            architecture: Platform.current.architecture,
            config: ImageConfig.Execution(
                env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                cmd: ["/bin/sh"], workingDir: "/",
                labels: ["org.opencontainers.image.title": "isolation busybox", "org.opencontainers.image.source": "chapter-06 build"],
                exposedPorts: ["8080/tcp": ImageConfig.Empty()]),
            rootfs: ImageConfig.RootFS(diffIDs: [diff1, diff2]),
            history: [ImageConfig.History(created: "2023-11-14T22:13:20Z", createdBy: "the built-in root filesystem (\(rootfs.path))"),
                      ImageConfig.History(created: "2023-11-14T22:13:20Z", createdBy: "rewrite /etc/hostname, add /etc/motd, delete /etc/isolation-rootfs")],
            created: "2023-11-14T22:13:20Z")
        let configDescriptor = try layout.writeBlob(ImageLayout.encode(config), mediaType: MediaType.config)
        let manifest = Manifest(config: configDescriptor, layers: [layer1, layer2])
        var manifestDescriptor = try layout.writeBlob(ImageLayout.encode(manifest), mediaType: MediaType.manifest)
        manifestDescriptor.annotations = [Descriptor.refNameAnnotation: tag]
        var index = try layout.index()
        index.manifests.removeAll { $0.refName == tag }
        index.manifests.append(manifestDescriptor)
        try layout.writeIndex(index)
        manifestDescriptor.annotations = nil
        return Result(layout: layout, manifest: manifestDescriptor, config: configDescriptor, layers: [layer1, layer2])
    }
}
