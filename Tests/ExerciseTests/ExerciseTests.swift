// The exercises stay honest: the checker fails on every untouched starter and names the
// missing steps; it passes when the holes hold the reference solutions; and it catches
// wrong solutions a learner might write, saying what went wrong.
//
// The pristine starters (each Steps.swift as the repository holds it, read with `git show`,
// never the working tree's, which a learner may have solved), the solutions
// (Exercises/NN-*/Solution/Steps.swift.solution) and the wrong ones
// (Tests/ExerciseTests/Wrong/NN-Steps.swift.wrong) are swapped into ONE temporary copy of
// the package, built there (`swift build --product exercise-NN`: the library once, then
// only the exercises), and the built programs are kept side by side for both tests. The
// checker is always this package's own build; it is pointed at the copies' programs.
import Foundation
import Glibc
import Isolation
import SystemPackage
import Testing

let isRoot = getuid() == 0

/// `.build/<triple>/debug`, where the test bundle and the products are.
let productsDirectory: String = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path

/// The package: the folder that holds `.build`.
let packageRoot: String = {
    var url = URL(fileURLWithPath: productsDirectory)
    while url.path != "/" && url.lastPathComponent != ".build" { url.deleteLastPathComponent() }
    return url.deletingLastPathComponent().path
}()

let exercises: [(number: String, folder: String, steps: [String])] = [
    ("01", "01-chroot-jail", ["chroot", "chdir"]),
    ("02", "02-namespaces", ["clone-flags", "sethostname", "mount-proc"]),
    ("03", "03-cgroups", ["limits", "join"]),
    ("04", "04-oci-bundle", ["mounts", "pivot_root"]),
    ("05", "05-engines", ["exec-fifo", "wait-for-start", "start", "state"]),
    ("06", "06-images", ["whiteout", "opaque", "overlay"]),
    ("07", "07-networks", ["move-veth", "address", "default-route"]),
    ("08", "08-breaking-out", ["missing-layer"]),
]

@Suite("Exercises · the checker keeps them honest", .serialized,
       .enabled(if: isRoot, "the checker runs the exercises, which make namespaces, mounts and cgroups: root only"))
