import Isolation
import SystemPackage

/// An image, written as skopeo writes references (containers-transports(5)):
///
///     oci:DIR[:TAG]                an OCI layout on disk
///     oci-archive:FILE[:TAG]       a tar of one (podman save --format oci-archive)
///     docker-archive:FILE          docker save's tar
///     [docker://][HOST[:PORT]/]NAME[:TAG|@sha256:…]    a registry
///
/// or, with no transport, the name of an image already in the store.
public enum ImageReference: Equatable, Sendable, CustomStringConvertible {
    case ociLayout(FilePath, tag: String?)
    case ociArchive(FilePath, tag: String?)
    case dockerArchive(FilePath)
    case registry(host: String, repository: String, tag: String?, digest: Digest?)
    case stored(String)

    public static func parse(_ text: String) throws -> ImageReference {
        func pathAndTag(_ rest: Substring) -> (FilePath, String?) {
            // skopeo splits at the first colon: a path with a colon cannot be named.
            let parts = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let tag = parts.count == 2 && !parts[1].isEmpty ? String(parts[1]) : nil
            return (FilePath(String(parts[0])), tag)
        }
        if text.hasPrefix("oci:") {
            let (path, tag) = pathAndTag(text.dropFirst(4))
            guard !path.isEmpty else { throw IsolationError("'\(text)' names no folder", hint: "write oci:DIR[:TAG]") }
            return .ociLayout(path, tag: tag)
        }
        if text.hasPrefix("oci-archive:") {
            let (path, tag) = pathAndTag(text.dropFirst(12))
            guard !path.isEmpty else { throw IsolationError("'\(text)' names no file", hint: "write oci-archive:FILE[:TAG]") }
            return .ociArchive(path, tag: tag)
        }
        if text.hasPrefix("docker-archive:") {
            let (path, _) = pathAndTag(text.dropFirst(15))
            guard !path.isEmpty else { throw IsolationError("'\(text)' names no file", hint: "write docker-archive:FILE") }
            return .dockerArchive(path)
        }
        if text.hasPrefix("docker://") { return try registry(String(text.dropFirst(9))) }
        if let colon = text.firstIndex(of: ":"), !text[..<colon].contains("/"), !text[..<colon].contains("."),
           ["dir", "docker-daemon", "containers-storage", "ostree", "sif"].contains(String(text[..<colon])) {
            throw IsolationError("the transport \(text[..<colon]): is not supported",
                                 hint: "use oci:, oci-archive:, docker-archive: or a registry reference (skopeo copy converts the others)")
        }
        return .stored(text)
    }

    /// `HOST[:PORT]/NAME[:TAG|@DIGEST]`, with Docker Hub's rules when no host is given:
    /// `busybox` is `docker.io/library/busybox:latest`.
    static func registry(_ text: String) throws -> ImageReference {
        var rest = Substring(text)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            digest = try Digest(String(rest[rest.index(after: at)...]))
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            tag = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/").map(String.init)
        guard !components.isEmpty else { throw IsolationError("'\(text)' names no image") }
        var host = "docker.io"
        if components.count > 1, components[0].contains(".") || components[0].contains(":") || components[0] == "localhost" {
            host = components.removeFirst()
        }
        if host == "docker.io" && components.count == 1 { components.insert("library", at: 0) }
        let repository = components.joined(separator: "/")
        guard repository.allSatisfy({ $0.isLowercase || $0.isNumber || "._-/".contains($0) }) else {
            throw IsolationError("'\(repository)' is not a repository name (lowercase letters, digits, . _ - /)")
        }
        if tag == nil && digest == nil { tag = "latest" }
        return .registry(host: host, repository: repository, tag: tag, digest: digest)
    }

    /// The URL scheme for a registry: https, except plain http for this machine's own
    /// loopback (`localhost`, `127.0.0.1`, `[::1]`, any port) or when `insecure` is asked.
    public static func registryScheme(host: String, insecure: Bool) -> String {
        var name = host
        if name.hasPrefix("[") { name = String(name.dropFirst().prefix { $0 != "]" }) }
        else if let colon = name.lastIndex(of: ":") { name = String(name[..<colon]) }
        return insecure || ["localhost", "127.0.0.1", "::1"].contains(name) ? "http" : "https"
    }

    public var description: String {
        switch self {
        case .ociLayout(let path, let tag): return "oci:\(path)" + (tag.map { ":\($0)" } ?? "")
        case .ociArchive(let path, let tag): return "oci-archive:\(path)" + (tag.map { ":\($0)" } ?? "")
        case .dockerArchive(let path): return "docker-archive:\(path)"
        case .registry(let host, let repository, let tag, let digest):
            return "\(host)/\(repository)" + (tag.map { ":\($0)" } ?? "") + (digest.map { "@\($0)" } ?? "")
        case .stored(let name): return name
        }
    }
}
