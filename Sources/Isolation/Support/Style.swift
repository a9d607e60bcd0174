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

/// One step of a lesson: the system call as it is made, then, dimmed, why. Both wrap at
/// the terminal's width, continued lines indented under the first (a hanging indent).
public func lessonStep(_ call: String, _ why: String) {
    let style = Style.standardOutput
    let width = terminalWidth()
    for (index, line) in wrapLines(call, first: width - 2, rest: width - 6).enumerated() {
        say((index == 0 ? "  " : "      ") + style.syscall(line))
    }
    for line in wrapLines(why, first: width - 6, rest: width - 6) { say("      " + style.dim(line)) }
}

/// A line of a lesson, wrapped at the terminal's width: the first line starts with
/// `indent`, the others with `hanging`; `style` (dim, bold…) is applied to each line's text.
public func sayWrapped(_ text: String, indent: String = "", hanging: String = "    ", style: (String) -> String = { $0 }) {
    let width = terminalWidth()
    for (index, line) in wrapLines(text, first: width - indent.count, rest: width - hanging.count).enumerated() {
        say((index == 0 ? indent : hanging) + style(line))
    }
}

/// A note about the run itself (the root filesystem being built, a layer that is a copy)
/// on standard error, dimmed, in parentheses, wrapped: standard output stays the lesson's,
/// or the command's alone with `-- COMMAND`.
public func note(_ text: String) {
    let style = Style.standardError
    for (index, line) in wrapLines("(\(text))", first: 78, rest: 77).enumerated() {
        printError((index == 0 ? "  " : "   ") + style.dim(line))
    }
}

/// The width lessons wrap at: the terminal's columns (TIOCGWINSZ, tty_ioctl(4)) when
/// standard output is one, else 80, the width instructors project at.
public func terminalWidth() -> Int {
    var size = winsize()
    if isatty(STDOUT_FILENO) == 1, ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col >= 40 {
        return Int(size.ws_col)
    }
    return 80
}

/// Breaks `text` into lines of at most `first` characters (the first line) and `rest`
/// (the others). A line ends after a space, a comma, a `|` or a `/` where one is near
/// enough, else anywhere inside a word longer than a line.
public func wrapLines(_ text: String, first: Int, rest: Int) -> [String] {
    var lines: [String] = []
    var remaining = Substring(text)
    var room = max(first, 10)
    while remaining.count > room {
        let window = remaining.prefix(room)
        var cut = window.endIndex
        if let space = window.lastIndex(where: { $0 == " " || $0 == "," || $0 == "|" || $0 == "/" }),
           remaining.distance(from: remaining.startIndex, to: space) >= room / 2 {
            cut = remaining.index(after: space)
        }
        var line = remaining[..<cut]
        while line.last == " " { line = line.dropLast() }
        lines.append(String(line))
        remaining = remaining[cut...].drop(while: { $0 == " " })
        room = max(rest, 10)
    }
    lines.append(String(remaining))
    return lines
}
