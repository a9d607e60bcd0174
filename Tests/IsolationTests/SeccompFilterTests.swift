// The seccomp compiler, without a kernel: a small classic-BPF interpreter runs the
// compiled program on made-up `struct seccomp_data` and says what the kernel would do.
// (The same profiles inside a container, against crun: Chapter04SeccompDifferentialTests.)
import Testing
@testable import Isolation

/// Runs `program` the way the kernel's seccomp does for one call (only the opcodes the
/// compiler emits); the SECCOMP_RET_* value it returns.
private func evaluate(_ program: [SeccompFilter.Instruction], nr: UInt32, arch: UInt32, args: [UInt64] = []) -> UInt32? {
    var a: UInt32 = 0, pc = 0, steps = 0
    func word(_ offset: UInt32) -> UInt32 {
        switch offset {
        case 0: return nr
        case 4: return arch
        default:
            let index = Int(offset - 16) / 8, value = index < args.count ? args[index] : 0
            return offset % 8 == 0 ? UInt32(truncatingIfNeeded: value) : UInt32(truncatingIfNeeded: value >> 32)
        }
    }
    while pc < program.count, steps < 10_000 {
        let i = program[pc]
        steps += 1
        pc += 1
        switch i.code {
        case SeccompFilter.loadWord: a = word(i.k)
        case SeccompFilter.andConstant: a &= i.k
        case SeccompFilter.jumpAlways: pc += Int(i.k)
        case SeccompFilter.jumpEqual: pc += Int(a == i.k ? i.jt : i.jf)
        case SeccompFilter.jumpGreater: pc += Int(a > i.k ? i.jt : i.jf)
        case SeccompFilter.jumpGreaterEqual: pc += Int(a >= i.k ? i.jt : i.jf)
        case SeccompFilter.jumpSet: pc += Int(a & i.k != 0 ? i.jt : i.jf)
        case SeccompFilter.returnConstant: return i.k
        default: return nil
        }
    }
    return nil  // ran off the end: the kernel refuses such a program
}

#if arch(x86_64)
@Suite("Seccomp compiler: every ABI of x86_64 checked with its own numbers")
struct SeccompFilterTests {
    static let x86_64: UInt32 = 0xC000_003E, i386: UInt32 = 0x4000_0003
    static let allow: UInt32 = 0x7fff_0000, eperm: UInt32 = 0x0005_0001, kill: UInt32 = 0
    static let denyMkdir = OCIConfig.Syscall(names: ["mkdir"], action: .errno)

    @Test func threeABIsListed() throws {
        let filter = try SeccompFilter(.init(defaultAction: .allow,
                                             architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                                             syscalls: [Self.denyMkdir]))
        #expect(filter.architectures.map(\.name) == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        let run = { (nr: UInt32, arch: UInt32) in evaluate(filter.instructions, nr: nr, arch: arch) }
        #expect(run(83, Self.x86_64) == Self.eperm)                 // mkdir
        #expect(run(0x4000_0000 | 83, Self.x86_64) == Self.eperm)   // mkdir through x32
        #expect(run(39, Self.i386) == Self.eperm)                   // mkdir through int 0x80
        #expect(run(83, Self.i386) == Self.allow)                   // i386's 83 is symlink
        #expect(run(39, Self.x86_64) == Self.allow)                 // x86_64's 39 is getpid
        #expect(run(0xffff_ffff, Self.x86_64) == Self.allow)        // syscall(-1): x32's block, default
        #expect(run(83, 0xC000_00B7) == Self.kill)                  // an arch not listed
    }

    /// The project's default profile (chapter 08): clone with a namespace flag is refused
    /// through both ABIs that have clone, a thread's clone is not, clone3 is ENOSYS.
    @Test func containerDefaultProfile() throws {
        let filter = try SeccompFilter(.containerDefault)
        #expect(filter.architectures.map(\.name) == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        let run = { (nr: UInt32, arch: UInt32, flags: UInt64) in evaluate(filter.instructions, nr: nr, arch: arch, args: [flags]) }
        let thread: UInt64 = 0x003d_0f00, fork: UInt64 = 0x0120_0011  // what glibc's pthread_create and fork pass
        for (clone, arch) in [(UInt32(56), Self.x86_64), (0x4000_0000 | 56, Self.x86_64), (120, Self.i386)] {
            #expect(run(clone, arch, thread) == Self.allow)
            #expect(run(clone, arch, fork) == Self.allow)
            for flag: UInt64 in [0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000] {
                #expect(run(clone, arch, fork | flag) == Self.eperm, "clone nr \(clone) with \(String(flag, radix: 16))")
            }
        }
        #expect(run(435, Self.x86_64, 0) == 0x0005_0026)           // clone3: ENOSYS
        #expect(run(272, Self.x86_64, 0) == Self.eperm)            // unshare
        #expect(run(310, Self.i386, 0) == Self.eperm)              // unshare through int 0x80
        #expect(run(165, Self.x86_64, 0) == Self.eperm)            // mount
        #expect(run(0, Self.x86_64, 0) == Self.allow)              // read
    }

