// Chapter 06: an image the real tools built. podman builds it from the busybox root
// filesystem with RUN steps that delete, recreate and link, and saves it as an OCI archive
// and a Docker archive; chapter-06 unpacks both and `umoci unpack` unpacks the same image
// (skopeo copies it into an OCI layout for umoci): the trees must agree entry by entry, and
// so must config.json's process. podman keeps everything in the test's own folder.
import Foundation
import Glibc
import Isolation
import IsolationImage
import SystemPackage
import Testing

let imageBuildToolsInstalled = Engines.missing(["podman", "umoci", "skopeo", "tar"]).isEmpty

/// podman with its storage, run state and temporary files in `folder`, told so by
/// containers.conf(5) and containers-storage.conf(5) (it reads no other configuration):
/// the machine's own podman storage is never touched.
///
/// The storage driver is overlay, not vfs: a directory deleted and made again in one RUN
/// step is an opaque directory in overlayfs' upper folder, and podman writes it into the
/// layer as `.wh..wh..opq`; vfs compares two copies and writes one whiteout per old entry.
struct PrivatePodman {
    let folder: String
    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["CONTAINERS_CONF"] = folder + "/containers.conf"
        env["CONTAINERS_STORAGE_CONF"] = folder + "/storage.conf"
        return env
    }

    init(in folder: String) throws {
        self.folder = folder
        for name in ["storage", "run", "tmp"] {
            try FileManager.default.createDirectory(atPath: folder + "/" + name, withIntermediateDirectories: true)
        }
        try """
            [containers]
            netns = "none"

            [engine]
            cgroup_manager = "cgroupfs"
            events_logger = "file"
            events_logfile_path = "\(folder)/events.log"
            tmp_dir = "\(folder)/tmp"

            """.write(toFile: folder + "/containers.conf", atomically: true, encoding: .utf8)
        try """
            [storage]
            driver = "overlay"
            graphroot = "\(folder)/storage"
            runroot = "\(folder)/run"

            """.write(toFile: folder + "/storage.conf", atomically: true, encoding: .utf8)
    }

    func podman(_ arguments: [String], timeout: TimeInterval = 120) throws -> RunResult {
        try run("/usr/bin/env", ["podman"] + arguments, environment: environment, timeout: timeout)
    }

    /// Removes every image, then what podman may still run or have mounted in `folder`.
    func remove() {
        _ = try? podman(["rmi", "--all", "--force"])
        Engines.stopProcessesAndMounts(under: FilePath(folder))
    }
}

@Suite("Chapter 06 · an image built by podman", .serialized, .enabled(if: isRoot, "device nodes, owners and podman's storage need root"),
       .enabled(if: imageBuildToolsInstalled, "podman builds the image, umoci and skopeo are the oracle (apt-get install podman umoci skopeo)"))
struct Chapter06BuiltImageTests {
    /// The Containerfile: the busybox root filesystem, then one RUN step (one layer) per
    /// kind of change a layer can carry.
    static let containerfile = """
        FROM scratch
        COPY rootfs/ /
        # What the next layers change, and a user and groups for USER.
        RUN mkdir -p /data/opaque /data/keep /data/sticky /home/app \\
         && echo a > /data/opaque/old1 && echo b > /data/opaque/old2 && echo c > /data/keep/file \\
         && echo x > /data/gone && echo y > /data/thing \\
         && echo 'app:x:1000:1001:app:/home/app:/bin/sh' >> /etc/passwd \\
         && printf 'app:x:1001:\\nextra:x:2000:root,app\\n' >> /etc/group \\
         && chown 1000:1001 /data/keep/file /home/app && chmod 0640 /data/keep/file
        # Whiteouts (a file of this layer's parent, one of the COPY layer), an opaque
        # directory, a file replaced by a directory.
        RUN rm /data/gone /etc/isolation-rootfs \\
         && rm -rf /data/opaque && mkdir /data/opaque && echo new > /data/opaque/new \\
         && rm /data/thing && mkdir -p /data/thing/inner && echo in > /data/thing/inner/f
        # Hard links, symlinks, setuid, setgid and sticky bits, device nodes, a FIFO.
        RUN echo hello > /data/hard1 && ln /data/hard1 /data/hard2 \\
         && ln -s ../data/keep/file /data/link && ln -s /etc/passwd /data/abs-link \\
         && echo s > /data/suid && chmod 4755 /data/suid && mkdir /data/sgid && chmod 2775 /data/sgid \\
         && chmod 1777 /data/sticky && mknod /data/null c 1 3 && mknod /data/loop b 7 0 && mkfifo /data/fifo
        ENV FOO=bar
        WORKDIR /data
        USER app
        ENTRYPOINT ["/bin/sh", "-c"]
        CMD ["echo hi"]

        """

