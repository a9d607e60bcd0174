import CIsolation
import Glibc

/// An OCI seccomp profile compiled to a classic BPF program, which the kernel runs on
/// every system call (seccomp(2), Documentation/userspace-api/seccomp_filter.rst):
///
///     load arch; if not native → kill
///     load nr
///     for each rule: if nr == N [and its argument tests pass] → return its action
///     return the default action
///
/// Arguments are 64 bits; classic BPF compares 32 at a time, so each test looks at the
/// high word, then the low one. Syscalls this architecture does not have are skipped,
/// as runc does.
public struct SeccompFilter {
    /// One `struct sock_filter`: 8 bytes.
    public struct Instruction: Equatable {
        public var code: UInt16
        public var jt: UInt8
        public var jf: UInt8
        public var k: UInt32
    }

    public private(set) var instructions: [Instruction] = []
    /// Names in the profile this architecture has no number for.
    public private(set) var unknownNames: [String] = []

    // BPF opcodes (linux/bpf_common.h).
    static let loadWord: UInt16 = 0x20       // BPF_LD | BPF_W | BPF_ABS
    static let jumpEqual: UInt16 = 0x15      // BPF_JMP | BPF_JEQ | BPF_K
    static let jumpGreater: UInt16 = 0x25    // BPF_JMP | BPF_JGT | BPF_K
    static let jumpGreaterEqual: UInt16 = 0x35
    static let andConstant: UInt16 = 0x54    // BPF_ALU | BPF_AND | BPF_K
    static let returnConstant: UInt16 = 0x06 // BPF_RET | BPF_K

    // struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8i (low word first).
    static let offsetNumber: UInt32 = 0
    static let offsetArch: UInt32 = 4
    static func offsetArgument(_ index: UInt, high: Bool) -> UInt32 { 16 + 8 * UInt32(index) + (high ? 4 : 0) }

    public init(_ profile: OCIConfig.Seccomp) throws {
        let defaultAction = try Self.action(profile.defaultAction, errno: profile.defaultErrnoRet, profile: profile)
        if let flags = profile.flags, !flags.isEmpty {
            throw IsolationError("linux.seccomp.flags \(flags) are not supported by this runtime", hint: "remove them from config.json")
        }
        // Program = [arch check] + [load nr] + rules + [default]; jumps are resolved
        // within each rule, so no offset can exceed the 255 a BPF jump allows.
        instructions.append(.init(code: Self.loadWord, jt: 0, jf: 0, k: Self.offsetArch))
        instructions.append(.init(code: Self.jumpEqual, jt: 1, jf: 0, k: iso_audit_arch()))
        instructions.append(.init(code: Self.returnConstant, jt: 0, jf: 0, k: 0x8000_0000))  // SECCOMP_RET_KILL_PROCESS
        instructions.append(.init(code: Self.loadWord, jt: 0, jf: 0, k: Self.offsetNumber))
        for rule in profile.syscalls ?? [] {
            // A rule's errno defaults to EPERM, not to defaultErrnoRet (config-linux.md "errnoRet").
            let action = try Self.action(rule.action, errno: rule.errnoRet, profile: profile)
            for name in rule.names {
                let number = iso_syscall_number(name)
                guard number >= 0 else { unknownNames.append(name); continue }
                instructions += try Self.rule(number: UInt32(number), arguments: rule.args ?? [], action: action)
            }
        }
        instructions.append(.init(code: Self.returnConstant, jt: 0, jf: 0, k: defaultAction))
        guard instructions.count <= 4096 else {
            throw IsolationError("the seccomp profile compiles to \(instructions.count) BPF instructions; the kernel takes 4096")
        }
    }

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
    static func rule(number: UInt32, arguments: [OCIConfig.SyscallArgument], action: UInt32) throws -> [Instruction] {
        if arguments.isEmpty {
            return [.init(code: jumpEqual, jt: 0, jf: 1, k: number), .init(code: returnConstant, jt: 0, jf: 0, k: action)]
        }
        // Assemble with labels: "fail" (reload nr, go on), "pass" per test (next test).
        var block = Assembler()
        block.jump(jumpEqual, k: number, onTrue: .next, onFalse: .fail)
        for argument in arguments {
            guard argument.index < 6 else { throw IsolationError("seccomp argument index \(argument.index) is past the sixth") }
            try block.test(argument)
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

    /// One argument test; falling off its end means it passed.
    mutating func test(_ argument: OCIConfig.SyscallArgument) throws {
        let start = items.count
        let high = UInt32(truncatingIfNeeded: argument.value >> 32), low = UInt32(truncatingIfNeeded: argument.value)
        let hiOffset = SeccompFilter.offsetArgument(argument.index, high: true)
        let loOffset = SeccompFilter.offsetArgument(argument.index, high: false)
        let eq = SeccompFilter.jumpEqual, gt = SeccompFilter.jumpGreater, ge = SeccompFilter.jumpGreaterEqual
        switch argument.op {
        case .equal:
            load(hiOffset); jump(eq, k: high, onTrue: .next, onFalse: .fail)
            load(loOffset); jump(eq, k: low, onTrue: .next, onFalse: .fail)
        case .notEqual:
            load(hiOffset); jump(eq, k: high, onTrue: .next, onFalse: .pass)
            load(loOffset); jump(eq, k: low, onTrue: .fail, onFalse: .pass)
        case .maskedEqual:
            // OCI: value is the mask, valueTwo the datum: (arg & value) == valueTwo.
            let datum = argument.valueTwo ?? 0
            load(hiOffset); append(.init(code: SeccompFilter.andConstant, jt: 0, jf: 0, k: high))
            jump(eq, k: UInt32(truncatingIfNeeded: datum >> 32), onTrue: .next, onFalse: .fail)
            load(loOffset); append(.init(code: SeccompFilter.andConstant, jt: 0, jf: 0, k: low))
            jump(eq, k: UInt32(truncatingIfNeeded: datum), onTrue: .next, onFalse: .fail)
        case .greaterThan, .greaterOrEqual:
            load(hiOffset); jump(gt, k: high, onTrue: .pass, onFalse: .next)
            jump(eq, k: high, onTrue: .next, onFalse: .fail)
            load(loOffset); jump(argument.op == .greaterThan ? gt : ge, k: low, onTrue: .pass, onFalse: .fail)
        case .lessThan, .lessOrEqual:
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
