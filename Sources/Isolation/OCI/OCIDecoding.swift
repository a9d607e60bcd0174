#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Reading and writing config.json and state.json, with errors that name the JSON path:
//
//     config.json: process.args[0]: expected a string, found a number (3)
//       → line 14, column 9; runtime-spec config.md#configProcess
//
// JSONDecoder does the decoding. When it fails, its `DecodingError` carries a coding
// path (`process`, `args`, `Index 0`) that is rendered as `process.args[0]`; the file is
// then parsed again by `JSONParser` to find the line and column, or the syntax error.

/// A path into a JSON document, written as people write it: `linux.namespaces[2].type`,
/// `annotations["io.podman.annotations.autoremove"]`.
package struct JSONPath: CustomStringConvertible, Sendable, Equatable {
    enum Component: Sendable, Equatable {
        case key(String)
        case index(Int)
    }

    var components: [Component]

    init(_ components: [Component] = []) { self.components = components }

    /// From a `Decoder`'s coding path. Array positions are the keys JSONDecoder names
    /// `Index N`; every other key is an object key (a dictionary key "0" stays a key).
    package init(_ codingPath: [any CodingKey]) {
        components = codingPath.map { key in
            if let index = key.intValue, key.stringValue == "Index \(index)" { return .index(index) }
            return .key(key.stringValue)
        }
    }

    func appending(_ key: String) -> JSONPath { JSONPath(components + [.key(key)]) }
    func appending(_ index: Int) -> JSONPath { JSONPath(components + [.index(index)]) }

    package var description: String {
        var text = ""
        for component in components {
            switch component {
            case .index(let index):
                text += "[\(index)]"
            case .key(let key):
                let plain = !key.isEmpty && key.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
                    && !("0"..."9").contains(key.unicodeScalars.first!)
                if !plain {
                    text += "[\"\(key.replacing("\\", with: "\\\\").replacing("\"", with: "\\\""))\"]"
                } else {
                    text += text.isEmpty ? key : "." + key
                }
            }
        }
        return text
    }

    /// The path without array positions, to look up which spec section describes it:
    /// `linux.namespaces[2].type` → `linux.namespaces.type`.
    var fieldName: String {
        components.compactMap { if case .key(let key) = $0 { return key } else { return nil } }.joined(separator: ".")
    }
}

/// A field that is missing or holds a value the spec does not allow, found while decoding
/// or while checking the spec's rules afterwards. Rendered as an `IsolationError`.
struct OCIFieldError: Error {
    enum Problem {
        /// `root.path is required`
        case missing
        /// `linux.namespaces[2].type: 'net' is not a namespace type`
        case invalid(String)
    }

    var path: JSONPath
    var problem: Problem
    var hint: String?

    init(path: JSONPath, problem: Problem, hint: String? = nil) {
        self.path = path
        self.problem = problem
        self.hint = hint
    }
}

/// `a string`, `a whole number from 0 to 4294967295`, `true or false`: how to write a value
/// of a Swift type in JSON.
func describeExpected(_ type: Any.Type) -> String {
    func integer<T: FixedWidthInteger>(_: T.Type) -> String { "a whole number from \(T.min) to \(T.max)" }
    if type == String.self { return "a string" }
    if type == Bool.self { return "true or false" }
    if type == Double.self || type == Float.self { return "a number" }
    if let integerType = type as? any FixedWidthInteger.Type { return integer(integerType) }
    if type is any OCIEnumeration.Type { return "a string" }
    let name = "\(type)"
    if name.hasPrefix("Dictionary") || type is any OCIObject.Type { return "an object" }
    if name.hasPrefix("Array") { return "an array" }
    return "a value of type \(name)"
}

/// A struct that JSON writes as an object: config and state types conform, so that a
/// wrong type names "an object" even when the decoder names the Swift type.
protocol OCIObject {}

/// A string that the spec restricts to a fixed list of values (namespace types, seccomp
/// actions, ...). Decoding anything else is an error listing the allowed values.
protocol OCIEnumeration: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {
    /// `a namespace type`: what one value is called in an error.
    static var noun: String { get }
}

extension OCIEnumeration {
    /// Decodes one of `allCases` by its raw value; call it from `init(from:)`.
    static func decodeValue(from decoder: any Decoder) throws -> Self {
        let text = try decoder.singleValueContainer().decode(String.self)
        if let value = Self(rawValue: text) { return value }
        throw OCIFieldError(path: JSONPath(decoder.codingPath), problem: .invalid("'\(text)' is not \(noun)"),
                            hint: "use one of: " + allCases.map(\.rawValue).joined(separator: ", "))
    }
}

/// A document of the runtime-spec: `config.json` or `state.json`.
protocol OCIDocument: Codable, OCIObject {
    /// `config.json`: the file name errors start with when there is no path.
    static var fileName: String { get }
    /// Which section of the runtime-spec describes a field: pairs of a field name
    /// (`linux.namespaces`, no array positions) and a page#anchor, longest match wins.
    static var specSections: [(field: String, section: String)] { get }
    /// The rules the spec states beyond each field's type, such as "at least one entry".
    func checkRules() throws(OCIFieldError)
}

