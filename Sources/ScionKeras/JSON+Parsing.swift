import Foundation

/// Why a document is not JSON, and where (a byte offset).
package struct JSONParseError: Error, CustomStringConvertible {
    package let offset: Int
    package let reason: String
    package var description: String { "\(reason) at byte \(offset)" }
}

extension JSON {
    /// The deepest nesting accepted: a hostile config of a million `[` ends in an error, not a
    /// stack overflow (Keras's deepest configs nest about 20 levels).
    static let deepestNesting = 512

    /// Parses UTF-8 JSON in one pass over its bytes. Foundation's `JSONDecoder` through a
    /// `Decodable` enum tried each kind in turn and built an error for every miss: a sixth of a
    /// whole `scion run` of DenseNet121's `.h5` went to its 400-layer config. Python's `json`
    /// writes `NaN`, `Infinity` and `-Infinity` for such floats (Keras configs can hold them), so
    /// those are read as numbers too.
    package static func parse(_ data: Data) throws -> JSON {
        try data.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw.bindMemory(to: UInt8.self))
            parser.skipSpace()
            let value = try parser.value(depth: 0)
            parser.skipSpace()
            guard parser.position == parser.bytes.count else { throw parser.failure("text after the document") }
            return value
        }
    }
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func failure(_ reason: String) -> JSONParseError { JSONParseError(offset: position, reason: reason) }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipSpace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    mutating func value(depth: Int) throws -> JSON {
        guard depth < JSON.deepestNesting else { throw failure("nesting deeper than \(JSON.deepestNesting)") }
        guard let byte = current else { throw failure("the document ends where a value should be") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "N"): return try literal("NaN", .number(.nan))
        case UInt8(ascii: "I"): return try literal("Infinity", .number(.infinity))
        default: return .number(try number())
        }
    }

    mutating func literal(_ word: StaticString, _ value: JSON) throws -> JSON {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count,
              memcmp(bytes.baseAddress! + position, word.utf8Start, count) == 0 else { throw failure("an unknown word") }
        position += count
        return value
    }

    mutating func object(depth: Int) throws -> JSON {
        position += 1
        var members: [String: JSON] = [:]
        skipSpace()
        if current == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipSpace()
            guard current == UInt8(ascii: "\"") else { throw failure("an object key that is not a string") }
            let key = try string()
            skipSpace()
            guard current == UInt8(ascii: ":") else { throw failure("no ':' after an object key") }
            position += 1
            skipSpace()
            members[key] = try value(depth: depth + 1)
            skipSpace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(members)
            default: throw failure("no ',' or '}' after an object member")
            }
        }
    }

    mutating func array(depth: Int) throws -> JSON {
        position += 1
        var elements: [JSON] = []
        skipSpace()
        if current == UInt8(ascii: "]") { position += 1; return .array(elements) }
        while true {
            skipSpace()
            elements.append(try value(depth: depth + 1))
            skipSpace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(elements)
            default: throw failure("no ',' or ']' after an array element")
            }
        }
    }

    /// A string from its opening quote: runs without escapes are copied as they are.
    mutating func string() throws -> String {
        position += 1
        var runStart = position
        var escaped: [UInt8]? = nil  // only built when the string has escapes
        while true {
            guard let byte = current else { throw failure("a string that never ends") }
            if byte == UInt8(ascii: "\"") {
                let run = UnsafeBufferPointer(rebasing: bytes[runStart..<position])
                position += 1
                guard var text = escaped else { return String(decoding: run, as: UTF8.self) }
                text.append(contentsOf: run)
                return String(decoding: text, as: UTF8.self)
            }
            if byte < 0x20 { throw failure("a control character inside a string") }
            guard byte == UInt8(ascii: "\\") else { position += 1; continue }
            // Taken out of `escaped` first, so that appending never copies what was gathered
            // (a copy per escape made a string of many escapes quadratic).
            var text = escaped ?? []
            escaped = nil
            text.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<position]))
            position += 1
            guard let code = current else { throw failure("a string that never ends") }
            position += 1
            switch code {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(code)
            case UInt8(ascii: "b"): text.append(0x08)
            case UInt8(ascii: "f"): text.append(0x0C)
            case UInt8(ascii: "n"): text.append(0x0A)
            case UInt8(ascii: "r"): text.append(0x0D)
            case UInt8(ascii: "t"): text.append(0x09)
            case UInt8(ascii: "u"): text.append(contentsOf: String(try unicodeEscape()).utf8)
            default: throw failure("an unknown escape in a string")
            }
            escaped = text
            runStart = position
        }
    }

    /// The scalar of `\uXXXX` (the `\u` read), a surrogate pair's two escapes joined.
    mutating func unicodeEscape() throws -> Character {
        let first = try hexQuad()
        if (0xD800..<0xDC00).contains(first) {
            guard current == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                throw failure("a lone surrogate escape")
            }
            position += 2
            let second = try hexQuad()
            guard (0xDC00..<0xE000).contains(second),
                  let scalar = Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)) else {
                throw failure("a lone surrogate escape")
            }
            return Character(scalar)
        }
        guard let scalar = Unicode.Scalar(first) else { throw failure("a lone surrogate escape") }
        return Character(scalar)
    }

    mutating func hexQuad() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw failure("a short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("a \\u escape that is not hexadecimal")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    /// A number as JSON writes it (and `-Infinity`), converted by the C library's `strtod`.
    mutating func number() throws -> Double {
        let start = position
        if current == UInt8(ascii: "-") {
            position += 1
            if current == UInt8(ascii: "I") {
                _ = try literal("Infinity", .null)
                return -.infinity
            }
        }
        let isDigit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        var digits = 0
        while let byte = current, isDigit(byte) { position += 1; digits += 1 }
        guard digits > 0 else { position = start; throw failure("an unexpected character") }
        if current == UInt8(ascii: ".") {
            position += 1
            var fraction = 0
            while let byte = current, isDigit(byte) { position += 1; fraction += 1 }
            guard fraction > 0 else { throw failure("a number with no digits after its point") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            var exponent = 0
            while let byte = current, isDigit(byte) { position += 1; exponent += 1 }
            guard exponent > 0 else { throw failure("a number with no digits in its exponent") }
        }
        // strtod needs a terminated string: the number's few bytes copied.
        var text = [CChar](repeating: 0, count: position - start + 1)
        for index in start..<position { text[index - start] = CChar(bitPattern: bytes[index]) }
        return strtod(text, nil)
    }
}
