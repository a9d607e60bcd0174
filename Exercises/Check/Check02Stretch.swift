// Exercise 02, stretch: a rootless container with a full sub-uid range. The exercise runs
// as an UNPRIVILEGED user, and the checker looks from outside: /proc/PID/uid_map, gid_map
// and setgroups of the container's command, its credentials as the host sees them
// (/proc/PID/status), the owner on the host of a file the container chowned to 1000:1000,
// and what is left afterwards (processes in its user namespace, mounts, /etc/subuid).
//
// Who runs it:
// - `sudo check 02 --stretch` (and CI): the user `nobody`, with a range lent for the run
//   only. In a private mount namespace of its own (unshare(1) --mount, propagation
//   private), the checker bind-mounts copies of /etc/subuid and /etc/subgid that add a
//   line for nobody over the real files, then setpriv(1) drops to nobody (with one
//   supplementary group, for the exercise to drop) and runs the exercise. newuidmap(1) and
//   newgidmap(1) run in that mount namespace too, and read the copies. The host's files
//   never change, and the namespace goes when its last process does.
// - `check 02 --stretch` as yourself: the exercise runs as you, with your real range; if
//   you have none, the checker says the usermod(8) line that gives you one.
import Glibc
import Isolation
import SystemPackage

/// The unprivileged user the exercise runs as, and how to start a program as that user.
private struct Caller {
    var name: String
    var uid: uid_t
    var gid: gid_t
    /// The supplementary groups the exercise starts with (the container must drop them).
    var groups: [gid_t]
    var subuids: (start: UInt32, count: UInt32)
    var subgids: (start: UInt32, count: UInt32)
    /// The lines the checker added to copies of /etc/subuid and /etc/subgid (root only).
    var lentRange: String?
    /// The program and arguments that run `program arguments` as this user.
    var launch: (String, [String]) -> (String, [String])
}

/// The first range in a subuid(5)-style file for `name` or `uid` with at least `size` IDs.
private func subordinateRange(_ text: String, name: String, uid: uid_t, size: UInt32) -> (start: UInt32, count: UInt32)? {
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == name || fields[0] == "\(uid)",
              let start = UInt32(fields[1]), let count = UInt32(fields[2]), count >= size else { continue }
        return (start, count)
    }
    return nil
}

/// The end of the highest range any user has in these files (at least 100000).
private func highestSubordinateID(_ texts: [String]) -> UInt64 {
    var end: UInt64 = 100_000
    for text in texts {
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count == 3, let start = UInt64(fields[1]), let count = UInt64(fields[2]) { end = max(end, start + count) }
        }
    }
    return end
}

private let rangeSize: UInt32 = 65536

private func mapText(_ map: [IDMapping]) -> String {
    map.isEmpty ? "(empty: no map written)" : map.map(\.description).joined(separator: " / ")
}

private func statusField(_ pid: pid_t, _ field: String) -> [String] {
    let status = Proc.read("/proc/\(pid)/status") ?? ""
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return [] }
    return line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
}

