import CIsolation
import Glibc
import SystemPackage

/// An OCI seccomp profile compiled to a classic BPF program, which the kernel runs on
/// every system call (seccomp(2), Documentation/userspace-api/seccomp_filter.rst).
///
/// One kernel answers more than one ABI, and each has its own numbers: on x86_64, `int 0x80`
/// reaches the i386 table (arch AUDIT_ARCH_I386, mkdir is 39, not 83), and a number with
/// bit 30 set (`__X32_SYSCALL_BIT`) reaches the x32 one under the same AUDIT_ARCH_X86_64.
/// A filter that matched only x86_64 numbers would let mkdir through either door. So the
/// program has one block per architecture the profile lists (the native one always), each
/// matching the rules against that ABI's numbers, as libseccomp builds it:
///
///     for each architecture:
///         load arch; if not this one → next block
///         load nr;   [x86_64: if nr ≥ 0x40000000 → next block (x32 is another ABI)]
///                    [x32:    if nr < 0x40000000 → default action]
///         for each rule: if nr == N [and its argument tests pass] → return its action
///         return the default action
///     return SECCOMP_RET_KILL_THREAD          (an ABI the profile does not list)
///
/// Arguments are 64 bits; classic BPF compares 32 at a time, so each test looks at the
/// high word, then the low one (a 32-bit ABI's arguments have no high word: the low one
/// only, as libseccomp does). Syscalls an architecture does not have are skipped, as runc
/// and crun do.
public struct SeccompFilter {
    /// One `struct sock_filter`: 8 bytes.
    public struct Instruction: Equatable, Sendable {
        public var code: UInt16
        public var jt: UInt8
        public var jf: UInt8
        public var k: UInt32

        public init(code: UInt16, jt: UInt8, jf: UInt8, k: UInt32) {
            self.code = code; self.jt = jt; self.jf = jf; self.k = k
        }

        /// `BPF_STMT(code, k)` (linux/filter.h): a load, an ALU step or a return.
        public static func statement(_ code: UInt16, _ k: UInt32) -> Instruction {
            Instruction(code: code, jt: 0, jf: 0, k: k)
        }

        /// `BPF_JUMP(code, k, jt, jf)`: compare A with k; skip `jt` instructions if true, `jf` if false.
        public static func jump(_ code: UInt16, _ k: UInt32, _ jt: UInt8, _ jf: UInt8) -> Instruction {
            Instruction(code: code, jt: jt, jf: jf, k: k)
        }
    }

    /// An ABI the filter has a block for: how seccomp names it and where its numbers come from.
    public struct Architecture: Equatable, Sendable {
        /// `SCMP_ARCH_X86_64`, …
        public var name: String
        /// The AUDIT_ARCH_* value in `seccomp_data.arch` (linux/audit.h).
        public var auditArch: UInt32
        /// Whether the ABI's arguments are 64 bits wide.
        public var wide: Bool

        /// AUDIT_ARCH_X86_64.
        public static let x86_64 = Architecture(name: "SCMP_ARCH_X86_64", auditArch: 0xC000_003E, wide: true)
        /// AUDIT_ARCH_I386: `int 0x80` on an x86_64 kernel.
        public static let x86 = Architecture(name: "SCMP_ARCH_X86", auditArch: 0x4000_0003, wide: false)
        /// x32 shares AUDIT_ARCH_X86_64: only `__X32_SYSCALL_BIT` in the number tells it apart.
        public static let x32 = Architecture(name: "SCMP_ARCH_X32", auditArch: 0xC000_003E, wide: true)
        /// AUDIT_ARCH_AARCH64.
        public static let aarch64 = Architecture(name: "SCMP_ARCH_AARCH64", auditArch: 0xC000_00B7, wide: true)

        /// The number of `syscall` in this ABI's table (`Architecture.x86_64.number("unshare")`
        /// is 272, `.x86`'s 310), or nil if it has none. An x32 number carries `x32Bit`.
        public func number(_ syscall: String) -> UInt32? {
            let number: Int32
            switch name {
            case Self.x86.name: number = iso_syscall_number_i386(syscall)
            case Self.x32.name: number = iso_syscall_number_x32(syscall)
            default: number = iso_syscall_number(syscall)
            }
            return number >= 0 ? UInt32(number) : nil
        }
    }

