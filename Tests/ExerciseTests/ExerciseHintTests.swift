// The hints and the stretch tiers stay honest: every stretch starter fails the checker,
// which names its missing steps; every stretch solution passes; and `check --hint`
// prints, after a failed check, level 1 (the API) before level 2 (the shape) for each
// step the failures name, in the exercise's order, and nothing when everything passed.
//
// The stretch starters are read from the repository (`pristineStarter`), as the base
// ones are, and built in the same temporary copy of the package as ExerciseTests'.
import Foundation
import Glibc
import Isolation
import SystemPackage
import Testing

/// The stretch tiers: Exercises/NN-*/Stretch/, product exercise-NN-stretch.
let stretches: [(number: String, folder: String, steps: [String])] = [
    ("01", "01-chroot-jail/Stretch", ["propagation", "mount-point", "pivot_root"]),
    ("02", "02-namespaces/Stretch", ["subid-range", "id-maps", "become-root"]),
    ("03", "03-cgroups/Stretch", ["throttle", "find", "update"]),
    ("04", "04-oci-bundle/Stretch", ["hook", "resolve"]),
    ("05", "05-engines/Stretch", ["global-options", "log", "kill-all"]),
    ("06", "06-images/Stretch", ["whiteout", "opaque"]),
    ("07", "07-networks/Stretch", ["forward", "masquerade", "publish"]),
    ("08", "08-breaking-out/Stretch", ["arch", "x32", "deny"]),
]

@Suite("Exercises · hints after a failed check, and the stretch tiers", .serialized,
       .enabled(if: isRoot, "the checker runs the exercises, which make namespaces, mounts and cgroups: root only"))
struct ExerciseHintTests {
    @Test("check --hint 2 prints level 1 then level 2 for each failing step, in order; --hint only level 1")
    func hintLevelsInOrder() throws {
        let builds = try ExerciseBuilds.shared.get()
        let both = try runCheck(["01", "02", "--hint", "2"], bin: builds.starters, package: builds.starters)
        #expect(both.status == 1, "\(both)")
        let lines = both.stdout.split(separator: "\n").map(String.init)
        for exercise in exercises.prefix(2) {
            let header = try #require(lines.firstIndex(where: { $0.hasPrefix("Hints · exercise \(exercise.number) (level 2 of 2") }),
                                      "no hints for exercise \(exercise.number)\n\(both.stdout)")
            // After the exercise's failed checks, before the next exercise's header.
            let failed = lines.firstIndex(where: { $0.contains("exercise-\(exercise.number) runs the checker's probe") && $0.hasPrefix("  ✗") })
            #expect(failed.map { $0 < header } == true, "exercise \(exercise.number): the hints must follow its failed checks\n\(both.stdout)")
            let next = lines[header...].firstIndex(where: { $0.hasPrefix("Exercise ") }) ?? lines.count
            let block = Array(lines[header..<next])
            // Every TODO step, in the exercise's order, each with level 1 then level 2.
            var position = 0
            for step in exercise.steps {
                let stepLine = try #require(block.firstIndex(where: { $0 == "  step \"\(step)\"" }), "exercise \(exercise.number): no hints for step \"\(step)\"\n\(block.joined(separator: "\n"))")
                let api = try #require(block[stepLine...].firstIndex(where: { $0.hasPrefix("    1 · the API: ") }))
                let shape = try #require(block[stepLine...].firstIndex(where: { $0.hasPrefix("    2 · the shape of the answer: ") }))
                #expect(position <= stepLine && stepLine < api && api < shape, "exercise \(exercise.number), step \"\(step)\": out of order\n\(block.joined(separator: "\n"))")
                position = shape
            }
            #expect(block.contains(where: { $0.contains("Beyond this is the solution") }))
        }

        let first = try runCheck(["01", "--hint"], bin: builds.starters, package: builds.starters)
        #expect(first.status == 1, "\(first)")
        #expect(first.stdout.contains("Hints · exercise 01 (level 1 of 2)"), "\(first.stdout)")
        #expect(first.stdout.contains("    1 · the API: "), "\(first.stdout)")
        #expect(!first.stdout.contains("2 · the shape of the answer"), "level 1 only\n\(first.stdout)")
        #expect(first.stdout.contains("check 01 --hint 2 gives the shape of the answer"), "\(first.stdout)")

