/// A pointer to a blob: what it is, its digest and its size (image-spec descriptor.md).
/// Whoever follows a descriptor checks both before using the bytes.
public struct Descriptor: Codable, Equatable, Sendable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var annotations: [String: String]?
    /// In an index: the platform the manifest is for.
    public var platform: Platform?
    public var urls: [String]?

    public init(mediaType: String, digest: Digest, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }

    /// The annotation that names a manifest in an OCI layout's index.json (`latest`).
    public static let refNameAnnotation = "org.opencontainers.image.ref.name"
    public var refName: String? { annotations?[Self.refNameAnnotation] }
}

/// The platform of an image: `linux/amd64`, `linux/arm64/v8`.
public struct Platform: Codable, Equatable, Sendable, CustomStringConvertible {
    public var architecture: String
    public var os: String
    public var variant: String?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
    }

    public init(architecture: String, os: String = "linux", variant: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
    }

    public var description: String { "\(os)/\(architecture)" + (variant.map { "/\($0)" } ?? "") }

    /// This machine's platform, as Go's GOARCH names it (uname(2)'s x86_64 is amd64).
    public static var current: Platform {
        #if arch(x86_64)
        return Platform(architecture: "amd64")
        #elseif arch(arm64)
        return Platform(architecture: "arm64")
        #else
        return Platform(architecture: "unknown")
        #endif
    }
}

/// A manifest: one image for one platform, its config and its layers, lowest first
/// (image-spec manifest.md). Docker's v2 schema 2 manifest has the same shape.
public struct Manifest: Codable, Equatable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var annotations: [String: String]?

    public init(config: Descriptor, layers: [Descriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        mediaType = MediaType.manifest
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }
}

/// An index: manifests for several platforms, or the entry point of an OCI layout
/// (image-spec image-index.md, image-layout.md). Docker's manifest list is the same.
public struct ImageIndex: Codable, Equatable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
    public var annotations: [String: String]?

    public init(manifests: [Descriptor]) {
        schemaVersion = 2
        mediaType = MediaType.index
        self.manifests = manifests
    }

    /// The manifest for `platform`: the exact architecture (and variant, when both name
    /// one), on the same OS. Entries without a platform match nothing.
    public func manifest(for platform: Platform) -> Descriptor? {
        let candidates = manifests.filter { MediaType.isManifest($0.mediaType) || MediaType.isIndex($0.mediaType) }
        return candidates.first { d in
            guard let p = d.platform else { return false }
            return p.os == platform.os && p.architecture == platform.architecture
                && (platform.variant == nil || p.variant == nil || p.variant == platform.variant)
        }
    }
}
