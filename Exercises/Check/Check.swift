// check — builds your exercise, runs it, and observes its isolation from outside, the way
// the chapter tests do. Every check prints what it observed; a failure also says what was
// expected and gives a hint. Exit status 0 only when everything passes.
//
//   swift run check          every exercise
//   swift run check 02       one (or several: check 01 03)
//   swift run check 02 --hint       after a failed check: the API for each failing step
//   swift run check 02 --hint 2     … and the shape of the answer
//   swift run check 01 --stretch    the harder tier (Exercises/01-*/Stretch/)
//
// It runs your exercise as a subprocess and never forks itself into namespaces: it reads
// /proc/PID/ns/*, /proc/PID/status, /proc/PID/mountinfo, the cgroup files, and asks your
// runtime for its state. Everything it makes is named isolation-check-* and removed.
import ArgumentParser
import Glibc
import Isolation
import SystemPackage

@main
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Build and check the exercises in Exercises/ (all, or the ones given: 01 … 08).")

    @Argument(help: "The exercises to check: 01, 02, 03, 04, 05, 06, 07, 08 (default: all).") var exercises: [String] = []
    @Option(help: ArgumentHelp("The package with Exercises/ (default: the one around the current folder).", valueName: "DIR"))
    var packagePath: String?
    @Option(help: ArgumentHelp("Where the built exercise-NN programs are (default: PACKAGE/.build/debug).", valueName: "DIR"))
    var binPath: String?
    @Flag(help: "Do not run `swift build`: check the programs already built.") var noBuild = false
    @Flag(help: "Check the harder tier of each exercise given (Exercises/NN-*/Stretch/) instead.") var stretch = false
    @Option(name: .customLong("hint"), help: ArgumentHelp("After a failed check, hints for the steps it names: 1 the API (also plain --hint), 2 the shape of the answer.", valueName: "LEVEL"))
    var hintLevel: Int?

    /// `--hint` alone means level 1: ArgumentParser's options always take a value, so a
    /// `--hint` not followed by a level (one digit: exercises are two, "02") gets one here.
    static func main() {
        var arguments: [String] = []
        let given = Array(CommandLine.arguments.dropFirst())
        for (index, argument) in given.enumerated() {
            arguments.append(argument)
            let next = index + 1 < given.count ? given[index + 1] : ""
            if argument == "--hint" && !(next.count == 1 && next.allSatisfy(\.isNumber)) { arguments.append("1") }
        }
        main(arguments)
    }

    func validate() throws {
        if let hintLevel, !(1...StepHint.levelNames.count).contains(hintLevel) {
            throw ValidationError("--hint takes a level: 1 (the API) or 2 (the shape of the answer)")
        }
    }

    func run() throws {
        var code: Int32 = 0
        reportingErrors("check") {
            let chosen = try exercises.isEmpty ? (stretch ? Exercise.stretches : Exercise.all) : exercises.map { try Exercise.named($0, stretch: stretch) }
            let package = try packagePath.map { try FileSystem.realPath(FilePath($0)) } ?? Check.findPackage()
            let bin = binPath.map { FilePath($0) } ?? package.appending(".build/debug")
            let report = Report()
            if !noBuild {
                for exercise in chosen { build(exercise, package: package, report: report) }
            }
            guard Identity.isRoot || chosen.allSatisfy(\.runsUnprivileged) else {
                say()
                say(Style.standardOutput.yellow("The checks need root") + " (your exercises make namespaces, mounts and cgroups). Run:")
                say("  sudo \(Identity.executablePath()) \(chosen.map(\.number).joined(separator: " ")) --no-build"
                    + (stretch ? " --stretch" : "") + (hintLevel.map { " --hint \($0)" } ?? "")
                    + (packagePath == nil ? "" : " --package-path \(shellQuote(package.string))"))
                code = 1
                return
            }
            // Ctrl-C must not kill us halfway: blocked here, seen by every wait loop
            // (interrupted()), which stops the exercise; the clean-up then runs as usual.
            var signals = sigset_t()
            sigemptyset(&signals)
            for signal in forwardedSignals { sigaddset(&signals, signal) }
            sigprocmask(SIG_BLOCK, &signals, nil)
            // `check 05 | head`: once the reader stops reading, a write must fail (EPIPE),
            // not kill us before the clean-up. Children get SIGPIPE back (spawn.c).
            signal(SIGPIPE, SIG_IGN)
            var context = try CheckContext(package: package, bin: bin, report: report)
            defer { context.removeTemporaryFiles() }
            for exercise in chosen {
                if interrupted() { break }
                report.exercise = exercise.label
                report.header("Exercise \(exercise.number) · \(exercise.stretch ? "stretch · " : "")\(exercise.title)")
                exercise.checkTODOs(package: package, report: report)
                let program = bin.appending(exercise.product)
                if FileSystem.exists(program) {
                    exercise.run(&context, program.string)
                } else {
                    report.fail("the program \(exercise.product) exists", observed: "no \(program)",
                                expected: "a built \(exercise.product)", hint: "build it: swift build --product \(exercise.product)")
                }
                if let hintLevel, !interrupted() {
                    if let texts = report.failureTexts[exercise.label], !texts.isEmpty {
                        exercise.printHints(level: hintLevel, failureTexts: texts)
                    } else {
                        report.note("(--hint: every check of \(exercise.label) passed, no hint needed)")
                    }
                }
            }
            say()
            let style = Style.standardOutput
            if interrupted() {
                say(style.yellow("Interrupted: the exercise was stopped and everything the checker made is removed."))
                code = 130
                return
            }
            if report.failed == 0 {
                say(style.green(style.bold("All \(report.passed) checks passed.")))
            } else {
                var perExercise: [(String, Int)] = []
                for failure in report.failures {
                    let exercise = String(failure.prefix(while: { $0 != ":" }))
                    if let index = perExercise.firstIndex(where: { $0.0 == exercise }) { perExercise[index].1 += 1 } else { perExercise.append((exercise, 1)) }
                }
                say(style.red(style.bold("\(report.failed) of \(report.passed + report.failed) checks failed")) + " ("
                    + perExercise.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "). Start with the first ✗ above.")
                code = 1
            }
        }
        if code != 0 { throw ExitCode(code) }
    }

    /// `swift build --product exercise-NN`, with its output shown (compiler errors are yours to read).
    func build(_ exercise: Exercise, package: FilePath, report: Report) {
        let product = exercise.product
        report.exercise = exercise.label
        say(Style.standardOutput.dim("$ swift build --product \(product)"))
        let path = environmentValue("PATH") ?? "/usr/local/bin:/usr/bin:/bin"
        guard let swift = Command.find("swift", path: path) else {
            report.fail("\(product) builds", observed: "no `swift` on PATH (\(path))", expected: "the Swift toolchain",
                        hint: "build it yourself (swift build --product \(product)), then run check with --no-build")
            return
        }
        do {
            var options = SpawnOptions()
            options.workingDirectory = package
            let environment = ["PATH=\(path)", "HOME=\(environmentValue("HOME") ?? "/root")", "TERM=\(environmentValue("TERM") ?? "dumb")"]
            let child = try ChildProcess.spawn(swift, arguments: ["swift", "build", "--product", product], environment: environment, options: options)
            let status = try child.wait()
            if status != .exited(0) {
                report.fail("\(product) builds", observed: "swift build \(status)", expected: "a successful build",
                            hint: "read the compiler's errors above (your code is in Exercises/\(exercise.sourceFolder)/Steps.swift)")
            }
        } catch {
            report.fail("\(product) builds", observed: "\(error)", expected: "a successful build", hint: "run swift build --product \(product) yourself")
        }
    }

    /// The package around the current folder (or around this program): Package.swift and Exercises/.
    static func findPackage() throws -> FilePath {
        for start in [FilePath((try? FileSystem.realPath(".").string) ?? "."), Identity.executablePath()] {
            var folder = start
            while !folder.isEmpty && folder.string != "/" {
                if FileSystem.exists(folder.appending("Package.swift")) && FileSystem.isDirectory(folder.appending("Exercises")) { return folder }
                folder.removeLastComponent()
            }
        }
        throw IsolationError("cannot find the package (a folder with Package.swift and Exercises/)", hint: "run check from the package, or give --package-path DIR")
    }
}