    /// `__X32_SYSCALL_BIT`: x32 calls are x86_64 calls with this bit set in the number.
    public static let x32Bit: UInt32 = 0x4000_0000
    /// What a call from an ABI the profile does not list gets: libseccomp's default
    /// "bad arch" action, SCMP_ACT_KILL (SECCOMP_RET_KILL_THREAD).
    static let badArchAction: UInt32 = 0x0000_0000

    // SECCOMP_RET_* (linux/seccomp.h): what a BPF_RET instruction answers.
    /// SECCOMP_RET_ALLOW: the call runs.
    public static let returnAllow: UInt32 = 0x7fff_0000
    /// SECCOMP_RET_KILL_PROCESS: the whole process dies by SIGSYS.
    public static let returnKillProcess: UInt32 = 0x8000_0000
    /// SECCOMP_RET_KILL_THREAD: the calling thread dies by SIGSYS.
    public static let returnKillThread: UInt32 = 0x0000_0000
    /// SECCOMP_RET_ERRNO | errno: the call does not run and returns -1 with that errno.
    public static func returnErrno(_ errno: Errno) -> UInt32 { 0x0005_0000 | (UInt32(errno.rawValue) & 0xffff) }

    public private(set) var instructions: [Instruction] = []
    /// The ABIs the filter checks, native first.
    public private(set) var architectures: [Architecture] = []
    /// Listed ABIs this kernel can run but this runtime has no table for (ARM on aarch64):
    /// their calls are refused, as an unlisted ABI's are.
    public private(set) var refusedArchitectures: [String] = []
    /// Names in the profile the native architecture has no number for.
    public private(set) var unknownNames: [String] = []

    // BPF opcodes (linux/bpf_common.h).
    /// BPF_LD | BPF_W | BPF_ABS: A = the 32-bit word at offset k of `struct seccomp_data`.
    public static let loadWord: UInt16 = 0x20
    /// BPF_JMP | BPF_JA: skip k instructions.
    public static let jumpAlways: UInt16 = 0x05
    /// BPF_JMP | BPF_JEQ | BPF_K: A == k ?
    public static let jumpEqual: UInt16 = 0x15
    /// BPF_JMP | BPF_JGT | BPF_K: A > k ? (unsigned)
    public static let jumpGreater: UInt16 = 0x25
    /// BPF_JMP | BPF_JGE | BPF_K: A >= k ? (unsigned)
    public static let jumpGreaterEqual: UInt16 = 0x35
    /// BPF_JMP | BPF_JSET | BPF_K: A & k != 0 ?
    public static let jumpSet: UInt16 = 0x45
    /// BPF_ALU | BPF_AND | BPF_K: A &= k.
    public static let andConstant: UInt16 = 0x54
    /// BPF_RET | BPF_K: the filter's answer is k (a SECCOMP_RET_* value).
    public static let returnConstant: UInt16 = 0x06

    // struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8i (low word first).
    /// `seccomp_data.nr`, the system call's number in its ABI's table.
    public static let offsetNumber: UInt32 = 0
    /// `seccomp_data.arch`, an AUDIT_ARCH_* value: which ABI the call came through.
    public static let offsetArch: UInt32 = 4
    static func offsetArgument(_ index: UInt, high: Bool) -> UInt32 { 16 + 8 * UInt32(index) + (high ? 4 : 0) }

