// isorun: chapter 04's OCI runtime under a short name, for engines to call
// (`podman --runtime …/isorun`, `ctr run --runc-binary …/isorun`). The same code as
// `chapter-04 <command>`, without the lesson.
import ArgumentParser
import RuntimeCLI

struct Isorun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "isorun",
        abstract: "An OCI runtime with runc's command line, from the Isolation workshop (chapter 04).",
        subcommands: RuntimeCommands.all)
}

RuntimeCommands.main(Isorun.self)
