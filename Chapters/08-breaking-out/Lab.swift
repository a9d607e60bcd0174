// The lab: a folder of the host with the container's root filesystem, a shared folder,
// and the marker the escapes try to reach (a file holding a token only the host knows).
// Nothing of the host's own is a target: the escapes aim at what we made.
import Glibc
import Isolation
import SystemPackage

struct Lab {
    let folder: FilePath
    /// Written into the marker file: an escape that prints it has read the host's file.
    let token: String
    /// The payload of the key the keyring escape looks for (another secret than `token`).
    let keyToken: String
    /// The key's description: root's user keyring holds it during the keyring attempts only.
    var keyDescription: String { "isolation-breakout-\(getpid())" }
    var rootfs: FilePath { folder.appending("rootfs") }
    /// The folder rungs 2 to 6 share as /shared; rung 1's /shared is in its root.
    var shared: FilePath { folder.appending("shared") }
    var marker: FilePath { folder.appending("host/marker.txt") }
    /// The folder the container sees as /shared: the escapes write their verdict there
    /// (gVisor keeps what its sandbox writes to the root filesystem in memory).
    func sharedOnHost(_ column: Column) -> FilePath { column.isChroot ? rootfs.appending("shared") : shared }
    /// Set when an attempt left the host different (the lesson says so; the tests fail).
    private(set) var hostChanges: [String] = []

