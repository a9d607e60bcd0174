import SystemPackage

/// An error for a person: what went wrong, and what to do about it.
///
/// Chapters print `description` as one line, followed by `hint` when there is one, and
/// exit non-zero. Nothing is created before such an error is thrown.
public struct IsolationError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var hint: String?

    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }

    public var description: String {
        if let hint { return "\(message)\n  → \(hint)" }
        return message
    }
}

/// A system call that failed during a named stage of setting a process up, in the style
/// of apple/containerization's `SpawnError(stage:errno:)`.
public struct StageError: Error, CustomStringConvertible, Sendable {
    public var stage: String
    public var errno: Errno
    public var detail: String?

    public init(stage: String, errno: Errno, detail: String? = nil) {
        self.stage = stage
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = "\(stage) failed: \(errno.description) (\(errnoName(errno)))"
        if let detail { text += ": \(detail)" }
        return text
    }
}

/// Runs `body` as the named stage: a bare `Errno` it throws (which names neither the
/// path nor the step) becomes a `StageError` that names both, with `detail` saying what
/// to do. Other errors pass through as they are.
public func inStage<T>(_ stage: @autoclosure () -> String, detail: String? = nil, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let errno as Errno {
        throw StageError(stage: stage(), errno: errno, detail: detail)
    }
}

/// `ENOENT`, `EPERM`, ...: the name a man page uses, so the error can be looked up.
public func errnoName(_ errno: Errno) -> String {
    switch errno {
    case .notPermitted: return "EPERM"
    case .noSuchFileOrDirectory: return "ENOENT"
    case .noSuchProcess: return "ESRCH"
    case .interrupted: return "EINTR"
    case .ioError: return "EIO"
    case .badFileDescriptor: return "EBADF"
    case .noChildProcess: return "ECHILD"
    case .resourceTemporarilyUnavailable: return "EAGAIN"
    case .noMemory: return "ENOMEM"
    case .permissionDenied: return "EACCES"
    case .resourceBusy: return "EBUSY"
    case .fileExists: return "EEXIST"
    case .notDirectory: return "ENOTDIR"
    case .isDirectory: return "EISDIR"
    case .invalidArgument: return "EINVAL"
    case .noSpace: return "ENOSPC"
    case .readOnlyFileSystem: return "EROFS"
    case .tooManySymbolicLinkLevels: return "ELOOP"
    case .directoryNotEmpty: return "ENOTEMPTY"
    case .noFunction: return "ENOSYS"
    case .notSupported: return "ENOTSUP"
    case .operationNotSupportedByDevice: return "ENODEV"
    case .execFormatError: return "ENOEXEC"
    default: return "errno \(errno.rawValue)"
    }
}
