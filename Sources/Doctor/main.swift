// doctor: can this machine run the chapters? And: remove what they left behind.
//
//   doctor           one line per check, ✓ or ✗, and for each ✗ what fixes it
//   doctor --clean   remove the project's cgroups, mounts, state and caches
import ArgumentParser
import Glibc
import Isolation

@main
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what the chapters need from this machine, or clean up after them.")

    @Flag(help: "Remove everything the project may have left: cgroups, mounts, state and cache folders.")
    var clean = false

    func run() throws {
        if clean { return try cleanUp() }
        let style = Style.standardOutput
        say(style.bold("Can this machine run the chapters?"))
        let checks = Preflight.all()
        for check in checks { say(check.line(style: style)) }
        let failed = checks.filter { $0.status == .failed }
        let warnings = checks.filter { $0.status == .warning }
        say()
        if failed.isEmpty {
            say(warnings.isEmpty ? "Everything the chapters need is here." : "Ready; the ! lines are optional extras or caveats.")
        } else {
            say("\(failed.count) check(s) failed: fix the ✗ lines above, then run doctor again.")
            throw ExitCode(1)
        }
    }

    func cleanUp() throws {
        reportingErrors("doctor") {
            try Preflight.require([Preflight.root(why: "removing cgroups and mounts needs root")])
        }
        let removed = Cleanup.removeEverything(report: { say("  " + $0) })
        say(removed == 0 ? "Nothing to remove: the project left nothing on this machine." : "Removed \(removed) item(s).")
    }
}