    public init(_ profile: OCIConfig.Seccomp) throws {
        let defaultAction = try Self.action(profile.defaultAction, errno: profile.defaultErrnoRet, profile: profile)
        if let flags = profile.flags, !flags.isEmpty {
            throw IsolationError("linux.seccomp.flags \(flags) are not supported by this runtime", hint: "remove them from config.json")
        }
        (architectures, refusedArchitectures) = try Self.architectures(profile.architectures ?? [], native: iso_audit_arch())
        let rules = try (profile.syscalls ?? []).map { rule in
            // A rule's errno defaults to EPERM, not to defaultErrnoRet (config-linux.md "errnoRet").
            (rule, try Self.action(rule.action, errno: rule.errnoRet, profile: profile))
        }
        // libseccomp merges a call's rules into one tree, where a rule without argument
        // tests is a leaf that cuts off any longer branch: it wins over the rules with tests
        // for the same call, before or after it. Order among the rest is kept.
        let unconditional = Set(rules.filter { ($0.0.args ?? []).isEmpty }.flatMap(\.0.names))
        let ret = { (k: UInt32) in Instruction(code: Self.returnConstant, jt: 0, jf: 0, k: k) }
        let loadNumber = Instruction(code: Self.loadWord, jt: 0, jf: 0, k: Self.offsetNumber)
        // Program = one block per ABI + [bad arch]. A block is skipped with BPF_JA, whose
        // offset has 32 bits; inside, jumps are resolved per rule, within the 255 a
        // conditional jump allows.
        for architecture in architectures {
            var body: [Instruction] = [loadNumber]
            var matches: [Instruction] = []
            for (rule, action) in rules {
                let conditional = !(rule.args ?? []).isEmpty
                for name in rule.names where !(conditional && unconditional.contains(name)) {
                    guard let number = architecture.number(name) else {
                        if architecture == architectures[0] { unknownNames.append(name) }
                        continue
                    }
                    matches += try Self.rule(number: number, arguments: rule.args ?? [], action: action, wide: architecture.wide)
                }
                if architecture == .x86 {
                    // i386 also reaches these through socketcall(2) and ipc(2), whose first
                    // argument is the call and whose others are in memory the filter cannot
                    // read: the rule holds for every such call, its argument tests dropped
                    // (as libseccomp does). Without this, socketcall(SYS_SOCKET, …) would
                    // walk around a rule on socket.
                    for name in rule.names where !(conditional && unconditional.contains(name)) {
                        guard let (multiplexer, call) = Self.i386Multiplexed[name], !unconditional.contains(multiplexer),
                              let number = architecture.number(multiplexer) else { continue }
                        let first = OCIConfig.SyscallArgument(index: 0, value: UInt64(call), op: .equal)
                        matches += try Self.rule(number: number, arguments: [first], action: action, wide: false)
                    }
                }
            }
            matches.append(ret(defaultAction))
            if architecture == .x86_64 {
                // x32 shares this arch value: its numbers belong to the x32 block, if any.
                body.append(.init(code: Self.jumpGreaterEqual, jt: 0, jf: 1, k: Self.x32Bit))
                body.append(.init(code: Self.jumpAlways, jt: 0, jf: 0, k: UInt32(matches.count)))
            } else if architecture == .x32 {
                body.append(.init(code: Self.jumpGreaterEqual, jt: 1, jf: 0, k: Self.x32Bit))
                body.append(ret(defaultAction))
            }
            body += matches
            instructions.append(.init(code: Self.loadWord, jt: 0, jf: 0, k: Self.offsetArch))
            instructions.append(.init(code: Self.jumpEqual, jt: 1, jf: 0, k: architecture.auditArch))
            instructions.append(.init(code: Self.jumpAlways, jt: 0, jf: 0, k: UInt32(body.count)))
            instructions += body
        }
        instructions.append(ret(Self.badArchAction))
        guard instructions.count <= 4096 else {
            throw IsolationError("the seccomp profile compiles to \(instructions.count) BPF instructions; the kernel takes 4096")
        }
    }