struct ExerciseTests {
    @Test("the checker fails on every untouched starter, naming the missing steps")
    func untouchedStarters() throws {
        // The starters as the repository holds them, built in the copy: solving the
        // exercises in this working tree changes nothing here.
        let builds = try ExerciseBuilds.shared.get()
        let result = try runCheck(bin: builds.starters, package: builds.starters)
        #expect(result.status == 1, "\(result)")
        let failed = failedChecks(result.stdout)
        for exercise in exercises {
            // The source still has every TODO, listed by name...
            let list = exercise.steps.map { "\"\($0)\"" }.joined(separator: ", ")
            #expect(result.stdout.contains("still TODO: \(list)"), "exercise \(exercise.number): the TODO list \(list) is not named\n\(result.stdout)")
            // ...and the run stops at the first, which it names with the exercise.
            #expect(result.stdout.contains("exercise \(exercise.number): step \"\(exercise.steps[0])\" is still a TODO"),
                    "exercise \(exercise.number): the run's TODO is not named\n\(result.stdout)")
        }
        #expect(failed.contains("every step is written (no exerciseTODO left in Exercises/01-chroot-jail/Steps.swift)"))
        #expect(result.stdout.contains("at a TODO: step \"exec-fifo\""), "create of exercise 05 stops at its first step\n\(result.stdout)")
        #expect(result.stdout.contains("exercise 06: step \"overlay\" is still a TODO"), "run of exercise 06 stops at its overlay step\n\(result.stdout)")
        #expect(!result.stdout.contains("All "), "nothing may claim success\n\(result.stdout)")
    }

    @Test("the checker passes when the holes are filled with the reference solutions")
    func referenceSolutionsPass() throws {
        let builds = try ExerciseBuilds.shared.get()
        let result = try runCheck(bin: builds.solutions, package: builds.solutions)
        #expect(result.status == 0, "\(result)")
        #expect(failedChecks(result.stdout).isEmpty, "\(result.stdout)")
        let passed = result.stdout.split(separator: "\n").filter { $0.hasPrefix("  ✓ ") }.count
        #expect(passed >= 50, "every exercise's checks ran (\(passed) passed)\n\(result.stdout)")
        for check in ["its working directory is inside the jail", "/proc inside lists only the container's processes",
                      "it was in the cgroup before it could exec (joined, then released)", "the kernel refused forks past the pids limit",
                      "the host's mounts are gone from the container", "the engine gets the process's exit status", "`delete` removes it",
                      "the default route goes via the gateway", "the container fetches a page from the stand-in host",
                      "the stand-in host and the container are gone",
                      "a whiteout deletes a directory of a lower layer, with all it holds", "lowerdir is the image's layers, the top one first",
                      "a write in the container lands in its upper folder", "the whole tree is the image's (type, mode, owner, content of every entry)"] {
            #expect(result.stdout.contains("  ✓ \(check)"), "\(check) did not pass\n\(result.stdout)")
        }
        #expect(result.stdout.contains("All \(passed) checks passed."))
    }

    @Test("wrong solutions are caught, with a message that explains what went wrong")
    func wrongSolutionsAreCaught() throws {
        let builds = try ExerciseBuilds.shared.get()
        let result = try runCheck(bin: builds.wrong, package: builds.wrong)
        #expect(result.status == 1, "\(result)")
        let failed = failedChecks(result.stdout)
        func caught(_ check: String, explaining: String, _ exercise: String) {
            #expect(failed.contains(where: { $0.contains(check) }), "exercise \(exercise): \"\(check)\" should fail\n\(result.stdout)")
            #expect(result.stdout.contains(explaining), "exercise \(exercise): the explanation \"\(explaining)\" is missing\n\(result.stdout)")
        }
        // 01: chroot without chdir: the working directory stays on the host.
        caught("its working directory is inside the jail", explaining: "chroot(2) does not move the working directory", "01")
        #expect(!failed.contains("the command's root directory is the jail"), "01: the chroot itself was right")
        // 02: CLONE_NEWPID forgotten.
        caught("has a new pid namespace (CLONE_NEWPID)", explaining: "add .pid (CLONE_NEWPID) to namespacesToCreate()", "02")
        caught("the command has a PID of its own inside", explaining: "CLONE_NEWPID (.pid) gives the container PIDs of its own", "02")
        caught("PID 1 inside is the exercise's init", explaining: "the first process in a new PID namespace is its PID 1", "02")
        #expect(!failed.contains(where: { $0.contains("new uts namespace") }), "02: the other namespaces were right")
        // 03: released first, joined after exec.
        caught("it was in the cgroup before it could exec", explaining: "Released first, it execs and runs", "03")
        #expect(!failed.contains("the memory limit is in the cgroup's file"), "03: the limits were right")
        // 04: a bind mount's ro in the same mount(2) call.
        caught("read-only, as its options say (ro)", explaining: "mount(2) ignores MS_RDONLY (and nosuid, nodev…) together with MS_BIND", "04")
        #expect(!failed.contains(where: { $0.contains("pivot_root, not chroot") }), "04: pivot_root was right")
        // 05: state says running before start.
        caught("`state` says created", explaining: "created while the init is alive and exec.fifo exists", "05")
        // 06: the opaque directory emptied of its own layer's entries; lowerdir base first.
        caught("… and keeps what its own layer wrote before the marker", explaining: "keep the names in addedByThisLayer", "06")
        caught("lowerdir is the image's layers, the top one first", explaining: "lowerdir lists the top layer first", "06")
        caught("the container reads a file from its top layer", explaining: "give them in reverse", "06")
        #expect(!failed.contains(where: { $0.contains("a whiteout deletes") }), "06: the whiteouts were right")
        #expect(!failed.contains("a write in the container lands in its upper folder"), "06: the upper folder was right")
        // 07: eth0 moved and addressed, never brought up: the kernel refuses the default route.
        caught("exercise-07 runs the checker's probe", explaining: "a moved veth end arrives down", "07")
        #expect(!failed.contains(where: { $0.contains("every step is written (no exerciseTODO left in Exercises/07") }), "07: every step was written")
        // 08: the user namespace taken away instead of seccomp added.
        caught("the nested escape is stopped", explaining: "a layer must refuse those system calls", "08")
        caught("the setuid escape is stopped", explaining: "root in the container is root on the host", "08")
        #expect(!failed.contains("the chroot escape is stopped"), "08: the other layers were right")
    }
}