func checkNamespacesStretch(_ context: inout CheckContext, _ program: String) {
    let report = context.report
    do {
        let folder = try context.folder("02-stretch")
        chmod(folder.string, 0o755)
        let subuidBefore = Proc.read("/etc/subuid") ?? ""
        let subgidBefore = Proc.read("/etc/subgid") ?? ""
        let mountedOver = { ((try? MountInfo.table()) ?? []).map(\.mountPoint).filter { $0 == "/etc/subuid" || $0 == "/etc/subgid" } }
        let mountedBefore = mountedOver()

        // Who runs it, with which range.
        let caller: Caller
        var programToRun = program
        if Identity.isRoot {
            var tools: [String: String] = [:]
            for tool in ["newuidmap", "newgidmap", "unshare", "setpriv", "mount"] {
                tools[tool] = Command.find(tool)?.string
            }
            let missing = ["newuidmap", "newgidmap", "unshare", "setpriv", "mount"].filter { tools[$0] == nil }
            guard missing.isEmpty else {
                report.fail("the tools this check needs are installed", observed: "not found on PATH: " + missing.joined(separator: ", "),
                            expected: "newuidmap and newgidmap (package uidmap), unshare, setpriv and mount (util-linux)",
                            hint: "sudo apt-get install uidmap util-linux")
                return
            }
            // The copies are bind-mounted over the real files: those must exist (the
            // passwd package makes them, empty); the checker creates nothing in /etc.
            let absent = ["/etc/subuid", "/etc/subgid"].filter { !FileSystem.exists(FilePath($0)) }
            guard absent.isEmpty else {
                report.fail("/etc/subuid and /etc/subgid exist", observed: "missing: " + absent.joined(separator: ", "),
                            expected: "both files (empty is fine): the checker lays its copies over them",
                            hint: "sudo touch /etc/subuid /etc/subgid (Debian's passwd package makes them; newuidmap reads them)")
                return
            }
            guard let nobody = getpwnam("nobody") else {
                report.fail("the user nobody exists", observed: "getpwnam(\"nobody\") → none", expected: "an unprivileged user to run the exercise as",
                            hint: "run `check 02 --stretch` as yourself (without sudo): it then uses your own /etc/subuid range")
                return
            }
            let uid = nobody.pointee.pw_uid, gid = nobody.pointee.pw_gid
            // A range above every range already given, so that nothing on the host owns it,
            // and different for uids and gids, so that swapped ranges show.
            let base = (highestSubordinateID([subuidBefore, subgidBefore]) / 100_000 + 1) * 100_000
            guard base + 200_000 < UInt64(UInt32.max) else {
                report.fail("a free range for the run", observed: "the ranges in /etc/subuid and /etc/subgid reach \(base)",
                            expected: "room below 2³² for two more ranges", hint: "run `check 02 --stretch` as yourself, with your own range")
                return
            }
            let subuids = (start: UInt32(base), count: rangeSize), subgids = (start: UInt32(base + 100_000), count: rangeSize)
            let subuidCopy = folder.appending("etc-subuid"), subgidCopy = folder.appending("etc-subgid")
            let withNewline = { (text: String) in text.isEmpty || text.hasSuffix("\n") ? text : text + "\n" }
            try FileSystem.writeFile(subuidCopy, withNewline(subuidBefore) + "nobody:\(subuids.start):\(rangeSize)\n", mode: 0o644)
            try FileSystem.writeFile(subgidCopy, withNewline(subgidBefore) + "nobody:\(subgids.start):\(rangeSize)\n", mode: 0o644)
            // The built program may sit where nobody cannot reach it (a folder of root's):
            // a copy in the checker's folder (0755).
            let copy = folder.appending("exercise-02-stretch")
            let copied = try Command.run("/bin/cp", [program, copy.string])
            guard copied.status == .exited(0) else { throw IsolationError("cp \(program) \(copy): \(copied.standardError)") }
            chmod(copy.string, 0o755)
            programToRun = copy.string
            let supplementary: gid_t = 100   // "users" on Debian; any group will do
            let script = "mount --bind \"$1\" /etc/subuid && mount --bind \"$2\" /etc/subgid || exit 125; u=$3 g=$4 s=$5; shift 5; "
                + "exec setpriv --reuid=\"$u\" --regid=\"$g\" --groups=\"$s\" --inh-caps=-all -- \"$@\""
            caller = Caller(name: "nobody", uid: uid, gid: gid, groups: [supplementary], subuids: subuids, subgids: subgids,
                            lentRange: "nobody:\(subuids.start):\(rangeSize) in /etc/subuid, nobody:\(subgids.start):\(rangeSize) in /etc/subgid",
                            launch: { program, arguments in
                                (tools["unshare"]!, ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh",
                                                     subuidCopy.string, subgidCopy.string, "\(uid)", "\(gid)", "\(supplementary)", program] + arguments)
                            })
            report.note("it runs as nobody (uid \(uid), gid \(gid), supplementary group \(supplementary)), with a range lent for this run: "
                        + "copies of /etc/subuid and /etc/subgid with nobody:\(subuids.start):\(rangeSize) and nobody:\(subgids.start):\(rangeSize), "
                        + "bind-mounted in a private mount namespace only")
        } else {
            let uid = getuid(), gid = getgid()
            let name = Identity.userName(of: uid) ?? "\(uid)"
            let count = getgroups(0, nil)
            var groups = [gid_t](repeating: 0, count: Int(max(count, 0)))
            _ = getgroups(count, &groups)
            let base = highestSubordinateID([subuidBefore, subgidBefore])
            let usermod = "sudo usermod --add-subuids \(base)-\(base + UInt64(rangeSize) - 1) --add-subgids \(base)-\(base + UInt64(rangeSize) - 1) \(name)"
            let subuids = subordinateRange(subuidBefore, name: name, uid: uid, size: rangeSize)
            let subgids = subordinateRange(subgidBefore, name: name, uid: uid, size: rangeSize)
            guard report.check("you have subordinate IDs (\(rangeSize) in /etc/subuid and in /etc/subgid)", subuids != nil && subgids != nil,
                               observed: "\(name) (uid \(uid)): /etc/subuid → " + (subuids.map { "\($0.start):\($0.count)" } ?? "no range")
                                   + ", /etc/subgid → " + (subgids.map { "\($0.start):\($0.count)" } ?? "no range"),
                               expected: "a line \(name):START:COUNT (or \(uid):START:COUNT) with COUNT ≥ \(rangeSize) in each",
                               hint: "ask for a range (it changes /etc/subuid and /etc/subgid for good):\n        \(usermod)\n"
                                   + "      or let the checker lend one to the user nobody for the run only: sudo \(Identity.executablePath()) 02 --stretch --no-build"),
                  let subuids, let subgids else { return }
            caller = Caller(name: name, uid: uid, gid: gid, groups: groups.filter { $0 != gid }, subuids: subuids, subgids: subgids,
                            lentRange: nil, launch: { ($0, $1) })
            report.note("it runs as you, \(name) (uid \(uid)), with your range: /etc/subuid \(subuids.start):\(subuids.count), /etc/subgid \(subgids.start):\(subgids.count)")
        }

        // The root filesystem, and a folder in it that belongs to the caller: the
        // container's root (the caller) writes a file there and chowns it to 1000:1000.
        let rootfs = try context.rootfs(in: folder)
        let shared = rootfs.appending("isolation-check")
        try FileSystem.makeDirectories(shared)
        chmod(shared.string, 0o755)
        if Identity.isRoot { chown(shared.string, caller.uid, caller.gid) }
        let chowned = shared.appending("chowned")
        defer {
            let left = context.unmountLeftovers(under: folder)
            report.check("nothing it mounted is left on the host", left.isEmpty,
                         observed: left.isEmpty ? "no mount under \(folder) in the host's mount table" : "left mounted (now removed): " + left.joined(separator: ", "),
                         expected: "none: its mounts live and die with its mount namespace",
                         hint: "the starter makes every mount private first (Container.setUpInside)")
            let subuidAfter = Proc.read("/etc/subuid") ?? "", subgidAfter = Proc.read("/etc/subgid") ?? ""
            let mounted = mountedOver()
            report.check("the host's /etc/subuid and /etc/subgid are as they were", subuidAfter == subuidBefore && subgidAfter == subgidBefore && mounted == mountedBefore,
                         observed: (subuidAfter == subuidBefore && subgidAfter == subgidBefore ? "the same bytes as before the run" : "their content changed")
                            + (mounted == mountedBefore ? (mounted.isEmpty ? ", nothing mounted over them" : ", the same mounts over them as before")
                               : "; mounted over them now: " + mounted.joined(separator: ", ")),
                         expected: "unchanged" + (caller.lentRange == nil ? "" : ": the lent range lived only in the checker's private mount namespace"),
                         hint: "the exercise reads these files; nothing may write them")
        }

        let probe = "echo \"pid=$$\"; echo \"ids=$(id -u):$(id -g)\"; echo made-inside > /isolation-check/chowned; "
            + "echo \"chown=$(chown 1000:1000 /isolation-check/chowned 2>&1 && echo ok)\"; echo ready; read x; echo done"
        let launched = caller.launch(programToRun, ["--rootfs", rootfs.string, "--", "sh", "-c", probe])
        guard let running = startProbe(report, "02-stretch", launched.0, launched.1, environment: context.environment(), explain: explainFailure) else { return }
        defer { running.finish(timeout: 10) }
        let values = running.stdout.probeValues
        guard let shell = Proc.waitForDescendant(of: running.child.pid, named: "sh", timeout: 5) else {
            report.fail("find the probe's shell on the host", observed: "no process named sh below exercise-02-stretch (PID \(running.child.pid))",
                        expected: "the probe running as a descendant", hint: "the command must run in the container the exercise started")
            return
        }
        let userNamespace = Namespaces.identity(of: shell)["user"]
        checkNamespaceIdentity(report, pid: shell, kinds: [.user, .mount, .pid], who: "the command (host PID \(shell))") { _ in
            "the starter clones with CLONE_NEWUSER and the rest: is the exercise-02-stretch you run built from the starter?"
        }

        // The maps, as the host reads them.
        let uidMap = (try? UserNamespace.maps(of: shell).uidMap) ?? []
        let gidMap = (try? UserNamespace.maps(of: shell).gidMap) ?? []
        let wantUID = [IDMapping(inside: 0, outside: caller.uid), IDMapping(inside: 1, outside: caller.subuids.start, count: rangeSize)]
        let wantGID = [IDMapping(inside: 0, outside: caller.gid), IDMapping(inside: 1, outside: caller.subgids.start, count: rangeSize)]
        func mapHint(_ map: [IDMapping], file: String, helper: String, other: UInt32) -> String {
            if map.count == 1 {
                return "step \"id-maps\": one line is the map an unprivileged process may write itself (its own ID, nothing else). The second line, your range from \(file), only \(helper)(1) may write: it is setuid root and checks the range against \(file)"
            }
            if map.contains(where: { $0.outside == other }) {
                return "step \"id-maps\": the ranges are swapped: uid_map takes the range of /etc/subuid, gid_map the one of /etc/subgid"
            }
            return "step \"id-maps\": \(helper) PID 0 YOUR-ID 1 1 START \(rangeSize): inside-ID outside-ID count, for each line"
        }
        report.check("uid_map: 0 is \(caller.name), 1…\(rangeSize) the subordinate uids", uidMap == wantUID,
                     observed: "/proc/\(shell)/uid_map → \(mapText(uidMap))", expected: mapText(wantUID),
                     hint: mapHint(uidMap, file: "/etc/subuid", helper: "newuidmap", other: caller.subgids.start))
        report.check("gid_map: 0 is \(caller.name)'s group, 1…\(rangeSize) the subordinate gids", gidMap == wantGID,
                     observed: "/proc/\(shell)/gid_map → \(mapText(gidMap))", expected: mapText(wantGID),
                     hint: mapHint(gidMap, file: "/etc/subgid", helper: "newgidmap", other: caller.subuids.start))
        let setgroups = (Proc.read("/proc/\(shell)/setgroups") ?? "(unreadable)").trimmed
        report.check("setgroups is \"allow\": newgidmap wrote the gid map from /etc/subgid", setgroups == "allow",
                     observed: "/proc/\(shell)/setgroups → \(setgroups)", expected: "allow",
                     hint: "step \"id-maps\": \"deny\" is what a process must write before it writes a gid_map without privilege (user_namespaces(7)), and what newgidmap writes when it maps only your own gid. "
                        + "With a range from /etc/subgid newgidmap leaves \"allow\": the administrator delegated those gids. Have newgidmap write the whole map, and write nothing to setgroups yourself")

        // Who the container's processes are, inside and on the host.
        let ids = values["ids"] ?? "(nothing)"
        report.check("inside, the command is uid 0 and gid 0", ids == "0:0",
                     observed: "id -u:id -g inside → \(ids)", expected: "0:0",
                     hint: "step \"become-root\": setresgid(0, 0, 0) and setresuid(0, 0, 0); 0 must be mapped (uid_map's first line: your own ID)")
        let hostUIDs = statusField(shell, "Uid"), hostGIDs = statusField(shell, "Gid")
        report.check("on the host, the container's root is \(caller.name), not root", hostUIDs == Array(repeating: "\(caller.uid)", count: 4) && hostGIDs == Array(repeating: "\(caller.gid)", count: 4),
                     observed: "/proc/\(shell)/status Uid: \(hostUIDs.joined(separator: " ")), Gid: \(hostGIDs.joined(separator: " "))",
                     expected: "Uid: \(caller.uid) ×4, Gid: \(caller.gid) ×4 (real, effective, saved, filesystem)",
                     hint: "step \"become-root\": 0 inside is \(caller.name) outside by uid_map's first line; the IDs must all be 0 inside")
        let groups = statusField(shell, "Groups")
        report.check("it dropped the host's supplementary groups", groups.isEmpty,
                     observed: "/proc/\(shell)/status Groups: " + (groups.isEmpty ? "(none)" : groups.joined(separator: " "))
                        + (caller.groups.isEmpty ? " (the caller had none to drop)" : "; the exercise started with " + caller.groups.map(String.init).joined(separator: " ")),
                     expected: "(none)",
                     hint: "step \"become-root\": the host's groups come along into the user namespace, unmapped (65534 inside), and still count on the host's files; setgroups(2) with an empty list drops them — allowed only while /proc/PID/setgroups is \"allow\"")

        // A file chowned to 1000:1000 inside, as the host sees it.
        let chownResult = values["chown"] ?? "(nothing)"
        var info = stat()
        let owner = stat(chowned.string, &info) == 0 ? (uid: UInt32(info.st_uid), gid: UInt32(info.st_gid)) : nil
        let wantOwner = (uid: caller.subuids.start + 999, gid: caller.subgids.start + 999)
        let swapped = owner.map { $0.uid == caller.subgids.start + 999 || $0.gid == caller.subuids.start + 999 } ?? false
        report.check("a file chowned to 1000:1000 inside belongs to \(wantOwner.uid):\(wantOwner.gid) on the host",
                     chownResult == "ok" && owner?.uid == wantOwner.uid && owner?.gid == wantOwner.gid,
                     observed: "chown 1000:1000 inside → \(chownResult); stat \(chowned) → " + (owner.map { "owner \($0.uid):\($0.gid)" } ?? "no such file"),
                     expected: "ok; owner \(wantOwner.uid):\(wantOwner.gid) (subuid start + 999, subgid start + 999)",
                     hint: chownResult.contains("Invalid argument")
                        ? "step \"id-maps\": chown(2) refuses IDs that have no mapping (EINVAL): 1000 inside exists only with the second line, 1 START \(rangeSize)"
                        : swapped ? "step \"id-maps\": the ranges are swapped: uids come from /etc/subuid, gids from /etc/subgid"
                        : "step \"id-maps\": inside ID N (N ≥ 1) is START + N - 1 on the host")

        // The end: its status, and nothing left in its user namespace.
        let status = running.finish(timeout: 10)
        report.check("the exercise ends with the command's status", status == .exited(0), observed: "exercise-02-stretch \(status)", expected: "exited 0",
                     hint: "the probe ends with status 0 once the checker closes its stdin:\n" + indent(running.stderr))
        var left: [pid_t] = []
        if let userNamespace {
            for _ in 0..<50 {
                left = Proc.allPIDs().filter { Namespaces.identity(of: $0)["user"] == userNamespace }
                if left.isEmpty { break }
                usleep(100_000)
            }
        }
        report.check("no process is left in its user namespace", userNamespace != nil && left.isEmpty,
                     observed: userNamespace == nil ? "its user namespace was never read" : left.isEmpty ? "no process in user:[\(userNamespace!)]"
                        : "still there: " + left.map { "\($0) (\(Proc.comm($0)))" }.joined(separator: ", "),
                     expected: "none",
                     hint: "the container's init is PID 1 of its PID namespace: when it exits, the kernel kills the rest; the starter's parent waits for it")
    } catch {
        report.fail("set up the check", observed: "\(error)", expected: "a root filesystem copy in /tmp", hint: "run `swift run doctor`")
    }
}