        // Everything passed: nothing to hint at.
        let solved = try runCheck(["01", "--hint", "2"], bin: builds.solutions, package: builds.solutions)
        #expect(solved.status == 0, "\(solved)")
        #expect(!solved.stdout.contains("Hints ·"), "\(solved.stdout)")
        #expect(solved.stdout.contains("every check of exercise 01 passed, no hint needed"), "\(solved.stdout)")

        // A level that does not exist is refused before anything runs.
        let wrongLevel = try runCheck(["01", "--hint", "3"], bin: builds.starters, package: builds.starters)
        #expect(wrongLevel.status != 0 && wrongLevel.stderr.contains("--hint takes a level"), "\(wrongLevel)")
    }

    @Test("the checker fails on every untouched stretch starter, naming the missing steps, and hints at them")
    func untouchedStretchStarters() throws {
        let builds = try StretchBuilds.shared.get()
        let result = try runCheck(["--stretch", "--hint", "2"], bin: builds.starters, package: builds.starters)
        #expect(result.status == 1, "\(result)")
        for stretch in stretches {
            let list = stretch.steps.map { "\"\($0)\"" }.joined(separator: ", ")
            #expect(result.stdout.contains("Exercises/\(stretch.folder)/Steps.swift)"), "\(result.stdout)")
            #expect(result.stdout.contains("still TODO: \(list)"), "stretch \(stretch.number): the TODO list \(list) is not named\n\(result.stdout)")
            #expect(result.stdout.contains("exercise \(stretch.number)-stretch: step \"\(stretch.steps[0])\" is still a TODO"),
                    "stretch \(stretch.number): the run's TODO is not named\n\(result.stdout)")
            let hints = try #require(result.stdout.range(of: "Hints · exercise \(stretch.number) stretch (level 2 of 2)"), "\(result.stdout)")
            var position = hints.upperBound
            for step in stretch.steps {
                let found = try #require(result.stdout.range(of: "  step \"\(step)\"", range: position..<result.stdout.endIndex),
                                         "stretch \(stretch.number): no hint for \"\(step)\" after the previous one\n\(result.stdout)")
                position = found.upperBound
            }
        }
        #expect(!result.stdout.contains("All "), "nothing may claim success\n\(result.stdout)")
    }

    @Test("the checker passes when the stretch holes are filled with the reference solutions")
    func stretchSolutionsPass() throws {
        let builds = try StretchBuilds.shared.get()
        let result = try runCheck(["--stretch"], bin: builds.solutions, package: builds.solutions)
        #expect(result.status == 0, "\(result)")
        #expect(failedChecks(result.stdout).isEmpty, "\(result.stdout)")
        for check in ["the host's root and mounts are gone from its mount table", "after the escape, its root is still the jail",
                      "after the escape, it cannot open the host file", "the workload was not restarted", "the hog finishes once the limit is raised",
                      "the hook got the container's state on its stdin", "nothing appeared on the host through the image's symlinks",
                      "a failing hook stops the container before its process runs", "a hook past its timeout is killed, and the container stopped",
                      "uid_map: 0 is nobody, 1…65536 the subordinate uids", "gid_map: 0 is nobody's group, 1…65536 the subordinate gids",
                      "setgroups is \"allow\": newgidmap wrote the gid map from /etc/subgid", "it dropped the host's supplementary groups",
                      "on the host, the container's root is nobody, not root", "no process is left in its user namespace",
                      "the host's /etc/subuid and /etc/subgid are as they were",
                      "create's error is in podman's --log file, as JSON podman can read", "podman stop → kill --all: the shell's child gets SIGTERM too",
                      "nothing is left: no container, process, mount, cgroup or state",
                      "the container's server saw the outside's own address", "this machine's own namespace is untouched",
                      "unshare through i386 (int 0x80) is refused by the filter", "unshare through x32 is refused by the filter, not by the kernel",
                      "chapter 08's nested escape is stopped by your filter"] {
            #expect(result.stdout.contains("  ✓ \(check)"), "\(check) did not pass\n\(result.stdout)")
        }
        #expect(result.stdout.contains(" changes the running cgroup's memory."), "\(result.stdout)")
        for check in ["each deletion is a .wh.NAME entry next to the name it deletes", "umoci unpack of base + the layer is what the container saw",
                      "the library's unpack of base + the layer is what the container saw", "a rootless overlay (userxattr): the remade directory is opaque too"] {
            #expect(result.stdout.contains("  ✓ \(check)"), "06: \(check) did not pass\n\(result.stdout)")
        }
        // 02: the file chowned to 1000:1000 inside is subuid start + 999 on the host.
        #expect(result.stdout.split(separator: "\n").contains(where: {
            $0.hasPrefix("  ✓ a file chowned to 1000:1000 inside belongs to ") && $0.hasSuffix("999 on the host")
        }), "\(result.stdout)")
        let passed = result.stdout.split(separator: "\n").filter { $0.hasPrefix("  ✓ ") }.count
        #expect(result.stdout.contains("All \(passed) checks passed."), "\(result.stdout)")
    }
}

