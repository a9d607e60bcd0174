// The lesson: every escape against every rung, as a table, then what stopped each.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

struct Lesson: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson",
        abstract: "Run the catalogue of escapes against every rung of the ladder, and print the table.",
        discussion: "Exit status 0 when the host was left as it was, 1 otherwise or on an error.")

    @Option(name: .customLong("rung"), help: ArgumentHelp("Only this rung, 1 to 6 (repeatable).", valueName: "N"))
    var rungs: [Int] = []

    @Option(name: .customLong("escape"), help: ArgumentHelp("Only this escape (repeatable): \(Escape.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "NAME"))
    var escapes: [String] = []

    func validate() throws {
        for rung in rungs where Rung(rawValue: rung) == nil { throw ValidationError("--rung \(rung): the rungs are 1 to 6") }
        for name in escapes where Escape(rawValue: name) == nil {
            throw ValidationError("--escape \(name): not in the catalogue (\(Escape.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    func run() throws {
        var failed = false
        reportingErrors("chapter-08") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "the escapes need a root that may chroot, mknod and mount, as a container's root may")])
            let ladder = rungs.isEmpty ? Rung.allCases : Rung.allCases.filter { rungs.contains($0.rawValue) }
            let catalogue = escapes.isEmpty ? Escape.allCases : Escape.allCases.filter { escapes.contains($0.rawValue) }
            blockSignalsForSupervision()
            var lab = try Lab.make()
            defer { lab.remove() }

            say(style.bold("Chapter 08 · Breaking out"))
            sayWrapped("A container is a process of the host, on the host's kernel. Each escape below is a few system calls (escapes.c), run as root inside every rung of this ladder:", hanging: "")
            say()
            for rung in ladder { say("  \(rung.rawValue) \(pad(rung.heading, 8)) \(rung.adds)") }
            say()
            sayWrapped("The target is a file of the host holding a token (\(lab.marker)), a process of the host, the host's kernel: an escape is ESCAPED when it reached it (checked by the host where it can be), else the errno it met.", hanging: "", style: style.dim)
            say()
            say(ladder.dropLast().reduce(pad("escape", 14)) { $0 + pad("\($1.rawValue) \($1.heading)", 10) } + "\(ladder.last!.rawValue) \(ladder.last!.heading)")
            var table: [(Escape, [Rung: Outcome])] = []
            for escape in catalogue {
                var row: [Rung: Outcome] = [:]
                for rung in ladder { row[rung] = try lab.attempt(escape, at: rung) }
                table.append((escape, row))
                say(ladder.dropLast().reduce(pad(escape.rawValue, 14)) { $0 + pad(cell(row[$1]!), 10) } + cell(row[ladder.last!]!))
            }
            say()
            say(style.bold("What stopped each escape"))
            for (escape, row) in table {
                sayWrapped("\(escape.rawValue): " + escape.story, indent: "  ", hanging: "    ")
                sayWrapped(stoppedBy(escape, row, ladder), indent: "    ", hanging: "    ", style: style.dim)
            }
            say()
            if lab.hostChanges.isEmpty {
                sayWrapped("The host after every attempt: the marker file, kernel.core_pattern and the host's mounts as they were; the marked process ended only where the table says ESCAPED.", hanging: "")
            } else {
                failed = true
                for change in lab.hostChanges { say(style.red("host changed: ") + change) }
            }
            say()
            sayWrapped("What no rung stops: a bug in the kernel they all share. One system call the filter lets through, with a bug behind it (Dirty COW, 2016; Dirty Pipe, 2022), and every layer above is gone. gVisor answers the container's system calls with a kernel of its own in user space (chapter 05 runs it), Kata Containers with a virtual machine.", hanging: "")
        }
        if failed { throw ExitCode(1) }
    }

    func cell(_ outcome: Outcome) -> String {
        switch outcome.kind {
        case .escaped: style.red(outcome.cell)
        case .blocked: style.green(outcome.cell)
        case .notApplicable: style.dim(outcome.cell)
        case .unclear: style.yellow(outcome.cell)
        }
    }

    /// "stopped at rung 2 (namespaces): ENOENT — why", from the row itself.
    func stoppedBy(_ escape: Escape, _ row: [Rung: Outcome], _ ladder: [Rung]) -> String {
        if let unclear = ladder.first(where: { row[$0]?.kind == .unclear }) {
            return "rung \(unclear.rawValue): unclear: \(row[unclear]!.detail)"
        }
        if let notHere = ladder.compactMap({ row[$0] }).first(where: { $0.kind == .notApplicable }) {
            return "not tried here: \(notHere.detail)"
        }
        let escapedAt = ladder.filter { row[$0]?.kind == .escaped }
        guard let last = escapedAt.last else {
            let first = ladder.first!
            return "blocked from rung \(first.rawValue) (\(row[first]!.cell)): \(escape.why)"
        }
        let evidence = row[last]!.detail
        guard let stop = ladder.first(where: { $0 > last }) else {
            return "ESCAPED at every rung shown; at rung \(last.rawValue): \(evidence)"
        }
        return "ESCAPED up to rung \(last.rawValue) (\(evidence)); stopped by \(stop.layer) at rung \(stop.rawValue) (\(row[stop]!.cell)): \(escape.why)"
    }
}

let style = Style.standardOutput
