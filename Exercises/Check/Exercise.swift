// The exercises the checker knows, and what every run of one shares.
import Glibc
import Isolation
import SystemPackage

struct Exercise {
    var number: String
    var folder: String
    var title: String
    var run: (inout CheckContext, String) -> Void
    /// The harder tier in `Exercises/NN-*/Stretch/` (program exercise-NN-stretch), checked
    /// by `check NN --stretch`; the list is `Exercise.stretches` (Stretch.swift).
    var stretch = false
    /// The check runs without root too (as the user who runs it): exercise 02's stretch,
    /// a rootless container, is started by an unprivileged user either way.
    var runsUnprivileged = false

    /// The program: exercise-NN, or exercise-NN-stretch.
    var product: String { stretch ? "exercise-\(number)-stretch" : "exercise-\(number)" }
    /// The folder with Steps.swift, under Exercises/.
    var sourceFolder: String { stretch ? "\(folder)/Stretch" : folder }
    /// How the report names it: "exercise 01", "exercise 01 stretch".
    var label: String { stretch ? "exercise \(number) stretch" : "exercise \(number)" }

    static var all: [Exercise] { [
        Exercise(number: "01", folder: "01-chroot-jail", title: "the chroot jail", run: checkChrootJail),
        Exercise(number: "02", folder: "02-namespaces", title: "namespaces", run: checkNamespaces),
        Exercise(number: "03", folder: "03-cgroups", title: "cgroup limits, joined before exec", run: checkCgroups),
        Exercise(number: "04", folder: "04-oci-bundle", title: "an OCI bundle's mounts and pivot_root", run: checkBundle),
        Exercise(number: "05", folder: "05-engines", title: "a runtime's answers to an engine", run: checkEngine),
        Exercise(number: "06", folder: "06-images", title: "an image's whiteouts, and its layers on overlayfs", run: checkImages),
        Exercise(number: "07", folder: "07-networks", title: "a container plugged into a bridge", run: checkNetwork),
        Exercise(number: "08", folder: "08-breaking-out", title: "the layer a config lacks", run: checkBreakingOut),
    ] }

    static func named(_ name: String, stretch: Bool = false) throws -> Exercise {
        let digits = name.hasPrefix("exercise-") ? String(name.dropFirst("exercise-".count)) : name
        let list = stretch ? stretches : all
        guard let number = Int(digits), let exercise = list.first(where: { Int($0.number) == number }) else {
            throw IsolationError("there is no \(stretch ? "stretch tier for exercise" : "exercise") '\(name)'", hint: "give one of: " + list.map(\.number).joined(separator: ", "))
        }
        return exercise
    }

    /// The TODOs still in Steps.swift, read from the source: all of them at once, where a
    /// run can only stop at the first.
    func checkTODOs(package: FilePath, report: Report) {
        let file = package.appending("Exercises/\(sourceFolder)/Steps.swift")
        guard let source = try? FileSystem.readString(file) else {
            report.note("(no \(file) to read)")
            return
        }
        var steps: [String] = []
        for line in source.split(separator: "\n") where line.contains("exerciseTODO(") && !line.trimmingPrefix(while: { $0 == " " }).hasPrefix("//") {
            if let range = line.firstRange(of: "step: \"") {
                steps.append(String(line[range.upperBound...].prefix(while: { $0 != "\"" })))
            }
        }
        report.check("every step is written (no exerciseTODO left in Exercises/\(sourceFolder)/Steps.swift)", steps.isEmpty,
                     observed: steps.isEmpty ? "no exerciseTODO call" : "still TODO: " + steps.map { "\"\($0)\"" }.joined(separator: ", "),
                     expected: "your code in place of each `try exerciseTODO(...)`",
                     hint: "open Exercises/\(sourceFolder)/Steps.swift; each TODO says what must become true, Exercises/\(sourceFolder)/README.md has more, and `check \(number)\(stretch ? " --stretch" : "") --hint` the API")
    }
}

extension Substring {
    func trimmingPrefix(while predicate: (Character) -> Bool) -> Substring { drop(while: predicate) }
}

/// Starts the exercise with a probe that prints `key=value` lines, then "ready", then
/// waits on stdin. Returns nil (and reports why) if "ready" never came: a TODO, an error.
/// `explain` may turn the exercise's error output into a hint that says what went wrong.
func startProbe(_ report: Report, _ number: String, _ program: String, _ arguments: [String],
                environment: [String], timeout: Double = 60, explain: (String) -> String? = { _ in nil }) -> Running? {
    let running: Running
    do {
        running = try Running(program, arguments, environment: environment)
    } catch {
        report.fail("exercise-\(number) starts", observed: "\(error)", expected: "a running exercise", hint: "is it built? swift build --product exercise-\(number)")
        return nil
    }
    if running.waitForLine("ready", timeout: timeout) {
        report.check("exercise-\(number) runs the checker's probe", true,
                     observed: "\(running.commandLine.prefix(110))… → the probe answered", expected: "", hint: "")
        return running
    }
    let status = running.finish(timeout: 5)
    let todos = running.stderr.todoSteps
    if !todos.isEmpty {
        report.fail("exercise-\(number) runs the checker's probe",
                    observed: "it stopped at a TODO (\(status)): " + todos.map { "step \"\($0)\"" }.joined(separator: ", "),
                    expected: "the probe's output, then \"ready\"",
                    hint: "write that step in Exercises/…/Steps.swift; the exercise printed:\n" + indent(running.stderr))
    } else {
        report.fail("exercise-\(number) runs the checker's probe",
                    observed: "no \"ready\" from the probe; the exercise \(status)",
                    expected: "the probe's output, then \"ready\"",
                    hint: (explain(running.stderr).map { $0 + "; the exercise printed:\n" }
                           ?? "run it yourself (sudo \(program) …) and read its error:\n") + indent(running.stderr + running.stdout))
    }
    return nil
}

func indent(_ text: String) -> String {
    text.trimmed.split(separator: "\n", omittingEmptySubsequences: false).suffix(12).map { "        │ " + $0 }.joined(separator: "\n")
}

/// Compares the namespace of `pid` with ours for each kind: the rows every container check prints.
func checkNamespaceIdentity(_ report: Report, pid: pid_t, kinds: [Namespaces], who: String, hint: (Namespaces) -> String) {
    let mine = Namespaces.identity()
    let theirs = Namespaces.identity(of: pid)
    for kind in kinds {
        let name = kind.procName
        let inside = theirs[name].map { "\(name):[\($0)]" } ?? "(unreadable)"
        let host = mine[name].map { "\(name):[\($0)]" } ?? "(unreadable)"
        report.check("\(who) has a new \(name) namespace (\(kind.cloneFlagName))", theirs[name] != nil && theirs[name] != mine[name],
                     observed: "/proc/\(pid)/ns/\(name) → \(inside); the checker's → \(host)",
                     expected: "a different inode than the host's",
                     hint: hint(kind))
    }
}