    @Test("an image podman built (whiteouts, opaque dirs, hard links, symlinks, setuid, devices, a file replaced by a directory), saved as oci-archive and docker-archive: the same tree and process as umoci's; podman's storage is removed")
    func podmanBuiltImageAgreesWithUmoci() throws {
        let world = try ImageTestFolder("images-podman")
        let engine = try PrivatePodman(in: world.path + "/podman")
        defer {
            engine.remove()
            #expect(mounts(under: world.path).isEmpty, "podman left mounts: \(mounts(under: world.path))")
            world.remove()
            #expect(!FileManager.default.fileExists(atPath: world.path))
        }
        let info = try engine.podman(["info", "--format", "{{.Store.GraphRoot}} {{.Store.GraphDriverName}}"])
        #expect(info.stdout == "\(engine.folder)/storage overlay\n", "podman uses the test's own storage: \(info)")

        // The build context: the Containerfile and a copy of the busybox root filesystem.
        let context = world.path + "/context"
        try FileManager.default.createDirectory(atPath: context, withIntermediateDirectories: true)
        let copied = try run("/bin/cp", ["-a", try builtInRootfs(), context + "/rootfs"])
        try #require(copied.status == 0, "cp: \(copied)")
        try Self.containerfile.write(toFile: context + "/Containerfile", atomically: true, encoding: .utf8)
        // --isolation chroot: the RUN steps run chrooted in namespaces of their own, as root
        // with its capabilities (mknod(2) included); no OCI runtime or cgroup to set up.
        let name = "localhost/isolation-built:latest"
        let built = try engine.podman(["build", "--isolation", "chroot", "--tag", name, "--file", context + "/Containerfile", context], timeout: 600)
        try #require(built.status == 0, "podman build: \(built)")

        let ociArchive = world.path + "/oci.tar", dockerArchive = world.path + "/docker.tar"
        for format in [("oci-archive", ociArchive), ("docker-archive", dockerArchive)] {
            let saved = try engine.podman(["save", "--format", format.0, "--output", format.1, name], timeout: 300)
            try #require(saved.status == 0, "podman save --format \(format.0): \(saved)")
        }
        let layout = world.path + "/layout", v2 = world.path + "/v2"
        for copy in [["skopeo", "copy", "oci-archive:\(ociArchive):\(name)", "oci:\(layout):latest"],
                     ["skopeo", "copy", "--format", "v2s2", "oci-archive:\(ociArchive):\(name)", "oci:\(v2):latest"]] {
            let result = try run("/usr/bin/env", copy, timeout: 300)
            try #require(result.status == 0, "\(copy.joined(separator: " ")): \(result)")
        }

        // The layers podman wrote carry what the test is about (GNU tar lists them).
        let image = try ImageLayout(opening: FilePath(layout))
        let (_, manifest) = try image.resolve(tag: "latest")
        #expect(manifest.layers.count == 4, "COPY and three RUN steps: \(manifest.layers.count) layers")
        var listing = ""
        for layer in manifest.layers {
            let listed = try run("/bin/tar", ["-tvf", image.blobPath(layer.digest).string])
            #expect(listed.status == 0, "tar -tvf: \(listed)")
            listing += listed.stdout
        }
        let lines = listing.split(separator: "\n")
        func layerHas(_ type: Character, _ path: String) -> Bool {
            lines.contains { $0.first == type && ($0.hasSuffix(" " + path) || $0.contains(" " + path + " ")) }
        }
        for (type, path) in [("-", "data/.wh.gone"), ("-", "etc/.wh.isolation-rootfs"), ("-", "data/opaque/.wh..wh..opq"),
                             ("h", "data/hard2"), ("l", "data/link"), ("c", "data/null"), ("b", "data/loop"), ("p", "data/fifo"),
                             ("d", "data/thing/"), ("-", "data/thing")] as [(Character, String)] {
            #expect(layerHas(type, path), "a '\(type)' entry \(path) in podman's layers:\n\(listing.split(separator: "\n").filter { !$0.contains(" bin/") && !$0.contains(" usr/") && !$0.contains(" sbin/") }.joined(separator: "\n"))")
        }
        #expect(lines.contains { $0.hasPrefix("-rwsr-xr-x") && $0.hasSuffix(" data/suid") }, "the setuid bit is in the layer")

        // umoci's tree: what the layers say (the oracle is checked too).
        let umoci = try run("/usr/bin/env", ["umoci", "unpack", "--image", layout + ":latest", world.path + "/umoci"], timeout: 300)
        try #require(umoci.status == 0, "umoci unpack: \(umoci)")
        let theirs = world.path + "/umoci/rootfs"
        let entries = try treeEntries(theirs)
        for gone in ["/data/gone", "/etc/isolation-rootfs", "/data/opaque/old1", "/data/opaque/old2"] {
            #expect(entries[gone] == nil, "\(gone) was deleted")
        }
        #expect(entries["/data/opaque/new"]?.hasPrefix("file ") == true && entries["/data/thing"]?.hasPrefix("dir ") == true)
        #expect(entries["/data/hard1"]?.hasSuffix(" links 2") == true && entries["/data/null"]?.hasPrefix("char mode 644") == true)
        #expect(entries["/data/suid"]?.hasPrefix("file mode 4755 ") == true && entries["/data/keep/file"]?.contains("owner 1000:1001") == true)

        // Ours, from both archives podman wrote and both layouts skopeo wrote.
        for (label, reference) in [("oci-archive", "oci-archive:\(ociArchive):\(name)"), ("oci-archive-untagged", "oci-archive:\(ociArchive)"),
                                   ("docker-archive", "docker-archive:\(dockerArchive)"), ("oci", "oci:\(layout):latest"), ("v2s2", "oci:\(v2):latest")] {
            let bundle = world.path + "/ours-" + label
            let result = try world.chapter(["unpack", reference, bundle], timeout: 300)
            #expect(result.status == 0, "\(reference): \(result)")
            guard result.status == 0 else { continue }
            let differences = try treeDifferences(bundle + "/rootfs", theirs)
            #expect(differences == [], "\(reference): \(differences.joined(separator: "\n"))")
            #expect(try processSummary(bundle) == processSummary(world.path + "/umoci"), "\(reference)")
        }
        let summary = try processSummary(world.path + "/ours-docker-archive")
        for part in [#"args ["/bin/sh", "-c", "echo hi"]"#, #""FOO=bar""#, "cwd /data", "uid 1000 gid 1001 additionalGids [2000]"] {
            #expect(summary.contains(part), "'\(part)' in \(summary)")
        }

        // And chapter 04's runtime runs it, from the Docker archive, on overlayfs.
        let ran = try world.chapter(["run", "docker-archive:\(dockerArchive)", "--", "id -u; pwd; echo $FOO; ls /data/opaque /data/thing; cat /data/hard2"], timeout: 300)
        #expect(ran.status == 0 && ran.stdout == "1000\n/data\nbar\n/data/opaque:\nnew\n\n/data/thing:\ninner\nhello\n", "\(ran)")
        #expect(mounts(under: world.store).isEmpty, "the container's overlay was unmounted")

        let removed = try engine.podman(["rmi", "--all", "--force"])
        #expect(removed.status == 0, "podman rmi: \(removed)")
        let left = try engine.podman(["images", "--all", "--quiet"])
        #expect(left.status == 0 && left.stdout.isEmpty, "podman's storage keeps no image: \(left)")
    }
}
