// Chapter 06 — images (Docker's layered images, 2013; the OCI image-spec, 2017).
//
// Chapter 04 ran a bundle whose root filesystem was a folder we made. Where do root
// filesystems come from? From images: a manifest names a config and a stack of layers
// (tars), each blob named by its SHA-256. Layers are unpacked once, stacked with
// overlayfs, and every container gets only a thin writable layer of its own.
//
//   chapter-06                       the lesson: build, inspect, unpack, mount, run
//   chapter-06 build | pull REF | images | inspect IMAGE | unpack IMAGE DIR | run IMAGE [-- CMD…] | rmi IMAGE | prune
//
// IMAGE: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE, docker://HOST/NAME:TAG, or a
// name in the store.
// Read next: image-spec (image-layout.md, manifest.md, layer.md, conversion.md), overlayfs.rst.
import ArgumentParser
import Glibc
import Isolation
import IsolationImage
import RuntimeCLI
import SystemPackage

@main
struct Chapter06: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-06",
        abstract: "OCI images: the lesson without arguments, else build, pull, images, inspect, unpack, run, rmi, prune.",
        subcommands: [Lesson.self, Build.self, Pull.self, Images.self, Inspect.self, Unpack.self, Run.self, Remove.self, Prune.self, RemoveContainer.self],
        defaultSubcommand: Lesson.self)

    /// The container's init is this program again (`init …`, cloned by chapter 04's
    /// runtime): it runs before ArgumentParser reads anything.
    static func main() {
        ContainerInitCommand.runIfRequested()
        main(nil)
    }
}

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the local image (the built-in busybox root filesystem, two layers) as an OCI layout, and add it to the store.")

    @Option(help: ArgumentHelp("Also write the OCI layout here (skopeo and umoci can read it as oci:DIR:latest).", valueName: "DIR"))
    var layout: String?

    func run() throws {
        reportingErrors("chapter-06") {
            let rootfs = try RootFilesystem.builtIn(log: { say("  (\($0))") })
            let store = try ImageStore()
            let folder = try layout.map { FilePath($0) } ?? FileSystem.makeTemporaryDirectory(purpose: "image")
            defer { if layout == nil { try? FileSystem.removeTree(folder) } }
            let built = try ImageBuilder.build(at: folder, from: rootfs)
            let image = try store.importImage(from: built.layout, tag: ImageBuilder.tag, as: ImageBuilder.defaultName)
            say("built \(image.name)  manifest \(image.descriptor.digest.short)  \(image.manifest.layers.count) layers")
            if let layout { say("the OCI layout: oci:\(layout):\(ImageBuilder.tag)") }
        }
    }
}

struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the images in the store.")

    func run() throws {
        reportingErrors("chapter-06") {
            let store = try ImageStore()
            say(pad("ID", 14) + pad("LAYERS", 8) + pad("SIZE", 10) + "NAME")
            for (name, _) in try store.list() {
                guard let image = try store.image(named: name) else { continue }
                let size = image.manifest.layers.reduce(Int64(0)) { $0 + $1.size }
                say(pad(image.id, 14) + pad("\(image.manifest.layers.count)", 8) + pad(byteCount(size), 10) + name)
            }
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an image's manifest and config.")
    @Argument(help: "The image (oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, a registry reference, or a name in the store).") var image: String
    @Flag(help: "Plain HTTP to a registry other than localhost or 127.0.0.1.") var insecure = false

    func run() throws {
        reportingErrors("chapter-06") {
            let store = try ImageStore()
            let found = try obtain(image, store: store, insecure: insecure)
            say("name      \(found.name)")
            say("manifest  \(found.descriptor.digest)  \(found.descriptor.mediaType)")
            say("config    \(found.manifest.config.digest)  \(found.config.os)/\(found.config.architecture)")
            for (layer, diffID) in zip(found.manifest.layers, found.config.rootfs.diffIDs) {
                say("layer     \(layer.digest.short)  \(pad(byteCount(layer.size), 9)) \(layer.mediaType)  diff \(diffID.short)")
            }
            let execution = found.config.config
            say("entrypoint \(execution?.entrypoint ?? [])  cmd \(execution?.cmd ?? [])")
            say("env       \(execution?.env ?? [])")
            say("user      '\(execution?.user ?? "")'  workdir '\(execution?.workingDir ?? "")'")
        }
    }
}

struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unpack an image into a runtime bundle, as `umoci unpack` does: DIR/rootfs and DIR/config.json.")
    @Argument(help: "The image.") var image: String
    @Flag(help: "Plain HTTP to a registry other than localhost or 127.0.0.1.") var insecure = false
    @Argument(help: "The bundle folder to make (must not exist, or be empty).") var directory: String

    func run() throws {
        reportingErrors("chapter-06") {
            let store = try ImageStore()
            let found = try obtain(image, store: store, insecure: insecure)
            let bundle = FilePath(directory)
            if FileSystem.exists(bundle) {
                guard FileSystem.isDirectory(bundle), try FileSystem.contentsOfDirectory(bundle).isEmpty else {
                    throw IsolationError("\(bundle) exists and is not an empty folder", hint: "give a new folder")
                }
            }
            let made = !FileSystem.exists(bundle)
            try FileSystem.makeDirectories(bundle)
            do {
                let rootfs = bundle.appending("rootfs")
                try store.flatten(found, into: rootfs) { layer, summary in
                    say("layer \(layer.digest.short): \(summary.entries) entries, \(summary.whiteouts.count) whiteouts, \(summary.opaqueDirectories.count) opaque directories")
                }
                var config = try ImageConversion.runtimeConfig(found.config, rootfs: rootfs, cgroupNamespace: CgroupMode.detect() == .unified)
                config.root = OCIConfig.Root(path: "rootfs", readonly: false)
                try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
                say("unpacked \(found.name) into \(bundle) (rootfs/ and config.json)")
            } catch {
                if made { try? FileSystem.removeTree(bundle) } else { try? FileSystem.removeTree(bundle.appending("rootfs")) }
                throw error
            }
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an image with chapter 04's runtime, on an overlay of its layers; exits with the process's status.")
    @Argument(help: "The image.") var image: String
    @Flag(help: "Plain HTTP to a registry other than localhost or 127.0.0.1.") var insecure = false
    @Argument(parsing: .postTerminator, help: "A command instead of the image's Cmd.") var command: [String] = []
    @Flag(help: "Keep the container's root (its upper folder) after the run; `chapter-06 rm ID` removes it.") var keep = false

    func run() throws {
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-06") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "overlayfs, namespaces and cgroups need root")])
            let store = try ImageStore()
            let found = try obtain(image, store: store, insecure: insecure)
            let id = "\(projectPrefix)-06-\(getpid())"
            let root = try ContainerRoot.make(id: id, image: found, store: store, log: { line in
                if !line.contains("nothing to unpack") { printError("  (\(line))") }
            })
            defer { if !keep { try? ContainerRoot.remove(id: id, store: store) } }
            status = try runContainer(id: id, image: found, root: root, command: command)
            if keep { printError("  (kept \(root.folder); remove it with `chapter-06 rm \(id)`)") }
        }
        throw ExitCode(status.shellCode)
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove an image's name from the store (then `prune` frees its blobs and layers).")
    @Argument(help: "The image's name in the store (`images` lists them).") var image: String

    func run() throws {
        reportingErrors("chapter-06") {
            let store = try ImageStore()
            try store.remove(name: image)
            say("removed \(image); `chapter-06 prune` frees what no image uses")
        }
    }
}

struct RemoveContainer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a container root kept by `run --keep`: unmount it, delete its upper folder.")
    @Argument(help: "The container's ID (the folder name under the store's containers/).") var id: String

    func run() throws {
        reportingErrors("chapter-06") {
            try Preflight.require([Preflight.root(why: "unmounting the overlay needs root")])
            try ContainerRoot.remove(id: id, store: try ImageStore())
            say("removed \(id)")
        }
    }
}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove every blob and unpacked layer that no image in the store uses.")

    func run() throws {
        reportingErrors("chapter-06") {
            let store = try ImageStore()
            let removed = try store.prune(report: { say("  " + $0) })
            say(removed == 0 ? "nothing to prune" : "pruned \(removed) item(s)")
        }
    }
}

