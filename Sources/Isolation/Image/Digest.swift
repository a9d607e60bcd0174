import Isolation
import CLibcrypto
import Glibc
import SystemPackage

/// A content address: `sha256:` and 64 lowercase hex digits (image-spec descriptor.md
/// "Digests"). The same bytes always have the same digest, so a blob is named by what it
/// holds: two images that share a layer share its file, and a blob whose bytes changed on
/// the way is caught before anything uses it.
public struct Digest: Hashable, Codable, Sendable, CustomStringConvertible, Comparable {
    /// The algorithm (`sha256`; `sha512` is parsed but cannot be verified here).
    public let algorithm: String
    /// The hex-encoded hash.
    public let encoded: String

    /// Parses `sha256:…`, refusing anything that could not be a file name under
    /// `blobs/sha256/` (a digest from a manifest is untrusted input).
    public init(_ text: String) throws(IsolationError) {
        let parts = text.split(separator: ":", maxSplits: 1)
        let hint = "a digest is written sha256: and 64 hex digits"
        guard parts.count == 2 else { throw IsolationError("'\(text)' is not a digest", hint: hint) }
        let algorithm = String(parts[0]), encoded = String(parts[1])
        let length = algorithm == "sha256" ? 64 : algorithm == "sha512" ? 128 : 0
        guard length > 0 else { throw IsolationError("'\(text)': the digest algorithm \(algorithm) is not supported", hint: hint) }
        guard encoded.utf8.count == length, encoded.utf8.allSatisfy({ ("0"..."9").contains(Character(UnicodeScalar($0))) || ("a"..."f").contains(Character(UnicodeScalar($0))) }) else {
            throw IsolationError("'\(text)' is not a digest", hint: hint)
        }
        self.algorithm = algorithm
        self.encoded = encoded
    }

    init(sha256 encoded: String) {
        algorithm = "sha256"
        self.encoded = encoded
    }

    public var description: String { "\(algorithm):\(encoded)" }
    /// `sha256:3f9a1c2b7e40`: enough to tell digests apart on screen.
    public var short: String { "\(algorithm):\(encoded.prefix(12))" }

    public static func < (a: Digest, b: Digest) -> Bool { a.description < b.description }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The digest of `bytes`.
    public static func of(_ bytes: some Collection<UInt8>) -> Digest {
        var hasher = SHA256()
        hasher.update(Array(bytes))
        return hasher.finish()
    }

    /// The digest and size of the file at `path`, read in 1 MiB pieces.
    public static func ofFile(_ path: FilePath) throws -> (digest: Digest, size: Int64) {
        let fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        defer { try? fd.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            if count == 0 { break }
            size += Int64(count)
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return (hasher.finish(), size)
    }
}

/// SHA-256 over pieces of data, by OpenSSL's libcrypto (EVP_DigestInit_ex(3)).
public struct SHA256: ~Copyable {
    private let context: OpaquePointer

    public init() {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything given to `update`.
    public consuming func finish() -> Digest {
        var hash = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &hash, &length)
        let hex = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for byte in hash { text.append(hex[Int(byte >> 4)]); text.append(hex[Int(byte & 15)]) }
        return Digest(sha256: String(decoding: text, as: UTF8.self))
    }
}
