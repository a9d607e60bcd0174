// Chapter 04 — a full OCI bundle run (runC, 2015, donated to the Open Container Initiative).
//
// Chapters 01–03 built a container from parts. Here the container is *described*: a
// bundle is a folder with config.json (the runtime-spec) and a root filesystem, and a
// runtime makes it real, with runc's command line, so that engines can drive it.
//
//   chapter-04                           the lesson: a bundle, its config, each step timed
//   chapter-04 spec | create | start | state | kill | delete | run | list | ps | pause | resume
//
// Read next: the runtime-spec (runtime.md, config.md, config-linux.md), runc(8).
import ArgumentParser
import RuntimeCLI

@main
struct Chapter04: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chapter-04",
        abstract: "An OCI bundle run: the lesson without arguments, else runc's command line.",
        subcommands: [Lesson.self] + RuntimeCommands.all,
        defaultSubcommand: Lesson.self)

    static func main() {
        RuntimeCommands.main(Chapter04.self)
    }
}
