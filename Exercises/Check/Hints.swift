// Hints beyond the TODOs, for a learner who is stuck: `check NN --hint` prints, after a
// failed check, level 1 (the API: which calls, which files) for each step the failures
// name; `--hint 2` adds level 2 (the shape of the answer). The TODOs in Steps.swift say
// only what must become true and where to read. Each exercise declares its hints next
// to its check (CheckNN.swift); a new exercise adds one line to `Exercise.hintTable`.
import Isolation

/// One step's hints: `levels[0]` names the API, `levels[1]` gives the shape of the answer.
struct StepHint {
    var step: String
    var levels: [String]

    init(step: String, api: String, shape: String) {
        self.step = step
        levels = [api, shape]
    }

    static let levelNames = ["the API", "the shape of the answer"]
}

extension Exercise {
    /// Every exercise's hints, by `hintKey` ("NN", or "NN-stretch" for its stretch tier).
    static let hintTable: [String: [StepHint]] = [
        "01": chrootJailHints, "01-stretch": chrootJailStretchHints,
        "02": namespacesHints, "02-stretch": namespacesStretchHints,
        "03": cgroupsHints, "03-stretch": cgroupsStretchHints,
        "04": bundleHints, "04-stretch": bundleStretchHints,
        "05": engineHints, "05-stretch": engineStretchHints,
        "06": imageHints, "06-stretch": imageStretchHints,
        "07": networkHints, "07-stretch": networkStretchHints,
        "08": breakingOutHints, "08-stretch": seccompStretchHints,
    ]

    var hintKey: String { stretch ? "\(number)-stretch" : number }
    var hints: [StepHint] { Exercise.hintTable[hintKey] ?? [] }

    /// The steps a failed run names, in the exercise's order: the TODOs still in the
    /// source, and every `step "X"` in what the failed checks observed and hinted.
    func stepsNamed(in failureTexts: [String]) -> [String] {
        var named = Set<String>()
        for text in failureTexts {
            for marker in ["step \"", "still TODO: "] {
                var rest = Substring(text)
                while let range = rest.firstRange(of: marker) {
                    rest = rest[range.upperBound...]
                    if marker == "step \"" {
                        named.insert(String(rest.prefix(while: { $0 != "\"" })))
                    } else {
                        // "still TODO: "a", "b"": every quoted name up to the line's end.
                        let line = rest.prefix(while: { $0 != "\n" })
                        for (index, part) in line.split(separator: "\"", omittingEmptySubsequences: false).enumerated() where index % 2 == 1 {
                            named.insert(String(part))
                        }
                    }
                }
            }
        }
        return hints.map(\.step).filter { named.contains($0) }
    }

    /// Prints the hints up to `level` for the steps the failures name (every step when
    /// they name none), level 1 before level 2 for each step, steps in the exercise's order.
    func printHints(level: Int, failureTexts: [String]) {
        let style = Style.standardOutput
        guard !hints.isEmpty else {
            say("  " + style.dim("(no hints are written for \(label) yet: its README.md has them)"))
            return
        }
        let level = min(max(level, 1), StepHint.levelNames.count)
        var steps = stepsNamed(in: failureTexts)
        let all = steps.isEmpty
        if all { steps = hints.map(\.step) }
        say()
        say(style.bold("Hints · \(label)") + style.dim(" (level \(level) of \(StepHint.levelNames.count)"
            + (all ? "; every step: no failure names one" : "") + ")"))
        for hint in hints where steps.contains(hint.step) {
            say("  " + style.yellow("step \"\(hint.step)\""))
            for index in 0..<level {
                sayWrapped("\(index + 1) · \(StepHint.levelNames[index]): \(hint.levels[index])", indent: "    ", hanging: "        ")
            }
        }
        if level < StepHint.levelNames.count {
            sayWrapped("Still stuck? check \(number)\(stretch ? " --stretch" : "") --hint \(level + 1) gives \(StepHint.levelNames[level]).",
                       indent: "  ", hanging: "  ", style: style.dim)
        } else {
            sayWrapped("Beyond this is the solution: Exercises/\(sourceFolder)/Solution/ (read it after trying).",
                       indent: "  ", hanging: "  ", style: style.dim)
        }
    }
}