extension ExerciseHintTests {
    @Test("wrong stretch solutions are caught, with a message that explains what went wrong")
    func wrongStretchSolutionsAreCaught() throws {
        let builds = try StretchBuilds.shared.get()
        let result = try runCheck(["--stretch"], bin: builds.wrong, package: builds.wrong)
        #expect(result.status == 1, "\(result)")
        let failed = failedChecks(result.stdout)
        func caught(_ check: String, explaining: String, _ stretch: String) {
            #expect(failed.contains(where: { $0.contains(check) }), "stretch \(stretch): \"\(check)\" should fail\n\(result.stdout)")
            #expect(result.stdout.contains(explaining), "stretch \(stretch): the explanation \"\(explaining)\" is missing\n\(result.stdout)")
        }
        // 01: chroot instead of pivot_root: the escape climbs back to the host's /.
        caught("its mount namespace's root is the jail (pivot_root, not chroot)", explaining: "After a mere chroot(2), /proc/PID/root reads as the rootfs path", "01")
        caught("after the escape, its root is still the jail", explaining: ": the host's /", "01")
        caught("after the escape, it cannot open the host file", explaining: "host secret", "01")
        #expect(!failed.contains(where: { $0.contains("nothing it mounted is left on the host") }), "01: the propagation was right")
        // 02: the maps written by the exercise itself, one line each (chapter 02's way), and
        // setgroups' failure ignored: the container runs, but only its root is mapped.
        caught("uid_map: 0 is nobody, 1…65536 the subordinate uids", explaining: "only newuidmap(1) may write", "02")
        caught("gid_map: 0 is nobody's group, 1…65536 the subordinate gids", explaining: "only newgidmap(1) may write", "02")
        caught("setgroups is \"allow\"", explaining: "/setgroups → deny", "02")
        caught("it dropped the host's supplementary groups", explaining: "setgroups(2) with an empty list drops them", "02")
        caught("a file chowned to 1000:1000 inside belongs to", explaining: "chown(2) refuses IDs that have no mapping (EINVAL)", "02")
        #expect(!failed.contains(where: { $0.contains("on the host, the container's root is nobody") }), "02: root inside is still the caller")
        #expect(!failed.contains(where: { $0.contains("/etc/subuid and /etc/subgid are as they were") }), "02: the host's files are untouched")
        // 03: the hard limit instead of the throttle: the hog is killed.
        caught("not killed", explaining: "step \"throttle\": ", "03")
        #expect(!failed.contains(where: { $0.contains("the cgroup is removed") }), "03: the clean-up was right")
        // 04: destination joined to the rootfs path; a hook waited for without its timeout.
        caught("exercise-04-stretch runs the checker's probe", explaining: "a symlink in the image: mkdir(2) and mount(2) would follow it", "04")
        caught("a hook past its timeout is killed, and the container stopped", explaining: "wait with a deadline (hook.timeout seconds)", "04")
        #expect(!failed.contains(where: { $0.contains("a failing hook stops the container") }), "04: a failing hook was handled")
        #expect(!failed.contains(where: { $0.contains("nothing appeared on the host") }), "04: the starter's own guard stopped the mount")
        // 05: the log line built by interpolation (a quote breaks the JSON); kill --all to the init only.
        caught("create's error is in podman's --log file, as JSON podman can read", explaining: "with the message escaped as a JSON string", "05")
        caught("podman stop → kill --all: the shell's child gets SIGTERM too", explaining: "the shell's child is not the init", "05")
        #expect(!failed.contains(where: { $0.contains("the calls podman made") }), "05: the global options were read")
        // 06: the whiteout named ".wh." + the whole path: a directory ".wh.data" in the image, the file back.
        caught("each deletion is a .wh.NAME entry next to the name it deletes", explaining: "data/.wh.gone, not .wh.data/gone", "06")
        caught("umoci unpack of base + the layer is what the container saw", explaining: "the marker is .wh.NAME in the deleted entry's own directory", "06")
        #expect(!failed.contains(where: { $0.contains("the remade directory is opaque too") }), "06: the opaque step was right")
        // 07: masquerade on everything that leaves; the published port only in prerouting.
        caught("the container's server saw the outside's own address", explaining: "the rule masquerades everything that leaves, the bridge included", "07")
        caught("a program on the stand-in host reaches the container", explaining: "a packet the host sends itself never passes prerouting", "07")
        #expect(!failed.contains(where: { $0.contains("the outside's server saw the stand-in host's address") }), "07: the way out was masqueraded")
        #expect(!failed.contains(where: { $0.contains("this machine's own namespace is untouched") }), "07: everything stayed in the stand-in host")
        // 08: a filter that compares numbers only: int 0x80 and x32 walk around it.
        caught("unshare through i386 (int 0x80) is refused by the filter", explaining: "a filter that compares only numbers lets it by", "08")
        caught("unshare through x32 is refused by the filter, not by the kernel", explaining: "the x32 call reached the kernel", "08")
        #expect(!failed.contains(where: { $0.contains("unshare through x86_64 gets EPERM") || $0.contains("ordinary calls still run") }), "08: the deny step was right")
    }
}

