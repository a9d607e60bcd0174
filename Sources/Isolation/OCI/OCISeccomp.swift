extension OCIConfig {
    /// The container's system call filter, for seccomp(2) through libseccomp
    /// (config-linux.md "Seccomp").
    public struct Seccomp: Codable, Equatable, Sendable, OCIObject {
        /// What happens on a system call no rule matches.
        public var defaultAction: SeccompAction
        /// The errno `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` return as the default action (1.1); EPERM when absent.
        public var defaultErrnoRet: UInt32?
        /// Architectures the filter also covers besides the native one: `SCMP_ARCH_X86`, ...
        public var architectures: [String]?
        /// Flags of seccomp(2): `SECCOMP_FILTER_FLAG_LOG`, ... (1.0.2).
        public var flags: [String]?
        /// A UNIX socket the runtime sends the notify file descriptor to, for `SCMP_ACT_NOTIFY` (1.1).
        public var listenerPath: String?
        /// Opaque data passed to the seccomp agent along with the descriptor (1.1).
        public var listenerMetadata: String?
        /// Rules, in order: system calls by name and the action taken on them.
        public var syscalls: [Syscall]?

        public init(defaultAction: SeccompAction, defaultErrnoRet: UInt32? = nil, architectures: [String]? = nil,
                    flags: [String]? = nil, listenerPath: String? = nil, listenerMetadata: String? = nil,
                    syscalls: [Syscall]? = nil) {
            self.defaultAction = defaultAction
            self.defaultErrnoRet = defaultErrnoRet
            self.architectures = architectures
            self.flags = flags
            self.listenerPath = listenerPath
            self.listenerMetadata = listenerMetadata
            self.syscalls = syscalls
        }

        /// "When the action doesn't support an errno, the runtime MUST print and error and fail."
        func checkRules(at path: JSONPath) throws(OCIFieldError) {
            func check(_ action: SeccompAction, _ errno: UInt32?, _ field: JSONPath) throws(OCIFieldError) {
                guard errno != nil, action != .errno, action != .trace else { return }
                throw OCIFieldError(path: field, problem: .invalid("\(action.rawValue) returns no errno"),
                                    hint: "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno; remove it or change the action")
            }
            try check(defaultAction, defaultErrnoRet, path.appending("defaultErrnoRet"))
            for (index, rule) in (syscalls ?? []).enumerated() {
                try check(rule.action, rule.errnoRet, path.appending("syscalls").appending(index).appending("errnoRet"))
            }
        }
    }

    /// One seccomp rule (config-linux.md "Seccomp": syscalls).
    public struct Syscall: Codable, Equatable, Sendable, OCIObject {
        /// The system calls the rule applies to, by name: `["mount", "umount2"]`.
        public var names: [String]
        /// What happens when one is called (and `args` match).
        public var action: SeccompAction
        /// The errno returned by `SCMP_ACT_ERRNO` or `SCMP_ACT_TRACE` (1.1); EPERM when absent.
        public var errnoRet: UInt32?
        /// Conditions on the arguments, all of which must hold.
        public var args: [SyscallArgument]?

        public init(names: [String], action: SeccompAction, errnoRet: UInt32? = nil, args: [SyscallArgument]? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
        }
    }

    /// A condition on one system call argument (config-linux.md "Seccomp": args).
    public struct SyscallArgument: Codable, Equatable, Sendable, OCIObject {
        /// Which argument: 0 to 5.
        public var index: UInt
        /// The value compared with (for `SCMP_CMP_MASKED_EQ`: the mask).
        public var value: UInt64
        /// For `SCMP_CMP_MASKED_EQ`: the value the masked argument must equal.
        public var valueTwo: UInt64?
        /// The comparison.
        public var op: SeccompOperator

        public init(index: UInt, value: UInt64, valueTwo: UInt64? = nil, op: SeccompOperator) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    /// What seccomp does on a matching system call (libseccomp's `SCMP_ACT_*`).
    public enum SeccompAction: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        /// Kills the thread (the same as `SCMP_ACT_KILL_THREAD`).
        case kill = "SCMP_ACT_KILL"
        /// Kills the whole process (1.1).
        case killProcess = "SCMP_ACT_KILL_PROCESS"
        /// Kills the calling thread (1.1).
        case killThread = "SCMP_ACT_KILL_THREAD"
        /// Sends SIGSYS.
        case trap = "SCMP_ACT_TRAP"
        /// Fails the call with an errno (`errnoRet`, else EPERM).
        case errno = "SCMP_ACT_ERRNO"
        /// Notifies a ptrace(2) tracer, or fails with `errnoRet` when there is none.
        case trace = "SCMP_ACT_TRACE"
        /// Lets the call through.
        case allow = "SCMP_ACT_ALLOW"
        /// Lets the call through and logs it (1.0.2).
        case log = "SCMP_ACT_LOG"
        /// Asks a user-space agent listening on `listenerPath` (1.1).
        case notify = "SCMP_ACT_NOTIFY"

        static let noun = "a seccomp action"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// How a seccomp rule compares an argument (libseccomp's `SCMP_CMP_*`).
    public enum SeccompOperator: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        case notEqual = "SCMP_CMP_NE"
        case lessThan = "SCMP_CMP_LT"
        case lessOrEqual = "SCMP_CMP_LE"
        case equal = "SCMP_CMP_EQ"
        case greaterOrEqual = "SCMP_CMP_GE"
        case greaterThan = "SCMP_CMP_GT"
        /// `(argument & value) == valueTwo`.
        case maskedEqual = "SCMP_CMP_MASKED_EQ"

        static let noun = "a seccomp operator"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }
}
