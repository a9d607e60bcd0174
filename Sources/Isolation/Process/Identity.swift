import CIsolation
import Glibc
import SystemPackage

/// Who and where this process is.
public enum Identity {
    /// Effective user ID 0.
    public static var isRoot: Bool { geteuid() == 0 }

    /// gethostname(2).
    public static func hostname() -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        _ = buffer.withUnsafeMutableBufferPointer { $0.withMemoryRebound(to: CChar.self) { gethostname($0.baseAddress!, 255) } }
        return String(decoding: buffer.prefix(while: { $0 != 0 }), as: UTF8.self)
    }

    /// sethostname(2): changes the hostname of the UTS namespace we are in.
    public static func setHostname(_ name: String) throws {
        let bytes = Array(name.utf8)
        try valueOrErrno { bytes.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { sethostname($0.baseAddress!, $0.count) } } }
    }

    /// setgroups(2): this process's supplementary groups become `groups` (empty: none).
    /// In a user namespace whose `/proc/PID/setgroups` reads "deny" it fails with EPERM.
    public static func setSupplementaryGroups(_ groups: [gid_t]) throws {
        _ = try valueOrErrno { groups.withUnsafeBufferPointer { setgroups($0.count, $0.baseAddress) } }
    }

    /// setresgid(2): the real, effective and saved group IDs at once.
    public static func setGroupIDs(real: gid_t, effective: gid_t, saved: gid_t) throws {
        _ = try valueOrErrno { iso_setresgid(real, effective, saved) }
    }

    /// setresuid(2): the real, effective and saved user IDs at once.
    public static func setUserIDs(real: uid_t, effective: uid_t, saved: uid_t) throws {
        _ = try valueOrErrno { iso_setresuid(real, effective, saved) }
    }

    /// The user name of `uid` (getpwuid(3)), if the user database has one.
    public static func userName(of uid: uid_t = getuid()) -> String? {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return nil }
        return String(cString: name)
    }

    /// The path of the running executable (/proc/self/exe, resolved), for re-executing
    /// ourselves into a hidden subcommand and for telling the user what to run with sudo.
    public static func executablePath() -> FilePath {
        (try? FileSystem.readLink("/proc/self/exe")) ?? FilePath(CommandLine.arguments[0])
    }

    /// The command line that would run this same invocation as root: `sudo /abs/path args`.
    /// Absolute, because `sudo swift run` fails where Swift is only on the user's PATH.
    public static func sudoCommandLine() -> String {
        (["sudo", executablePath().string] + CommandLine.arguments.dropFirst().map(shellQuote)).joined(separator: " ")
    }
}

/// Quotes a word for a POSIX shell when it needs it.
public func shellQuote(_ word: String) -> String {
    let safe = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
    if safe && !word.isEmpty { return word }
    return "'" + word.replacingAll("'", with: "'\\''") + "'"
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        let needle = Array(target)
        guard !needle.isEmpty else { return nil }
        var index = startIndex
        while index < endIndex {
            if self[index...].starts(with: needle) {
                return index..<self.index(index, offsetBy: needle.count)
            }
            index = self.index(after: index)
        }
        return nil
    }
}
