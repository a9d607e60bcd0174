// The jailed process: what chroot(8) does, in three system calls.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

/// Hidden: the child that `chapter-01` starts. A fresh process (we were exec'd), so
/// changing its root changes nothing in the chapter that started it.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "(internal) chroot into ROOTFS and exec COMMAND.", shouldDisplay: false)

    @Option var rootfs: String
    @Flag var narrate = false
    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        reportingErrors("chapter-01") {
            // 1. chroot(2): from now on, "/" in every path this process resolves is ROOTFS.
            //    Needs CAP_SYS_CHROOT. Nothing else changes: same PIDs, hostname, network.
            if narrate { lessonStep("chroot(\"\(rootfs)\")", "this process's root directory becomes the jail") }
            try FileSystem.changeRoot(FilePath(rootfs))

            // 2. chdir(2): chroot does not move the working directory. Without this, "."
            //    would still be a directory outside the jail (see `chapter-01 escape`).
            if narrate { lessonStep("chdir(\"/\")", "chroot left our working directory outside; move it in") }
            try FileSystem.changeDirectory("/")

            // 3. execve(2): the command is looked up in PATH *inside* the jail.
            let program = try Exec.resolve(command.first ?? "/bin/sh")
            let argv = command.isEmpty ? ["sh"] : command
            if narrate { lessonStep("execve(\"\(program)\", \(argv))", "run the program from the jail's own /bin") }
            try Exec.replaceProcess(program, arguments: argv, environment: jailEnvironment())
        }
    }
}
