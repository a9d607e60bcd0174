/// The media types of image-spec media-types.md, and Docker's v2 schema 2 ones that
/// registries and `docker save` still use for the same things.
public enum MediaType {
    public static let layout = "application/vnd.oci.layout.header.v1+json"
    public static let index = "application/vnd.oci.image.index.v1+json"
    public static let manifest = "application/vnd.oci.image.manifest.v1+json"
    public static let config = "application/vnd.oci.image.config.v1+json"
    public static let layerTar = "application/vnd.oci.image.layer.v1.tar"
    public static let layerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let layerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"

    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    /// `docker save` writes plain tar layers; no registry media type names them.
    public static let dockerLayerTar = "application/vnd.docker.image.rootfs.diff.tar"

    public static func isIndex(_ type: String?) -> Bool { type == index || type == dockerManifestList }
    public static func isManifest(_ type: String?) -> Bool { type == manifest || type == dockerManifest }
    public static func isConfig(_ type: String?) -> Bool { type == config || type == dockerConfig }
    public static func isLayer(_ type: String) -> Bool {
        [layerTar, layerGzip, layerZstd, dockerLayerGzip, dockerLayerTar,
         "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
         "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"].contains(type)
    }
}
