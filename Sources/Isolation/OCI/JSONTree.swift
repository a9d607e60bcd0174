/// A JSON document parsed by hand, remembering where each value starts, so that an error
/// can say "line 12, column 7".
///
/// Only the error path uses it: `config.json` and `state.json` are decoded by JSONDecoder,
/// and when that fails this parser finds the line and column of the value at fault. It
/// also explains syntax errors, which JSONDecoder on Linux reports only as "The given
/// data was not valid JSON." (swiftlang/swift-foundation#274, #1604). RFC 8259 grammar,
/// plus the trailing commas JSONDecoder tolerates.
struct JSONValue {
    enum Kind {
        case null
        case bool(Bool)
        /// The number as written, so that `18446744073709551615` keeps every digit.
        case number(String)
        case string(String)
        case array([JSONValue])
        /// Members in the order written. A repeated key resolves to its first occurrence,
        /// as JSONDecoder does.
        case object([(key: String, value: JSONValue)])
    }

    var kind: Kind
    /// Byte offset of the value's first character in the document.
    var offset: Int

    /// The member `key` of an object, or nil.
    func member(_ key: String) -> JSONValue? {
        guard case .object(let members) = kind else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The element at `index` of an array, or nil.
    func element(_ index: Int) -> JSONValue? {
        guard case .array(let elements) = kind, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// The value at `path`, or the deepest value on the way there that exists (for a
    /// missing key: the object that should hold it).
    func deepest(along path: JSONPath) -> JSONValue {
        var current = self
        for component in path.components {
            let next: JSONValue?
            switch component {
            case .key(let key): next = current.member(key)
            case .index(let index): next = current.element(index)
            }
            guard let next else { return current }
            current = next
        }
        return current
    }

    /// `a string ("0")`, `a number (-1)`, `an object`: what a person would call this value.
    var summary: String {
        switch kind {
        case .null: return "null"
        case .bool(let value): return "a boolean (\(value))"
        case .number(let text): return "a number (\(text))"
        case .string(let text):
            let shown = text.count > 40 ? String(text.prefix(37)) + "..." : text
            return "a string (\"\(shown)\")"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A syntax error: where, and what was expected there.
struct JSONSyntaxError: Error {
    var offset: Int
    var message: String
    var hint: String?
}

/// A recursive-descent parser over UTF-8 bytes.
struct JSONParser {
    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0
    /// JSONDecoder stops at 512 levels too; deeper input is an error, not a stack overflow.
    private static let maximumDepth = 512

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.index = 3 }  // a UTF-8 byte order mark
        parser.skipSpace()
        guard parser.index < bytes.count else {
            throw JSONSyntaxError(offset: parser.index, message: "the file is empty", hint: "a config.json is one JSON object: { ... }")
        }
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == bytes.count else {
            throw parser.error("\(parser.currentDescription) after the end of the JSON value",
                               hint: "the document is one value; remove what follows it")
        }
        return value
    }

    /// Line and column (both from 1; columns count characters, not bytes) of `offset`.
    static func location(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1, column = 1
        for byte in bytes.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {  // not a UTF-8 continuation byte
                column += 1
            }
        }
        return (line, column)
    }

    private func error(_ message: String, at offset: Int? = nil, hint: String? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? index, message: message, hint: hint)
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// `'x'`, `the end of the file`, `a non-ASCII character`.
    private var currentDescription: String {
        guard let byte = current else { return "the end of the file" }
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        if byte >= 0x80 { return "a non-ASCII character" }
        return "the control character 0x\(String(byte, radix: 16))"
    }

    private mutating func skipSpace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
    }

    /// JSON has no comments, but people write them: say so wherever one appears.
    private func rejectComment() throws(JSONSyntaxError) {
        if current == UInt8(ascii: "/") { throw commentError }
    }

    private var commentError: JSONSyntaxError {
        error("a comment; JSON has none", hint: "remove the comment, or keep notes in \"annotations\"")
    }

    private mutating func value() throws(JSONSyntaxError) -> JSONValue {
        skipSpace()
        let start = index
        guard let byte = current else { throw error("the file ends where a value was expected") }
        switch byte {
        case UInt8(ascii: "{"): return JSONValue(kind: try object(), offset: start)
        case UInt8(ascii: "["): return JSONValue(kind: try array(), offset: start)
        case UInt8(ascii: "\""): return JSONValue(kind: .string(try string()), offset: start)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return JSONValue(kind: .number(try number()), offset: start)
        case UInt8(ascii: "t"): try literal("true"); return JSONValue(kind: .bool(true), offset: start)
        case UInt8(ascii: "f"): try literal("false"); return JSONValue(kind: .bool(false), offset: start)
        case UInt8(ascii: "n"): try literal("null"); return JSONValue(kind: .null, offset: start)
        case UInt8(ascii: "/"):
            throw commentError
        case UInt8(ascii: "'"):
            throw error("a single quote where a value was expected", hint: "JSON strings use double quotes: \"like this\"")
        default:
            throw error("\(currentDescription) where a value was expected",
                        hint: "a value is a string in double quotes, a number, true, false, null, an array or an object")
        }
    }

    private mutating func literal(_ word: String) throws(JSONSyntaxError) {
        let start = index
        for expected in word.utf8 {
            guard current == expected else {
                throw error("\(currentDescription) where a value was expected", at: start,
                            hint: "did you mean \(word)? Strings need double quotes")
            }
            index += 1
        }
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        guard depth <= JSONParser.maximumDepth else { throw error("values nested more than \(JSONParser.maximumDepth) deep") }
    }

    private mutating func object() throws(JSONSyntaxError) -> JSONValue.Kind {
        let start = index
        try enter()
        defer { depth -= 1 }
        index += 1  // {
        var members: [(key: String, value: JSONValue)] = []
        while true {
            skipSpace()
            if current == UInt8(ascii: "}") { index += 1; return .object(members) }  // {} or a trailing comma
            try rejectComment()
            guard current == UInt8(ascii: "\"") else {
                if current == nil { throw unclosed("object", at: start) }
                throw error("\(currentDescription) where a key in double quotes was expected",
                            hint: current == UInt8(ascii: "'") ? "JSON strings use double quotes" : "keys are strings: \"key\": value")
            }
            let key = try string()
            skipSpace()
            guard current == UInt8(ascii: ":") else { throw error("\(currentDescription) after the key \"\(key)\", where ':' was expected") }
            index += 1
            members.append((key, try value()))
            skipSpace()
            try rejectComment()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return .object(members)
            case nil: throw unclosed("object", at: start)
            default:
                throw error("\(currentDescription) after the value of \"\(key)\", where ',' or '}' was expected",
                            hint: "is a comma missing between two members?")
            }
        }
    }