/// What every check run shares: where things are, and the root filesystem template.
struct CheckContext {
    let package: FilePath
    let bin: FilePath
    let report: Report
    let scratch: FilePath
    private var template: FilePath?

    init(package: FilePath, bin: FilePath, report: Report) throws {
        self.package = package
        self.bin = bin
        self.report = report
        scratch = try FileSystem.makeTemporaryDirectory(purpose: "check")
        chmod(scratch.string, 0o755)
    }

    /// A fresh copy of the built-in root filesystem for one run, in `folder/name`: the
    /// exercises mount onto it and write into it, and the cached one must stay clean.
    mutating func rootfs(in folder: FilePath, name: String = "rootfs") throws -> FilePath {
        // Without root (a check that runs as the user, `runsUnprivileged`): a template
        // built by root has folders only root may read (/root is 0700), so cp -a of it
        // would fail; a fresh one, built by this user, is a few links and a copy of busybox.
        if !Identity.isRoot {
            let fresh = folder.appending(name)
            try RootFilesystem.build(at: fresh, from: RootFilesystem.preferredSource)
            return fresh
        }
        if template == nil {
            template = try RootFilesystem.builtIn(log: { say(Style.standardOutput.dim("  (\($0))")) }).path
        }
        let copy = folder.appending(name)
        let result = try Command.run("/bin/cp", ["-a", template!.string, copy.string])
        guard result.status == .exited(0) else { throw IsolationError("cp -a \(template!) \(copy): \(result.standardError)") }
        return copy
    }

    /// A temporary folder for one exercise's run, inside this run's scratch folder.
    func folder(_ name: String) throws -> FilePath {
        let path = scratch.appending(name)
        try FileSystem.makeDirectories(path)
        return path
    }

    /// The environment the exercises run with.
    func environment(report: FilePath? = nil) -> [String] {
        var environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR=1", "TERM=dumb"]
        if let cache = environmentValue("ISOLATION_CACHE_DIR") { environment.append("ISOLATION_CACHE_DIR=\(cache)") }
        if let report { environment.append("ISOLATION_EXERCISE_REPORT=\(report)") }
        return environment
    }

    /// Unmounts whatever a run left mounted under `folder` on the host (deepest first).
    func unmountLeftovers(under folder: FilePath) -> [String] {
        let points = ((try? MountInfo.table()) ?? []).map(\.mountPoint)
            .filter { $0 == folder.string || $0.hasPrefix(folder.string + "/") }
        for point in points.sorted(by: { $0.count > $1.count }) { try? Mount.unmount(FilePath(point), detach: true) }
        return points
    }

    func removeTemporaryFiles() {
        _ = unmountLeftovers(under: scratch)
        try? FileSystem.removeTree(scratch)
    }
}
