// Exercise 08 — breaking out. Your step is in Steps.swift; this file is the rest: the
// config with one layer missing, and chapter 08's catalogue run against it.
//
//   sudo .build/debug/exercise-08               the table for the config as given, then yours
//   sudo .build/debug/exercise-08 --output FILE  only write your config (check 08 reads it)
//   swift run check 08                           the catalogue against your config
//
// The solution is chapter 08's ladder: Chapters/08-breaking-out/Ladder.swift.
import ArgumentParser
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

@main
struct Exercise08: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise-08",
        abstract: "Exercise 08: find the layer a config lacks, and add it (your step: Steps.swift).")

    @Option(help: ArgumentHelp("Write your config.json here and stop (no table).", valueName: "FILE"))
    var output: String?

    func run() throws {
        var status = ExitStatus.exited(0)
        runExercise("08") {
            var config = Exercise08.givenConfig()
            if let output {
                try addMissingLayer(&config)
                try FileSystem.writeFile(FilePath(output), config.encodedJSON())
                return
            }
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "the catalogue runs containers")])
            let folder = try FileSystem.makeTemporaryDirectory(purpose: "exercise-08")
            defer { try? FileSystem.removeTree(folder) }
            let chapter = try Exercise08.chapter08()
            say(Style.standardOutput.bold("The config as given:"))
            try FileSystem.writeFile(folder.appending("given.json"), config.encodedJSON())
            status = try Exercise08.runCatalogue(chapter, folder.appending("given.json"))
            try addMissingLayer(&config)
            say(Style.standardOutput.bold("Your config:"))
            try FileSystem.writeFile(folder.appending("yours.json"), config.encodedJSON())
            status = try Exercise08.runCatalogue(chapter, folder.appending("yours.json"))
        }
        if status != .exited(0) { throw ExitCode(status.shellCode) }
    }

    /// `runc spec`'s config (capabilities cut to three, no_new_privs, masked and
    /// read-only paths) in a user namespace: every rung of chapter 08's ladder but one.
    static func givenConfig() -> OCIConfig {
        var config = OCIConfig.defaultSpec(args: ["true"], cgroupNamespace: CgroupMode.detect() == .unified)
        config.linux?.namespaces?.append(OCIConfig.Namespace(type: .user))
        config.linux?.uidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 100_000, size: 65536)]
        config.linux?.gidMappings = [OCIConfig.IDMapping(containerID: 0, hostID: 100_000, size: 65536)]
        return config
    }

    /// chapter-08, built beside this program.
    static func chapter08() throws -> FilePath {
        let path = Identity.executablePath().removingLastComponent().appending("chapter-08")
        guard FileSystem.exists(path) else {
            throw IsolationError("\(path) is missing: the catalogue is chapter 08's", hint: "swift build --product chapter-08")
        }
        return path
    }

    static func runCatalogue(_ chapter: FilePath, _ config: FilePath) throws -> ExitStatus {
        blockSignalsForSupervision()
        let child = try ChildProcess.spawn(chapter, arguments: ["chapter-08", "--config", config.string],
                                           environment: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + passedOn())
        return try child.waitForwardingSignals()
    }

    static func passedOn() -> [String] {
        ["TERM", "NO_COLOR"].compactMap { name in environmentValue(name).map { "\(name)=\($0)" } }
    }
}