/// The `✗` lines of the checker's output: the names of the checks that failed.
func failedChecks(_ output: String) -> [String] {
    output.split(separator: "\n").filter { $0.hasPrefix("  ✗ ") }.map { String($0.dropFirst(4)) }
}

/// This package's `check`, against the exercise programs in `bin`.
func runCheck(bin: String, package: String = packageRoot) throws -> RunResult {
    let check = productsDirectory + "/check"
    precondition(FileManager.default.isExecutableFile(atPath: check), "\(check) is missing: run `swift build` before `swift test`")
    return try run(check, ["--no-build", "--package-path", package, "--bin-path", bin], timeout: 900)
}

/// One temporary copy of the package, built twice: with the reference solutions, then
/// with the wrong ones. The exercise programs of each build are kept in a folder of their
/// own, with the Steps.swift they were built from (`Exercises/NN-*/Steps.swift`, which
/// `check --package-path` reads for TODOs). Removed when the test process exits.
final class ExerciseBuilds: Sendable {
    static let shared = Result { try ExerciseBuilds() }

    let folder: String
    let package: String
    let starters: String
    let solutions: String
    let wrong: String

    private init() throws {
        folder = try FileSystem.makeTemporaryDirectory(purpose: "test-exercises").string
        exerciseBuildsFolder = folder
        atexit {
            guard let folder = exerciseBuildsFolder else { return }
            try? FileSystem.removeTree(FilePath(folder))
            // SwiftPM's lock files for the copy, named after its path, in the temporary folder.
            let prefix = folder.replacingOccurrences(of: "/", with: "_") + "_"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [] where name.hasPrefix(prefix) {
                try? FileManager.default.removeItem(atPath: "/tmp/" + name)
            }
        }
        package = folder + "/package"
        starters = folder + "/starters"
        solutions = folder + "/solutions"
        wrong = folder + "/wrong"
        // The package without its build folder or git history (tar keeps it one command).
        try FileManager.default.createDirectory(atPath: package, withIntermediateDirectories: true)
        let copy = try run("/bin/sh", ["-c", "tar -C \"$1\" --exclude=./.build --exclude='./.build-*' --exclude=./.git --exclude=./.swiftpm -cf - . | tar -C \"$2\" -xf -", "sh", packageRoot, package])
        guard copy.status == 0 else { throw IsolationError("copying the package: \(copy)") }
        let pristine = folder + "/pristine"
        try FileManager.default.createDirectory(atPath: pristine, withIntermediateDirectories: true)
        for exercise in exercises {
            try pristineStarter(exercise.folder).write(toFile: "\(pristine)/\(exercise.number)-Steps.swift", atomically: true, encoding: .utf8)
        }
        try build(with: { "\(pristine)/\($0.number)-Steps.swift" }, into: starters)
        try build(with: { "\(self.package)/Exercises/\($0.folder)/Solution/Steps.swift.solution" }, into: solutions)
        try build(with: { "\(packageRoot)/Tests/ExerciseTests/Wrong/\($0.number)-Steps.swift.wrong" }, into: wrong)
    }

