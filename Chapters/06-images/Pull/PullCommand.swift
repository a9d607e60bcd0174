// chapter-06-pull REF (also `chapter-06 pull REF`): the distribution-spec's pull, over
// URLSession.
//
// The one program of the chapter that uses the network. URLSession runs threads of its
// own, and a process that forks must have none: so the pull is a program of its own, and
// chapter-06 (which forks, and whose binary is also every container's init) starts it as
// a child and waits. It also keeps Foundation's networking and libcurl out of chapter-06,
// which every container start loads again as its init.
import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Isolation
import IsolationImage
import SystemPackage

@main
struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-06-pull",
        abstract: "Pull an image from a registry into the store: manifest, index, config and layers, each verified.")
    @Argument(help: "[docker://][HOST[:PORT]/]NAME[:TAG|@sha256:…]") var reference: String
    @Flag(help: "Plain HTTP to a registry other than localhost or 127.0.0.1.") var insecure = false

    func run() throws {
        reportingErrors("chapter-06") {
            let parsed = try ImageReference.parse(reference.hasPrefix("docker://") ? reference : "docker://" + reference)
            guard case .registry(let host, let repository, let tag, let digest) = parsed else { return }
            let store = try ImageStore()
            let client = RegistryClient(host: host, repository: repository, insecure: insecure)
            let image = try client.pull(tag: tag, digest: digest, into: store, as: parsed.description)
            say("pulled \(image.name)  manifest \(image.descriptor.digest.short)  \(image.manifest.layers.count) layers")
        }
    }
}

/// A registry's HTTP API (distribution-spec spec.md "Pull"), for one repository.
final class RegistryClient {
    let base: String
    let repository: String
    let session: URLSession
    var token: String?

    init(host: String, repository: String, insecure: Bool) {
        // Docker Hub's API is not served at docker.io itself.
        let apiHost = host == "docker.io" ? "registry-1.docker.io" : host
        base = "\(ImageReference.registryScheme(host: host, insecure: insecure))://\(apiHost)"
        self.repository = repository
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 60
        session = URLSession(configuration: configuration, delegate: transfers, delegateQueue: nil)
    }

    /// Hears every request's response and bytes (one request at a time).
    let transfers = Transfers()

    static let manifestTypes = [MediaType.index, MediaType.manifest, MediaType.dockerManifestList, MediaType.dockerManifest]