    private mutating func array() throws(JSONSyntaxError) -> JSONValue.Kind {
        let start = index
        try enter()
        defer { depth -= 1 }
        index += 1  // [
        var elements: [JSONValue] = []
        while true {
            skipSpace()
            if current == UInt8(ascii: "]") { index += 1; return .array(elements) }  // [] or a trailing comma
            if current == nil { throw unclosed("array", at: start) }
            elements.append(try value())
            skipSpace()
            try rejectComment()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return .array(elements)
            case nil: throw unclosed("array", at: start)
            default:
                throw error("\(currentDescription) after element \(elements.count - 1) of an array, where ',' or ']' was expected",
                            hint: "is a comma missing between two elements?")
            }
        }
    }

    private func unclosed(_ what: String, at start: Int) -> JSONSyntaxError {
        let (line, column) = JSONParser.location(of: start, in: bytes)
        let closer = what == "object" ? "}" : "]"
        return error("the file ends inside the \(what) opened at line \(line), column \(column)", hint: "close it with '\(closer)'")
    }

    private mutating func number() throws(JSONSyntaxError) -> String {
        let start = index
        func digits(_ parser: inout JSONParser) -> Bool {
            let first = parser.index
            while let byte = parser.current, byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") { parser.index += 1 }
            return parser.index > first
        }
        if current == UInt8(ascii: "-") { index += 1 }
        if current == UInt8(ascii: "0") {
            index += 1
            if let byte = current, byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                throw error("a number with a leading zero", at: start,
                            hint: "JSON numbers are decimal: write a file mode such as 0644 as 420")
            }
        } else if !digits(&self) {
            throw error("\(currentDescription) where a digit was expected")
        }
        if current == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) else { throw error("\(currentDescription) where a digit was expected after '.'") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) else { throw error("\(currentDescription) where a digit was expected in an exponent") }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        let start = index
        index += 1  // "
        var utf8: [UInt8] = []
        while true {
            guard let byte = current else {
                let (line, column) = JSONParser.location(of: start, in: bytes)
                throw error("the file ends inside the string that starts at line \(line), column \(column)", hint: "close it with '\"'")
            }
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try escape(into: &utf8)
            case ..<0x20:
                throw error("a raw \(byte == 0x0A ? "line break" : "control character") inside a string", at: index - 1,
                            hint: "write it as an escape such as \\n, or close the string with '\"'")
            default:
                utf8.append(byte)
            }
        }
    }

    private mutating func escape(into utf8: inout [UInt8]) throws(JSONSyntaxError) {
        guard let byte = current else { throw error("the file ends inside an escape sequence") }
        index += 1
        let simple: [UInt8: UInt8] = [
            UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
            UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
        ]
        if let replacement = simple[byte] { utf8.append(replacement); return }
        guard byte == UInt8(ascii: "u") else {
            throw error("an unknown escape '\\\(Character(Unicode.Scalar(byte)))' in a string", at: index - 2,
                        hint: "valid escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX; write a backslash as \\\\")
        }
        var code = try hex4()
        if (0xD800..<0xDC00).contains(code), bytes[index...].starts(with: Array("\\u".utf8)) {
            let saved = index
            index += 2
            let low = try hex4()
            if (0xDC00..<0xE000).contains(low) {
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            } else {
                index = saved
            }
        }
        utf8.append(contentsOf: String(Character(Unicode.Scalar(code) ?? "\u{FFFD}")).utf8)
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current, let digit = UInt32(String(Unicode.Scalar(byte)), radix: 16) else {
                throw error("\(currentDescription) in a \\u escape, where a hexadecimal digit was expected")
            }
            code = code * 16 + digit
            index += 1
        }
        return code
    }
}
