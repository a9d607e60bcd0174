// Experiments never change the shared root filesystem: each chapter run writes to a
// layer of its own over the cache, removed at exit (also after an error or Ctrl-C).
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("the root filesystem cache: every run writes to its own layer", .serialized,
       .enabled(if: isRoot, "the chapters' jails and containers need root"))
struct RootfsLayerTests {
    /// The cache as `find` sees it: every path, its type, size, mode and change time.
    func snapshot(_ cache: String) throws -> String {
        let result = try run("/usr/bin/find", [cache, "-printf", "%P %y %s %m %C@\\n"])
        #expect(result.status == 0, "\(result)")
        return result.stdout.split(separator: "\n").sorted().joined(separator: "\n")
    }

    func layers() -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("isolation-layer-") })
    }

    @Test("a file written in / and /tmp of chapters 01–04's jails and containers stays in the run; the cache and the next run do not see it")
    func writesStayInTheRun() throws {
        let cache = try builtInRootfs()
        let before = try snapshot(cache)
        let layersBefore = layers()
        let marker = "written-\(getpid())"
        let write = "echo \(marker) > /tmp/\(marker) && mkdir /\(marker) && echo count=$(ls /tmp / | grep -c \(marker))"
        for chapter in ["chapter-01", "chapter-02", "chapter-03"] {
            let result = try run(product(chapter), ["--", "sh", "-c", write], timeout: 120)
            #expect(result.status == 0 && result.stdout.contains("count=2"), "\(chapter): the write failed inside: \(result)")
        }
        // Chapter 04's container has a read-only root (readonly: true): its /tmp is the
        // layer's, written by the runtime's own mounts; a write in / is refused.
        let readonly = try run(product("chapter-04"), ["--", "sh", "-c", "touch /\(marker)"], timeout: 120)
        #expect(readonly.status != 0 && readonly.stderr.contains("Read-only file system"), "\(readonly)")
        // The next run sees none of it.
        let next = try run(product("chapter-01"), ["--", "sh", "-c", "ls / /tmp"])
        #expect(next.status == 0 && !next.stdout.contains(marker), "\(next)")
        // The escape, the lessons of 01 and 04 (they mount /proc in the root filesystem).
        _ = try run(product("chapter-01"), ["escape"])
        let lesson01 = try run(product("chapter-01"), [])
        #expect(lesson01.status == 0, "\(lesson01)")
        let lesson04 = try run(product("chapter-04"), [], timeout: 120)
        #expect(lesson04.status == 0, "\(lesson04)")
        #expect(try snapshot(cache) == before, "the cache changed")
        #expect(!FileManager.default.fileExists(atPath: cache + "/tmp/" + marker) && !FileManager.default.fileExists(atPath: cache + "/" + marker))
        #expect(layers().subtracting(layersBefore).isEmpty, "layers left behind: \(layers().subtracting(layersBefore))")
        #expect(!((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").contains("isolation-layer-"), "a layer is still mounted")
    }

    @Test("the layer goes also when the command fails or the run is interrupted (SIGINT, SIGTERM)")
    func layerGoesOnErrorAndInterrupt() throws {
        _ = try builtInRootfs()
        let layersBefore = layers()
        let missing = try run(product("chapter-01"), ["--", "no-such-program"])
        #expect(missing.status == 127, "\(missing)")
        for signal in [SIGINT, SIGTERM] {
            let process = try TestProcess(product("chapter-02"), ["--", "sleep", "30"])
            // Wait for the layer to be mounted and the sleep to run.
            var started = false
            for _ in 0..<300 where !started {
                usleep(20_000)
                started = !layers().subtracting(layersBefore).isEmpty
                    && ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").contains("isolation-layer-")
            }
            #expect(started, "no layer was made")
            usleep(300_000)
            kill(process.pid, signal)
            process.wait(timeout: 60)
            #expect(layers().subtracting(layersBefore).isEmpty, "signal \(signal): layers left behind: \(layers().subtracting(layersBefore))")
        }
    }

    @Test("where overlayfs cannot be mounted the layer is a copy, and says why")
    func copyWhenNoOverlay() throws {
        let folder = try TemporaryFolder("layer-copy")
        defer { folder.remove() }
        // A lower directory whose path overlayfs cannot take (a ',' in it).
        let lower = folder.path + "/with,comma"
        try FileManager.default.createDirectory(atPath: lower + "/bin", withIntermediateDirectories: true)
        try "#!/bin/sh\n".write(toFile: lower + "/bin/sh", atomically: true, encoding: .utf8)
        chmod(lower + "/bin/sh", 0o755)
        let root = try RootFilesystem.validate(FilePath(lower))
        let layer = try WritableLayer.over(root)
        #expect(!layer.isOverlay && layer.how.contains("a copy") && layer.how.contains("','"), "\(layer.how)")
        try "new".write(toFile: layer.root.path.string + "/written", atomically: true, encoding: .utf8)
        #expect(FileManager.default.fileExists(atPath: layer.root.path.string + "/bin/sh"))
        #expect(!FileManager.default.fileExists(atPath: lower + "/written"))
        layer.remove()
        #expect(!FileManager.default.fileExists(atPath: layer.folder.string))
        // A chapter run over such a cache: the copy is said on standard error, standard
        // output is the command's alone, and the cache is unchanged.
        let cache = folder.path + "/cache,with-comma"
        let environment = ["ISOLATION_CACHE_DIR": cache, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1"]
        _ = try run(product("chapter-01"), ["--", "true"], environment: environment, timeout: 300)
        let echo = try run(product("chapter-04"), ["--", "sh", "-c", "echo hi; mkdir /tmp/x"], environment: environment, timeout: 120)
        #expect(echo.stdout == "hi\n" && echo.stderr.contains("a copy in") && echo.stderr.contains("','"), "\(echo)")
        let written = try run(product("chapter-01"), ["--", "sh", "-c", "echo hi > /tmp/written"], environment: environment)
        #expect(written.status == 0 && written.stdout.isEmpty, "\(written)")
        let built = try FileManager.default.contentsOfDirectory(atPath: cache).first { $0.hasPrefix("rootfs-") }
        #expect(built != nil && !FileManager.default.fileExists(atPath: cache + "/" + built! + "/tmp/written"))
        #expect(!echo.stderr.split(separator: "\n").contains { $0.count > 80 }, "\(echo.stderr)")
    }
}