/// What the exercise's error output says went wrong, when the probe never ran.
private func explainFailure(_ errors: String) -> String? {
    if errors.contains("not allowed") && (errors.contains("newuidmap") || errors.contains("newgidmap")) {
        return "step \"id-maps\": the helper refused a range: newuidmap checks each range against /etc/subuid for you, newgidmap against /etc/subgid (swapped? a count past your range?)"
    }
    if errors.contains("setgroups") && (errors.contains("not permitted") || errors.contains("EPERM")) {
        return "step \"become-root\": setgroups(2) was refused because /proc/PID/setgroups says \"deny\": written by the exercise itself, or by newgidmap for a gid map of your own gid only (step \"id-maps\"); with a range from /etc/subgid it stays \"allow\""
    }
    if errors.contains("uid_map") || errors.contains("gid_map") || errors.contains("/setgroups") {
        return "step \"id-maps\": the kernel refused a map this process wrote itself: without privilege only one line, your own ID, is allowed (user_namespaces(7)); the setuid helpers newuidmap(1) and newgidmap(1) write the rest"
    }
    if errors.contains("subuid") || errors.contains("subgid") {
        return "step \"subid-range\": subuid(5) lines are NAME:START:COUNT or UID:START:COUNT"
    }
    if errors.contains("error while loading shared libraries") || (errors.contains("Permission denied") && errors.contains("exec")) {
        return "the unprivileged user cannot run the program or its libraries: are they in folders it may enter?"
    }
    return nil
}

