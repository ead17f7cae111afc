import Foundation
import XCTest

@testable import ScionKeras

/// `JSON.parse`, Scion's one-pass reader of Keras configs: every kind of value, the escapes, the
/// non-finite numbers Python's `json` writes, and documents it must refuse (with where).
final class JSONParsingTests: XCTestCase {
    func parse(_ text: String) throws -> JSON { try JSON.parse(Data(text.utf8)) }

    func testEveryKindOfValue() throws {
        let json = try parse(#" {"a": [1, -2.5e-3, 0, 1E10, true, false, null], "b": {"c": "d"}, "e": [], "f": {}} "#)
        XCTAssertEqual(json["a"], .array([.number(1), .number(-2.5e-3), .number(0), .number(1e10), .bool(true), .bool(false), .null]))
        XCTAssertEqual(json["b"]?["c"]?.string, "d")
        XCTAssertEqual(json["e"], .array([]))
        XCTAssertEqual(json["f"], .object([:]))
        XCTAssertEqual(try parse("0.1").double, 0.1)
        XCTAssertEqual(try parse("123456789012345").int, 123_456_789_012_345)
    }

    func testEscapesAndUnicode() throws {
        XCTAssertEqual(try parse(#""a\"b\\c\/d\n\t\r\b\f""#).string, "a\"b\\c/d\n\t\r\u{8}\u{C}")
        XCTAssertEqual(try parse(#""caf\u00e9 \ud83d\ude00 é""#).string, "café 😀 é")
        XCTAssertEqual(try parse(#""plain""#).string, "plain")
    }

    /// A long string of escapes (a hostile config's) reads whole: each escape appends to one buffer.
    func testManyEscapesInOneString() throws {
        let text = try parse("\"" + String(repeating: #"a\n"#, count: 200_000) + "\"").string
        XCTAssertEqual(text?.utf8.count, 400_000)
        XCTAssertEqual(text?.prefix(4), "a\na\n")
    }

    func testPythonsNonFiniteNumbers() throws {
        let json = try parse(#"[NaN, Infinity, -Infinity]"#)
        XCTAssertEqual(json.array?.count, 3)
        XCTAssertTrue(json.array?[0].double?.isNaN == true)
        XCTAssertEqual(json.array?[1].double, .infinity)
        XCTAssertEqual(json.array?[2].double, -.infinity)
    }

    func testRefusedDocumentsSayWhere() {
        let cases: [(String, String)] = [
            ("[1, 2,]", "an unexpected character"), ("{\"a\" 1}", "no ':'"), ("\"open", "never ends"), ("[1] x", "text after"),
            ("{1: 2}", "not a string"), ("tru", "unknown word"), ("\"\\ud800\"", "lone surrogate"), ("1.", "no digits after"),
            ("", "ends where a value"), ("\"a\u{1}b\"", "control character"), (String(repeating: "[", count: 600), "nesting deeper"),
        ]
        for (text, reason) in cases {
            XCTAssertThrowsError(try parse(text), text) { error in
                guard let error = error as? JSONParseError else { return XCTFail("\(text): \(error)") }
                XCTAssertTrue(error.description.contains(reason), "\(text): \(error.description)")
            }
        }
        XCTAssertEqual((try? parse("[1, 2,]")) == nil, true)
        do { _ = try parse("[1, 2,]") } catch let error as JSONParseError { XCTAssertEqual(error.offset, 6) } catch { XCTFail("\(error)") }
    }

    /// Every committed Keras config reads as Foundation's own JSON parser reads it.
    func testFixtureConfigsAgreeWithFoundation() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("fixtures/keras3")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }
        XCTAssertFalse(names.isEmpty)
        for name in names {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            let ours = try JSON.parse(data)
            let theirs = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            XCTAssertEqual(ours, try JSON.parse(JSONSerialization.data(withJSONObject: theirs, options: [.fragmentsAllowed])), name)
        }
    }
}
