// The conformance suite's tools: bundles with a root filesystem of their own (a static
// busybox, writable, removed with the bundle) and a probe program in it that prints what
// the container's process sees, one `KEY=value` a line.
//
// Each test names the runtime-spec section it checks (runtime.md, config.md,
// config-linux.md of opencontainers/runtime-spec) and compares observations, from inside
// (the probe) and from outside (/proc/PID, cgroup files, state JSON), with the config's
// values.
import Foundation
import Isolation
import SystemPackage
import Testing

/// The applets of the host's static busybox, listed once.
let busyboxApplets: [String] = {
    guard let busybox = RootFilesystem.busyboxPath(),
          let result = try? run(busybox.string, ["--list"]), result.status == 0 else { return [] }
    return result.stdout.split(separator: "\n").map(String.init)
}()

/// The conformance suites need a static busybox for their root filesystems.
let canProbe = isRoot && RootFilesystem.busyboxPath() != nil && busyboxApplets.contains("sh")

/// The probe, /probe in the container: the process's own view, one `KEY=value` a line.
/// `/proc/$$` is the probe's shell itself (the container's process), not a child.
let probeScript = #"""
#!/bin/sh
sed -nE 's/^(Cap[A-Za-z]+|NoNewPrivs|Seccomp|Seccomp_filters|Uid|Gid|Groups|Umask):[[:space:]]*/\1=/p' /proc/$$/status | tr '\t' ' '
echo "pid=$$"
echo "hostname=$(hostname)"
echo "domainname=$(cat /proc/sys/kernel/domainname)"
echo "cwd=$(pwd)"
echo "oom_score_adj=$(cat /proc/$$/oom_score_adj)"
for f in /proc/$$/ns/*; do echo "ns.${f##*/}=$(readlink $f)"; done
tr '\0' '\n' < /proc/$$/environ | sed 's/^/env=/'
i=0; for a in "$@"; do echo "arg.$i=$a"; i=$((i+1)); done
sed 's/^/limit=/' /proc/$$/limits
sed 's/^/mountinfo=/' /proc/$$/mountinfo
sed 's/^/cgroup=/' /proc/$$/cgroup
[ -x /probe.d/extra ] && . /probe.d/extra
echo "probe=done"
"""#

/// A process that runs the probe into /tmp/probe.out, then sleeps (see `startProbe`).
let probeThenSleep = ["sh", "-c", "/probe > /tmp/probe.partial 2>&1; mv /tmp/probe.partial /tmp/probe.out; exec sleep 30"]

/// What the probe printed.
struct Observations: CustomStringConvertible {
    let lines: [(key: String, value: String)]
    init(_ text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            guard let equals = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<equals]), String(line[line.index(after: equals)...]))
        }
    }
    /// The first value of `key`.
    subscript(_ key: String) -> String? { lines.first { $0.key == key }?.value }
    /// Every value of `key`, in order.
    func all(_ key: String) -> [String] { lines.filter { $0.key == key }.map(\.value) }
    var complete: Bool { self["probe"] == "done" }
    var description: String { lines.map { "\($0.key)=\($0.value)" }.joined(separator: "\n") }

    /// The container's mount table as the probe saw it.
    var mounts: [MountInfo] { MountInfo.parse(all("mountinfo").joined(separator: "\n")) }
    /// The mount at `point` (the last one: it hides those below it).
    func mount(at point: String) -> MountInfo? { mounts.last { $0.mountPoint == point } }
    /// A mount's superblock options (the last field of its mountinfo line).
    func superOptions(at point: String) -> Set<String> {
        guard let line = all("mountinfo").last(where: { $0.split(separator: " ").dropFirst(4).first.map(String.init) == point }),
              let last = line.split(separator: " ").last else { return [] }
        return Set(last.split(separator: ",").map(String.init))
    }
    /// `(soft, hard)` of a /proc/PID/limits row such as "Max open files".
    func limit(_ name: String) -> (soft: String, hard: String)? {
        guard let row = all("limit").first(where: { $0.hasPrefix(name + " ") }) else { return nil }
        let words = row.dropFirst(name.count).split(separator: " ").map(String.init)
        return words.count >= 2 ? (words[0], words[1]) : nil
    }
    /// The environment the process was given (/proc/PID/environ).
    var environment: [String] { all("env") }
}

/// The bit mask /proc/PID/status shows (`CapEff: 00000000a80425fb`) for capability names.
func capabilityMask(_ names: [String]) -> UInt64 {
    names.reduce(0) { mask, name in mask | (1 << UInt64(Capability(name: name)!.rawValue)) }
}

/// A /proc/PID/status capability field as a mask.
func capabilityMask(hex: String?) -> UInt64? { hex.flatMap { UInt64($0, radix: 16) } }

extension TestBundle {
    /// A bundle with a root filesystem of its own at `rootfs` (writable unless the edit
    /// says otherwise): a static busybox with its applets, /probe, and the folders a
    /// container needs. The process runs /probe unless `args` says otherwise.
    init(conformance purpose: String, args: [String] = ["/probe"], edit: (inout OCIConfig) -> Void = { _ in }) throws {
        folder = try TemporaryFolder("conf-\(purpose)")
        let rootfs = folder.path + "/bundle/rootfs"
        let fm = FileManager.default
        for dir in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "probe.d", "srv"] {
            try fm.createDirectory(atPath: rootfs + "/" + dir, withIntermediateDirectories: true)
        }
        chmod(rootfs + "/tmp", 0o1777)
        try fm.copyItem(atPath: RootFilesystem.busyboxPath()!.string, toPath: rootfs + "/bin/busybox")
        for applet in busyboxApplets where applet != "busybox" {
            symlink("busybox", rootfs + "/bin/" + applet)
        }
        try probeScript.write(toFile: rootfs + "/probe", atomically: false, encoding: .utf8)
        chmod(rootfs + "/probe", 0o755)
        var config = OCIConfig.defaultSpec(args: args, cgroupNamespace: CgroupMode.detect() == .unified)
        config.root = OCIConfig.Root(path: "rootfs", readonly: false)
        config.process?.env = ["PATH=/bin", "TERM=xterm"]
        edit(&config)
        try write(config)
    }

    var rootfs: String { path + "/rootfs" }

    /// Replaces the bundle's config.json.
    func write(_ config: OCIConfig) throws {
        try Data(config.encodedJSON()).write(to: URL(fileURLWithPath: path + "/config.json"))
    }

    /// Shell lines the probe runs after its standard observations (sourced, so `$$` is
    /// still the container's process).
    func probeExtra(_ script: String) throws {
        let file = rootfs + "/probe.d/extra"
        try script.write(toFile: file, atomically: false, encoding: .utf8)
        chmod(file, 0o755)
    }

    /// `run`: create, start, wait, delete; the probe's output parsed.
    func probe(_ id: String, timeout: TimeInterval = 30) throws -> (result: RunResult, seen: Observations) {
        let result = try runtime(["run", "--bundle", path, id], timeout: timeout)
        return (result, Observations(result.stdout))
    }

    /// `create` and `start` with `probeThenSleep` as the process: waits for the probe's
    /// output, and returns it with the process's host PID (it sleeps on, for looks from outside).
    func startProbe(_ id: String) throws -> (pid: pid_t, seen: Observations) {
        let created = try runtime(["create", "--bundle", path, id])
        try #require(created.status == 0, "\(created)")
        let pid = try #require(try self.pid(id))
        let started = try runtime(["start", id])
        try #require(started.status == 0, "\(started)")
        let out = rootfs + "/tmp/probe.out"
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: out) { usleep(10_000) }
        return (pid, Observations((try? String(contentsOfFile: out, encoding: .utf8)) ?? ""))
    }

    /// Removes every container in this bundle's state root (forcibly) and the folder.
    func removeAll() {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? []
        for id in ids { _ = try? runtime(["delete", "--force", id]) }
        folder.remove()
    }

    /// The state's `pid`, as a pid_t.
    func pid(_ id: String) throws -> pid_t? {
        (try state(id)?["pid"] as? Int).map { pid_t($0) }
    }
}

/// The contents of a file the container writes, once it has a whole line (waits up to 5 s).
func awaitLine(_ path: String) -> String? {
    for _ in 0..<500 {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), text.hasSuffix("\n") { return text }
        usleep(10_000)
    }
    return try? String(contentsOfFile: path, encoding: .utf8)
}

/// The `/proc/PID/ns/KIND` link of a process (`net:[4026531840]`).
func namespaceLink(_ pid: pid_t?, _ kind: String) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid.map { "\($0)" } ?? "self")/ns/\(kind)")
}

/// `KEY:\tvalue` lines of /proc/PID/status.
func procStatus(_ pid: pid_t) -> [String: String] {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    var result: [String: String] = [:]
    for line in text.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        result[String(line[..<colon])] = line[line.index(after: colon)...].split(whereSeparator: { $0 == "\t" || $0 == " " }).joined(separator: " ")
    }
    return result
}

/// A cgroup file of the container's cgroup at `relativePath`, for `controller` (v1) or
/// the one directory (v2), trimmed; nil when absent.
func cgroupFile(_ relativePath: String, controller: String, _ file: String) -> String? {
    guard let cgroup = try? Cgroup.existing(path: relativePath), let dir = cgroup.directory(for: controller) else { return nil }
    return (try? String(contentsOfFile: dir.appending(file).string, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A cgroupsPath of the project's, unique to this test process: others may run the same
/// tests on the same machine at once.
func conformanceCgroup(_ name: String) -> String { "isolation/conformance-\(getpid())-\(name)" }

/// Whether the cgroup exists in any of this host's hierarchies.
func cgroupExists(_ relativePath: String) -> Bool {
    guard let cgroup = try? Cgroup.existing(path: relativePath) else { return false }
    return cgroup.directories.values.contains { FileManager.default.fileExists(atPath: $0.string) }
}
