/// An OCI mount's `options`, sorted into what mount(2) takes: flags, a propagation
/// change (a separate mount(2) call), and the filesystem's own data string.
///
///     ["nosuid", "strictatime", "mode=755", "size=65536k"]
///     → flags [.noSetuid, .strictAccessTime], data "mode=755,size=65536k"
public struct MountOptions: Sendable, Equatable {
    public var flags: MountFlags = []
    /// Flags the option list clears (`rw`, `suid`, ...): only matters on remounts.
    public var cleared: MountFlags = []
    public var propagation: MountFlags = []
    /// Options mount(2) does not know as flags: passed to the filesystem as data.
    public var data: [String] = []
    /// `bind` or `rbind`.
    public var isBind: Bool { flags.contains(.bind) }

    public init(_ options: [String]) {
        for option in options {
            switch option {
            case "defaults": break
            case "ro": flags.insert(.readOnly)
            case "rw": cleared.insert(.readOnly)
            case "nosuid": flags.insert(.noSetuid)
            case "suid": cleared.insert(.noSetuid)
            case "nodev": flags.insert(.noDevices)
            case "dev": cleared.insert(.noDevices)
            case "noexec": flags.insert(.noExec)
            case "exec": cleared.insert(.noExec)
            case "sync": flags.insert(.synchronous)
            case "async": cleared.insert(.synchronous)
            case "noatime": flags.insert(.noAccessTime)
            case "atime": cleared.insert(.noAccessTime)
            case "nodiratime": flags.insert(.noDirectoryAccessTime)
            case "diratime": cleared.insert(.noDirectoryAccessTime)
            case "relatime": flags.insert(.relativeAccessTime)
            case "norelatime": cleared.insert(.relativeAccessTime)
            case "strictatime": flags.insert(.strictAccessTime)
            case "nostrictatime": cleared.insert(.strictAccessTime)
            case "remount": flags.insert(.remount)
            case "bind": flags.insert(.bind)
            case "rbind": flags.formUnion([.bind, .recursive])
            case "private": propagation = [.private]
            case "rprivate": propagation = [.private, .recursive]
            case "shared": propagation = [.shared]
            case "rshared": propagation = [.shared, .recursive]
            case "slave": propagation = [.slave]
            case "rslave": propagation = [.slave, .recursive]
            case "unbindable": propagation = [.unbindable]
            case "runbindable": propagation = [.unbindable, .recursive]
            // Options that only tools (mount(8), fstab) read: nothing for the kernel.
            case "nofail", "auto", "noauto", "user", "nouser", "_netdev", "tmpcopyup", "idmap", "ridmap", "copy-symlink":
                break
            default: data.append(option)
            }
        }
    }

    /// The data string: `mode=755,size=65536k`, or nil when there is none.
    public var dataString: String? { data.isEmpty ? nil : data.joined(separator: ",") }
}