/// The image `text` names; a registry reference is pulled first by `chapter-06 pull`, in
/// a process of its own (this one forks; the pull's URLSession runs threads).
func obtain(_ text: String, store: ImageStore, insecure: Bool = false) throws -> ImageStore.Image {
    let reference = try ImageReference.parse(text)
    if case .registry = reference, try store.image(named: reference.description) == nil {
        // Its report goes to stderr: stdout is the container's.
        var options = SpawnOptions()
        options.standardOutput = .standardError
        let child = try ChildProcess.spawn(pullProgram(), arguments: ["chapter-06-pull", reference.description] + (insecure ? ["--insecure"] : []),
                                           environment: currentEnvironment(), options: options)
        let status = try child.wait()
        guard status == .exited(0) else { throw IsolationError("pulling \(reference) failed (chapter-06 pull \(status))") }
    }
    return try store.obtain(reference)
}

/// chapter-06-pull, built beside this program.
func pullProgram() throws -> FilePath {
    var path = try FileSystem.realPath("/proc/self/exe")
    path.removeLastComponent()
    let program = path.appending("chapter-06-pull")
    guard FileSystem.exists(program) else {
        throw IsolationError("\(program) is missing", hint: "build it: swift build --product chapter-06-pull")
    }
    return program
}

/// `chapter-06 pull`: the pull program, in place of this one (execve(2), no fork).
struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pull an image from a registry into the store (runs chapter-06-pull).")
    @Argument(help: "[docker://][HOST[:PORT]/]NAME[:TAG|@sha256:…]") var reference: String
    @Flag(help: "Plain HTTP to a registry other than localhost or 127.0.0.1.") var insecure = false

    func run() throws {
        reportingErrors("chapter-06") {
            let program = try pullProgram()
            let arguments = ["chapter-06-pull", reference] + (insecure ? ["--insecure"] : [])
            let argv = arguments.map { strdup($0) } + [nil]
            execv(program.string, argv)
            throw IsolationError("cannot run \(program): \(Errno(rawValue: errno))")
        }
    }
}

/// This process's environment, for a child that should see the same cache folder.
func currentEnvironment() -> [String] {
    var result: [String] = []
    var pointer = environ
    while let entry = pointer.pointee {
        result.append(String(cString: entry))
        pointer += 1
    }
    return result
}

/// Converts the image's config for `root`, writes a bundle, and runs it with chapter 04's
/// runtime: create, start, wait, delete.
func runContainer(id: String, image: ImageStore.Image, root: ContainerRoot, command: [String],
                  narrate: @escaping (String, String) -> Void = { _, _ in }) throws -> ExitStatus {
    let config = try ImageConversion.runtimeConfig(image.config, rootfs: root.rootfs, command: command,
                                                   cgroupNamespace: CgroupMode.detect() == .unified)
    let bundle = try FileSystem.makeTemporaryDirectory(purpose: "bundle")
    let state = try FileSystem.makeTemporaryDirectory(purpose: "state")
    defer {
        try? FileSystem.removeTree(bundle)
        try? FileSystem.removeTree(state)
    }
    try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
    var runtime = Runtime(store: ContainerStore(root: state), narrate: narrate)
    blockSignalsForSupervision()
    let child = try runtime.create(id: id, options: Runtime.CreateOptions(bundle: bundle))
    defer { try? runtime.delete(id: id, force: true) }
    try runtime.start(id: id)
    return try child.waitForwardingSignals()
}

func byteCount(_ size: Int64) -> String {
    if size < 10_000 { return "\(size) B" }
    if size < 10_000_000 { return "\(size / 1000) kB" }
    return "\(size / 1_000_000) MB"
}
