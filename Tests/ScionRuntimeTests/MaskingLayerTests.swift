import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import XCTest

/// Keras's Masking layer read as an op, and the recurrent layers after it reading its mask. The
/// numbers against Keras are FixtureRunTests' `masking_sequence` and `masking_dense`,
/// check_keras.py and check_onnx.py; here, how the graph says it and what is refused.
final class MaskingLayerTests: XCTestCase {
    func model(_ path: String) throws -> Model {
        try Model.load(FixtureRunTests.fixtures.appendingPathComponent(path).path)
    }

    func testMaskingIsAnOpAndTheRecurrentLayersReadItsInputAsTheMaskSource() throws {
        for path in ["keras2/masking_sequence.h5", "keras3/masking_sequence.h5", "keras3/masking_sequence.keras"] {
            let graph = try model(path).graph
            let mask = try XCTUnwrap(graph.nodes.first { $0.name == "mask" }, path)
            XCTAssertEqual(mask.op, .masking(MaskingAttributes(maskValue: -0.5)), path)
            for name in ["lstm_seq", "bi_gru", "gru_last"] {
                let node = try XCTUnwrap(graph.nodes.first { $0.name == name }, "\(path) \(name)")
                guard case .recurrent(let a) = node.op else { return XCTFail("\(path) \(name) is \(node.op.typeName)") }
                XCTAssertEqual(a.maskValue, -0.5, "\(path) \(name)")
                XCTAssertEqual(node.inputs.last, mask.inputs.first, "\(path) \(name): the Masking's input is the mask source")
            }
        }
    }

    func testKeptAndMaskedSteps() throws {
        let node = Node(name: "mask", op: .masking(MaskingAttributes(maskValue: 1)), inputs: ["x"], outputs: ["mask"])
        // Steps: all mask value (masked), one feature differs (kept), a NaN (kept: NaN != 1), zeros (kept).
        let x = RuntimeTensor(shape: [1, 4, 2], data: [1, 1, 1, 2, .nan, 1, 0, 0])
        let executor = try Executor(graph: Graph(name: "m", inputs: [ValueInfo(name: "x", shape: Shape([nil, 4, 2]), dtype: .float32)],
                                                 outputs: ["mask"], nodes: [node], parameters: ParameterTable()))
        let y = try executor.masking(node, x, MaskingAttributes(maskValue: 1))
        XCTAssertEqual(Array(y.data[0..<4]), [0, 0, 1, 2])
        XCTAssertTrue(y.data[4].isNaN)
        XCTAssertEqual(Array(y.data[5...]), [1, 0, 0])
        XCTAssertThrowsError(try executor.masking(node, RuntimeTensor(shape: [3], data: [1, 1, 1]), MaskingAttributes(maskValue: 1))) {
            XCTAssertTrue("\($0)".contains("mask"), "\($0)")
        }
    }

    /// Keras rebuilds the recurrent layers' mask from the Masking on reload, so a Masking whose value
    /// no longer matches theirs cannot be written: refused naming the layer, not written wrongly.
    func testAKerasFileIsRefusedWhenTheMaskingNoLongerImpliesTheMask() throws {
        var changed = try model("keras3/masking_sequence.keras")
        let index = try XCTUnwrap(changed.graph.nodes.firstIndex { $0.name == "mask" })
        changed.graph.nodes[index].op = .masking(MaskingAttributes(maskValue: 0))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-masking-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for format in ["keras", "h5"] {
            XCTAssertThrowsError(try changed.write(to: directory.appendingPathComponent("m.\(format)").path)) { error in
                XCTAssertTrue("\(error)".contains("lstm_seq") && "\(error)".contains("Masking"), "\(error)")
            }
        }
    }
}

/// Scion's ONNX spelling of Masking is read back as the layer, and nothing else is taken for it.
extension MaskingLayerTests {
    func testScionsONNXSpellingIsReadBackAsMasking() throws {
        let original = try model("keras3/masking_dense.keras")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-masking-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.onnx").path
        try original.write(to: path)
        let read = try Model.load(path).graph
        let mask = try XCTUnwrap(read.nodes.first { $0.name == "mask" })
        XCTAssertEqual(mask.op, .masking(MaskingAttributes(maskValue: 0)))
        XCTAssertEqual(mask.inputs, ["series"])
        XCTAssertFalse(read.nodes.contains { if case .onnx(.comparison) = $0.op { true } else { false } }, "the chain is gone")
        XCTAssertEqual(read.nodes.filter { $0.name.hasPrefix("mask/") }.map(\.name), [], "and its constants")
        XCTAssertEqual(read.parameters.names.filter { $0.hasPrefix("mask/") }, [])
    }
}
