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

    @Option(name: .customLong("rung"), help: ArgumentHelp("Only this rung, 1 to 7 (repeatable; 7 needs gVisor's runsc).", valueName: "N"))
    var rungs: [Int] = []

    @Option(name: .customLong("escape"), help: ArgumentHelp("Only this escape (repeatable): \(Escape.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "NAME"))
    var escapes: [String] = []

    @Option(name: .customLong("config"), help: ArgumentHelp("Run the catalogue against this config.json instead of the ladder (its process, root, hooks and cgroup path are replaced by the lab's).", valueName: "FILE"))
    var configPath: String?

    func validate() throws {
        if configPath != nil && !rungs.isEmpty { throw ValidationError("--config replaces the ladder: give it without --rung") }
        for rung in rungs where Rung(rawValue: rung) == nil { throw ValidationError("--rung \(rung): the rungs are 1 to 7") }
        if rungs.contains(Rung.anotherKernel.rawValue) && Rung.runsc == nil {
            throw ValidationError("--rung 7 runs gVisor's runsc, which is not installed (sudo apt-get install -y runsc)")
        }
        for name in escapes where Escape(rawValue: name) == nil {
            throw ValidationError("--escape \(name): not in the catalogue (\(Escape.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    func run() throws {
        var failed = false
        reportingErrors("chapter-08") {
            try Preflight.require([Preflight.kernel(), Preflight.root(why: "the escapes need a root that may chroot, mknod and mount, as a container's root may")])
            let ladder = rungs.isEmpty ? Rung.available : Rung.allCases.filter { rungs.contains($0.rawValue) }
            let catalogue = escapes.isEmpty ? Escape.allCases : Escape.allCases.filter { escapes.contains($0.rawValue) }
            // The reader's own config, read and checked before anything is made.
            let given = try configPath.map { path in
                try inStage("reading \(path)") { try OCIConfig.decode(json: Array(FileSystem.readString(FilePath(path)).utf8), source: path) }
            }
            let columns = given.map { [Column(rung: nil, given: $0)] } ?? ladder.map { Column(rung: $0, given: nil) }
            blockSignalsForSupervision()
            var lab = try Lab.make()
            defer { lab.remove() }

            say(style.bold("Chapter 08 · Breaking out"))
            let place = configPath == nil ? "every rung of this ladder" : "your config"
            sayWrapped("A container is a process of the host, on the host's kernel. Each escape below is a few system calls (escapes.c), run as root inside \(place):", hanging: "")
            say()
            if let configPath {
                sayWrapped("yours  \(configPath), with the lab's root filesystem and /shared", indent: "  ", hanging: "         ")
            } else {
                for rung in ladder { say("  \(rung.rawValue) \(pad(rung.heading, 8)) \(rung.adds)") }
                if rungs.isEmpty && Rung.runsc == nil {
                    say(style.dim("  (rung 7, gVisor's kernel, needs runsc: sudo apt-get install -y runsc)"))
                }
            }
            say()
            sayWrapped("The targets: a process of the host, the host's kernel, and a file of the host that holds a token:", hanging: "", style: style.dim)
            say(style.dim("  \(lab.marker)"))
            sayWrapped("An escape is ESCAPED when it reached its target (checked by the host where it can be), else the errno it met.", hanging: "", style: style.dim)
            say()
            say(columns.dropLast().reduce(pad("escape", 13)) { $0 + pad($1.heading, 9) } + columns.last!.heading)
            var table: [(Escape, [Outcome])] = []
            for escape in catalogue {
                let row = try columns.map { try lab.attempt(escape, in: $0) }
                table.append((escape, row))
                say(row.dropLast().reduce(pad(escape.rawValue, 13)) { $0 + pad(cell($1), 9) } + cell(row.last!))
            }
            say()
            say(style.bold("What stopped each escape"))
            for (escape, row) in table {
                sayWrapped("\(escape.rawValue): " + escape.story, indent: "  ", hanging: "    ")
                sayWrapped(stoppedBy(escape, row, columns), indent: "    ", hanging: "    ", style: style.dim)
            }
            say()
            if lab.hostChanges.isEmpty {
                sayWrapped("The host after every attempt: the marker file, kernel.core_pattern, the host's mounts and its key as they were; the marked process ended only where the table says ESCAPED.", hanging: "")
            } else {
                failed = true
                for change in lab.hostChanges { say(style.red("host changed: ") + change) }
            }
            say()
            sayWrapped("What no rung stops: a bug in the kernel they all share. One system call the filter lets through, with a bug behind it (Dirty COW, 2016; Dirty Pipe, 2022), and every layer above is gone. gVisor answers the container's system calls with a kernel of its own in user space (rung 7; chapter 05), Kata Containers with a virtual machine.", hanging: "")
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

    /// "ESCAPED up to rung 1 (evidence); stopped by namespaces at rung 2 (ENOENT): why",
    /// from the row itself.
    func stoppedBy(_ escape: Escape, _ row: [Outcome], _ columns: [Column]) -> String {
        if let unclear = row.indices.first(where: { row[$0].kind == .unclear }) {
            return "\(columns[unclear].name): unclear: \(row[unclear].detail)"
        }
        if let notHere = row.first(where: { $0.kind == .notApplicable }) {
            // An escape some rungs cannot even try (no runtime mounts at rung 1): the rest.
            let tried = row.indices.filter { row[$0].kind != .notApplicable }
            guard escape == .mountRace, !tried.isEmpty else { return "not tried here: \(notHere.detail)" }
            let told = stoppedBy(escape, tried.map { row[$0] }, tried.map { columns[$0] })
            return told + "; " + row.indices.filter { row[$0].kind == .notApplicable }.map { "n/a in \(columns[$0].name): \(row[$0].detail)" }.joined(separator: "; ")
        }
        guard let last = row.indices.last(where: { row[$0].kind == .escaped }) else {
            if columns[0].rung == nil { return "blocked (\(row[0].cell) from \(row[0].detail))" }
            return "blocked from \(columns[0].name) (\(row[0].cell)): \(escape.why)"
        }
        let evidence = row[last].detail
        guard last + 1 < row.count else {
            return "ESCAPED in \(columns[last].name): \(evidence)"
        }
        if escape.stoppedByRuntime && columns[last + 1].rung != .anotherKernel {
            return "ESCAPED up to \(columns[last].name) (\(evidence)); stopped from \(columns[last + 1].name) on by the runtime itself, not by a rung's layer (\(row[last + 1].cell)): \(escape.why)"
        }
        return "ESCAPED up to \(columns[last].name) (\(evidence)); stopped by \(columns[last + 1].layer) (\(row[last + 1].cell)): \(escape.why)"
    }
}

let style = Style.standardOutput