    /// A program written instruction by instruction (`BPF_STMT`/`BPF_JUMP` style), checked
    /// the way the kernel's seccomp_check_filter would refuse it, but with an error that
    /// says which instruction: at most 4096, loads inside `struct seccomp_data` (64 bytes,
    /// 4-aligned), every jump landing inside the program, and a return at the end.
    public init(instructions program: [Instruction]) throws {
        guard !program.isEmpty, program.count <= 4096 else {
            throw IsolationError("a seccomp filter has 1 to 4096 instructions; this one has \(program.count)")
        }
        for (index, instruction) in program.enumerated() {
            let remaining = program.count - index - 1
            switch instruction.code {
            case Self.loadWord:
                guard instruction.k < 64, instruction.k % 4 == 0 else {
                    throw IsolationError("instruction \(index): a load at offset \(instruction.k), outside struct seccomp_data (0, 4, 8, … 60)")
                }
            case Self.jumpAlways:
                guard Int(instruction.k) < remaining else {
                    throw IsolationError("instruction \(index): BPF_JA skips \(instruction.k), past the end of the program")
                }
            case Self.jumpEqual, Self.jumpGreater, Self.jumpGreaterEqual, Self.jumpSet:
                guard Int(instruction.jt) < remaining, Int(instruction.jf) < remaining else {
                    throw IsolationError("instruction \(index): a jump (jt \(instruction.jt), jf \(instruction.jf)) past the end of the program")
                }
            case Self.andConstant, Self.returnConstant: break
            default:
                throw IsolationError("instruction \(index): opcode 0x\(String(instruction.code, radix: 16)) is not one this library writes",
                                     hint: "SeccompFilter.loadWord, jumpEqual, jumpGreater, jumpGreaterEqual, jumpSet, jumpAlways, andConstant, returnConstant")
            }
        }
        guard program.last?.code == Self.returnConstant else {
            throw IsolationError("the last instruction must be a return (BPF_RET): the kernel refuses a filter that can run off its end")
        }
        instructions = program
    }

    /// The blocks for a profile's `architectures` on a machine whose native arch is `native`:
    /// the native ABI always (libseccomp's filter starts with it), then each listed one
    /// this kernel can run. A listed ABI this kernel never runs (SCMP_ARCH_PPC64LE on x86_64)
    /// needs no block: no call can carry its arch value.
    static func architectures(_ names: [String], native: UInt32) throws -> ([Architecture], refused: [String]) {
        let family: [Architecture]
        var refusable: Set<String> = []
        switch native {
        case Architecture.x86_64.auditArch: family = [.x86_64, .x86, .x32]
        case Architecture.aarch64.auditArch: family = [.aarch64]; refusable = ["SCMP_ARCH_ARM"]
        default: throw IsolationError("seccomp on this architecture (AUDIT_ARCH \(String(native, radix: 16))) is not supported by this runtime",
                                      hint: "remove linux.seccomp from config.json")
        }
        var chosen = [family[0]], refused: [String] = []
        for name in names {
            guard libseccompArchitectures.contains(name) else {
                throw IsolationError("linux.seccomp.architectures: '\(name)' is not an architecture libseccomp knows",
                                     hint: "use SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32, SCMP_ARCH_AARCH64, SCMP_ARCH_ARM, …")
            }
            if let architecture = family.first(where: { $0.name == name }) {
                if !chosen.contains(architecture) { chosen.append(architecture) }
            } else if refusable.contains(name), !refused.contains(name) {
                refused.append(name)
            }
        }
        return (chosen, refused)
    }

    /// Calls i386 also makes through a multiplexer, and their number there
    /// (linux/net.h SYS_*, linux/ipc.h SEMOP…).
    static let i386Multiplexed: [String: (String, UInt32)] = {
        let socket = ["socket", "bind", "connect", "listen", "accept", "getsockname", "getpeername", "socketpair",
                      "send", "recv", "sendto", "recvfrom", "shutdown", "setsockopt", "getsockopt", "sendmsg",
                      "recvmsg", "accept4", "recvmmsg", "sendmmsg"]
        let ipc: [(String, UInt32)] = [("semop", 1), ("semget", 2), ("semctl", 3), ("semtimedop", 4), ("msgsnd", 11),
                                       ("msgrcv", 12), ("msgget", 13), ("msgctl", 14), ("shmat", 21), ("shmdt", 22),
                                       ("shmget", 23), ("shmctl", 24)]
        var table: [String: (String, UInt32)] = [:]
        for (index, name) in socket.enumerated() { table[name] = ("socketcall", UInt32(index + 1)) }
        for (name, call) in ipc { table[name] = ("ipc", call) }
        return table
    }()

    /// The `SCMP_ARCH_*` names libseccomp 2.5 accepts (config-linux.md "architectures").
    static let libseccompArchitectures: Set<String> = [
        "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
    ]

