// config.md "POSIX-platform Hooks" and runtime.md "Lifecycle": where each hook runs
// (the runtime's namespaces or the container's), what it gets (path, args, env, the state
// on stdin), and what its failure does.
import Foundation
import Isolation
import SystemPackage
import Testing

@Suite("Conformance: config.md#posix-platform-hooks", .serialized,
       .enabled(if: canProbe, "needs root and a static busybox"))
struct ConformanceHooks {
    /// A hook on the host that appends `STAGE mnt=… uts=… state=<stdin>` to `log`.
    static func hostHook(_ stage: String, log: String) -> OCIConfig.Hook {
        OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c",
            "read -r state; echo \"\(stage) mnt=$(readlink /proc/self/ns/mnt) uts=$(readlink /proc/self/ns/uts) state=$state\" >> \(log)"])
    }

    @Test("config.md#posix-platform-hooks: prestart, createRuntime, poststart, poststop in the runtime's namespaces; createContainer, startContainer in the container's; each with the state on stdin")
    func namespacesAndState() throws {
        let folder = try TemporaryFolder("conf-hooks-log")
        defer { folder.remove() }
        let log = folder.path + "/hooks.log"
        let bundle = try TestBundle(conformance: "hooks-ns", args: ["sh", "-c", "echo process >> /srv/order; sleep 0.5"]) { config in
            // (The process outlives start: poststart's state is then surely "running".)
            config.annotations = ["org.example.hook": "seen"]
            config.hooks = OCIConfig.Hooks(
                prestart: [Self.hostHook("prestart", log: log)],
                createRuntime: [Self.hostHook("createRuntime", log: log)],
                createContainer: [Self.hostHook("createContainer", log: log)],
                // After pivot_root: its path and the file it writes are the container's.
                startContainer: [OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c",
                    "read -r state; echo \"startContainer mnt=$(readlink /proc/self/ns/mnt) uts=$(readlink /proc/self/ns/uts) state=$state\" >> /srv/order"])],
                poststart: [Self.hostHook("poststart", log: log)],
                poststop: [Self.hostHook("poststop", log: log)])
        }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-hk"]).status == 0)
        let pid = try #require(try bundle.pid("conf-hk"))
        let containerMnt = try #require(namespaceLink(pid, "mnt")), containerUTS = try #require(namespaceLink(pid, "uts"))
        #expect(try bundle.runtime(["start", "conf-hk"]).status == 0)
        #expect(try bundle.waitFor("conf-hk", "stopped"))
        #expect(try bundle.runtime(["delete", "conf-hk"]).status == 0)

        var lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        let inside = try String(contentsOfFile: bundle.rootfs + "/srv/order", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(inside.count == 2 && inside.first?.hasPrefix("startContainer ") == true && inside.last == "process",
                "startContainer runs before the process: \(inside)")
        lines.insert(contentsOf: inside.filter { $0.hasPrefix("startContainer") }, at: min(3, lines.count))
        let stages = lines.map { String($0.split(separator: " ")[0]) }
        #expect(stages == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"], "\(lines)")
        for line in lines {
            let fields = Dictionary(line.split(separator: " ").dropFirst().compactMap { word -> (String, String)? in
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                return parts.count == 2 ? (parts[0], parts[1]) : nil
            }, uniquingKeysWith: { a, _ in a })
            let stage = String(line.split(separator: " ")[0])
            let inContainer = stage == "createContainer" || stage == "startContainer"
            #expect(fields["mnt"] == (inContainer ? containerMnt : namespaceLink(nil, "mnt")), "\(stage) in the wrong mount namespace: \(line)")
            #expect(fields["uts"] == (inContainer ? containerUTS : namespaceLink(nil, "uts")), "\(stage) in the wrong UTS namespace: \(line)")
            // The state: the whole JSON after "state=".
            let json = try #require(line.range(of: "state=").map { String(line[$0.upperBound...]) })
            let state = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(stage): \(json)")
            #expect(state["id"] as? String == "conf-hk" && state["bundle"] as? String == bundle.path, "\(stage): \(state)")
            #expect(state["ociVersion"] as? String != nil)
            #expect(state["annotations"] as? [String: String] == ["org.example.hook": "seen"], "\(stage): \(state)")
            // prestart is deprecated; it once ran at start, and the OCI's validation suite
            // (hooks_stdin) and crun still give it `created`. The hooks that replaced it
            // see the truth, `creating`.
            let expectedStatus = ["prestart": "created", "createRuntime": "creating", "createContainer": "creating",
                                  "startContainer": "created", "poststart": "running", "poststop": "stopped"][stage]
            #expect(state["status"] as? String == expectedStatus, "\(stage): \(state)")
            if stage != "poststop" { #expect(state["pid"] as? Int == Int(pid), "\(stage): the host's PID of the container: \(state)") }
        }
    }

    @Test("runtime.md#state: createContainer and startContainer hooks get the container's PID as the runtime sees it, also with no runtime hooks")
    func containerHooksPID() throws {
        let folder = try TemporaryFolder("conf-hooks-pid")
        defer { folder.remove() }
        let log = folder.path + "/pid.log"
        let bundle = try TestBundle(conformance: "hooks-pid", args: ["true"]) { config in
            config.hooks = OCIConfig.Hooks(
                createContainer: [OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "read -r state; echo \"$state\" > \(log)"])],
                startContainer: [OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "read -r state; echo \"$state\" > /srv/start-state"])])
        }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-hpid"]).status == 0)
        let pid = try #require(try bundle.pid("conf-hpid"))
        #expect(try bundle.runtime(["start", "conf-hpid"]).status == 0)
        #expect(try bundle.waitFor("conf-hpid", "stopped"))
        for file in [log, bundle.rootfs + "/srv/start-state"] {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let state = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
            #expect(state["pid"] as? Int == Int(pid), "\(file): \(state)")
        }
    }

    @Test("config.md#posix-platform-hooks: path, args and env are used as given (args[0] too, env only the hook's)")
    func argsAndEnv() throws {
        let folder = try TemporaryFolder("conf-hooks-args")
        defer { folder.remove() }
        let log = folder.path + "/args.log"
        let hook = OCIConfig.Hook(path: "/bin/sh", args: ["zeroth", "-c", "echo \"$(tr '\\0' '\\n' < /proc/$$/cmdline | head -1)|$0|$1|$(env | grep -v '^PWD=\\|^SHLVL=\\|^_=' | sort | tr '\\n' ' ')\" > \(log)", "one", "two words"],
                                  env: ["HOOK_A=a", "HOOK_B=b c", "PATH=/usr/bin:/bin"])
        let bundle = try TestBundle(conformance: "hooks-args", args: ["true"]) { $0.hooks = OCIConfig.Hooks(createRuntime: [hook]) }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-ha"]).status == 0)
        let seen = try String(contentsOfFile: log, encoding: .utf8)
        #expect(seen == "zeroth|one|two words|HOOK_A=a HOOK_B=b c PATH=/usr/bin:/bin \n", "\(seen)")
    }

    @Test("config.md#posix-platform-hooks: a failing prestart, createRuntime or createContainer hook fails create; nothing is left and the process never runs",
          arguments: ["prestart", "createRuntime", "createContainer"])
    func failingCreateHook(_ stage: String) throws {
        let failing = OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "exit 7"])
        let bundle = try TestBundle(conformance: "hooks-fail", args: ["sh", "-c", "echo ran > /srv/ran"]) { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("hook-fail")
            switch stage {
            case "prestart": config.hooks = OCIConfig.Hooks(prestart: [failing])
            case "createRuntime": config.hooks = OCIConfig.Hooks(createRuntime: [failing])
            default: config.hooks = OCIConfig.Hooks(createContainer: [failing])
            }
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["create", "--bundle", bundle.path, "conf-hf"])
        #expect(result.status != 0 && result.stderr.contains("hooks.\(stage)[0]"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-hf"))
        #expect(!cgroupExists(conformanceCgroup("hook-fail")))
        #expect(mounts(under: bundle.folder.path).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: bundle.rootfs + "/srv/ran"))
    }

    @Test("runtime.md#lifecycle: a failing startContainer hook is an error, the process does not run and the container stops")
    func failingStartContainer() throws {
        let bundle = try TestBundle(conformance: "hooks-start", args: ["sh", "-c", "echo ran > /srv/ran"]) { config in
            config.hooks = OCIConfig.Hooks(startContainer: [OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "exit 3"])])
        }
        defer { bundle.removeAll() }
        let result = try bundle.runtime(["run", "--bundle", bundle.path, "conf-hs"])
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("startContainer"), "the error names the hook: \(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.rootfs + "/srv/ran"), "the process ran despite its failed startContainer hook")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-hs"))
    }

    @Test("config.md#posix-platform-hooks: a failing poststop hook only warns; delete still deletes, and later hooks still run")
    func failingPoststop() throws {
        let folder = try TemporaryFolder("conf-hooks-poststop")
        defer { folder.remove() }
        let bundle = try TestBundle(conformance: "hooks-poststop", args: ["true"]) { config in
            config.linux?.cgroupsPath = "/" + conformanceCgroup("poststop")
            config.hooks = OCIConfig.Hooks(poststop: [
                OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "exit 9"]),
                OCIConfig.Hook(path: "/bin/sh", args: ["sh", "-c", "touch \(folder.path)/second-ran"]),
            ])
        }
        defer { bundle.removeAll() }
        #expect(try bundle.runtime(["create", "--bundle", bundle.path, "conf-hp"]).status == 0)
        #expect(try bundle.runtime(["start", "conf-hp"]).status == 0)
        #expect(try bundle.waitFor("conf-hp", "stopped"))
        let result = try bundle.runtime(["delete", "conf-hp"])
        #expect(result.status == 0 && result.stderr.contains("warning") && result.stderr.contains("poststop"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: bundle.stateRoot + "/conf-hp"))
        #expect(!cgroupExists(conformanceCgroup("poststop")))
        #expect(FileManager.default.fileExists(atPath: folder.path + "/second-ran"), "the hook after the failed one must still run")
    }
}