    /// Swaps `source(exercise)` in for each Steps.swift, builds every exercise's product, and
    /// copies them to `destination`.
    private func build(with source: ((number: String, folder: String, steps: [String])) -> String, into destination: String) throws {
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for exercise in exercises {
            let steps = "\(package)/Exercises/\(exercise.folder)/Steps.swift"
            try? FileManager.default.removeItem(atPath: steps)
            try FileManager.default.copyItem(atPath: source(exercise), toPath: steps)
        }
        let swift = ProcessInfo.processInfo.environment["PATH", default: "/usr/bin:/bin"].split(separator: ":")
            .map { "\($0)/swift" }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/swift"
        for exercise in exercises {
            let result = try run(swift, ["build", "--package-path", package, "--product", "exercise-\(exercise.number)"], timeout: 1800)
            guard result.status == 0 else { throw IsolationError("swift build --product exercise-\(exercise.number) in the copy: \(result)") }
            try FileManager.default.copyItem(atPath: "\(package)/.build/debug/exercise-\(exercise.number)", toPath: "\(destination)/exercise-\(exercise.number)")
            let sources = "\(destination)/Exercises/\(exercise.folder)"
            try FileManager.default.createDirectory(atPath: sources, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(package)/Exercises/\(exercise.folder)/Steps.swift", toPath: "\(sources)/Steps.swift")
        }
    }
}

/// The starter of an exercise as the repository holds it: `git show COMMIT:PATH` of the
/// newest commit whose Steps.swift still has its holes (HEAD's, unless a learner committed
/// a solution). Never the working tree's file.
func pristineStarter(_ folder: String) throws -> String {
    let path = "Exercises/\(folder)/Steps.swift"
    let git = ProcessInfo.processInfo.environment["PATH", default: "/usr/bin:/bin"].split(separator: ":")
        .map { "\($0)/git" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let git else {
        throw IsolationError("git is missing: the exercise tests read the starters from the repository", hint: "apt-get install git")
    }
    // safe.directory: as root, in a clone that belongs to someone else, git refuses otherwise.
    let base = ["-c", "safe.directory=*", "-C", packageRoot]
    let commits = try run(git, base + ["rev-list", "HEAD", "--", path])
    guard commits.status == 0 else {
        throw IsolationError("git rev-list HEAD -- \(path) in \(packageRoot): \(commits)", hint: "run the tests in a git clone of the project")
    }
    for commit in commits.stdout.split(separator: "\n") {
        let shown = try run(git, base + ["show", "\(commit):\(path)"])
        if shown.status == 0 && shown.stdout.contains("exerciseTODO(") { return shown.stdout }
    }
    throw IsolationError("no commit holds a starter of \(path) (one with exerciseTODO holes)")
}

/// For the exit handler (a C function pointer captures nothing).
nonisolated(unsafe) var exerciseBuildsFolder: String?

struct RunResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var description: String { "status \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

/// Runs a program to completion (killed after `timeout` seconds), collecting its output.
/// On the test's own thread, with no Dispatch work or Foundation `Process` (whose exit is
/// noticed on a Dispatch queue): the output goes to files, `waitpid(WNOHANG)` polls until
/// the deadline. (Tests/ChapterTests/TestSupport.swift's `TestProcess` explains why.)
func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> RunResult {
    let folder = try FileSystem.makeTemporaryDirectory(purpose: "test-run")
    defer { try? FileSystem.removeTree(folder) }
    var environment = ProcessInfo.processInfo.environment
    environment["NO_COLOR"] = "1"
    let input = try FileDescriptor.open("/dev/null", .readOnly, options: .closeOnExec)
    defer { try? input.close() }
    let out = try FileDescriptor.open(folder.appending("out"), .writeOnly, options: [.create, .closeOnExec], permissions: .ownerReadWrite)
    defer { try? out.close() }
    let err = try FileDescriptor.open(folder.appending("err"), .writeOnly, options: [.create, .closeOnExec], permissions: .ownerReadWrite)
    defer { try? err.close() }
    var options = SpawnOptions()
    options.standardInput = input
    options.standardOutput = out
    options.standardError = err
    let child = try ChildProcess.spawn(FilePath(executable), arguments: [executable] + arguments,
                                       environment: environment.map { "\($0.key)=\($0.value)" }, options: options)
    let deadline = Date().addingTimeInterval(timeout)
    var status: Int32 = 0
    while waitpid(child.pid, &status, WNOHANG) == 0 {
        if Date() >= deadline { kill(child.pid, SIGKILL); while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}; break }
        usleep(5_000)
    }
    let code = Isolation.ExitStatus(waitStatus: status).shellCode
    func text(_ name: String) -> String { (try? String(contentsOfFile: folder.appending(name).string, encoding: .utf8)) ?? "" }
    return RunResult(status: code, stdout: text("out"), stderr: text("err"))
}
