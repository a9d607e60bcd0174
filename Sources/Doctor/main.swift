// doctor: can this machine run the chapters? And: remove what they left behind.
//
//   doctor                   one line per check, ✓ or ✗, and for each ✗ what fixes it;
//                            then what `--clean` would remove, and what still runs
//   doctor --clean           remove the leftovers of runs that have ended: empty cgroups,
//                            mounts and folders no live process uses, stopped containers'
//                            state; list what still runs, with how to stop it
//   doctor --clean --force   the same, after stopping what still runs (listed first)
import ArgumentParser
import Glibc
import Isolation

@main
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what the chapters need from this machine, or clean up after them.",
        discussion: "Without --clean, doctor also lists what --clean would remove. --clean never stops what still runs (a container, a chapter's processes): it lists them with the command that stops them; --force stops them too.")

    @Flag(help: "Remove what ended runs left: empty cgroups, unused mounts and folders, stopped containers' state, the cache.")
    var clean = false

    @Flag(help: "With --clean: also stop the containers and processes that still run in the project's cgroups (listed first).")
    var force = false

    func validate() throws {
        if force && !clean { throw ValidationError("--force goes with --clean: `doctor --clean --force`") }
    }

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
        }
        say()
        showSurvey(Cleanup.survey(), style: style)
        if !failed.isEmpty { throw ExitCode(1) }
    }

    /// What `--clean` would remove, and what it would leave running.
    func showSurvey(_ survey: Cleanup.Survey, style: Style) {
        if survey.leftoverCount == 0 {
            say(style.bold("Left behind:") + " nothing.")
        } else {
            say(style.bold("Left behind") + " (`doctor --clean` removes):")
            for line in survey.leftoverLines { say("  " + line) }
        }
        if getuid() != 0 { say(style.dim("  (as a normal user, other users' processes are not seen: run as root for the whole picture)")) }
        showRunning(survey, style: style)
    }

    func showRunning(_ survey: Cleanup.Survey, style: Style) {
        guard !survey.running.isEmpty || !survey.foldersInUse.isEmpty else { return }
        say(style.bold("Still running") + " (left alone; `doctor --clean --force` stops them):")
        for item in survey.running {
            say("  " + item.what)
            say("    " + style.dim("stop: " + item.stop))
        }
        for (folder, user) in survey.foldersInUse { say("  \(folder): in use by \(user)") }
    }

    func cleanUp() throws {
        reportingErrors("doctor") {
            try Preflight.require([Preflight.root(why: "removing cgroups and mounts needs root")])
        }
        let style = Style.standardOutput
        let survey = Cleanup.survey()
        if force && !(survey.running.isEmpty && survey.foldersInUse.isEmpty) {
            showRunning(survey, style: style)
            say("--force: stopping them.")
        }
        let removed = Cleanup.clean(survey, force: force, report: { say("  " + $0) })
        say(removed == 0 ? "Nothing to remove: no leftovers on this machine." : "Removed \(removed) item(s).")
        if !force { showRunning(survey, style: style) }
    }
}
