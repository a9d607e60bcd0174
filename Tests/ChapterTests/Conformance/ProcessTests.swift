// config.md "Process", "User", "Linux Process": what the container's process runs as,
// seen by the probe inside (/proc/$$/status, limits, environ) and from outside
// (/proc/PID of the same process).
import Foundation
import Isolation
import SystemPackage
import Testing

#if arch(x86_64)
let runsOnX86_64 = true
#else
let runsOnX86_64 = false
#endif

@Suite("Conformance: config.md#process", .serialized, .enabled(if: canProbe, "needs root and a static busybox"))
struct ConformanceProcess {
    @Test("config.md#process: args, env and cwd reach execve exactly")
    func argsEnvCwd() throws {
        let env = ["PATH=/bin", "SPACED=a  b", "EMPTY=", "UNICODE=grüße"]
        let bundle = try TestBundle(conformance: "args", args: ["/probe", "one", "two  words", "", "$HOME"]) { config in
            config.process?.env = env
            config.process?.cwd = "/srv"
        }
        defer { bundle.removeAll() }
        let (result, seen) = try bundle.probe("conf-args")
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen.all("arg.0") == ["one"] && seen["arg.1"] == "two  words" && seen["arg.2"] == "" && seen["arg.3"] == "$HOME", "\(seen)")
        #expect(seen["arg.4"] == nil)
        #expect(seen.environment == env, "the environment is the config's, nothing more: \(seen.environment)")
        #expect(seen["cwd"] == "/srv")
    }

    @Test("config.md#process: args[0] without a slash is found in the PATH of process.env, not the runtime's")
    func pathLookup() throws {
        let bundle = try TestBundle(conformance: "path", args: ["only-here", "x"]) { config in
            config.process?.env = ["PATH=/srv/bin:/bin"]
        }
        defer { bundle.removeAll() }
        try FileManager.default.createDirectory(atPath: bundle.rootfs + "/srv/bin", withIntermediateDirectories: true)
        try "#!/bin/sh\necho \"found=$0 $1\"\n".write(toFile: bundle.rootfs + "/srv/bin/only-here", atomically: false, encoding: .utf8)
        chmod(bundle.rootfs + "/srv/bin/only-here", 0o755)
        let (result, seen) = try bundle.probe("conf-path")
        #expect(result.status == 0 && seen["found"] == "/srv/bin/only-here x", "\(result)")
        var other = try OCIConfig.load(bundle: FilePath(bundle.path))
        other.process?.env = ["PATH=/bin"]
        try bundle.write(other)
        let missing = try bundle.runtime(["run", "--bundle", bundle.path, "conf-path2"])
        #expect(missing.status != 0 && missing.stderr.contains("only-here"), "\(missing)")
    }

    @Test("runc exec --process (the config's process object, in a running container): user, groups, umask, cwd, env, capabilities, rlimits, no_new_privs")
    func execProcess() throws {
        let bundle = try TestBundle(conformance: "exec", args: ["sleep", "30"])
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["run", "--detach", "--bundle", bundle.path, "conf-ex"]).status == 0)
        let caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
        let process = OCIConfig.Process(
            user: OCIConfig.User(uid: 1500, gid: 1600, umask: 0o077, additionalGids: [1700]),
            args: ["/probe"], env: ["PATH=/bin", "EXEC_ONLY=yes"], cwd: "/srv",
            capabilities: OCIConfig.Capabilities(bounding: caps, effective: caps, inheritable: caps, permitted: caps, ambient: caps),
            rlimits: [OCIConfig.Rlimit(type: .openFiles, hard: 400, soft: 200)], noNewPrivileges: true)
        let file = bundle.folder.path + "/process.json"
        var json = OCIConfig.defaultSpec()
        json.process = process
        // The process object alone, as engines write it.
        let whole = try JSONSerialization.jsonObject(with: Data(json.encodedJSON())) as! [String: Any]
        try JSONSerialization.data(withJSONObject: whole["process"]!).write(to: URL(fileURLWithPath: file))
        let result = try bundle.runtime(["exec", "--process", file, "conf-ex"])
        let seen = Observations(result.stdout)
        #expect(result.status == 0 && seen.complete, "\(result)")
        #expect(seen["Uid"] == "1500 1500 1500 1500" && seen["Gid"] == "1600 1600 1600 1600" && seen["Groups"]?.split(separator: " ") == ["1700"], "\(seen)")
        #expect(seen["Umask"] == "0077" && seen["cwd"] == "/srv" && seen.environment == ["PATH=/bin", "EXEC_ONLY=yes"], "\(seen)")
        for set in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
            #expect(capabilityMask(hex: seen[set]) == capabilityMask(caps), "\(set): \(seen)")
        }
        #expect(seen.limit("Max open files").map { [$0.soft, $0.hard] } == ["200", "400"])
        #expect(seen["NoNewPrivs"] == "1")
        // In the container's namespaces: the same as its init's.
        let initPID = try #require(try bundle.pid("conf-ex"))
        for kind in ["pid", "net", "ipc", "uts", "mnt"] {
            #expect(seen["ns.\(kind)"] == namespaceLink(initPID, kind), "\(kind)")
        }
    }

    @Test("config.md#user: uid, gid, additionalGids and umask, inside and from outside")
    func user() throws {
        let bundle = try TestBundle(conformance: "user", args: probeThenSleep) { config in
            config.process?.user = OCIConfig.User(uid: 1234, gid: 2345, umask: 0o027, additionalGids: [3456, 4567])
        }
        defer { bundle.removeAll() }
        let (pid, seen) = try bundle.startProbe("conf-user")
        #expect(seen.complete, "\(seen)")
        #expect(seen["Uid"] == "1234 1234 1234 1234" && seen["Gid"] == "2345 2345 2345 2345", "\(seen)")
        #expect(seen["Groups"].map { Set($0.split(separator: " ")) } == ["3456", "4567"], "\(seen)")
        #expect(seen["Umask"] == "0027", "\(seen)")
        let outside = procStatus(pid)
        #expect(outside["Uid"] == "1234 1234 1234 1234" && outside["Gid"] == "2345 2345 2345 2345", "\(outside)")
        #expect(outside["Umask"] == "0027")
        // The probe's files carry the process's identity and umask.
        let attributes = try FileManager.default.attributesOfItem(atPath: bundle.rootfs + "/tmp/probe.out")
        #expect(attributes[.ownerAccountID] as? Int == 1234 && attributes[.groupOwnerAccountID] as? Int == 2345)
        #expect(attributes[.posixPermissions] as? Int == 0o640, "0666 & ~0027")
    }

    @Test("config.md#linux-process: capabilities — bounding, effective, permitted, inheritable, ambient — as configured, and as execve makes them for a non-root user")
    func capabilities() throws {
        let caps = OCIConfig.Capabilities(
            bounding: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SYS_TIME"],
            effective: ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            inheritable: ["CAP_NET_BIND_SERVICE", "CAP_SETUID"],
            permitted: ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
            ambient: ["CAP_NET_BIND_SERVICE"])
        let bundle = try TestBundle(conformance: "caps", args: probeThenSleep) { config in
            config.process?.user = OCIConfig.User(uid: 1000, gid: 1000)
            config.process?.capabilities = caps
            config.process?.noNewPrivileges = false
        }
        defer { bundle.removeAll() }
        // Created: the init has taken the process's identity but not exec'd, so its sets are the config's.
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-caps"]).status == 0)
        let initPID = try #require(try bundle.pid("conf-caps"))
        let before = procStatus(initPID)
        #expect(capabilityMask(hex: before["CapBnd"]) == capabilityMask(caps.bounding!), "\(before)")
        #expect(capabilityMask(hex: before["CapEff"]) == capabilityMask(caps.effective!), "\(before)")
        #expect(capabilityMask(hex: before["CapPrm"]) == capabilityMask(caps.permitted!), "\(before)")
        #expect(capabilityMask(hex: before["CapInh"]) == capabilityMask(caps.inheritable!), "\(before)")
        #expect(capabilityMask(hex: before["CapAmb"]) == capabilityMask(caps.ambient!), "\(before)")
        #expect(try bundle.runtime(["delete", "--force", "conf-caps"]).status == 0)

        // After execve as uid 1000 (capabilities(7)): permitted and effective are the
        // ambient set; bounding and inheritable stay.
        let (pid, seen) = try bundle.startProbe("conf-caps2")
        #expect(seen.complete, "\(seen)")
        for (set, names) in [("CapBnd", caps.bounding!), ("CapInh", caps.inheritable!), ("CapAmb", caps.ambient!),
                             ("CapPrm", caps.ambient!), ("CapEff", caps.ambient!)] {
            #expect(capabilityMask(hex: seen[set]) == capabilityMask(names), "\(set) inside: \(seen)")
            #expect(capabilityMask(hex: procStatus(pid)[set]) == capabilityMask(names), "\(set) from outside")
        }
        #expect(seen["NoNewPrivs"] == "0" && procStatus(pid)["NoNewPrivs"] == "0", "noNewPrivileges false, inside and out")
    }

    @Test("config.md#linux-process: root's capabilities after execve are the bounding set's, no more")
    func rootCapabilities() throws {
        let bounding = ["CAP_AUDIT_WRITE", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
        let bundle = try TestBundle(conformance: "rootcaps", args: ["/probe"]) { config in
            config.process?.capabilities = OCIConfig.Capabilities(bounding: bounding, effective: bounding, permitted: bounding)
        }
        defer { bundle.removeAll() }
        let (result, seen) = try bundle.probe("conf-rootcaps")
        #expect(result.status == 0 && seen.complete, "\(result)")
        for set in ["CapBnd", "CapEff", "CapPrm"] {
            #expect(capabilityMask(hex: seen[set]) == capabilityMask(bounding), "\(set): \(seen)")
        }
        #expect(capabilityMask(hex: seen["CapInh"]) == 0 && capabilityMask(hex: seen["CapAmb"]) == 0)
        #expect(seen["NoNewPrivs"] == "1")
    }

    @Test("config.md#posix-process: rlimits, each soft and hard value, inside and from outside")
    func rlimits() throws {
        var own = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &own)
        let coreHard = min(UInt64(own.rlim_max), 1 << 20)
        let limits = [
            OCIConfig.Rlimit(type: .openFiles, hard: 700, soft: 333),
            OCIConfig.Rlimit(type: .core, hard: coreHard, soft: coreHard / 2),
            OCIConfig.Rlimit(type: .messageQueue, hard: 8192, soft: 4096),
        ]
        let bundle = try TestBundle(conformance: "rlimits", args: probeThenSleep) { $0.process?.rlimits = limits }
        defer { bundle.removeAll() }
        let (pid, seen) = try bundle.startProbe("conf-rl")
        #expect(seen.complete, "\(seen)")
        let outside = Observations(((try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)) ?? "")
            .split(separator: "\n").map { "limit=" + $0 }.joined(separator: "\n"))
        for (row, limit) in zip(["Max open files", "Max core file size", "Max msgqueue size"], limits) {
            #expect(seen.limit(row)?.soft == "\(limit.soft)" && seen.limit(row)?.hard == "\(limit.hard)", "\(row): \(seen.all("limit"))")
            #expect(outside.limit(row)?.soft == "\(limit.soft)" && outside.limit(row)?.hard == "\(limit.hard)", "\(row) from outside")
        }
    }

    @Test("config.md#posix-process: rlimits with the same type twice are an error")
    func duplicateRlimits() throws {
        let bundle = try TestBundle(conformance: "rlimits-dup", args: ["true"]) { config in
            config.process?.rlimits = [OCIConfig.Rlimit(type: .openFiles, hard: 700, soft: 333), OCIConfig.Rlimit(type: .openFiles, hard: 500, soft: 100)]
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-rd"])
        #expect(result.status != 0 && result.stderr.contains("RLIMIT_NOFILE"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-rd"))
    }

    /// Lowering oom_score_adj below 0 needs CAP_SYS_RESOURCE, which this machine's root may lack.
    static let scores = [777] + (capabilityMask(hex: procStatus(getpid())["CapEff"]).map { $0 & (1 << 24) != 0 } == true ? [-500] : [])

    @Test("config.md#linux-process: oomScoreAdj, inside and from outside", arguments: scores)
    func oomScoreAdj(_ score: Int) throws {
        let bundle = try TestBundle(conformance: "oom", args: probeThenSleep) { $0.process?.oomScoreAdj = score }
        defer { bundle.removeAll() }
        let (pid, seen) = try bundle.startProbe("conf-oom")
        #expect(seen["oom_score_adj"] == "\(score)", "\(seen)")
        #expect(try String(contentsOfFile: "/proc/\(pid)/oom_score_adj", encoding: .utf8) == "\(score)\n")
    }

    @Test("config.md#linux-process: scheduler policy and nice, inside (/proc/$$/stat) and from outside", arguments: [
        (OCIConfig.SchedulerPolicy.batch, 7, 3), (.idle, nil, 5),
    ] as [(OCIConfig.SchedulerPolicy, Int32?, Int)])
    func scheduler(_ policy: OCIConfig.SchedulerPolicy, _ nice: Int32?, _ number: Int) throws {
        let bundle = try TestBundle(conformance: "sched", args: probeThenSleep) { config in
            config.process?.scheduler = OCIConfig.Scheduler(policy: policy, nice: nice)
        }
        defer { bundle.removeAll() }
        // stat(5): field 19 is nice, 41 the policy. (SCHED_IDLE has no nice.)
        try bundle.probeExtra("echo \"sched=$(cut -d' ' -f19,41 /proc/$$/stat)\"\n")
        let (pid, seen) = try bundle.startProbe("conf-sched")
        #expect(seen["sched"] == "\(nice ?? 0) \(number)", "\(seen)")
        let outside = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8).split(separator: " ")
        #expect(outside.count > 40 && outside[18] == "\(nice ?? 0)" && outside[40] == "\(number)", "\(outside)")
    }

    @Test("config.md#linux-process: ioPriority class and level, as ionice sees them inside", arguments: [
        (OCIConfig.IOPriorityClass.bestEffort, 6, "best-effort: prio 6"), (.idle, 0, "idle"),
    ])
    func ioPriority(_ ioClass: OCIConfig.IOPriorityClass, _ level: Int, _ expected: String) throws {
        let bundle = try TestBundle(conformance: "ioprio", args: ["/probe"]) { config in
            config.process?.ioPriority = OCIConfig.IOPriority(ioClass: ioClass, priority: level)
        }
        defer { bundle.removeAll() }
        try bundle.probeExtra("echo \"ionice=$(ionice -p $$)\"\n")
        let (result, seen) = try bundle.probe("conf-ioprio")
        #expect(result.status == 0 && seen["ionice"] == expected, "\(result)")
    }

    @Test("config-linux.md#personality: LINUX32 makes uname report a 32-bit machine; flags are refused",
          .enabled(if: runsOnX86_64, "the 32-bit personality is checked on x86_64"))
    func personality() throws {
        let bundle = try TestBundle(conformance: "persona", args: ["/probe"]) { config in
            config.linux?.personality = OCIConfig.Personality(domain: .linux32)
        }
        defer { bundle.removeAll() }
        try bundle.probeExtra("echo \"machine=$(uname -m)\"; echo \"persona=$(cat /proc/$$/personality)\"\n")
        let (result, seen) = try bundle.probe("conf-persona")
        #expect(result.status == 0 && seen["machine"] == "i686" && seen["persona"] == "00000008", "\(result)")
        var flagged = try OCIConfig.load(bundle: FilePath(bundle.path))
        flagged.linux?.personality = OCIConfig.Personality(domain: .linux, flags: ["SOME_FLAG"])
        try bundle.write(flagged)
        let refused = try bundle.runtime(["run", "--bundle", bundle.path, "conf-persona2"])
        #expect(refused.status != 0 && refused.stderr.contains("personality"), "\(refused)")
    }
}
