// Looking at processes from outside: /proc/PID/{stat,status,ns,root,cwd,cgroup,mountinfo}.
import Glibc
import Isolation
import SystemPackage

enum Proc {
    static func read(_ path: String) -> String? { try? FileSystem.readString(FilePath(path)) }

    static func parent(of pid: pid_t) -> pid_t? { ProcessInfoStat(pid: pid)?.parent }

    static func comm(_ pid: pid_t) -> String {
        (read("/proc/\(pid)/comm") ?? "").split(separator: "\n").first.map(String.init) ?? ""
    }

    static func cmdline(_ pid: pid_t) -> [String] {
        guard let bytes = try? FileSystem.readFile(FilePath("/proc/\(pid)/cmdline")) else { return [] }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    static func allPIDs() -> [pid_t] {
        ((try? FileSystem.contentsOfDirectory("/proc")) ?? []).compactMap { pid_t($0) }
    }

    /// Every process below `ancestor` (children, grandchildren, ...), by parent links.
    static func descendants(of ancestor: pid_t) -> [pid_t] {
        var parents: [pid_t: pid_t] = [:]
        for pid in allPIDs() { if let parent = parent(of: pid) { parents[pid] = parent } }
        return parents.keys.filter { pid in
            var current = pid
            for _ in 0..<64 {
                guard let parent = parents[current], parent > 0 else { return false }
                if parent == ancestor { return true }
                current = parent
            }
            return false
        }.sorted()
    }

    /// The first descendant of `ancestor` named `name`, waiting up to `timeout` seconds.
    static func waitForDescendant(of ancestor: pid_t, named name: String, timeout: Double = 10) -> pid_t? {
        let end = monotonicNow() + timeout
        repeat {
            if let found = descendants(of: ancestor).first(where: { comm($0) == name }) { return found }
            usleep(20_000)
        } while monotonicNow() < end
        return nil
    }

    /// The NSpid line of /proc/PID/status: its PID in each PID namespace, outermost first.
    static func namespacePIDs(_ pid: pid_t) -> [pid_t] {
        let status = read("/proc/\(pid)/status") ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }) else { return [] }
        return line.dropFirst("NSpid:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { pid_t($0) }
    }

    static func link(_ path: String) -> String {
        (try? FileSystem.readLink(FilePath(path)).string) ?? "(unreadable)"
    }
}

extension String {
    var trimmed: String {
        String(drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }).reversed())
    }

    /// `key=value` lines, as the probes print them.
    var probeValues: [String: String] {
        var values: [String: String] = [:]
        for line in split(separator: "\n") {
            if let eq = line.firstIndex(of: "="), values[String(line[..<eq])] == nil {
                values[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
        }
        return values
    }

    /// The steps named in an exercise's "step "X" is still a TODO" lines.
    var todoSteps: [String] {
        split(separator: "\n").compactMap { line -> String? in
            guard let range = line.firstRange(of: ": step \""), line.hasSuffix("\" is still a TODO") else { return nil }
            let rest = line[range.upperBound...]
            return String(rest.prefix(while: { $0 != "\"" }))
        }
    }
}