    /// Makes the folder, the marker, and the root filesystem: empty folders and the
    /// escapes, compiled static (the container needs no library at all).
    static func make() throws -> Lab {
        let compiler = try inStage("finding a C compiler") {
            guard let found = ["cc", "gcc", "clang"].lazy.compactMap({ Command.find($0) }).first else {
                throw IsolationError("no C compiler (cc, gcc or clang) on PATH: the escapes are C programs",
                                     hint: "sudo apt-get install -y gcc libc6-dev")
            }
            return found
        }
        let source = FilePath(#filePath).removingLastComponent().appending("escapes.c")
        guard FileSystem.exists(source) else {
            throw IsolationError("the escapes' source \(source) is missing", hint: "run chapter-08 from the project's own build")
        }
        let folder = try FileSystem.makeTemporaryDirectory(purpose: "breakout")
        var token = "", keyToken = ""
        do {
            chmod(folder.string, 0o755)
            let random = try FileDescriptor.open("/dev/urandom", .readOnly)
            var bytes = [UInt8](repeating: 0, count: 16)
            _ = try random.closeAfter { try bytes.withUnsafeMutableBytes { try random.read(into: $0) } }
            token = "isolation-token-" + bytes.prefix(8).map { String($0, radix: 16).leftPadded(2) }.joined()
            keyToken = "isolation-key-" + bytes.suffix(8).map { String($0, radix: 16).leftPadded(2) }.joined()
            let lab = Lab(folder: folder, token: token, keyToken: keyToken)
            try inStage("making the lab in \(folder)") {
                for name in ["host", "rootfs"] { try FileSystem.makeDirectory(folder.appending(name)) }
                try FileSystem.writeFile(lab.marker, token + "\n", mode: 0o644)
                for name in ["proc", "dev", "sys", "tmp", "shared"] { try FileSystem.makeDirectory(lab.rootfs.appending(name)) }
            }
            for open in [lab.rootfs.appending("tmp"), lab.rootfs.appending("shared")] { chmod(open.string, 0o1777) }
            try FileSystem.makeDirectory(lab.shared)
            chmod(lab.shared.string, 0o1777)
            let built = try Command.run(compiler, ["-static", "-O1", "-o", lab.rootfs.appending("escape").string, source.string])
            guard built.status == .exited(0) else {
                throw IsolationError("\(compiler) -static \(source) failed: \(built.standardError)",
                                     hint: "static linking needs libc.a: sudo apt-get install -y libc6-dev")
            }
            return lab
        } catch {
            try? FileSystem.removeTree(folder)
            throw error
        }
    }

    func remove() {
        for mount in mountsUnderFolder() { umount2(mount, Int32(MNT_DETACH)) }
        try? FileSystem.removeTree(folder)
    }

    // MARK: What each escape is given

    /// The arguments of `escape` (after its name), or why it cannot be tried here.
    func arguments(_ escape: Escape, markerPID: pid_t?) -> Result<[String], NotHere> {
        switch escape {
        case .chroot: return .success([marker.string])
        case .disk: return diskArguments()
        case .shocker:
            let handle = try? Command.run(rootfs.appending("escape"), ["--handle", marker.string])
            let words = handle?.standardOutput.split(separator: " ").map { String($0).trimmed } ?? []
            guard handle?.status == .exited(0), words.count == 2 else { return .failure(NotHere("no file handle for \(marker)")) }
            return .success(words)
        case .sysrq:
            return FileSystem.exists("/proc/sysrq-trigger") ? .success([]) : .failure(NotHere("this kernel has no /proc/sysrq-trigger"))
        case .kcore: return FileSystem.exists("/proc/kcore") ? .success([]) : .failure(NotHere("this kernel has no /proc/kcore"))
        case .devMem:
            return hostMemory().map { _ in [Lab.memoryOffset] }
        case .keyring: return .success([keyDescription])
        case .module: return FileSystem.exists("/proc/modules") ? .success([]) : .failure(NotHere("this kernel loads no modules"))
        case .firmware:
            return FileSystem.exists(Lab.firmwareFile) ? .success([Lab.firmwareFile.string]) : .failure(NotHere("this machine has no \(Lab.firmwareFile)"))
        case .signal, .ptrace: return .success(["\(markerPID ?? 0)"])
        case .rawSocket:
            let interfaces = ((try? FileSystem.contentsOfDirectory("/sys/class/net")) ?? []).filter { $0 != "lo" }.sorted()
            guard let first = interfaces.first else { return .failure(NotHere("the host has no interface but lo")) }
            return .success([first])
        case .setuid: return .success(["/shared"])
        case .mountRace: return .success(["/shared", raceTarget.string])
        case .corePattern, .clock, .nested: return .success([])
        case .runtimeExe: return .success([])  // attackRuntime(in:id:) finds its runtime
        }
    }

    // MARK: The runtime under attack (CVE-2019-5736)

    /// The runtime whose `exec` enters the container: chapter 08 itself for rung 1 (its
    /// chroot-run is chapter 01's jail), chapter 04's `isorun`, built next to it, for the
    /// containers, gVisor's runsc for rung 7. The escape aims at a copy of it in the lab.
    func runtimeOriginal(column: Column?) -> Result<FilePath, NotHere> {
        guard let me = try? FileSystem.readLink("/proc/self/exe") else { return .failure(NotHere("cannot read /proc/self/exe")) }
        if column?.isChroot == true { return .success(me) }
        if column?.rung == .anotherKernel {
            return Rung.runsc.map { .success($0) } ?? .failure(NotHere("runsc is not installed"))
        }
        let isorun = me.removingLastComponent().appending("isorun")
        return FileSystem.exists(isorun) ? .success(isorun) : .failure(NotHere("no isorun next to \(me) (swift build builds it)"))
    }

    /// Runs the lab's copy of the runtime with its output in a file: `create` leaves the
    /// container's init holding the output it was given, so a pipe would never end.
    func runRuntime(_ copy: FilePath, _ arguments: [String]) throws -> (ok: Bool, output: String) {
        let log = folder.appending("host/runtime.log")
        let output = try FileDescriptor.open(log, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: [.ownerReadWrite])
        defer { try? output.close() }
        var options = SpawnOptions()
        options.standardOutput = output
        options.standardError = output
        options.parentDeathSignal = SIGKILL
        let child = try ChildProcess.spawn(copy, arguments: ["runtime"] + arguments, environment: Command.defaultEnvironment, options: options)
        let status = try child.wait()
        return (status == .exited(0), (try? FileSystem.readString(log)) ?? "")
    }

    /// CVE-2019-5736 needs the runtime to come into the container: the container's
    /// process is the attacker, and the host runs `exec` into it ten times, as an engine's
    /// health checks would, from a copy of the runtime in the lab. Then the host looks at
    /// its copy: whatever the escape says, only a changed file is ESCAPED.
    func attackRuntime(in column: Column, id: String) throws -> Outcome {
        let original: FilePath
        switch runtimeOriginal(column: column) {
        case .failure(let notHere): return Outcome(kind: .notApplicable, cell: "n/a", detail: notHere.reason)
        case .success(let found): original = found
        }
        let copy = folder.appending("host/runtime")
        try inStage("copying \(original) to \(copy)") { try FileSystem.copyFile(from: original, to: copy) }
        defer { unlink(copy.string) }
        var before = stat()
        guard stat(copy.string, &before) == 0 else { throw IsolationError("cannot stat \(copy)") }
        let shared = sharedOnHost(column)
        let attacker = ["/escape", "/shared/verdict", Escape.runtimeExe.rawValue, "\(before.st_dev)", "\(before.st_ino)",
                        "/shared/ready", "/shared/done"]
        let state = folder.appending("runtime-state").string
        let runsc = ["--root", state, "--platform=ptrace", "--network=none"]
        // The runtime's command line for each column: how to run the attacker, how to exec.
        var started: ChildProcess? = nil
        var stop: () -> Void = {}
        let exec: [String]
        if column.isChroot {
            // The jail's /proc, as for every other escape at rung 1 (see attempt).
            let proc = rootfs.appending("proc")
            try inStage("mounting proc on \(proc)") {
                try Mount.mount(source: "proc", target: proc, type: "proc", flags: [.noSetuid, .noDevices, .noExec])
            }
            stop = { umount2(proc.string, Int32(MNT_DETACH)) }
            started = try ChildProcess.spawn("/proc/self/exe", arguments: ["chapter-08", "chroot-run", "--rootfs", rootfs.string] + attacker,
                                             environment: ["PATH=/"],
                                             options: { var o = SpawnOptions(); o.parentDeathSignal = SIGKILL; return o }())
            exec = ["chroot-run", "--rootfs", rootfs.string, "/escape", "--true"]
        } else {
            guard var config = column.config(args: attacker, rootfs: rootfs, shared: shared) else { throw IsolationError("no config for \(column.name)") }
            let bundle = folder.appending("bundle")
            try FileSystem.makeDirectory(bundle)
            let global = column.rung == .anotherKernel ? runsc : ["--root", state]
            if column.rung == .anotherKernel { config.linux?.cgroupsPath = "/\(projectPrefix)/\(id)" }
            try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
            stop = { [self] in
                _ = try? runRuntime(copy, global + ["kill", id, "KILL"])
                _ = try? runRuntime(copy, global + ["delete", "--force", id])
            }
            for step in [["create", "--bundle", bundle.string, id], ["start", id]] {
                let result = try runRuntime(copy, global + step)
                guard result.ok else {
                    stop()
                    throw IsolationError("\(original.lastComponent?.string ?? "runtime") \(step[0]) failed: \(result.output.trimmed)")
                }
            }
            exec = global + ["exec", id, "/escape", "--true"]
        }
        defer {
            if let started { _ = try? started.signal(SIGKILL); _ = try? started.wait() }
            stop()
        }
        let verdict = shared.appending("verdict")
        func said(_ file: FilePath) -> Bool { FileSystem.exists(file) }
        func decided() -> Bool { !(((try? FileSystem.readString(verdict)) ?? "").trimmed.isEmpty) }
        for _ in 0..<500 where !said(shared.appending("ready")) { usleep(10_000) }
        guard said(shared.appending("ready")) else {
            return Outcome(kind: .unclear, cell: "?", detail: "the attacker never said it was ready")
        }
        // (An exec may fail once the attacker has decided and its container has ended.)
        var refused = "", cameIn = false
        for _ in 0..<10 where !decided() {
            let result = try runRuntime(copy, exec)
            if result.ok { cameIn = true } else { refused = result.output.trimmed }
        }
        try FileSystem.writeFile(shared.appending("done"), "")
        for _ in 0..<500 where !decided() { usleep(10_000) }
        let outcome = Outcome.parse(((try? FileSystem.readString(verdict)) ?? "").trimmed)
        // The host's own look: its copy of the runtime, the same size as before?
        var after = stat()
        stat(copy.string, &after)
        let changed = after.st_size != before.st_size || after.st_mtim.tv_sec != before.st_mtim.tv_sec
            || after.st_mtim.tv_nsec != before.st_mtim.tv_nsec
        if changed { return Outcome(kind: .escaped, cell: "ESCAPED", detail: "the host's copy of the runtime was written (\(before.st_size) → \(after.st_size) bytes)") }
        if outcome.kind == .escaped { return Outcome(kind: .unclear, cell: "?", detail: "the escape says it wrote, the host's copy is unchanged: \(outcome.detail)") }
        // A runtime whose exec fails never came in: that proves nothing either way.
        if !cameIn { return Outcome(kind: .unclear, cell: "?", detail: "the runtime's exec failed: \(refused)") }
        return outcome
    }

    /// The host folder the mount race's symlink points at (the marker's folder).
    var raceTarget: FilePath { folder.appending("host") }
    /// How many containers the runtime creates while the mount race runs, per rung (at
    /// most; and for at most 20 seconds: a slow machine makes fewer).
    static let raceRounds = 25

    /// Where the /dev/mem escape reads: the last 16 bytes of a PC's BIOS (its reset
    /// vector and date), which the kernel lets root read even with STRICT_DEVMEM.
    static let memoryOffset = "0xffff0"

    /// The 16 bytes at `memoryOffset`, in hex, as the host reads them itself (through
    /// /dev/mem, or a node of its own in the lab when /dev has none), or why it cannot.
    func hostMemory() -> Result<String, NotHere> {
        #if arch(x86_64)
        // /sys/dev/char/1:1 is there when the kernel has /dev/mem (CONFIG_DEVMEM).
        guard FileSystem.exists("/sys/dev/char/1:1") else { return .failure(NotHere("this kernel has no /dev/mem")) }
        var path = "/dev/mem"
        if !FileSystem.exists(FilePath(path)) {
            path = folder.appending("host/mem").string
            unlink(path)
            guard mknod(path, S_IFCHR | 0o600, (1 << 8) | 1) == 0 else { return .failure(NotHere("the host cannot make a /dev/mem node: errno \(errno)")) }
        }
        defer { if path != "/dev/mem" { unlink(path) } }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return .failure(NotHere("the host cannot open /dev/mem: errno \(errno)")) }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 16)
        let read = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 16, 0xffff0) }
        guard read == 16 else { return .failure(NotHere("the host cannot read /dev/mem at \(Lab.memoryOffset)")) }
        return .success(bytes.map { String($0, radix: 16).leftPadded(2) }.joined())
        #else
        return .failure(NotHere("the escape reads a PC's BIOS area (x86_64 only)"))
        #endif
    }

    /// The host's key for the keyring escape, through the escape program's host side
    /// (`--add-key`, `--read-key`, `--remove-key`: keyctl(2) has no Glibc wrapper).
    func hostKey(_ action: String) -> CommandOutput? {
        let arguments = action == "--add-key" ? [action, keyDescription, keyToken] : [action, keyDescription]
        return try? Command.run(rootfs.appending("escape"), arguments)
    }

    /// Where the firmware's memory map starts: the host reads it too, and compares.
    static let firmwareFile: FilePath = "/sys/firmware/memmap/0/end"

    struct NotHere: Error { var reason: String; init(_ reason: String) { self.reason = reason } }

    /// The disk that holds the marker: its device numbers (stat(2) st_dev), its
    /// filesystem type and the marker's path inside it (/proc/self/mountinfo).
    func diskArguments() -> Result<[String], NotHere> {
        var info = stat()
        guard stat(marker.string, &info) == 0 else { return .failure(NotHere("cannot stat \(marker)")) }
        let device = UInt64(info.st_dev)
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff))
        let minor = (device & 0xff) | ((device >> 12) & ~UInt64(0xff))
        guard FileSystem.exists(FilePath("/sys/dev/block/\(major):\(minor)")) else {
            return .failure(NotHere("\(folder) is on no disk (device \(major):\(minor))"))
        }
        // The mount of that device whose mount point holds the marker, the longest one.
        let lines = ((try? FileSystem.readString("/proc/self/mountinfo")) ?? "").split(separator: "\n")
        var best: (point: String, root: String, type: String)? = nil
        for line in lines {
            let halves = line.split(separator: " - ", maxSplits: 1)
            let fields = halves[0].split(separator: " ").map(String.init)
            guard halves.count == 2, fields.count >= 5, fields[2] == "\(major):\(minor)" else { continue }
            let point = fields[4], root = fields[3]
            let inside = point == "/" || marker.string.hasPrefix(point + "/")
            if inside, point.count >= (best?.point.count ?? -1) {
                best = (point, root, String(halves[1].split(separator: " ").first ?? ""))
            }
        }
        guard let best else { return .failure(NotHere("no mount of \(major):\(minor) holds \(marker)")) }
        let below = point(marker.string, under: best.point)
        let path = best.root == "/" ? below : String(best.root.dropFirst()) + "/" + below
        return .success(["\(major)", "\(minor)", best.type, path])
    }

    private func point(_ path: String, under mountPoint: String) -> String {
        mountPoint == "/" ? String(path.dropFirst()) : String(path.dropFirst(mountPoint.count + 1))
    }

    // MARK: One attempt

    /// Runs `escape` in `column`'s configuration, and checks the host afterwards.
    mutating func attempt(_ escape: Escape, in column: Column) throws -> Outcome {
        // A process of the host to aim at, for the escapes that aim at one.
        var markerProcess: ChildProcess? = nil
        if escape == .signal || escape == .ptrace {
            markerProcess = try ChildProcess.spawn("/proc/self/exe", arguments: ["chapter-08", "marker"], environment: [],
                                                   options: { var o = SpawnOptions(); o.parentDeathSignal = SIGKILL; return o }())
        }
        defer {
            if let markerProcess { _ = try? markerProcess.signal(SIGKILL); _ = try? markerProcess.wait() }
        }
        if escape == .mountRace && column.isChroot {
            return Outcome(kind: .notApplicable, cell: "n/a", detail: "chroot(2) alone mounts nothing of a config's: no runtime mount to redirect")
        }
        if escape == .mountRace && column.rung == .anotherKernel {
            return Outcome(kind: .notApplicable, cell: "n/a", detail: "runsc makes a container's mounts in gVisor's own kernel, not in the host's: no host mount to redirect")
        }
        let arguments: [String]
        switch self.arguments(escape, markerPID: markerProcess?.pid) {
        case .failure(let notHere): return Outcome(kind: .notApplicable, cell: "n/a", detail: notHere.reason)
        case .success(let found): arguments = found
        }
        // The key the keyring escape looks for is in root's user keyring during its attempt only.
        if escape == .keyring {
            let added = hostKey("--add-key")
            guard added?.status == .exited(0) else {
                return Outcome(kind: .notApplicable, cell: "n/a", detail: "the host cannot add a key: \(added?.standardError.trimmed ?? "")")
            }
        }
        defer { if escape == .keyring { _ = hostKey("--remove-key") } }
        let before = hostSnapshot(escape)
        // Each attempt starts from an empty /tmp: what one left must not help (or hinder) the next.
        for folder in [rootfs.appending("tmp"), sharedOnHost(column)] {
            for name in (try? FileSystem.contentsOfDirectory(folder)) ?? [] { try? FileSystem.removeTree(folder.appending(name)) }
        }
        let command = ["/escape", "/shared/verdict", escape.rawValue] + arguments
        let id = "breakout-\(getpid())-\(column.tag)-\(escape.rawValue)"
        if escape == .runtimeExe {
            let outcome = try attackRuntime(in: column, id: id)
            let after = hostSnapshot(escape)
            for (what, value) in before where after[what] != value {
                hostChanges.append("\(escape.rawValue) in column \(column.heading) changed \(what)")
            }
            return outcome
        }
        var landed: [String] = [], rounds = 0
        if escape == .mountRace, let config = column.config(args: command, rootfs: rootfs, shared: shared) {
            (landed, rounds) = try runMountRace(config, id: id, column: column)
        } else if let config = column.config(args: command, rootfs: rootfs, shared: shared) {
            if column.rung == .anotherKernel { try runInGVisor(config, id: id) } else { try runContainer(config, id: id) }
        } else {
            // Chapter 01 gives its jail a /proc, as every chroot guide does; we take it
            // away again after the attempt.
            let proc = rootfs.appending("proc")
            try inStage("mounting proc on \(proc)") {
                try Mount.mount(source: "proc", target: proc, type: "proc", flags: [.noSetuid, .noDevices, .noExec])
            }
            defer { umount2(proc.string, Int32(MNT_DETACH)) }
            let child = try ChildProcess.spawn("/proc/self/exe", arguments: ["chapter-08", "chroot-run", "--rootfs", rootfs.string] + command,
                                               environment: ["PATH=/"],
                                               options: { var o = SpawnOptions(); o.parentDeathSignal = SIGKILL; return o }())
            try child.waitForwardingSignals()
        }
        let verdict = sharedOnHost(column).appending("verdict")
        var outcome = Outcome.parse(((try? FileSystem.readString(verdict)) ?? "").trimmed)
        outcome = verify(outcome, escape, column, markerProcess)
        if escape == .mountRace, outcome.detail.hasPrefix("raced") || !landed.isEmpty {
            outcome = landed.isEmpty
                ? Outcome(kind: .blocked, cell: "in-root", detail: "no mount of \(rounds) containers landed outside the root (\(outcome.detail))")
                : Outcome(kind: .escaped, cell: "ESCAPED", detail: "the runtime mounted the tmpfs on the host's \(raceTarget), outside the root, in \(landed.count) of \(rounds) containers")
        }
        let after = hostSnapshot(escape)
        for (what, value) in before where after[what] != value {
            hostChanges.append("\(escape.rawValue) in column \(column.heading) changed \(what)")
        }
        return outcome
    }

    /// Chapter 04's runtime: create, start, wait, delete (as `runc run` does).
    func runContainer(_ config: OCIConfig, id: String) throws {
        let bundle = folder.appending("bundle")
        try FileSystem.makeDirectory(bundle)
        try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
        var runtime = Runtime(store: ContainerStore(root: folder.appending("state")))
        let child = try runtime.create(id: id, options: Runtime.CreateOptions(bundle: bundle))
        defer { try? runtime.delete(id: id, force: true) }
        try runtime.start(id: id)
        try child.waitForwardingSignals()
    }

    /// The mount race: the attacker's container (`config`) swaps a folder of /shared for a
    /// symlink to the host's `raceTarget` while the runtime creates `raceRounds` other
    /// containers that share /shared and mount a tmpfs on /shared/race/dir. A
    /// createRuntime hook (the escape program on the host, `--mounts-at`) reads each one's
    /// mount table before pivot_root. Returns the lines that show a mount at the target.
    func runMountRace(_ config: OCIConfig, id: String, column: Column) throws -> (landed: [String], rounds: Int) {
        let bundle = folder.appending("bundle"), victimBundle = folder.appending("bundle-victim")
        let log = folder.appending("landed"), race = shared.appending("race")
        for path in [bundle, victimBundle] { try FileSystem.makeDirectory(path) }
        try FileSystem.writeFile(log, "")
        defer { unlink(log.string) }
        try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
        // The other container: the same rung, the same volume, a tmpfs on a folder of it.
        var victim = column.config(args: ["/escape", "/shared/victim", "none"], rootfs: rootfs, shared: shared) ?? config
        victim.mounts = (victim.mounts ?? []) + [OCIConfig.Mount(destination: "/shared/race/dir", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev"])]
        victim.hooks = OCIConfig.Hooks(createRuntime: [OCIConfig.Hook(path: rootfs.appending("escape").string,
                                                                       args: ["escape", "--mounts-at", raceTarget.string, log.string])])
        try FileSystem.writeFile(victimBundle.appending("config.json"), victim.encodedJSON())
        var runtime = Runtime(store: ContainerStore(root: folder.appending("state")))
        let attacker = try runtime.create(id: id, options: Runtime.CreateOptions(bundle: bundle))
        defer { try? runtime.delete(id: id, force: true) }
        try runtime.start(id: id)
        defer {
            try? FileSystem.writeFile(race.appending("stop"), "")
            _ = try? attacker.waitForwardingSignals()
        }
        for _ in 0..<500 where !FileSystem.exists(race.appending("ready")) { usleep(10_000) }
        guard FileSystem.exists(race.appending("ready")) else { return ([], 0) }  // the escape's verdict says why
        let start = monotonicNow()
        var rounds = 0
        for round in 0..<Lab.raceRounds where monotonicNow() - start < 20 {
            rounds += 1
            let other = "\(id)-victim-\(round)"
            if let child = try? runtime.create(id: other, options: Runtime.CreateOptions(bundle: victimBundle)) {
                try? runtime.delete(id: other, force: true)
                _ = try? child.wait()
            }
        }
        let lines = ((try? FileSystem.readString(log)) ?? "").split(separator: "\n").map(String.init)
        return (lines, rounds)
    }

    /// gVisor's runsc, as chapter 05 runs it: the ptrace platform (no KVM needed), no
    /// network stack of its own. Its cgroup carries the project's prefix.
    func runInGVisor(_ config: OCIConfig, id: String) throws {
        guard let runsc = Rung.runsc else { throw IsolationError("rung 7 needs gVisor's runsc", hint: "sudo apt-get install -y runsc") }
        var config = config
        config.linux?.cgroupsPath = "/\(projectPrefix)/\(id)"
        let bundle = folder.appending("bundle")
        try FileSystem.makeDirectory(bundle)
        try FileSystem.writeFile(bundle.appending("config.json"), config.encodedJSON())
        let state = ["--root", folder.appending("runsc").string]
        let child = try ChildProcess.spawn(runsc, arguments: ["runsc"] + state + ["--platform=ptrace", "--network=none", "run", "--bundle", bundle.string, id],
                                           environment: Command.defaultEnvironment,
                                           options: { var o = SpawnOptions(); o.parentDeathSignal = SIGKILL; return o }())
        defer { _ = try? Command.run(runsc, state + ["delete", "--force", id]) }
        try child.waitForwardingSignals()
    }

    /// The host's own look at what the escape claims.
    func verify(_ claimed: Outcome, _ escape: Escape, _ column: Column, _ markerProcess: ChildProcess?) -> Outcome {
        var outcome = claimed
        switch escape {
        case .chroot, .disk, .shocker:
            if outcome.kind == .escaped && !outcome.detail.contains(token) {
                outcome = Outcome(kind: .unclear, cell: "?", detail: "read something, but not the host's token: \(outcome.detail)")
            }
        case .keyring:
            if outcome.kind == .escaped && !outcome.detail.contains(keyToken) {
                outcome = Outcome(kind: .unclear, cell: "?", detail: "read something, but not the host's key: \(outcome.detail)")
            }
        case .devMem:
            let hosts = (try? hostMemory().get()) ?? ""
            if outcome.kind == .escaped && (hosts.isEmpty || !outcome.detail.hasSuffix(": " + hosts)) {
                outcome = Outcome(kind: .unclear, cell: "?", detail: "read something, but not the host's \(hosts): \(outcome.detail)")
            }
        case .firmware:
            let hosts = ((try? FileSystem.readString(Lab.firmwareFile)) ?? "").trimmed
            if outcome.kind == .escaped && (hosts.isEmpty || !outcome.detail.hasSuffix(": " + hosts)) {
                outcome = Outcome(kind: .unclear, cell: "?", detail: "read something, but not the host's \(hosts): \(outcome.detail)")
            }
        case .signal:
            // Did the host's process end? Given a moment, SIGTERM ends it.
            var ended = false
            if let markerProcess {
                for _ in 0..<100 {
                    var status: Int32 = 0
                    if waitpid(markerProcess.pid, &status, WNOHANG) == markerProcess.pid { ended = true; break }
                    usleep(10_000)
                }
            }
            if ended != (outcome.kind == .escaped) {
                outcome = Outcome(kind: .unclear, cell: "?", detail: "the escape says \(claimed.cell), the host process \(ended ? "ended" : "lives")")
            } else if ended {
                outcome.detail += " (the host saw it end)"
            }
        case .setuid:
            let made = sharedOnHost(column).appending("isolation-suid")
            var info = stat()
            if lstat(made.string, &info) == 0 {
                let rootOwned = info.st_uid == 0 && (info.st_mode & S_ISUID) != 0
                if rootOwned {
                    outcome = Outcome(kind: .escaped, cell: "ESCAPED", detail: "the host holds a set-user-ID root program it never made")
                } else if outcome.kind == .escaped {
                    outcome = Outcome(kind: .blocked, cell: "mapped", detail: "on the host the program is uid \(info.st_uid)'s, not root's")
                }
                unlink(made.string)
            } else if outcome.kind == .escaped {
                outcome = Outcome(kind: .unclear, cell: "?", detail: "the escape says it made \(made), the host sees nothing")
            }
        default:
            break
        }
        return outcome
    }

    /// What no escape may leave changed: the marker, the machine's core_pattern, mounts
    /// (and the host's key, around the keyring escape).
    func hostSnapshot(_ escape: Escape) -> [String: String] {
        var snapshot = [
            "the marker file": (try? FileSystem.readString(marker)) ?? "(gone)",
            "kernel.core_pattern": (try? FileSystem.readString("/proc/sys/kernel/core_pattern")) ?? "",
            "the host's mounts": mountsUnderFolder().joined(separator: " "),
        ]
        if escape == .keyring { snapshot["the host's key"] = hostKey("--read-key").map { "\($0.status) \($0.standardOutput)" } ?? "" }
        return snapshot
    }

    /// Mount points of the host's mount namespace inside our folder (rung 1 shares it).
    func mountsUnderFolder() -> [String] {
        let lines = ((try? FileSystem.readString("/proc/self/mountinfo")) ?? "").split(separator: "\n")
        return lines.compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4].hasPrefix(folder.string + "/") else { return nil }
            return String(fields[4])
        }.reversed()
    }
}

extension String {
    var trimmed: String { String(self.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()) }
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