    /// The SECCOMP_RET_* value of an OCI action.
    static func action(_ action: OCIConfig.SeccompAction, errno: UInt32?, profile: OCIConfig.Seccomp) throws -> UInt32 {
        switch action {
        case .kill, .killThread: return 0x0000_0000
        case .killProcess: return 0x8000_0000
        case .trap: return 0x0003_0000
        case .errno: return 0x0005_0000 | ((errno ?? UInt32(EPERM)) & 0xffff)
        case .trace: return 0x7ff0_0000 | ((errno ?? UInt32(EPERM)) & 0xffff)
        case .allow: return 0x7fff_0000
        case .log: return 0x7ffc_0000
        case .notify:
            throw IsolationError("SCMP_ACT_NOTIFY needs a seccomp listener, which this runtime does not provide",
                                 hint: "remove linux.seccomp.listenerPath and the notify rules")
        }
    }

    /// `if nr == number [&& args…] return action`, leaving A = nr for the next rule.
    static func rule(number: UInt32, arguments: [OCIConfig.SyscallArgument], action: UInt32, wide: Bool = true) throws -> [Instruction] {
        if arguments.isEmpty {
            return [.init(code: jumpEqual, jt: 0, jf: 1, k: number), .init(code: returnConstant, jt: 0, jf: 0, k: action)]
        }
        // Assemble with labels: "fail" (reload nr, go on), "pass" per test (next test).
        var block = Assembler()
        block.jump(jumpEqual, k: number, onTrue: .next, onFalse: .fail)
        for argument in arguments {
            guard argument.index < 6 else { throw IsolationError("seccomp argument index \(argument.index) is past the sixth") }
            try block.test(argument, wide: wide)
        }
        block.append(.init(code: returnConstant, jt: 0, jf: 0, k: action))
        return try block.resolve(tail: [.init(code: loadWord, jt: 0, jf: 0, k: offsetNumber)])
    }

    /// Installs the filter in this process (prctl PR_SET_SECCOMP): from now on, for this
    /// process and everything it starts. Needs no_new_privs, or CAP_SYS_ADMIN.
    public func install() throws {
        var bytes: [UInt8] = []
        for instruction in instructions {
            withUnsafeBytes(of: instruction.code.littleEndian) { bytes += $0 }
            bytes += [instruction.jt, instruction.jf]
            withUnsafeBytes(of: instruction.k.littleEndian) { bytes += $0 }
        }
        let result = bytes.withUnsafeBytes { iso_seccomp_install($0.baseAddress, UInt16(instructions.count)) }
        if result != 0 { throw StageError(stage: "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)", errno: currentErrno()) }
    }
}

/// A tiny assembler for one rule: jumps name targets (the next instruction, the end of
/// the current test, the rule's failure exit) and are resolved to offsets at the end.
struct Assembler {
    enum Target { case next, pass, fail }
    struct Pending { var instruction: SeccompFilter.Instruction; var onTrue: Target?; var onFalse: Target?; var testEnd: Int }
    var items: [Pending] = []
    var testStart = 0

    mutating func append(_ instruction: SeccompFilter.Instruction) {
        items.append(Pending(instruction: instruction, onTrue: nil, onFalse: nil, testEnd: -1))
    }

    mutating func jump(_ code: UInt16, k: UInt32, onTrue: Target, onFalse: Target) {
        items.append(Pending(instruction: .init(code: code, jt: 0, jf: 0, k: k), onTrue: onTrue, onFalse: onFalse, testEnd: -1))
    }

    mutating func load(_ offset: UInt32) { append(.init(code: SeccompFilter.loadWord, jt: 0, jf: 0, k: offset)) }

