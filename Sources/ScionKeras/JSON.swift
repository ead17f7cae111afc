import Foundation

/// A parsed JSON document (Keras configs). Typed accessors return nil instead of trapping, so a
/// hostile config turns into a clear error rather than a crash.
package enum JSON: Equatable, Sendable {
    case object([String: JSON])
    case array([JSON])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    package subscript(key: String) -> JSON? {
        if case .object(let dictionary) = self { return dictionary[key] }
        return nil
    }

    package var object: [String: JSON]? { if case .object(let value) = self { value } else { nil } }
    package var array: [JSON]? { if case .array(let value) = self { value } else { nil } }
    package var string: String? { if case .string(let value) = self { value } else { nil } }
    package var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    package var isNull: Bool { self == .null }

    package var double: Double? { if case .number(let value) = self { value } else { nil } }
    package var float: Float? { double.map { Float($0) } }

    /// An integer, when the number is whole and fits.
    package var int: Int? {
        guard let double, double.rounded() == double, abs(double) < 9.0e15 else { return nil }
        return Int(double)
    }

    /// Integers of an array; a lone integer counts as a one-element array.
    package var intArray: [Int]? {
        if let int { return [int] }
        guard let array else { return nil }
        var result: [Int] = []
        for element in array {
            guard let value = element.int else { return nil }
            result.append(value)
        }
        return result
    }

    /// Floats of an array; a lone number counts as a one-element array.
    package var floatArray: [Float]? {
        if let float { return [float] }
        guard let array else { return nil }
        var result: [Float] = []
        for element in array {
            guard let value = element.float else { return nil }
            result.append(value)
        }
        return result
    }

    /// Serializes back to compact JSON (kept for opaque layers).
    package var serialized: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let value):
            if let int { return String(int) }
            return value.isFinite ? "\(value)" : "null"
        case .string(let value): return JSON.quote(value)
        case .array(let values): return "[" + values.map(\.serialized).joined(separator: ", ") + "]"
        case .object(let dictionary):
            let parts = dictionary.keys.sorted().map { key in
                JSON.quote(key) + ": " + (dictionary[key]?.serialized ?? "null")
            }
            return "{" + parts.joined(separator: ", ") + "}"
        }
    }

    static func quote(_ string: String) -> String {
        var result = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 { result += String(format: "\\u%04x", scalar.value) }
                else { result.unicodeScalars.append(scalar) }
            }
        }
        return result + "\""
    }
}
