import Foundation
import ScionIR
import ScionONNX
import XCTest

/// Files are untrusted: whatever the bytes, decoding throws an ONNXError or succeeds, and never
/// crashes, overflows the stack or allocates what the dims merely claim.
final class ONNXProtoHostileInputTests: XCTestCase {
    private typealias Support = ONNXProtoTestSupport

    private func assertDecodingFails(_ bytes: [UInt8], _ kind: ONNXError.Kind, subject: String? = nil,
                                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try ONNXProtoCodec.decode($0, file: "hostile.onnx") },
                             file: file, line: line) { error in
            guard let error = error as? ONNXError else {
                return XCTFail("not an ONNXError: \(error)", file: file, line: line)
            }
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            XCTAssertEqual(error.file, "hostile.onnx", file: file, line: line)
            if let subject { XCTAssertTrue(error.subject.contains(subject), "\(error)", file: file, line: line) }
        }
    }

    /// Decoding either succeeds or throws an ONNXError; returns whether it threw.
    @discardableResult
    private func decodeSurvives(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> Bool {
        do {
            _ = try bytes.withUnsafeBytes { try ONNXProtoCodec.decode($0, file: "hostile.onnx") }
            return false
        } catch is ONNXError {
            return true
        } catch {
            XCTFail("not an ONNXError: \(error)", file: file, line: line)
            return true
        }
    }

    private static func initializerModel(_ build: (inout WireWriter) -> Void) -> [UInt8] {
        WireWriter.model { graph in graph.message(5, build) }
    }

    func testEmptyAndMissingFilesFail() throws {
        assertDecodingFails([], .invalidProtobuf)
        let directory = try Support.temporaryDirectory(for: self)
        let empty = directory.appendingPathComponent("empty.onnx")
        try Data().write(to: empty)
        for path in [empty.path, directory.appendingPathComponent("missing.onnx").path, directory.path] {
            XCTAssertThrowsError(try ONNXProtoCodec.decode(contentsOf: path)) { error in
                XCTAssertEqual((error as? ONNXError)?.kind, .invalidProtobuf, "\(error)")
                XCTAssertEqual((error as? ONNXError)?.file, path)
            }
        }
    }

    func testOtherProtobufMessagesAreNotModels() {
        // A valid protobuf (a lone opset import) with no graph.
        var writer = WireWriter()
        writer.message(8) { $0.integer(2, 13) }
        assertDecodingFails(writer.bytes, .invalidProtobuf)
        assertDecodingFails(Array("<html>not a model</html>".utf8), .invalidProtobuf)
    }

    func testRandomBytesNeverCrash() {
        var generator = SplitMix64(seed: 0x5C10)
        var failures = 0
        for _ in 0..<3000 {
            let count = Int.random(in: 1...600, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if decodeSurvives(bytes) { failures += 1 }
        }
        XCTAssertGreaterThan(failures, 2900)
    }

    func testEveryTruncationOfARealModelIsHandled() throws {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: Support.resource("light_bvlc_alexnet.onnx"))))
        var failures = 0
        for length in 0..<bytes.count where decodeSurvives(Array(bytes.prefix(length))) {
            failures += 1
        }
        // The graph is one field at the end of the model's fields, so any cut inside it fails.
        XCTAssertGreaterThan(failures, bytes.count - 100)
        // Corrupting single bytes too.
        var generator = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            var corrupted = bytes
            corrupted[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            decodeSurvives(corrupted)
        }
    }

    func testRawDataThatDisagreesWithDimsFails() {
        let bytes = Self.initializerModel { tensor in
            tensor.integer(1, 2)
            tensor.integer(1, 3)
            tensor.integer(2, 1)
            tensor.string(8, "weights")
            tensor.data(9, [UInt8](repeating: 0, count: 20))
        }
        assertDecodingFails(bytes, .invalidTensor, subject: "weights")
    }

    func testNegativeAndOverflowingDimsFailBeforeAllocating() {
        let negative = Self.initializerModel { tensor in
            tensor.integer(1, -1)
            tensor.integer(2, 1)
            tensor.string(8, "negative")
            tensor.data(9, [])
        }
        assertDecodingFails(negative, .invalidTensor, subject: "negative")
        for (name, dims) in [("overflow", [Int64(1) << 40, Int64(1) << 40]), ("huge", [Int64(1) << 31, Int64(1) << 31]),
                             ("maximal", [Int64.max])] {
            let bytes = Self.initializerModel { tensor in
                for dim in dims { tensor.integer(1, dim) }
                tensor.integer(2, 1)
                tensor.string(8, name)
                tensor.data(9, [0, 0, 0, 0])
            }
            assertDecodingFails(bytes, .invalidTensor, subject: name)
        }
        // Typed values may not be fewer than the dims claim either.
        let typed = Self.initializerModel { tensor in
            tensor.integer(1, 1 << 40)
            tensor.integer(2, 7)
            tensor.string(8, "typed")
            tensor.integer(7, 5)
        }
        assertDecodingFails(typed, .invalidTensor, subject: "typed")
    }

    func testInconsistentTensorFieldsFail() {
        let cases: [(String, (inout WireWriter) -> Void)] = [
            ("float data in an int64 tensor", { $0.integer(2, 7); $0.data(4, [0, 0, 128, 63]) }),
            ("two data fields", { $0.integer(2, 1); $0.data(4, [0, 0, 128, 63]); $0.data(9, [0, 0, 0, 0]) }),
            ("too few strings", { $0.integer(1, 2); $0.integer(2, 8); $0.data(6, [0x61]) }),
            ("no data", { $0.integer(1, 3); $0.integer(2, 1) }),
            ("no data type", { $0.integer(1, 1); $0.data(9, [0]) }),
            ("bad data location", { $0.integer(2, 1); $0.integer(14, 5) }),
            ("external without location", { $0.integer(2, 1); $0.integer(14, 1) }),
            ("external with negative offset", { tensor in
                tensor.integer(2, 1)
                tensor.integer(14, 1)
                tensor.message(13) { $0.string(1, "location"); $0.string(2, "w.bin") }
                tensor.message(13) { $0.string(1, "offset"); $0.string(2, "-5") }
            }),
            ("external with wrong length", { tensor in
                tensor.integer(1, 2)
                tensor.integer(2, 1)
                tensor.integer(14, 1)
                tensor.message(13) { $0.string(1, "location"); $0.string(2, "w.bin") }
                tensor.message(13) { $0.string(1, "length"); $0.string(2, "12abc") }
            }),
        ]
        for (name, build) in cases {
            let bytes = Self.initializerModel { tensor in
                tensor.string(8, name)
                build(&tensor)
            }
            assertDecodingFails(bytes, .invalidTensor, subject: name)
        }
    }

    func testUnsupportedConstructsAreNamed() {
        let segmented = Self.initializerModel { tensor in
            tensor.string(8, "segmented")
            tensor.integer(2, 1)
            tensor.message(3) { $0.integer(1, 0); $0.integer(2, 1) }
            tensor.data(9, [0, 0, 0, 0])
        }
        assertDecodingFails(segmented, .unsupported, subject: "segmented")
        let sparse = WireWriter.model { graph in
            graph.message(15) { $0.integer(3, 4) }
        }
        assertDecodingFails(sparse, .unsupported)
        let sparseAttribute = WireWriter.model { graph in
            graph.message(1) { node in
                node.string(4, "Constant")
                node.message(5) { $0.string(1, "sparse_value"); $0.integer(20, 11) }
            }
        }
        assertDecodingFails(sparseAttribute, .unsupported, subject: "sparse_value")
        let sequenceInput = WireWriter.model { graph in
            graph.message(11) { info in
                info.string(1, "list")
                info.message(2) { type in type.message(4) { $0.message(1) { $0.message(1) { $0.integer(1, 1) } } } }
            }
        }
        assertDecodingFails(sequenceInput, .unsupported, subject: "list")
    }

    func testUntypedAttributesOfOldModelsAreInferred() throws {
        let bytes = WireWriter.model { graph in
            graph.message(1) { node in
                node.string(4, "Old")
                node.message(5) { $0.string(1, "ints"); $0.integer(8, 3); $0.integer(8, 4) }
                node.message(5) { $0.string(1, "string"); $0.data(4, [0x61]) }
                node.message(5) { $0.string(1, "nothing") }
            }
        }
        // With neither a type nor a value there is nothing to infer from.
        assertDecodingFails(bytes, .invalidGraph, subject: "nothing")

        let valid = WireWriter.model { graph in
            graph.message(1) { node in
                node.string(4, "Old")
                node.message(5) { $0.string(1, "ints"); $0.integer(8, 3); $0.integer(8, 4) }
                node.message(5) { $0.string(1, "string"); $0.data(4, [0x61]) }
            }
        }
        let model = try valid.withUnsafeBytes { try ONNXProtoCodec.decode($0, file: "old.onnx") }
        guard case .ints(let ints) = model.graph.nodes.first?.attribute("ints"),
              case .string(let string) = model.graph.nodes.first?.attribute("string") else {
            return XCTFail("attributes not inferred: \(model.graph.nodes)")
        }
        XCTAssertEqual(ints, [3, 4])
        XCTAssertEqual(string, [0x61])
    }

    /// `levels` If nodes, each holding the next graph in an attribute, built inside out.
    private static func nestedSubgraphs(_ levels: Int) -> [UInt8] {
        var inner = WireWriter()
        inner.string(2, "innermost")
        for _ in 0..<levels {
            var graph = WireWriter()
            graph.message(1) { node in
                node.string(4, "If")
                node.message(5) { attribute in
                    attribute.string(1, "then_branch")
                    attribute.integer(20, 5)
                    attribute.data(6, inner.bytes)
                }
            }
            inner = graph
        }
        var model = WireWriter()
        model.integer(1, 8)
        model.data(7, inner.bytes)
        return model.bytes
    }

    func testDeeplyNestedSubgraphsFailWithoutExhaustingTheStack() throws {
        let limit = ONNXProtoCodec.maximumSubgraphDepth
        let atLimit = Self.nestedSubgraphs(limit)
        let model = try atLimit.withUnsafeBytes { try ONNXProtoCodec.decode($0, file: "nested.onnx") }
        var depth = 0
        var graph = model.graph
        while case .graph(let inner) = graph.nodes.first?.attribute("then_branch") {
            depth += 1
            graph = inner
        }
        XCTAssertEqual(depth, limit)
        XCTAssertEqual(graph.name, "innermost")

        assertDecodingFails(Self.nestedSubgraphs(limit + 1), .invalidGraph)
        assertDecodingFails(Self.nestedSubgraphs(limit + 3), .invalidProtobuf)
        assertDecodingFails(Self.nestedSubgraphs(5000), .invalidProtobuf)

        // The writer refuses what the reader would.
        var deep = ONNXGraph(name: "innermost")
        for _ in 0...limit {
            deep = ONNXGraph(name: "g", nodes: [ONNXNode(name: "", opType: "If", inputs: ["c"], outputs: ["o"],
                                                         attributes: [ONNXAttribute(name: "then_branch", value: .graph(deep))])])
        }
        let directory = try Support.temporaryDirectory(for: self)
        let path = directory.appendingPathComponent("deep.onnx").path
        XCTAssertThrowsError(try ONNXProtoCodec.write(ONNXModel(irVersion: 8, operatorSets: [], graph: deep),
                                                      to: path, file: "deep.onnx")) {
            XCTAssertEqual(($0 as? ONNXError)?.kind, .invalidGraph)
        }
    }

    func testFilesThatWouldExplodeInMemoryAreRefused() throws {
        // Millions of empty attributes: two bytes each on the wire, a C struct of some 200 bytes
        // each once parsed.
        let count = 6_000_000
        var node = WireWriter()
        node.bytes.reserveCapacity(2 * count + 16)
        node.string(4, "Bomb")
        for _ in 0..<count { node.bytes.append(contentsOf: [0x2A, 0x00]) }
        let bytes = WireWriter.model { graph in graph.data(1, node.bytes) }
        assertDecodingFails(bytes, .invalidProtobuf)
    }
}
