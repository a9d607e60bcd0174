// LayerWriter.addOverlayChanges: a container's overlayfs upper folder becomes a layer.
// A real overlay is mounted and changed; the layer written from its upper folder,
// applied onto the lower tree, must give what the merged view showed, entry by entry.
import CIsolation
import Glibc
import Isolation
import IsolationImage
import SystemPackage
import Testing

@Suite("LayerWriter · a container's overlay changes as a layer", .serialized,
       .enabled(if: isRoot, "overlayfs, its trusted.* xattrs and chown need root"))
struct LayerWriterTests {
    @Test("whiteouts and an opaque directory in upperdir become .wh. entries; applied onto the lower tree, the layer gives the merged view")
    func overlayChangesRoundTrip() throws {
        let world = try TemporaryFolder("layer-writer")
        defer {
            for point in mounts(under: world.path).sorted(by: { $0.count > $1.count }) { umount2(point, Int32(MNT_DETACH)) }
            world.remove()
        }
        let root = FilePath(world.path)
        let lower = root.appending("lower"), upper = root.appending("upper"), work = root.appending("work"), merged = root.appending("merged")
        for directory in ["lower/data/dir/sub", "lower/data/remade", "upper", "work", "merged"] { try FileSystem.makeDirectories(root.appending(directory)) }
        for name in ["data/keep", "data/gone", "data/dir/a", "data/dir/sub/b", "data/remade/old", "data/file-then-dir"] {
            try FileSystem.writeFile(lower.appending(name), name + "\n")
        }

        try Mount.mount(source: "overlay", target: merged, type: "overlay", data: "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)")
        func inside(_ name: String) -> String { merged.appending(name).string }
        #expect(unlink(inside("data/gone")) == 0)
        try FileSystem.removeTree(merged.appending("data/dir"))
        try FileSystem.removeTree(merged.appending("data/remade"))
        try FileSystem.makeDirectories(merged.appending("data/remade"))
        try FileSystem.writeFile(merged.appending("data/remade/new"), "new\n")
        #expect(unlink(inside("data/file-then-dir")) == 0)
        try FileSystem.makeDirectories(merged.appending("data/file-then-dir"))
        try FileSystem.writeFile(merged.appending("data/added"), "added\n", mode: 0o640)
        #expect(chown(inside("data/added"), 1000, 1001) == 0)
        #expect(setxattr(inside("data/added"), "user.isolation.test", "kept", 4, 0) == 0, "user xattrs on the upper folder's file system: \(errno)")
        #expect(symlink("keep", inside("data/link")) == 0)
        let seen = try treeEntries(merged.string).filter { $0.key != "/" }
        try Mount.unmount(merged)

        let layout = try ImageLayout.create(at: root.appending("layout"))
        let writer = try LayerWriter(tarPath: root.appending("changes.tar"))
        let written = try writer.addOverlayChanges(from: upper)
        #expect(written.whiteouts.sorted() == ["data/dir", "data/gone"], "\(written)")
        #expect(written.opaqueDirectories.contains("data/remade"), "\(written)")
        let (descriptor, diffID) = try writer.finish(into: layout, gzip: false)
        let tar = layout.blobPath(descriptor.digest)
        #expect(descriptor.digest == diffID, "an uncompressed layer's digest is its diff ID")

        let listing = try run("/usr/bin/env", ["tar", "-tvf", tar.string])
        #expect(listing.status == 0, "\(listing)")
        for name in ["data/.wh.gone", "data/.wh.dir", "data/remade/.wh..wh..opq", "data/remade/new"] {
            #expect(listing.stdout.split(separator: "\n").contains { $0.hasSuffix(" " + name) }, "\(name) in\n\(listing.stdout)")
        }
        #expect(!listing.stdout.split(separator: "\n").contains { $0.hasPrefix("c") }, "no 0:0 device is copied: \(listing.stdout)")
        #expect(listing.stdout.contains("1000/1001"), "the owner is kept, not made root's: \(listing.stdout)")

        // The lower tree, then the layer: what the container saw.
        let target = root.appending("applied")
        let copied = try Command.run("/bin/cp", ["-a", lower.string, target.string])
        #expect(copied.status == .exited(0), "\(copied)")
        var applier = LayerApplier(root: target, mode: .flatten)
        try applier.apply(layer: tar, mediaType: MediaType.layerTar)
        let applied = try treeEntries(target.string).filter { $0.key != "/" }
        let differing = Set(applied.keys).union(seen.keys).sorted().filter { applied[$0] != seen[$0] }
        #expect(differing.isEmpty, "\(differing.map { "\($0): applied \(applied[$0] ?? "absent") · merged \(seen[$0] ?? "absent")" })")
        var value = [UInt8](repeating: 0, count: 16)
        let size = lgetxattr(target.appending("data/added").string, "user.isolation.test", &value, value.count)
        #expect(size == 4 && Array(value[0..<4]) == Array("kept".utf8), "the xattr went with the layer")
        #expect(lgetxattr(target.appending("data/remade").string, "trusted.overlay.opaque", nil, 0) < 0, "overlayfs' own marker is not copied")
    }

    @Test("a directory overlayfs redirected (redirect_dir) is refused, naming it: its content is in a lower layer")
    func redirectRefused() throws {
        let world = try TemporaryFolder("layer-writer-redirect")
        defer { world.remove() }
        let upper = FilePath(world.path).appending("upper")
        try FileSystem.makeDirectories(upper.appending("moved"))
        #expect(setxattr(upper.appending("moved").string, "trusted.overlay.redirect", "/old", 4, 0) == 0)
        let writer = try LayerWriter(tarPath: FilePath(world.path).appending("l.tar"))
        #expect(throws: IsolationError.self) { try writer.addOverlayChanges(from: upper) }
        do { try writer.addOverlayChanges(from: upper) } catch { #expect("\(error)".contains("moved") && "\(error)".contains("redirect"), "\(error)") }
    }
}
