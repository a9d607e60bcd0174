import CIsolation
import Glibc
import SystemPackage

/// How this host mounts cgroups, found from the file system type of /sys/fs/cgroup
/// (statfs(2)'s magic number, as systemd and runc do).
public enum CgroupMode: String, Sendable {
    /// cgroup v2 only: one hierarchy at /sys/fs/cgroup (most current distributions).
    case unified = "v2"
    /// cgroup v1 only: one hierarchy per controller under /sys/fs/cgroup/<controller>.
    case legacy = "v1"
    /// v1 controllers plus an (often empty) cgroup2 at /sys/fs/cgroup/unified.
    case hybrid = "hybrid"
    /// No cgroup file system at /sys/fs/cgroup.
    case none = "none"

    static let cgroup2Magic: Int64 = 0x6367_7270  // CGROUP2_SUPER_MAGIC
    static let cgroup1Magic: Int64 = 0x0027_e0eb  // CGROUP_SUPER_MAGIC
    static let tmpfsMagic: Int64 = 0x0102_1994    // TMPFS_MAGIC

    public static func detect(root: String = "/sys/fs/cgroup") -> CgroupMode {
        let type = iso_statfs_type(root)
        if type == cgroup2Magic { return .unified }
        if type == tmpfsMagic {
            if iso_statfs_type(root + "/unified") == cgroup2Magic { return .hybrid }
            return .legacy
        }
        return .none
    }

    /// The controllers a chapter can use here: for v2 those listed in the root's
    /// `cgroup.controllers`; for v1 those with a mounted hierarchy of their own.
    public static func usableControllers(mode: CgroupMode = detect(), root: String = "/sys/fs/cgroup") -> [String] {
        switch mode {
        case .unified:
            let text = (try? FileSystem.readString(FilePath(root + "/cgroup.controllers"))) ?? ""
            return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        case .legacy, .hybrid:
            let wanted = ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio", "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"]
            return wanted.filter { iso_statfs_type(root + "/" + $0) == cgroup1Magic }
        case .none:
            return []
        }
    }
}
