import Foundation
import ScionIR
@testable import ScionONNX
import XCTest

/// A file's large initializers are read where they lie (`ONNXMappedPayloads`): the same bytes as the
/// whole parse gives, lazily, and every error the whole parse makes, made the same way.
final class ONNXMappedPayloadTests: XCTestCase {
    private typealias Support = ONNXProtoTestSupport

    private func write(_ bytes: [UInt8]) throws -> String {
        let path = try Support.temporaryDirectory(for: self).appendingPathComponent("model.onnx").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func wholeParse(_ path: String) throws -> ONNXModel {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        return try bytes.withUnsafeBytes { try ONNXProtoCodec.decode($0, file: path) }
    }

    func testLargeInitializersAreRangesOfTheFileWithTheSameBytes() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/torch/tiny_resnet.onnx").path
        let mapped = try ONNXProtoCodec.decode(contentsOf: path)
        let whole = try wholeParse(path)
        XCTAssertEqual(mapped.graph.initializers.map(\.name), whole.graph.initializers.map(\.name))
        var lazy = 0
        for (a, b) in zip(mapped.graph.initializers, whole.graph.initializers) {
            guard case .raw(let expected) = b.data else { return XCTFail("\(b.name): the whole parse holds its bytes") }
            switch a.data {
            case .storage(let storage):
                lazy += 1
                XCTAssertGreaterThanOrEqual(expected.count, ONNXMappedPayloads.smallestStripped, a.name)
                XCTAssertFalse(storage.isLoaded, a.name)
                XCTAssertEqual(try storage.bytes(keep: false), expected, a.name)
                var copy = [UInt8](repeating: 0, count: expected.count)
                try copy.withUnsafeMutableBytes { try storage.readBytes(into: $0) }
                XCTAssertEqual(copy, expected, "\(a.name), read a second time after its pages were released")
            case .raw(let bytes):
                XCTAssertLessThan(bytes.count, ONNXMappedPayloads.smallestStripped, a.name)
                XCTAssertEqual(bytes, expected, a.name)
            default: XCTFail("\(a.name): \(a.data)")
            }
        }
        XCTAssertGreaterThanOrEqual(lazy, 3)
    }

    /// A file may hold a field numbered like the marker: without this process's value it is an
    /// unknown field like any other, and a tensor with nothing else holds no values.
    func testAMarkerWrittenByTheFileIsNotHonoured() throws {
        var marker = [UInt8](repeating: 0, count: 16)
        marker[0] = 1
        let bytes = WireWriter.model { graph in
            graph.message(5) { tensor in
                tensor.integer(1, 2048)
                tensor.integer(2, 1)
                tensor.string(8, "forged")
                tensor.data(Int(ONNXMappedPayloads.markerField), marker)
            }
            graph.message(5) { tensor in
                tensor.integer(1, 1024)
                tensor.integer(2, 1)
                tensor.string(8, "large")
                tensor.data(9, [UInt8](repeating: 7, count: 4096))
            }
        }
        try assertSameOutcome(bytes, mentioning: "forged")
    }

    /// Errors about a stripped payload are the whole parse's: a length that disagrees with the dims,
    /// raw_data beside float_data, raw_data in a string tensor, raw_data with external data.
    func testErrorsAboutStrippedPayloadsAreTheWholeParses() throws {
        let payload = [UInt8](repeating: 1, count: 8192)
        let cases: [(String, (inout WireWriter) -> Void)] = [
            ("mismatch", { $0.integer(1, 100); $0.integer(2, 1); $0.string(8, "mismatch"); $0.data(9, payload) }),
            ("both", { $0.integer(1, 2048); $0.integer(2, 1); $0.string(8, "both"); $0.data(9, payload); $0.data(4, [0, 0, 128, 63]) }),
            ("text", { $0.integer(1, 1); $0.integer(2, 8); $0.string(8, "text"); $0.data(9, payload) }),
            ("external", { $0.integer(1, 2048); $0.integer(2, 1); $0.string(8, "external"); $0.data(9, payload); $0.integer(14, 1) }),
        ]
        for (name, build) in cases {
            try assertSameOutcome(WireWriter.model { $0.message(5, build) }, mentioning: name)
        }
    }

    /// Every cut of a model with large initializers fails or succeeds as the whole parse does.
    func testTruncationsFailAsTheWholeParseDoes() throws {
        let bytes = WireWriter.model { graph in
            for index in 0..<3 {
                graph.message(5) { tensor in
                    tensor.integer(1, 1024)
                    tensor.integer(2, 1)
                    tensor.string(8, "w\(index)")
                    tensor.data(9, [UInt8](repeating: UInt8(index), count: 4096))
                }
            }
        }
        for length in stride(from: 1, to: bytes.count, by: 97) {
            try assertSameOutcome(Array(bytes.prefix(length)), mentioning: nil)
        }
    }

    private func assertSameOutcome(_ bytes: [UInt8], mentioning subject: String?, line: UInt = #line) throws {
        let path = try write(bytes)
        let whole = Result { try wholeParse(path) }
        let mapped = Result { try ONNXProtoCodec.decode(contentsOf: path) }
        switch (whole, mapped) {
        case (.failure(let a), .failure(let b)):
            XCTAssertEqual("\(a)", "\(b)", line: line)
            if let subject { XCTAssertTrue("\(b)".contains(subject), "\(b)", line: line) }
        case (.success(let a), .success(let b)):
            XCTAssertEqual(a.graph.initializers.map(\.name), b.graph.initializers.map(\.name), line: line)
            for (x, y) in zip(a.graph.initializers, b.graph.initializers) {
                XCTAssertEqual(Support.bytes(x), Support.bytes(y), x.name, line: line)
            }
        default:
            XCTFail("whole parse: \(whole); mapped: \(mapped)", line: line)
        }
    }
}
