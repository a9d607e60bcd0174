// How the checker speaks: one line per check with what it observed; on a failure, what
// was expected and a hint. Nothing is printed as passed that was not observed.
import Isolation

final class Report {
    let style = Style.standardOutput
    private(set) var passed = 0
    private(set) var failed = 0
    private(set) var failures: [String] = []
    /// What each failure said (observed, hint), by exercise: where `--hint` finds the
    /// steps a failure names (`step "X"`).
    private(set) var failureTexts: [String: [String]] = [:]
    var exercise = ""

    func header(_ title: String) {
        say()
        say(style.bold(title))
    }

    /// A check: `ok` decides; `observed` always printed.
    @discardableResult
    func check(_ name: String, _ ok: Bool, observed: String, expected: String, hint: String) -> Bool {
        if ok {
            passed += 1
            say("  " + style.green("✓") + " " + name)
            say("      " + style.dim("observed: " + observed))
        } else {
            failed += 1
            failures.append("\(exercise): \(name)")
            failureTexts[exercise, default: []].append(observed + "\n" + hint)
            say("  " + style.red("✗") + " " + name)
            say("      observed: " + observed)
            say("      expected: " + expected)
            say("      " + style.yellow("hint: ") + hint)
        }
        return ok
    }

    func fail(_ name: String, observed: String, expected: String, hint: String) {
        check(name, false, observed: observed, expected: expected, hint: hint)
    }

    /// Checks that could not run because an earlier one failed: said, not counted as passed.
    func skipped(_ what: String) {
        say("  " + style.dim("· not checked: \(what)"))
    }

    func note(_ text: String) {
        say("  " + style.dim(text))
    }
}