    /// One argument test; falling off its end means it passed. A `wide` ABI's arguments
    /// have 64 bits (high word, then low); a 32-bit one's only the low word, compared with
    /// the value's low 32 bits.
    mutating func test(_ argument: OCIConfig.SyscallArgument, wide: Bool = true) throws {
        let start = items.count
        let high = UInt32(truncatingIfNeeded: argument.value >> 32), low = UInt32(truncatingIfNeeded: argument.value)
        let hiOffset = SeccompFilter.offsetArgument(argument.index, high: true)
        let loOffset = SeccompFilter.offsetArgument(argument.index, high: false)
        let eq = SeccompFilter.jumpEqual, gt = SeccompFilter.jumpGreater, ge = SeccompFilter.jumpGreaterEqual
        switch (argument.op, wide) {
        case (.equal, false):
            load(loOffset); jump(eq, k: low, onTrue: .next, onFalse: .fail)
        case (.notEqual, false):
            load(loOffset); jump(eq, k: low, onTrue: .fail, onFalse: .pass)
        case (.maskedEqual, false):
            load(loOffset); append(.init(code: SeccompFilter.andConstant, jt: 0, jf: 0, k: low))
            jump(eq, k: UInt32(truncatingIfNeeded: argument.valueTwo ?? 0), onTrue: .next, onFalse: .fail)
        case (.greaterThan, false), (.greaterOrEqual, false):
            load(loOffset); jump(argument.op == .greaterThan ? gt : ge, k: low, onTrue: .pass, onFalse: .fail)
        case (.lessThan, false), (.lessOrEqual, false):
            load(loOffset); jump(argument.op == .lessThan ? ge : gt, k: low, onTrue: .fail, onFalse: .pass)

        case (.equal, true):
            load(hiOffset); jump(eq, k: high, onTrue: .next, onFalse: .fail)
            load(loOffset); jump(eq, k: low, onTrue: .next, onFalse: .fail)
        case (.notEqual, true):
            load(hiOffset); jump(eq, k: high, onTrue: .next, onFalse: .pass)
            load(loOffset); jump(eq, k: low, onTrue: .fail, onFalse: .pass)
        case (.maskedEqual, true):
            // OCI: value is the mask, valueTwo the datum: (arg & value) == valueTwo.
            let datum = argument.valueTwo ?? 0
            load(hiOffset); append(.init(code: SeccompFilter.andConstant, jt: 0, jf: 0, k: high))
            jump(eq, k: UInt32(truncatingIfNeeded: datum >> 32), onTrue: .next, onFalse: .fail)
            load(loOffset); append(.init(code: SeccompFilter.andConstant, jt: 0, jf: 0, k: low))
            jump(eq, k: UInt32(truncatingIfNeeded: datum), onTrue: .next, onFalse: .fail)
        case (.greaterThan, true), (.greaterOrEqual, true):
            load(hiOffset); jump(gt, k: high, onTrue: .pass, onFalse: .next)
            jump(eq, k: high, onTrue: .next, onFalse: .fail)
            load(loOffset); jump(argument.op == .greaterThan ? gt : ge, k: low, onTrue: .pass, onFalse: .fail)
        case (.lessThan, true), (.lessOrEqual, true):
            load(hiOffset); jump(gt, k: high, onTrue: .fail, onFalse: .next)
            jump(eq, k: high, onTrue: .next, onFalse: .pass)
            // lo < v ⇔ !(lo >= v); lo <= v ⇔ !(lo > v)
            load(loOffset); jump(argument.op == .lessThan ? ge : gt, k: low, onTrue: .fail, onFalse: .pass)
        }
        for index in start..<items.count { items[index].testEnd = items.count }
    }

    /// Offsets for every jump; `tail` (reloading nr) is where `.fail` lands.
    func resolve(tail: [SeccompFilter.Instruction]) throws -> [SeccompFilter.Instruction] {
        let failIndex = items.count
        var out: [SeccompFilter.Instruction] = []
        for (pc, item) in items.enumerated() {
            var instruction = item.instruction
            func offset(_ target: Target?) throws -> UInt8 {
                guard let target else { return 0 }
                let destination: Int
                switch target {
                case .next: destination = pc + 1
                case .pass: destination = item.testEnd
                case .fail: destination = failIndex
                }
                let distance = destination - (pc + 1)
                guard distance >= 0 && distance <= 255 else { throw IsolationError("a seccomp rule is too long to compile") }
                return UInt8(distance)
            }
            if item.onTrue != nil || item.onFalse != nil {
                instruction.jt = try offset(item.onTrue)
                instruction.jf = try offset(item.onFalse)
            }
            out.append(instruction)
        }
        return out + tail
    }
}