/// `check 02 --stretch --hint`: level 1 the API, level 2 the shape of the answer.
let namespacesStretchHints: [StepHint] = [
    StepHint(step: "subid-range",
             api: "FileSystem.readString(file) reads it; each line is split at \":\" into three fields (String.split(separator: \":\", omittingEmptySubsequences: false)), the first compared with the user name and with the uid as text, the others parsed with UInt32(_:).",
             shape: "Loop over the lines; return SubordinateRange(start:count:) of the first whose owner is user or \"\\(uid)\" and whose count is at least containerRangeSize; after the loop, throw IsolationError(…, hint: usermodSuggestion(for: user))."),
    StepHint(step: "id-maps",
             api: "Command.find(\"newuidmap\") finds the helper, Command.run(program, arguments) runs it and returns its status and stderr. The arguments: the PID, then triples inside outside count (newuidmap(1)).",
             shape: "Twice, uid then gid: run newuidmap PID 0 UID 1 1 SUBUID-START 65536 (newgidmap with GID and the subgid start), and throw with its stderr unless it exited 0. Write nothing to /proc/PID/setgroups yourself."),
    StepHint(step: "become-root",
             api: "Identity.setSupplementaryGroups(_:) is setgroups(2), Identity.setGroupIDs(real:effective:saved:) is setresgid(2), Identity.setUserIDs(real:effective:saved:) is setresuid(2).",
             shape: "Three calls, groups first (it needs CAP_SETGID, which setresuid to a non-0 ID would drop): setSupplementaryGroups([]), setGroupIDs(0, 0, 0), setUserIDs(0, 0, 0)."),
]
