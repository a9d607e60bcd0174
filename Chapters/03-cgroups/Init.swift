// The container's first process: chapter 02's set-up, then the hog.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

/// Hidden: started by `chapter-03` in new namespaces and already inside the act's
/// cgroup (the parent joined it before releasing us to exec). Everything it forks
/// inherits the cgroup: the limits hold for the whole workload.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "(internal) set up the container, then run COMMAND as its PID 1's child.", shouldDisplay: false)

    @Option var rootfs: String
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        var status = ExitStatus.exited(0)
        reportingErrors("chapter-03") {
            let container = Container(rootfs: FilePath(rootfs), namespaces: containerNamespaces, hostname: "cgroup-demo")
            _ = try container.setUpInside()
            status = try container.runCommand(command, environment: containerEnvironment())
        }
        throw ExitCode(status.shellCode)
    }
}