extension OCIDocument {
    /// `config-linux.md#configLinuxNamespaces` for `linux.namespaces[2].type`.
    static func specSection(for path: JSONPath) -> String {
        let name = path.fieldName
        var best: (field: String, section: String)?
        for entry in specSections where name == entry.field || name.hasPrefix(entry.field + ".") || entry.field.isEmpty {
            if best == nil || entry.field.count > best!.field.count { best = entry }
        }
        return best?.section ?? "config.md"
    }

    /// Decodes the document from JSON, then checks the spec's rules. Every failure is an
    /// `IsolationError` that starts with `source` and names the JSON path.
    static func decodeDocument(json bytes: [UInt8], source: String) throws(IsolationError) -> Self {
        let document: Self
        do {
            document = try JSONDecoder().decode(Self.self, from: Data(bytes))
            try document.checkRules()
        } catch {
            throw diagnose(error, in: bytes, source: source)
        }
        return document
    }

    /// Pretty-printed JSON with sorted keys and a final newline; absent (nil) fields are
    /// left out.
    func documentJSON() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Only non-finite floating-point numbers fail to encode, and these types have none.
        guard let data = try? encoder.encode(self) else { preconditionFailure("\(Self.self) could not be encoded as JSON") }
        return Array(data) + [UInt8(ascii: "\n")]
    }

    /// Checks the spec's rules for a document built in code rather than read from a file.
    func validateDocument(source: String) throws(IsolationError) {
        do {
            try checkRules()
        } catch {
            throw Self.render(error, source: source, location: nil)
        }
    }

    /// Turns whatever decoding threw into an `IsolationError` naming the path, the line and
    /// the column.
    static func diagnose(_ error: any Error, in bytes: [UInt8], source: String) -> IsolationError {
        // Parse again by hand: for the line and column of the value at fault, or the syntax error.
        let opaque: DecodingError.Context?  // JSONDecoder's "not valid JSON", which has no path
        if case DecodingError.dataCorrupted(let context) = error, context.codingPath.isEmpty { opaque = context } else { opaque = nil }
        let tree: JSONValue
        do {
            tree = try JSONParser.parse(bytes)
        } catch let syntax {
            // Reported even when JSONDecoder's error was another: it parses lazily and may
            // never have read the malformed part, but the file is not JSON (RFC 8259).
            let (line, column) = JSONParser.location(of: syntax.offset, in: bytes)
            return IsolationError("\(source) is not valid JSON: line \(line), column \(column): \(syntax.message)",
                                  hint: syntax.hint ?? "check the JSON syntax near that place")
        }
        var error = error
        if let opaque {
            // The JSON is well-formed, so a number did not fit its field (swift-foundation
            // #274): decode again over the tree, which names the field.
            do {
                let document = try Self(from: JSONTreeDecoder(tree))
                try document.checkRules()
                return IsolationError("\(source) could not be read: \(opaque.debugDescription)")
            } catch let found {
                error = found
            }
        }
        return render(error, source: source, tree: tree, bytes: bytes)
    }

    /// A decoding error as an `IsolationError`, located in `tree` when there is one.
    static func render(_ error: any Error, source: String, tree: JSONValue?, bytes: [UInt8]) -> IsolationError {
        let fieldError: OCIFieldError
        switch error {
        case let found as OCIFieldError:
            fieldError = found
        case DecodingError.keyNotFound(let key, let context):
            fieldError = OCIFieldError(path: JSONPath(context.codingPath + [key]), problem: .missing)
        case DecodingError.typeMismatch(let type, let context), DecodingError.valueNotFound(let type, let context):
            let path = JSONPath(context.codingPath)
            let found = tree?.deepest(along: path).summary ?? (context.debugDescription.contains("null") ? "null" : "another type")
            fieldError = OCIFieldError(path: path, problem: .invalid("expected \(describeExpected(type)), found \(found)"))
        case DecodingError.dataCorrupted(let context):
            fieldError = OCIFieldError(path: JSONPath(context.codingPath), problem: .invalid(context.debugDescription))
        default:
            return IsolationError("\(source) could not be read: \(error)")
        }
        let location = tree.map { JSONParser.location(of: $0.deepest(along: fieldError.path).offset, in: bytes) }
        return render(fieldError, source: source, location: location)
    }

    /// `config.json: root.path is required` with a hint that gives the line and column and
    /// the spec section.
    static func render(_ error: OCIFieldError, source: String, location: (line: Int, column: Int)?) -> IsolationError {
        let path = error.path.description
        let message: String
        switch error.problem {
        case .missing:
            message = "\(source): \(path) is required"
        case .invalid(let problem):
            message = path.isEmpty ? "\(source): \(problem)" : "\(source): \(path): \(problem)"
        }
        var reference = "runtime-spec \(specSection(for: error.path))"
        if let location {
            var place = "line \(location.line), column \(location.column)"
            if case .missing = error.problem { place = "in the object at " + place }
            reference = place + "; " + reference
        }
        let hint = error.hint.map { "\($0) (\(reference))" } ?? reference
        return IsolationError(message, hint: hint)
    }
}

extension String {
    /// Whether this looks like a SemVer 2.0.0 version: `1.2.0`, `1.0.2-dev`, `1.1.0+build`.
    var isSemanticVersion: Bool {
        let core = split(separator: "-", maxSplits: 1).first.map { $0.split(separator: "+", maxSplits: 1).first ?? $0 } ?? ""
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
