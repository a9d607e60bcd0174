// Chapter 02 — namespaces (placeholder until the chapter lands).
import ArgumentParser

@main
struct Chapter02: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chapter-02", abstract: "Namespaces (not written yet).")
    func run() throws {
        print("chapter-02 is not written yet")
        throw ExitCode(2)
    }
}
