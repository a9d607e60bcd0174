import Isolation
import SystemPackage

/// Image config → runtime config, as image-spec conversion.md says: the image says what
/// to run and as whom; the runtime config adds how to isolate it (chapter 04's default).
public enum ImageConversion {
    /// The runtime config for `config`, whose root filesystem is at `rootfs` (read for
    /// the user and group names). `command` replaces Cmd, as `docker run IMAGE CMD…` does.
    public static func runtimeConfig(_ config: ImageConfig, rootfs: FilePath, command: [String] = [],
                                     cgroupNamespace: Bool = true) throws -> OCIConfig {
        let execution = config.config ?? ImageConfig.Execution()
        // Entrypoint + Cmd: the entrypoint stays, the command replaces Cmd.
        let args = (execution.entrypoint ?? []) + (command.isEmpty ? (execution.cmd ?? []) : command)
        guard !args.isEmpty else {
            throw IsolationError("the image has neither Entrypoint nor Cmd, so there is nothing to run",
                                 hint: "give a command: chapter-06 run IMAGE -- sh")
        }
        var spec = OCIConfig.defaultSpec(args: args, cgroupNamespace: cgroupNamespace)
        spec.root = OCIConfig.Root(path: rootfs.string, readonly: false)
        // The default PATH and TERM, each replaced by the image's value of that name,
        // then the image's others, then HOME from the image's /etc/passwd unless set
        // (what runc, Docker and umoci give a process).
        var env = spec.process?.env ?? []
        for variable in execution.env ?? [] {
            let name = variable.split(separator: "=", maxSplits: 1).first.map(String.init) ?? variable
            if let at = env.firstIndex(where: { $0.hasPrefix(name + "=") }) { env[at] = variable } else { env.append(variable) }
        }
        let user = try user(execution.user ?? "", rootfs: rootfs)
        if !env.contains(where: { $0.hasPrefix("HOME=") }) {
            let home = table(rootfs, "/etc/passwd").first { $0.count > 5 && UInt32($0[2]) == user.uid }?[5]
            env.append("HOME=" + (home.flatMap { $0.isEmpty ? nil : $0 } ?? "/"))
        }
        spec.process?.env = env
        spec.process?.cwd = execution.workingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        spec.process?.user = user

        // Annotations: the platform, ports and labels (a label never overrides one set here).
        var annotations: [String: String] = ["org.opencontainers.image.os": config.os,
                                             "org.opencontainers.image.architecture": config.architecture]
        if let author = config.author { annotations["org.opencontainers.image.author"] = author }
        if let created = config.created { annotations["org.opencontainers.image.created"] = created }
        if let signal = execution.stopSignal { annotations["org.opencontainers.image.stopSignal"] = signal }
        if let ports = execution.exposedPorts, !ports.isEmpty {
            annotations["org.opencontainers.image.exposedPorts"] = ports.keys.sorted().joined(separator: ",")
        }
        for (key, value) in execution.labels ?? [:] where annotations[key] == nil { annotations[key] = value }
        spec.annotations = annotations
        return spec
    }

    /// `User` as the image writes it: `uid`, `uid:gid`, `name`, `name:group`, `uid:group`,
    /// … Names are looked up in the image's own /etc/passwd and /etc/group (never the
    /// host's); a user's other groups become additionalGids.
    public static func user(_ text: String, rootfs: FilePath) throws -> OCIConfig.User {
        if text.isEmpty { return OCIConfig.User(uid: 0, gid: 0) }
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let passwd = table(rootfs, "/etc/passwd")
        let groups = table(rootfs, "/etc/group")
        var uid: UInt32, gid: UInt32 = 0
        var name: String?
        if let number = UInt32(parts[0]) {
            uid = number
            if let entry = passwd.first(where: { $0.count > 3 && UInt32($0[2]) == number }) {
                name = entry[0]
                gid = UInt32(entry[3]) ?? 0
            }
        } else {
            guard let entry = passwd.first(where: { $0.count > 3 && $0[0] == parts[0] }),
                  let number = UInt32(entry[2]) else {
                throw IsolationError("the image's User '\(text)': there is no user \(parts[0]) in the image's /etc/passwd",
                                     hint: "the image config names a user its own root filesystem does not have")
            }
            uid = number
            gid = UInt32(entry[3]) ?? 0
            name = parts[0]
        }
        if parts.count == 2 {
            if let number = UInt32(parts[1]) {
                gid = number
            } else {
                guard let entry = groups.first(where: { $0.count > 2 && $0[0] == parts[1] }), let number = UInt32(entry[2]) else {
                    throw IsolationError("the image's User '\(text)': there is no group \(parts[1]) in the image's /etc/group")
                }
                gid = number
            }
        }
        var additional: [UInt32] = []
        if parts.count == 1, let name {
            for entry in groups where entry.count > 3 {
                if entry[3].split(separator: ",").contains(Substring(name)), let number = UInt32(entry[2]), number != gid {
                    additional.append(number)
                }
            }
        }
        return OCIConfig.User(uid: uid, gid: gid, additionalGids: additional.isEmpty ? nil : additional)
    }

    /// The lines of a colon-separated file in the image (resolved inside the root, so a
    /// symlinked /etc/passwd cannot point at the host's), split into fields.
    static func table(_ rootfs: FilePath, _ path: String) -> [[String]] {
        guard let file = try? FileSystem.resolve(FilePath(path), inside: rootfs),
              let text = try? FileSystem.readString(file) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }
            .map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
    }
}
