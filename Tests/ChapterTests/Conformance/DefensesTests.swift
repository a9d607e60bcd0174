// What the runtime defends against, tried from outside: a container that writes its own
// cgroup limits, configs whose sysctls would reach the host, numbers that used to trap,
// a config.json that never ends, cgroup parents left behind, and a root filesystem whose
// /dev leads nowhere. Each refusal leaves nothing behind and changes no host value.
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("Conformance: what isorun defends against", .serialized,
       .enabled(if: canProbe && cgroupVersion != nil, "needs root, a static busybox and cgroups"))
struct ConformanceDefenses {
    /// Asserts that create of `id` was refused with an error that names `words`, and that
    /// no state folder and no cgroup at `cgroupPath` is left.
    func expectRefused(_ result: RunResult, _ bundle: TestBundle, _ id: String, cgroupPath: String, naming words: [String],
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.reason == .exit && result.status == 1, "an error, not a crash: \(result)", sourceLocation: sourceLocation)
        for word in words { #expect(result.stderr.contains(word), "names \(word): \(result)", sourceLocation: sourceLocation) }
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/" + id), "no state folder", sourceLocation: sourceLocation)
        #expect(!cgroupExists(cgroupPath), "no cgroup", sourceLocation: sourceLocation)
    }

    @Test("the container's cgroup files are read-only inside (pids.max, the memory limit, mkdir): EROFS, the host's limits unchanged")
    func cgroupLimitsAreReadOnly() throws {
        let path = conformanceCgroup("ro")
        let v1 = cgroupVersion == .v1
        let pidsFile = v1 ? "/sys/fs/cgroup/pids/pids.max" : "/sys/fs/cgroup/pids.max"
        let memoryFile = v1 ? "/sys/fs/cgroup/memory/memory.limit_in_bytes" : "/sys/fs/cgroup/memory.max"
        let subCgroup = v1 ? "/sys/fs/cgroup/pids/escape" : "/sys/fs/cgroup/escape"
        let script = """
        echo "pids=$( (echo max > \(pidsFile)) 2>&1 && echo written)"
        echo "memory=$( (echo -1 > \(memoryFile)) 2>&1 && echo written)"
        echo "mkdir=$(mkdir \(subCgroup) 2>&1 && echo made)"
        """
        let bundle = try TestBundle(conformance: "cgroup-ro", args: ["sh", "-c", "(\(script)) > /tmp/probe.partial; mv /tmp/probe.partial /tmp/probe.out; exec sleep 30"]) { config in
            config.linux?.cgroupsPath = "/" + path
            config.linux?.resources?.pids = OCIConfig.Pids(limit: 20)
            config.linux?.resources?.memory = OCIConfig.Memory(limit: 64 << 20)
        }
        defer { bundle.removeAll() }
        let created = try bundle.runtime(["create", "--bundle", bundle.path, "conf-ro"])
        try #require(created.status == 0, "\(created)")
        #expect(try bundle.runtime(["start", "conf-ro"]).status == 0)
        let out = bundle.rootfs + "/tmp/probe.out"
        for _ in 0..<1000 where !FileManager.default.fileExists(atPath: out) { usleep(10_000) }
        let seen = Observations((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
        for key in ["pids", "memory", "mkdir"] {
            #expect(seen[key]?.contains("Read-only file system") == true, "\(key): \(seen)")
        }
        #expect(cgroupFile(path, controller: "pids", "pids.max") == "20")
        #expect(cgroupFile(path, controller: "memory", v1 ? "memory.limit_in_bytes" : "memory.max") == "\(64 << 20)")
        let pidsDirectory = try #require(try Cgroup.existing(path: path).directory(for: "pids"))
        #expect(!FileManager.default.fileExists(atPath: pidsDirectory.string + "/escape"))
    }

    /// A sysctl the container may not set, and how the config is changed for it.
    struct RefusedSysctl: CustomTestStringConvertible, Sendable {
        var key: String
        var why: String
        var edit: @Sendable (inout OCIConfig) -> Void = { _ in }
        var testDescription: String { "\(key) (\(why))" }
        var file: String { "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/") }
    }

    static let refusedSysctls: [RefusedSysctl] = [
        RefusedSysctl(key: "vm.swappiness", why: "not namespaced"),
        RefusedSysctl(key: "kernel.msgmax", why: "no ipc namespace") { $0.linux?.namespaces?.removeAll { $0.type == .ipc } },
        RefusedSysctl(key: "net.core.somaxconn", why: "no network namespace") { $0.linux?.namespaces?.removeAll { $0.type == .network } },
        RefusedSysctl(key: "net.core.somaxconn", why: "the runtime's own network namespace, joined by path") { config in
            config.linux?.namespaces?.removeAll { $0.type == .network }
            config.linux?.namespaces?.append(.init(type: .network, path: "/proc/self/ns/net"))
        },
        RefusedSysctl(key: "kernel.hostname", why: "no uts namespace") { config in
            config.linux?.namespaces?.removeAll { $0.type == .uts }
            config.hostname = nil
        },
    ]

    @Test("linux.sysctl: only what the container's own namespaces hold; refused at create before anything is written", arguments: refusedSysctls)
    func sysctlOutsideTheContainersNamespaces(_ sysctl: RefusedSysctl) throws {
        let before = try String(contentsOfFile: sysctl.file, encoding: .utf8)
        let value = sysctl.key == "kernel.hostname" ? "isolation-sysctl" : "\((Int(before.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 1) % 100 + 1)"
        defer {
            // Should the runtime have written it anyway, the host gets its value back.
            if (try? String(contentsOfFile: sysctl.file, encoding: .utf8)) != before { try? before.write(toFile: sysctl.file, atomically: false, encoding: .utf8) }
        }
        let path = conformanceCgroup("sysctl")
        let bundle = try TestBundle(conformance: "sysctl-refused", args: ["true"]) { config in
            config.linux?.cgroupsPath = "/" + path
            config.linux?.sysctl = [sysctl.key: value]
            sysctl.edit(&config)
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-sysctl"])
        expectRefused(result, bundle, "conf-sysctl", cgroupPath: path, naming: [sysctl.key])
        #expect(try String(contentsOfFile: sysctl.file, encoding: .utf8) == before, "the host's \(sysctl.key)")
    }

    /// A change to the default spec that once made the runtime trap (or read forever).
    struct CrashInput: CustomTestStringConvertible, Sendable {
        var field: String
        var edit: @Sendable (inout OCIConfig) -> Void
        var testDescription: String { field }
    }

    static let crashInputs: [CrashInput] = [
        CrashInput(field: "process.ioPriority.priority") { $0.process?.ioPriority = .init(ioClass: .bestEffort, priority: 9_999_999_999) },
        CrashInput(field: "linux.devices[0].major") { $0.linux?.devices = [.init(type: .character, path: "/dev/x", major: -1, minor: 0)] },
        CrashInput(field: "linux.devices[0].major") { $0.linux?.devices = [.init(type: .character, path: "/dev/x", major: 4_294_967_296, minor: 0)] },
        CrashInput(field: "linux.resources.cpu.quota") { $0.linux?.resources?.cpu = .init(quota: Int64.max) },
        CrashInput(field: "linux.resources.cpu.period") { $0.linux?.resources?.cpu = .init(period: UInt64.max) },
        CrashInput(field: "linux.resources.devices[1].major") {
            $0.linux?.resources?.devices?.append(.init(allow: true, type: .character, major: -5, minor: 3, access: "rwm"))
        },
    ]

    @Test("numbers that used to trap are errors naming the field; nothing is left", arguments: crashInputs)
    func crashInputsAreRefused(_ input: CrashInput) throws {
        let path = conformanceCgroup("crash")
        let bundle = try TestBundle(conformance: "crash", args: ["true"]) { config in
            config.linux?.cgroupsPath = "/" + path
            input.edit(&config)
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-crash"])
        expectRefused(result, bundle, "conf-crash", cgroupPath: path, naming: [input.field])
    }

    @Test("a config.json that never ends (a symlink to /dev/zero) is refused at its size limit")
    func endlessConfig() throws {
        let bundle = try TestBundle(conformance: "zero", args: ["true"])
        defer { bundle.removeAll() }
        try FileManager.default.removeItem(atPath: bundle.path + "/config.json")
        try FileManager.default.createSymbolicLink(atPath: bundle.path + "/config.json", withDestinationPath: "/dev/zero")
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-zero"], timeout: 20)
        #expect(result.reason == .exit && result.status == 1, "\(result)")
        #expect(result.stderr.contains("config.json") && result.stderr.contains("MiB"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-zero"))
    }

    @Test("config-linux.md#cgroups-path: delete removes the parents create made, and keeps those that were there")
    func cgroupParentsCreateMade() throws {
        let made = conformanceCgroup("made"), kept = conformanceCgroup("kept")
        let existing = try Cgroup.create(path: kept, limits: ResourceLimits())
        existing.keep()
        defer { existing.destroy() }
        let bundle = try TestBundle(conformance: "parents", args: ["true"]) { $0.linux?.cgroupsPath = "/" + made + "/a/b/c" }
        defer {
            bundle.removeAll()
            if let left = try? Cgroup.existing(path: made) { left.destroy() }
        }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-p1"]).status == 0)
        #expect(cgroupExists(made + "/a/b/c"))
        try bundle.write({ var config = try OCIConfig.load(bundle: FilePath(bundle.path)); config.linux?.cgroupsPath = "/" + kept + "/a/b"; return config }())
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-p2"]).status == 0)
        #expect(try bundle.runtime(["delete", "--force", "conf-p1"]).status == 0)
        #expect(try bundle.runtime(["delete", "--force", "conf-p2"]).status == 0)
        for gone in [made + "/a/b/c", made + "/a/b", made + "/a", made, kept + "/a/b", kept + "/a"] {
            #expect(!cgroupExists(gone), "\(gone) was made by create")
        }
        #expect(cgroupExists(kept), "\(kept) was there before")
    }

    @Test("a root filesystem whose /dev is a symlink that a later mount hides: the error names /dev, not the mask that failed after")
    func devSymlinkHidden() throws {
        let bundle = try TestBundle(conformance: "devlink", args: ["true"])
        defer { bundle.removeAll() }
        try FileManager.default.removeItem(atPath: bundle.rootfs + "/dev")
        try FileManager.default.createSymbolicLink(atPath: bundle.rootfs + "/dev", withDestinationPath: "/sys/devices-elsewhere")
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-dev"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("/dev") && result.stderr.contains("symlink") && result.stderr.contains("/sys/devices-elsewhere"), "\(result)")
        #expect(!result.stderr.contains("mask /proc/keys"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-dev"))
    }
}