/// This package's `check` with `arguments`, against the programs in `bin`.
func runCheck(_ arguments: [String], bin: String, package: String) throws -> RunResult {
    let check = productsDirectory + "/check"
    precondition(FileManager.default.isExecutableFile(atPath: check), "\(check) is missing: run `swift build` before `swift test`")
    return try run(check, arguments + ["--no-build", "--package-path", package, "--bin-path", bin], timeout: 900)
}

/// The stretch programs, built in ExerciseBuilds' copy of the package: once with the
/// starters as the repository holds them, once with the reference solutions.
final class StretchBuilds: Sendable {
    static let shared = Result { try StretchBuilds() }

    let starters: String
    let solutions: String
    let wrong: String

    private init() throws {
        let base = try ExerciseBuilds.shared.get()
        starters = base.folder + "/stretch-starters"
        solutions = base.folder + "/stretch-solutions"
        wrong = base.folder + "/stretch-wrong"
        let pristine = base.folder + "/stretch-pristine"
        try FileManager.default.createDirectory(atPath: pristine, withIntermediateDirectories: true)
        for stretch in stretches {
            try pristineStarter(stretch.folder).write(toFile: "\(pristine)/\(stretch.number)-Steps.swift", atomically: true, encoding: .utf8)
        }
        try build(in: base.package, with: { "\(pristine)/\($0.number)-Steps.swift" }, into: starters)
        try build(in: base.package, with: { "\(base.package)/Exercises/\($0.folder)/Solution/Steps.swift.solution" }, into: solutions)
        try build(in: base.package, with: { "\(packageRoot)/Tests/ExerciseTests/Wrong/\($0.number)-stretch-Steps.swift.wrong" }, into: wrong)
    }

    private func build(in package: String, with source: ((number: String, folder: String, steps: [String])) -> String, into destination: String) throws {
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        let swift = ProcessInfo.processInfo.environment["PATH", default: "/usr/bin:/bin"].split(separator: ":")
            .map { "\($0)/swift" }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/swift"
        for stretch in stretches {
            let steps = "\(package)/Exercises/\(stretch.folder)/Steps.swift"
            try? FileManager.default.removeItem(atPath: steps)
            try FileManager.default.copyItem(atPath: source(stretch), toPath: steps)
            let product = "exercise-\(stretch.number)-stretch"
            let result = try run(swift, ["build", "--package-path", package, "--product", product], timeout: 1800)
            guard result.status == 0 else { throw IsolationError("swift build --product \(product) in the copy: \(result)") }
            try FileManager.default.copyItem(atPath: "\(package)/.build/debug/\(product)", toPath: "\(destination)/\(product)")
            let sources = "\(destination)/Exercises/\(stretch.folder)"
            try FileManager.default.createDirectory(atPath: sources, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: steps, toPath: "\(sources)/Steps.swift")
        }
    }
}
