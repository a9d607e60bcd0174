extension OCIConfig {
    /// The container's first process: what runs, as whom, with which limits and
    /// privileges (config.md "Process", "POSIX process", "Linux Process").
    public struct Process: Codable, Equatable, Sendable, OCIObject {
        /// Gives the process a pseudo-terminal (its console socket); false when absent.
        public var terminal: Bool?
        /// The terminal's size in characters, when `terminal` is true.
        public var consoleSize: ConsoleSize?
        /// Who the process runs as; absent in the JSON means UID 0, GID 0 (as runc reads it).
        public var user: User
        /// The program and its arguments; `args[0]` is looked up like execvp(3)'s file (at least one entry on Linux).
        public var args: [String]
        /// Windows only: the whole command line (1.0.2); ignored on Linux.
        public var commandLine: String?
        /// The environment, `NAME=value`.
        public var env: [String]?
        /// The working directory inside the container: an absolute path.
        public var cwd: String
        /// The capabilities the process keeps, by set (Linux Process; capabilities(7)).
        public var capabilities: Capabilities?
        /// Resource limits set with setrlimit(2) (POSIX process); no two of the same type.
        public var rlimits: [Rlimit]?
        /// Sets PR_SET_NO_NEW_PRIVS: setuid binaries and file capabilities grant nothing.
        public var noNewPrivileges: Bool?
        /// The AppArmor profile the process runs under.
        public var apparmorProfile: String?
        /// Written to /proc/PID/oom_score_adj: -1000 (never killed) to 1000 (killed first).
        public var oomScoreAdj: Int?
        /// The SELinux label the process runs as.
        public var selinuxLabel: String?
        /// The I/O scheduling class and priority, set with ioprio_set(2) (1.1).
        public var ioPriority: IOPriority?
        /// The CPU scheduling policy and parameters, set with sched_setattr(2) (1.1).
        public var scheduler: Scheduler?

        public init(terminal: Bool? = nil, consoleSize: ConsoleSize? = nil, user: User = User(uid: 0, gid: 0),
                    args: [String], commandLine: String? = nil, env: [String]? = nil, cwd: String = "/",
                    capabilities: Capabilities? = nil, rlimits: [Rlimit]? = nil, noNewPrivileges: Bool? = nil,
                    apparmorProfile: String? = nil, oomScoreAdj: Int? = nil, selinuxLabel: String? = nil,
                    ioPriority: IOPriority? = nil, scheduler: Scheduler? = nil) {
            self.terminal = terminal
            self.consoleSize = consoleSize
            self.user = user
            self.args = args
            self.commandLine = commandLine
            self.env = env
            self.cwd = cwd
            self.capabilities = capabilities
            self.rlimits = rlimits
            self.noNewPrivileges = noNewPrivileges
            self.apparmorProfile = apparmorProfile
            self.oomScoreAdj = oomScoreAdj
            self.selinuxLabel = selinuxLabel
            self.ioPriority = ioPriority
            self.scheduler = scheduler
        }

        enum CodingKeys: String, CodingKey {
            case terminal, consoleSize, user, args, commandLine, env, cwd, capabilities, rlimits, noNewPrivileges
            case apparmorProfile, oomScoreAdj, selinuxLabel, ioPriority, scheduler
        }

        // Written out only so that a missing `user` means root, as in runc; the spec
        // marks uid and gid REQUIRED but not the user object itself.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            terminal = try container.decodeIfPresent(Bool.self, forKey: .terminal)
            consoleSize = try container.decodeIfPresent(ConsoleSize.self, forKey: .consoleSize)
            user = try container.decodeIfPresent(User.self, forKey: .user) ?? User(uid: 0, gid: 0)
            args = try container.decode([String].self, forKey: .args)
            commandLine = try container.decodeIfPresent(String.self, forKey: .commandLine)
            env = try container.decodeIfPresent([String].self, forKey: .env)
            cwd = try container.decode(String.self, forKey: .cwd)
            capabilities = try container.decodeIfPresent(Capabilities.self, forKey: .capabilities)
            rlimits = try container.decodeIfPresent([Rlimit].self, forKey: .rlimits)
            noNewPrivileges = try container.decodeIfPresent(Bool.self, forKey: .noNewPrivileges)
            apparmorProfile = try container.decodeIfPresent(String.self, forKey: .apparmorProfile)
            oomScoreAdj = try container.decodeIfPresent(Int.self, forKey: .oomScoreAdj)
            selinuxLabel = try container.decodeIfPresent(String.self, forKey: .selinuxLabel)
            ioPriority = try container.decodeIfPresent(IOPriority.self, forKey: .ioPriority)
            scheduler = try container.decodeIfPresent(Scheduler.self, forKey: .scheduler)
        }

        func checkRules(at path: JSONPath) throws(OCIFieldError) {
            if args.isEmpty {
                throw OCIFieldError(path: path.appending("args"), problem: .invalid("needs at least one entry"),
                                    hint: "args[0] is the program to run, such as [\"sh\"]")
            }
            if !cwd.hasPrefix("/") {
                throw OCIFieldError(path: path.appending("cwd"), problem: .invalid("'\(cwd)' is not an absolute path"),
                                    hint: "the working directory is a path inside the container that starts with /, such as \"/\"")
            }
            var seen: [RlimitType: Int] = [:]
            for (index, rlimit) in (rlimits ?? []).enumerated() {
                if let first = seen[rlimit.type] {
                    throw OCIFieldError(path: path.appending("rlimits").appending(index).appending("type"),
                                        problem: .invalid("\(rlimit.type.rawValue) is set twice"),
                                        hint: "keep one of rlimits[\(first)] and rlimits[\(index)]")
                }
                seen[rlimit.type] = index
            }
        }
    }

    /// A terminal's size in characters (config.md "Process": consoleSize).
    public struct ConsoleSize: Codable, Equatable, Sendable, OCIObject {
        /// Rows.
        public var height: UInt
        /// Columns.
        public var width: UInt

        public init(height: UInt, width: UInt) {
            self.height = height
            self.width = width
        }
    }

    /// Who the process runs as, in the container's user namespace (config.md "POSIX-platform User").
    public struct User: Codable, Equatable, Sendable, OCIObject {
        /// The user ID.
        public var uid: UInt32
        /// The group ID.
        public var gid: UInt32
        /// The file mode creation mask, in decimal (18 is 022); unchanged when absent (1.0.2).
        public var umask: UInt32?
        /// Supplementary group IDs, set with setgroups(2).
        public var additionalGids: [UInt32]?
        /// Windows only: the user name.
        public var username: String?

        public init(uid: UInt32, gid: UInt32, umask: UInt32? = nil, additionalGids: [UInt32]? = nil, username: String? = nil) {
            self.uid = uid
            self.gid = gid
            self.umask = umask
            self.additionalGids = additionalGids
            self.username = username
        }
    }

    /// Capability names (`CAP_KILL`) the process keeps in each set (config.md "Linux
    /// Process"; capabilities(7)). Absent sets are empty.
    public struct Capabilities: Codable, Equatable, Sendable, OCIObject {
        /// The bounding set: the most the process and its children can ever gain.
        public var bounding: [String]?
        /// The effective set: what the kernel checks.
        public var effective: [String]?
        /// The inheritable set: what may pass to a program through execve(2) with file capabilities.
        public var inheritable: [String]?
        /// The permitted set: the most the effective set may hold.
        public var permitted: [String]?
        /// The ambient set: what passes through execve(2) to programs without file capabilities.
        public var ambient: [String]?

        public init(bounding: [String]? = nil, effective: [String]? = nil, inheritable: [String]? = nil,
                    permitted: [String]? = nil, ambient: [String]? = nil) {
            self.bounding = bounding
            self.effective = effective
            self.inheritable = inheritable
            self.permitted = permitted
            self.ambient = ambient
        }
    }

    /// One resource limit, set with setrlimit(2) (config.md "POSIX process").
    public struct Rlimit: Codable, Equatable, Sendable, OCIObject {
        /// Which resource.
        public var type: RlimitType
        /// The ceiling an unprivileged process may raise `soft` to (rlim_max).
        public var hard: UInt64
        /// The limit enforced (rlim_cur).
        public var soft: UInt64

        public init(type: RlimitType, hard: UInt64, soft: UInt64) {
            self.type = type
            self.hard = hard
            self.soft = soft
        }
    }

    /// The resources getrlimit(2) knows on Linux; the spec requires an error for others.
    public enum RlimitType: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        case addressSpace = "RLIMIT_AS"
        case core = "RLIMIT_CORE"
        case cpu = "RLIMIT_CPU"
        case data = "RLIMIT_DATA"
        case fileSize = "RLIMIT_FSIZE"
        case locks = "RLIMIT_LOCKS"
        case memoryLock = "RLIMIT_MEMLOCK"
        case messageQueue = "RLIMIT_MSGQUEUE"
        case nice = "RLIMIT_NICE"
        case openFiles = "RLIMIT_NOFILE"
        case processes = "RLIMIT_NPROC"
        case residentSet = "RLIMIT_RSS"
        case realtimePriority = "RLIMIT_RTPRIO"
        case realtimeTime = "RLIMIT_RTTIME"
        case pendingSignals = "RLIMIT_SIGPENDING"
        case stack = "RLIMIT_STACK"

        static let noun = "a Linux rlimit type"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// The I/O priority of the container's processes, set with ioprio_set(2) (config.md
    /// "Linux Process", 1.1).
    public struct IOPriority: Codable, Equatable, Sendable, OCIObject {
        /// The scheduling class.
        public var ioClass: IOPriorityClass
        /// The level within the class: 0 (highest) to 7 (lowest).
        public var priority: Int

        public init(ioClass: IOPriorityClass, priority: Int) {
            self.ioClass = ioClass
            self.priority = priority
        }

        enum CodingKeys: String, CodingKey {
            case ioClass = "class"
            case priority
        }
    }

    /// I/O scheduling classes (ioprio_set(2)).
    public enum IOPriorityClass: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        case realtime = "IOPRIO_CLASS_RT"
        case bestEffort = "IOPRIO_CLASS_BE"
        case idle = "IOPRIO_CLASS_IDLE"

        static let noun = "an I/O priority class"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// The CPU scheduling attributes of the process, for sched_setattr(2) (config.md
    /// "Linux Process", 1.1).
    public struct Scheduler: Codable, Equatable, Sendable, OCIObject {
        /// The scheduling policy.
        public var policy: SchedulerPolicy
        /// The nice value for SCHED_OTHER and SCHED_BATCH: -20 (favoured) to 19; 0 when absent.
        public var nice: Int32?
        /// The static priority for SCHED_FIFO and SCHED_RR; 0 when absent.
        public var priority: Int32?
        /// Scheduling flags.
        public var flags: [SchedulerFlag]?
        /// SCHED_DEADLINE: nanoseconds the process may run in each period.
        public var runtime: UInt64?
        /// SCHED_DEADLINE: nanoseconds from the period's start by which the runtime is used.
        public var deadline: UInt64?
        /// SCHED_DEADLINE: the period's length in nanoseconds.
        public var period: UInt64?

        public init(policy: SchedulerPolicy, nice: Int32? = nil, priority: Int32? = nil, flags: [SchedulerFlag]? = nil,
                    runtime: UInt64? = nil, deadline: UInt64? = nil, period: UInt64? = nil) {
            self.policy = policy
            self.nice = nice
            self.priority = priority
            self.flags = flags
            self.runtime = runtime
            self.deadline = deadline
            self.period = period
        }
    }

    /// Scheduling policies (sched(7)).
    public enum SchedulerPolicy: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        case other = "SCHED_OTHER"
        case fifo = "SCHED_FIFO"
        case roundRobin = "SCHED_RR"
        case batch = "SCHED_BATCH"
        case iso = "SCHED_ISO"
        case idle = "SCHED_IDLE"
        case deadline = "SCHED_DEADLINE"

        static let noun = "a scheduling policy"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }

    /// Flags of sched_setattr(2).
    public enum SchedulerFlag: String, Codable, Sendable, CaseIterable, OCIEnumeration {
        case resetOnFork = "SCHED_FLAG_RESET_ON_FORK"
        case reclaim = "SCHED_FLAG_RECLAIM"
        case deadlineOverrun = "SCHED_FLAG_DL_OVERRUN"
        case keepPolicy = "SCHED_FLAG_KEEP_POLICY"
        case keepParameters = "SCHED_FLAG_KEEP_PARAMS"
        case utilizationClampMinimum = "SCHED_FLAG_UTIL_CLAMP_MIN"
        case utilizationClampMaximum = "SCHED_FLAG_UTIL_CLAMP_MAX"

        static let noun = "a scheduler flag"
        public init(from decoder: any Decoder) throws { self = try Self.decodeValue(from: decoder) }
    }
}
