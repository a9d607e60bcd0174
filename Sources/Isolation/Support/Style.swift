import Glibc
import SystemPackage

/// Terminal output for lessons: colour and bold on a terminal, plain text when piped
/// (or when NO_COLOR is set), so logs and tests read the same words.
public struct Style: Sendable {
    public let enabled: Bool

    public init(fd: Int32 = STDOUT_FILENO) {
        enabled = isatty(fd) == 1 && environmentValue("NO_COLOR") == nil && environmentValue("TERM") != "dumb"
    }

    public static let standardOutput = Style(fd: STDOUT_FILENO)
    public static let standardError = Style(fd: STDERR_FILENO)

    private func wrap(_ code: String, _ text: String) -> String { enabled ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    public func bold(_ text: String) -> String { wrap("1", text) }
    public func dim(_ text: String) -> String { wrap("2", text) }
    public func red(_ text: String) -> String { wrap("31", text) }
    public func green(_ text: String) -> String { wrap("32", text) }
    public func yellow(_ text: String) -> String { wrap("33", text) }
    public func cyan(_ text: String) -> String { wrap("36", text) }
    /// A system call as the lesson prints it.
    public func syscall(_ text: String) -> String { wrap("1;36", text) }
}

/// Writes to standard error (unbuffered), for narration and errors.
public func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    let bytes = Array(line.utf8)
    _ = try? FileDescriptor.standardError.writeAll(bytes)
}

/// Pads `text` to `width` visible characters (ANSI escapes do not count).
public func pad(_ text: String, _ width: Int) -> String {
    var visible = 0
    var inEscape = false
    for scalar in text.unicodeScalars {
        if scalar == "\u{1B}" { inEscape = true; continue }
        if inEscape { if scalar == "m" { inEscape = false }; continue }
        visible += 1
    }
    return visible >= width ? text : text + String(repeating: " ", count: width - visible)
}

/// Two columns side by side, each with a heading: host on one side, jail on the other.
public func sideBySide(_ leftTitle: String, _ left: [String], _ rightTitle: String, _ right: [String], width: Int = 38) -> String {
    var lines = [pad(leftTitle, width) + " │ " + rightTitle, String(repeating: "─", count: width) + "─┼─" + String(repeating: "─", count: width)]
    for i in 0..<max(left.count, right.count) {
        let l = i < left.count ? left[i] : ""
        let r = i < right.count ? right[i] : ""
        lines.append(pad(l, width) + " │ " + r)
    }
    return lines.joined(separator: "\n")
}

/// getenv(3) as a Swift string.
public func environmentValue(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

/// Writes a line to standard output at once (unbuffered), so that a parent's lines and
/// its children's output appear in the order they happen, on a terminal or in a pipe.
/// A lesson piped into `head` or `less` must still clean up when the reader quits early.
/// With SIGPIPE ignored, a write to the closed pipe fails (EPIPE) instead of killing the
/// lesson before its defers remove the container, its cgroup and its folders. Programs the
/// lesson starts get the default back: the spawn shim resets SIGPIPE before execve.
public func continueOnClosedOutput() {
    signal(SIGPIPE, SIG_IGN)
}

public func say(_ text: String = "") {
    var line = text
    line += "\n"
    _ = try? FileDescriptor.standardOutput.writeAll(Array(line.utf8))
}

/// Runs a chapter's body and turns errors into one clear message and an exit status:
/// 127 for a command that cannot be found, 1 for anything else. (Any `defer` inside
/// `body` has run, so clean-up is done, before the process exits.)
public func reportingErrors(_ program: String, _ body: () throws -> Void) {
    do {
        try body()
    } catch let error as ExecError {
        printError("\(program): \(error)")
        exit(error.status)
    } catch let error as IsolationError {
        printError("\(program): \(error)")
        exit(1)
    } catch let error as StageError {
        printError("\(program): \(error)")
        exit(1)
    } catch let error as Errno {
        printError("\(program): \(error) (\(errnoName(error)))")
        exit(1)
    } catch {
        printError("\(program): \(error)")
        exit(1)
    }
}

/// One step of a lesson: the system call as it is made, then, dimmed, why.
public func lessonStep(_ call: String, _ why: String) {
    let style = Style.standardOutput
    say("  " + style.syscall(call))
    say("      " + style.dim(why))
}