@Suite("--rootfs with a minimal root", .enabled(if: isRoot && RootFilesystem.busyboxPath() != nil, "the chapters need root, and the minimal root a static busybox (apt-get install busybox-static)"))
struct MinimalRootTests {
    @Test("a root with only sh and ls: each lesson names the programs it needs and what is missing, before it starts; -- COMMAND still runs")
    func namesWhatIsMissing() throws {
        let folder = try TemporaryFolder("minimal-root")
        defer { folder.remove() }
        let root = folder.path + "/root"
        for dir in ["bin", "proc", "tmp", "dev", "sys"] {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: try #require(RootFilesystem.busyboxPath()).string, toPath: root + "/bin/busybox")
        for name in ["sh", "ls"] { try FileManager.default.createSymbolicLink(atPath: root + "/bin/" + name, withDestinationPath: "busybox") }
        for (chapter, missing) in [("chapter-01", "wc"), ("chapter-02", "hostname"), ("chapter-03", "sleep"), ("chapter-04", "sleep")] {
            let result = try run(product(chapter), ["--rootfs", root], timeout: 60)
            #expect(result.status == 1, "\(chapter): \(result)")
            #expect(result.stderr.contains("the root filesystem needs: sh") && result.stderr.contains("\(root) has no") && result.stderr.contains(missing),
                    "\(chapter): \(result.stderr)")
            #expect(!result.stdout.contains("not found") && !result.stderr.contains("not found"), "\(chapter): \(result)")
        }
        let command = try run(product("chapter-01"), ["--rootfs", root, "--", "ls", "/"])
        #expect(command.status == 0 && command.stdout.contains("bin"), "\(command)")
    }
}
