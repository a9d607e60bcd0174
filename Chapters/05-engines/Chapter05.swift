// Chapter 05 — adding a runtime (engines choose their runtime: conmon, containerd's
// shim, Docker's --add-runtime, Kubernetes' RuntimeClass).
//
// Chapter 04 made a runtime with runc's command line. Engines never run a container
// themselves: they write a bundle and call a runtime, through a small monitor that stays
// (conmon for podman, the shim for containerd). Here real engines call ours: a local
// image made from the built-in root filesystem, run by podman, by containerd and by a
// private dockerd (`--add-runtime`), with every call the runtime received printed from
// its call log.
//
//   chapter-05             the lesson (root; podman, containerd and docker.io from Debian)
//   chapter-05 cri         only its CRI act: a pod through containerd's CRI, the kubelet's
//                          calls (cri_pod.py, Python with grpcio) and what isorun was asked
//
// Read next: containers.conf(5), conmon(8), containerd-config.toml(5), ctr(8), dockerd(8),
// the runtime-spec's runtime.md, Kubernetes' "Runtime Class" page.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

@main
struct Chapter05: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-05",
        abstract: "Adding a runtime: podman, containerd and Docker run this project's runtime, isorun.",
        subcommands: [WholeLesson.self, CRIAct.self],
        defaultSubcommand: WholeLesson.self)
}

struct WholeLesson: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson", abstract: "The lesson: podman, containerd, Docker and containerd's CRI run isorun (the default).")
    @OptionGroup var setup: LessonSetup
    func run() throws { setup.start { try $0.run() } }
}

struct CRIAct: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cri", abstract: "Only the CRI act: a kubelet's calls for one pod, and the isorun commands each caused.")
    @OptionGroup var setup: LessonSetup
    func run() throws { setup.start { try $0.runCRI() } }
}

struct LessonSetup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A root filesystem instead of the built-in one.", valueName: "DIR"))
    var rootfs: String?

    func start(_ act: (Lesson) throws -> Void) {
        reportingErrors("chapter-05") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "engines create namespaces, mounts and cgroups")])
            // isorun is built beside us (`swift build` builds every product).
            var runtime = Identity.executablePath()
            runtime.removeLastComponent()
            runtime.append("isorun")
            guard FileSystem.exists(runtime) else {
                throw IsolationError("\(runtime) is missing", hint: "build it: swift build --product isorun")
            }
            let root: RootFilesystem
            if let rootfs { root = try RootFilesystem.validate(FilePath(rootfs)) } else {
                root = try RootFilesystem.builtIn(log: { say(style.dim("  (\($0))")) })
            }
            // Ctrl-C reaches the engine's client (same process group) and stays pending
            // here: the lesson stops after that command and still removes what it made.
            blockSignalsForSupervision()
            try act(Lesson(runtime: runtime, rootfs: root.path))
        }
    }
}

let style = Style.standardOutput
