// Chapter 06: the bearer-token dance (distribution's token authentication, as Docker Hub
// and ghcr.io use it), against Debian's docker-registry with `auth: token:` and a token
// service of the test's own (Tests/Registry/token_server.py) on 127.0.0.1: a JWT signed
// RS256 with a key openssl made in the test's folder. A registry that refuses the token,
// and a token service that gives none or refuses, leave the store as it was.
import Foundation
import Glibc
import Isolation
import IsolationImage
import SystemPackage
import Testing

let tokenToolsInstalled = Engines.missing(["docker-registry", "skopeo", "openssl", "python3"]).isEmpty

/// The token service script, beside the test sources.
let tokenServerScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Registry/token_server.py").path

@Suite("Chapter 06 · the bearer-token dance", .serialized, .enabled(if: isRoot, "the image store's layers keep owners: root"),
       .enabled(if: tokenToolsInstalled, "docker-registry, skopeo, openssl and python3 (apt-get install docker-registry skopeo openssl python3)"))
struct Chapter06TokenTests {
    @Test("a registry with token authentication: 401, a token from the realm, the retry succeeds; a token it does not trust, no token, a refusing token service: a clear error and nothing stored")
    func bearerTokenDance() throws {
        let world = try ImageTestFolder("images-token")
        defer { world.remove() }
        let tokens = world.path + "/token", registryFolder = world.path + "/registry"
        for folder in [tokens, registryFolder] { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        // Two key pairs with self-signed certificates: the registry trusts the first only.
        for name in ["", "wrong-"] {
            let made = try run("/usr/bin/env", ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                                                "-subj", "/CN=isolation-\(name)token", "-keyout", "\(tokens)/\(name)key.pem",
                                                "-out", "\(tokens)/\(name)cert.pem"])
            try #require(made.status == 0, "openssl req: \(made)")
        }
        func mode(_ text: String) throws { try (text + "\n").write(toFile: tokens + "/mode", atomically: true, encoding: .utf8) }
        func requests() -> String { (try? String(contentsOfFile: tokens + "/requests", encoding: .utf8)) ?? "" }
        try mode("good")

        let tokenPort = try LocalRegistry.freePort()
        let python = try #require(Command.find("python3")?.string)
        let server = try LocalRegistry.spawnServer(python, [tokenServerScript, String(tokenPort), tokens], log: tokens + "/log")
        defer {
            kill(server, SIGTERM)
            var status: Int32 = 0
            for _ in 0..<100 where waitpid(server, &status, WNOHANG) == 0 { usleep(50_000) }
            if kill(server, 0) == 0 { kill(server, SIGKILL); waitpid(server, &status, 0) }
        }
        for _ in 0..<100 where !LocalRegistry.accepts(tokenPort) { usleep(50_000) }
        try #require(LocalRegistry.accepts(tokenPort), "the token service did not start: \((try? String(contentsOfFile: tokens + "/log", encoding: .utf8)) ?? "")")

        let realm = "http://127.0.0.1:\(tokenPort)/token"
        let registry = try LocalRegistry(in: registryFolder, auth: """
            auth:
              token:
                realm: \(realm)
                service: isolation-registry
                issuer: isolation-token-server
                rootcertbundle: \(tokens)/cert.pem

            """)
        defer { registry.stop() }

        // skopeo pushes through the same dance (asking for pull and push).
        let layout = world.path + "/layout"
        #expect(try world.chapter(["build", "--layout", layout]).status == 0)
        let (ours, _) = try ImageLayout(opening: FilePath(layout)).resolve(tag: "latest")
        let pushed = try run("/usr/bin/env", ["skopeo", "copy", "--dest-tls-verify=false", "oci:\(layout):latest",
                                              "docker://\(registry.address)/isolation/test:latest"])
        try #require(pushed.status == 0, "skopeo copy: \(pushed)")
        #expect(requests().contains("scope=repository%3Aisolation%2Ftest%3Apull%2Cpush"), "skopeo asked the realm for a push token: \(requests())")
        try "".write(toFile: tokens + "/requests", atomically: true, encoding: .utf8)

        // The dance: the first GET is refused with a challenge, the token service is asked
        // with the challenge's service and scope, the GET with the token succeeds.
        let pulled = try world.chapter(["pull", "\(registry.address)/isolation/test:latest"])
        #expect(pulled.status == 0 && pulled.stdout.contains("manifest \(ours.digest.short)"), "\(pulled)")
        #expect(requests() == "/token?service=isolation-registry&scope=repository:isolation/test:pull\n",
                "one token asked for, for the challenge's service and scope: \(requests())")
        let log = (try? String(contentsOfFile: registryFolder + "/log", encoding: .utf8)) ?? ""
        let manifestGets = log.split(separator: "\n").filter { $0.contains("GET /v2/isolation/test/manifests/latest ") && $0.contains("chapter-06-pull") }
        #expect(manifestGets.count == 2 && manifestGets[0].contains(" 401 ") && manifestGets[1].contains(" 200 "),
                "401 without a token, 200 with it: \(manifestGets)")
        #expect(try ImageStore(root: FilePath(world.store)).image(named: "\(registry.address)/isolation/test:latest") != nil)

        // Refusals: each in a fresh store, which must stay empty.
        for (kind, expected) in [("wrong-key", "the registry refused the token its token service gave (401)"),
                                 ("no-token", "the token service \(realm) gave no token"),
                                 ("refuse", "the token service \(realm) answered 403")] {
            try mode(kind)
            let fresh = try ImageTestFolder("images-token-\(kind)")
            defer { fresh.remove() }
            let refused = try fresh.chapter(["pull", "\(registry.address)/isolation/test:latest"])
            #expect(refused.status != 0 && refused.stderr.contains(expected), "\(kind): \(refused)")
            let store = try ImageStore(root: FilePath(fresh.store))
            #expect(try store.list().isEmpty, "\(kind): no image named")
            let blobs = try FileSystem.contentsOfDirectory(FilePath(fresh.store + "/blobs/sha256"))
            #expect(blobs.isEmpty, "\(kind): the store keeps no blob: \(blobs)")
            #expect(try FileSystem.contentsOfDirectory(FilePath(fresh.store)).allSatisfy { !$0.hasPrefix("tmp-") }, "\(kind): no staging file")
        }
        #expect(requests().contains("/token?"), "the refusals went through the token service")
    }
}