    /// Pulls `tag` (or `digest`) for this machine's platform: manifest (through an index),
    /// config, layers. Every blob is downloaded into the store's staging files and
    /// renamed into blobs/ only once its digest matches; the name comes last.
    func pull(tag: String?, digest: Digest?, into store: ImageStore, as name: String) throws -> ImageStore.Image {
        let reference = digest?.description ?? tag ?? "latest"
        var (bytes, mediaType) = try manifest(reference)
        var descriptor = Descriptor(mediaType: mediaType, digest: Digest.of(bytes), size: Int64(bytes.count))
        if let digest, descriptor.digest != digest {
            throw IsolationError("digest mismatch: the registry's manifest hashes to \(descriptor.digest), not \(digest): refused")
        }
        if MediaType.isIndex(mediaType) {
            let index = try JSONDecoder().decode(ImageIndex.self, from: Data(bytes))
            guard let entry = index.manifest(for: .current) else {
                throw IsolationError("\(name) has no manifest for \(Platform.current)",
                                     hint: "it is built for: \(index.manifests.compactMap { $0.platform?.description }.joined(separator: ", "))")
            }
            say("  index \(descriptor.digest.short): \(index.manifests.count) platforms, \(Platform.current) is \(entry.digest.short)")
            (bytes, mediaType) = try self.manifest(entry.digest.description)
            descriptor = Descriptor(mediaType: mediaType, digest: Digest.of(bytes), size: Int64(bytes.count))
            guard descriptor.digest == entry.digest else {
                throw IsolationError("digest mismatch: the manifest \(entry.digest) hashes to \(descriptor.digest): refused")
            }
        }
        guard MediaType.isManifest(mediaType) else { throw IsolationError("the registry answered with a \(mediaType), not a manifest") }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(bytes))
        // What this pull adds, removed again if any part of it fails: the store is left
        // as it was.
        var added: [FilePath] = []
        do {
            for blob in [manifest.config] + manifest.layers {
                if FileSystem.exists(store.layout.blobPath(blob.digest)) {
                    say("  \(blob.digest.short) already in the store")
                    continue
                }
                let staging = store.stagingFile()
                defer { try? FileSystem.removeTree(staging) }
                try download(blob, to: staging)
                try store.adoptVerified(staging, as: blob, source: "\(base)/v2/\(repository)/blobs/\(blob.digest)")
                added.append(store.layout.blobPath(blob.digest))
                say("  \(blob.digest.short)  \(blob.size) bytes  verified")
            }
            // The layers' contents must be what the config says: each diff ID is the
            // digest of the uncompressed tar.
            try DiffID.verify(manifest, try store.layout.config(of: manifest), in: store.layout)
            try store.layout.writeBlob(bytes, mediaType: mediaType)
            try store.tag(descriptor, as: name)
        } catch {
            for path in added { try? FileSystem.removeTree(path) }
            throw error
        }
        guard let image = try store.image(named: name) else { throw IsolationError("\(name) was not stored") }
        return image
    }

    /// GET /v2/<name>/manifests/<reference>, accepting OCI and Docker types.
    func manifest(_ reference: String) throws -> ([UInt8], String) {
        let (data, response) = try get("/v2/\(repository)/manifests/\(reference)", accept: Self.manifestTypes)
        guard data.count <= 8 << 20 else { throw IsolationError("the manifest \(reference) is over 8 MiB: refused") }
        var type = (response.value(forHTTPHeaderField: "Content-Type") ?? "").split(separator: ";").first.map(String.init) ?? ""
        if !Self.manifestTypes.contains(type) {
            struct Typed: Decodable { var mediaType: String? }
            type = (try? JSONDecoder().decode(Typed.self, from: data))?.mediaType ?? type
        }
        return (Array(data), type)
    }

    /// GET /v2/<name>/blobs/<digest>, written to `file` as it arrives (a layer is never
    /// held in memory whole), with a progress bar when stderr is a terminal.
    func download(_ blob: Descriptor, to file: FilePath) throws {
        let fd = try FileDescriptor.open(file, .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        defer { try? fd.close() }
        let bar = ProgressBar(label: blob.digest.short, total: blob.size)
        _ = try get("/v2/\(repository)/blobs/\(blob.digest)", accept: ["*/*"], limit: blob.size, into: fd, progress: bar.update)
        bar.finish()
    }

    /// A GET with the bearer token, and the token dance on a 401: the registry's
    /// `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` says where to ask.
    /// With `file`, a 200's body goes there (and `progress` hears the bytes so far), the
    /// returned Data is empty.
    func get(_ path: String, accept: [String], limit: Int64 = 8 << 20,
             into file: FileDescriptor? = nil, progress: @escaping (Int64) -> Void = { _ in }) throws -> (Data, HTTPURLResponse) {
        for attempt in 0..<2 {
            var request = URLRequest(url: try url(base + path))
            request.setValue(accept.joined(separator: ", "), forHTTPHeaderField: "Accept")
            if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            let (data, response) = try send(request, into: file, limit: limit, progress: progress)
            if response.statusCode == 401, attempt == 0,
               let challenge = response.value(forHTTPHeaderField: "WWW-Authenticate"), challenge.lowercased().hasPrefix("bearer ") {
                token = try fetchToken(challenge)
                continue
            }
            let body = String(decoding: data.prefix(300), as: UTF8.self)
            if response.statusCode == 401, token != nil {
                throw IsolationError("\(base)\(path): the registry refused the token its token service gave (401): \(body)",
                                     hint: "a registry answers so for a repository that does not exist or needs a login (not supported here)")
            }
            guard response.statusCode == 200 else {
                throw IsolationError("\(base)\(path): the registry answered \(response.statusCode): \(body)",
                                     hint: response.statusCode == 404 ? "check the name and tag" : nil)
            }
            guard Int64(data.count) <= limit, transfers.received <= limit else {
                throw IsolationError("\(base)\(path): more bytes than the descriptor says (\(limit)): refused")
            }
            return (data, response)
        }
        throw IsolationError("\(base)\(path): the registry refused the token it gave")
    }

    func fetchToken(_ challenge: String) throws -> String {
        var parameters: [String: String] = [:]
        // realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"
        var rest = Substring(challenge.dropFirst(7))
        while let equals = rest.firstIndex(of: "=") {
            let key = rest[..<equals].trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: ",")))
            rest = rest[rest.index(after: equals)...]
            guard rest.first == "\"", let close = rest.dropFirst().firstIndex(of: "\"") else { break }
            parameters[key] = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
        }
        guard let realm = parameters["realm"], var components = URLComponents(string: realm) else {
            throw IsolationError("the registry asked for a token without saying where (WWW-Authenticate: \(challenge))")
        }
        components.queryItems = [URLQueryItem(name: "service", value: parameters["service"]),
                                 URLQueryItem(name: "scope", value: parameters["scope"] ?? "repository:\(repository):pull")]
        guard let url = components.url else { throw IsolationError("bad token realm \(realm)") }
        let (data, response) = try send(URLRequest(url: url))
        guard response.statusCode == 200 else { throw IsolationError("the token service \(realm) answered \(response.statusCode)") }
        struct Token: Decodable { var token: String?; var access_token: String? }
        guard let token = try? JSONDecoder().decode(Token.self, from: data), let value = token.token ?? token.access_token else {
            throw IsolationError("the token service \(realm) gave no token")
        }
        return value
    }

    func url(_ text: String) throws -> URL {
        guard let url = URL(string: text) else { throw IsolationError("'\(text)' is not a URL") }
        return url
    }

    /// One request, waited for (URLSession calls its delegate on its own thread). A 200's
    /// body goes to `file` when given; any other body (an error's) is kept in memory.
    func send(_ request: URLRequest, into file: FileDescriptor? = nil, limit: Int64 = 8 << 20,
              progress: @escaping (Int64) -> Void = { _ in }) throws -> (Data, HTTPURLResponse) {
        transfers.begin(file: file, limit: limit, progress: progress)
        session.dataTask(with: request).resume()
        transfers.done.wait()
        if let error = transfers.error {
            throw IsolationError("\(request.url?.absoluteString ?? "?"): \(error)",
                                 hint: "is the registry up? plain HTTP is used only for localhost and 127.0.0.1, or with --insecure")
        }
        guard let response = transfers.response else { throw IsolationError("\(request.url?.absoluteString ?? "?"): no HTTP response") }
        return (transfers.body, response)
    }
}