    @Test func onlyTheNativeABI() throws {
        for architectures in [nil, ["SCMP_ARCH_X86_64"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_PPC64LE"]] {
            let filter = try SeccompFilter(.init(defaultAction: .allow, architectures: architectures, syscalls: [Self.denyMkdir]))
            #expect(filter.architectures.map(\.name) == ["SCMP_ARCH_X86_64"])
            #expect(evaluate(filter.instructions, nr: 83, arch: Self.x86_64) == Self.eperm)
            #expect(evaluate(filter.instructions, nr: 0x4000_0000 | 83, arch: Self.x86_64) == Self.kill)
            #expect(evaluate(filter.instructions, nr: 0x4000_0000 | 39, arch: Self.x86_64) == Self.kill)
            #expect(evaluate(filter.instructions, nr: 39, arch: Self.i386) == Self.kill)
        }
    }

    /// A 32-bit ABI's arguments have no high word: its tests look at the low one only.
    @Test func thirtyTwoBitArguments() throws {
        let minusOne = OCIConfig.SyscallArgument(index: 0, value: 0xffff_ffff_ffff_ffff, op: .equal)
        let filter = try SeccompFilter(.init(defaultAction: .allow, architectures: ["SCMP_ARCH_X86"],
                                             syscalls: [.init(names: ["setns"], action: .errno, args: [minusOne])]))
        #expect(evaluate(filter.instructions, nr: 308, arch: Self.x86_64, args: [0xffff_ffff_ffff_ffff]) == Self.eperm)
        #expect(evaluate(filter.instructions, nr: 308, arch: Self.x86_64, args: [0xffff_ffff]) == Self.allow)
        #expect(evaluate(filter.instructions, nr: 346, arch: Self.i386, args: [0xffff_ffff]) == Self.eperm)
        #expect(evaluate(filter.instructions, nr: 346, arch: Self.i386, args: [3]) == Self.allow)
    }

    /// i386 reaches socket(2) through socketcall(2) too (call 1, SYS_SOCKET), the arguments
    /// in memory: the rule holds there whatever they are.
    @Test func i386Multiplexers() throws {
        let inet6 = OCIConfig.SyscallArgument(index: 0, value: 10, op: .equal)
        let filter = try SeccompFilter(.init(defaultAction: .allow, architectures: ["SCMP_ARCH_X86"],
                                             syscalls: [.init(names: ["socket", "shmget"], action: .errno, args: [inet6])]))
        #expect(evaluate(filter.instructions, nr: 359, arch: Self.i386, args: [10]) == Self.eperm)   // socket
        #expect(evaluate(filter.instructions, nr: 359, arch: Self.i386, args: [1]) == Self.allow)
        #expect(evaluate(filter.instructions, nr: 102, arch: Self.i386, args: [1, 0x1000]) == Self.eperm)   // socketcall(SYS_SOCKET)
        #expect(evaluate(filter.instructions, nr: 102, arch: Self.i386, args: [2, 0x1000]) == Self.allow)   // SYS_BIND
        #expect(evaluate(filter.instructions, nr: 117, arch: Self.i386, args: [23]) == Self.eperm)   // ipc(SHMGET)
        #expect(evaluate(filter.instructions, nr: 102, arch: Self.x86_64, args: [1]) == Self.allow)  // x86_64's 102 is getuid
    }

    /// As in libseccomp's tree, a rule without argument tests wins over one with, before or after it.
    @Test func unconditionalRuleWins() throws {
        let positive = OCIConfig.SyscallArgument(index: 1, value: 0, op: .greaterThan)
        for order in [[0, 1], [1, 0]] {
            let rules = [OCIConfig.Syscall(names: ["mkdir"], action: .errno, args: [positive]),
                         OCIConfig.Syscall(names: ["mkdir"], action: .allow)]
            let filter = try SeccompFilter(.init(defaultAction: .errno, syscalls: order.map { rules[$0] }))
            #expect(evaluate(filter.instructions, nr: 83, arch: Self.x86_64, args: [0, 0o755]) == Self.allow)
        }
    }

    /// A profile longer than a conditional jump reaches (255) still skips whole blocks.
    @Test func longProfile() throws {
        let names = ["getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "gettid", "uname"]
        let rules = (0..<40).map { _ in OCIConfig.Syscall(names: names, action: .allow) } + [Self.denyMkdir]
        let filter = try SeccompFilter(.init(defaultAction: .allow, architectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"], syscalls: rules))
        #expect(filter.instructions.count > 3 * 255)
        #expect(evaluate(filter.instructions, nr: 39, arch: Self.i386) == Self.eperm)
        #expect(evaluate(filter.instructions, nr: 0x4000_0000 | 83, arch: Self.x86_64) == Self.eperm)
    }

    @Test func unknownArchitectureIsAnError() {
        #expect(throws: IsolationError.self) {
            try SeccompFilter(.init(defaultAction: .allow, architectures: ["SCMP_ARCH_AMD64"]))
        }
    }
}

/// A filter written by hand (exercise 08's stretch): the program is taken as written,
/// after the checks the kernel would make, and it holds at all three doors.
@Suite("Seccomp filter by hand: SeccompFilter(instructions:)")
struct SeccompHandWrittenTests {
    typealias I = SeccompFilter.Instruction
    static let unshare = SeccompFilter.Architecture.x86_64.number("unshare")!
    static let program: [I] = [
        .statement(SeccompFilter.loadWord, SeccompFilter.offsetArch),
        .jump(SeccompFilter.jumpEqual, SeccompFilter.Architecture.x86_64.auditArch, 1, 0),
        .statement(SeccompFilter.returnConstant, SeccompFilter.returnKillProcess),
        .statement(SeccompFilter.loadWord, SeccompFilter.offsetNumber),
        .jump(SeccompFilter.jumpSet, SeccompFilter.x32Bit, 0, 1),
        .statement(SeccompFilter.returnConstant, SeccompFilter.returnErrno(.notPermitted)),
        .statement(SeccompFilter.loadWord, SeccompFilter.offsetNumber),
        .jump(SeccompFilter.jumpEqual, unshare, 0, 1),
        .statement(SeccompFilter.returnConstant, SeccompFilter.returnErrno(.notPermitted)),
        .statement(SeccompFilter.returnConstant, SeccompFilter.returnAllow),
    ]

    @Test func theThreeDoors() throws {
        let filter = try SeccompFilter(instructions: Self.program)
        #expect(filter.instructions == Self.program)
        #expect(Self.unshare == 272 && SeccompFilter.Architecture.x86.number("unshare") == 310)
        let run = { (nr: UInt32, arch: UInt32) in evaluate(filter.instructions, nr: nr, arch: arch) }
        #expect(run(272, 0xC000_003E) == 0x0005_0001)                 // unshare: EPERM
        #expect(run(39, 0xC000_003E) == 0x7fff_0000)                  // getpid runs
        #expect(run(0x4000_0000 | 39, 0xC000_003E) == 0x0005_0001)    // any x32 call: EPERM
        #expect(run(310, 0x4000_0003) == 0x8000_0000)                 // unshare through int 0x80: killed
        // Without the arch test, i386's unshare (310) is not x86_64's (272): it runs.
        #expect(evaluate(Array(Self.program.dropFirst(3)), nr: 310, arch: 0x4000_0003) == 0x7fff_0000)
    }

    @Test func refusedBeforeTheKernelSeesIt() {
        let ret = I.statement(SeccompFilter.returnConstant, SeccompFilter.returnAllow)
        for program: [I] in [
            [],                                                                  // empty
            [.statement(SeccompFilter.loadWord, SeccompFilter.offsetNumber)],   // runs off its end
            [.statement(SeccompFilter.loadWord, 64), ret],                      // past seccomp_data
            [.statement(SeccompFilter.loadWord, 2), ret],                       // not 4-aligned
            [.jump(SeccompFilter.jumpEqual, 1, 1, 0), ret],                     // jumps past the end
            [.statement(SeccompFilter.jumpAlways, 1), ret],
            [.statement(0x07, 0), ret],                                         // an opcode it does not know
        ] {
            #expect(throws: IsolationError.self, "\(program)") { try SeccompFilter(instructions: program) }
        }
    }
}
#endif