/// The session's delegate: the response, then the body piece by piece, then the end.
/// Requests are sent one at a time, and the waiting thread reads the fields only after
/// `done` is signalled, so they are never touched by two threads at once.
final class Transfers: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    private(set) var response: HTTPURLResponse?
    private(set) var body = Data()
    private(set) var received: Int64 = 0
    private(set) var error: String?
    private var file: FileDescriptor?
    private var limit: Int64 = 0
    private var progress: (Int64) -> Void = { _ in }

    func begin(file: FileDescriptor?, limit: Int64, progress: @escaping (Int64) -> Void) {
        (self.file, self.limit, self.progress) = (file, limit, progress)
        (response, body, received, error) = (nil, Data(), 0, nil)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        self.response = response as? HTTPURLResponse
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        received += Int64(data.count)
        if received > limit {
            // More than the descriptor says: stop now, the caller refuses it.
            dataTask.cancel()
            return
        }
        if let file, response?.statusCode == 200 {
            do {
                _ = try data.withUnsafeBytes { try file.writeAll($0) }
            } catch {
                self.error = "writing the download: \(error)"
                dataTask.cancel()
                return
            }
            progress(received)
        } else {
            body.append(data)
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        if let error, self.error == nil, received <= limit { self.error = error.localizedDescription }
        done.signal()
    }
}

/// `  sha256:3f9a1c2b7e40 [##########··········] 12.3 MB/45.6 MB`, redrawn in place on a
/// terminal (at most ten times a second, 80 columns wide); nothing on anything else,
/// where the pull's plain "verified" lines say the same.
final class ProgressBar: @unchecked Sendable {
    let label: String
    let total: Int64
    let enabled = isatty(STDERR_FILENO) == 1 && environmentValue("TERM") != "dumb"
    private var last = 0.0
    private var drawn = false

    init(label: String, total: Int64) {
        self.label = label
        self.total = max(total, 1)
    }

    func update(_ received: Int64) {
        guard enabled else { return }
        let now = monotonicNow()
        guard now - last >= 0.1 || received >= total else { return }
        last = now
        draw(received)
    }

    /// The line for `received` bytes: 2 + 19 + 1 + 32 + 1 + up to 19 characters, under 80.
    func line(_ received: Int64) -> String {
        let width = 30
        let filled = Int(min(received, total) * Int64(width) / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: "·", count: width - filled)
        return "  \(label) [\(bar)] \(Self.size(received, as: total))/\(Self.size(total, as: total))"
    }

    /// `bytes` in the unit that suits `scale`: "777 B", "42.1 kB", "11.3 MB".
    static func size(_ bytes: Int64, as scale: Int64) -> String {
        let (unit, name): (Int64, String) = scale >= 1_000_000 ? (1_000_000, "MB") : scale >= 1_000 ? (1_000, "kB") : (1, "B")
        if unit == 1 { return "\(bytes) B" }
        let tenths = (bytes * 10 + unit / 2) / unit
        return "\(tenths / 10).\(tenths % 10) \(name)"
    }

    func draw(_ received: Int64) {
        drawn = true
        printErrorRaw("\r" + line(received) + "\u{1B}[K")
    }

    /// Clears the bar's line, so that the next plain line starts clean.
    func finish() {
        if drawn { printErrorRaw("\r\u{1B}[K") }
    }
}

/// Writes `text` to standard error as it is (no newline).
func printErrorRaw(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
