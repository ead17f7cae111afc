import ScionIR
@testable import ScionPasses
import XCTest

/// torch's attention folds the heads into the batch (`Reshape [12, -1, 3, 32]` under a dynamic
/// batch in nn.TransformerEncoder's dynamo export; `view(-1)` in ConvNeXt's): Keras's Reshape layer
/// keeps the batch, so these are keras.ops.reshape calls over the whole tensor, in the order the
/// ONNX graph holds them. Keras itself runs them on torch's exports (docs/onnx-to-keras.md).
final class BatchMovingReshapeTests: XCTestCase {
    func graph(target: [Int], input: [Int?] = [nil, 4, 6], allowZero: Bool = false) -> Graph {
        var sketch = GraphSketch(inputs: [("x", input)])
        let folded = sketch.add("fold", .reshape(ReshapeAttributes(targetShape: target, includesBatch: true, allowZero: allowZero)), ["x"])
        sketch.add("relu", .activation(.plainRelu), [folded])
        sketch.outputs = ["relu"]
        var graph = sketch.graph
        graph.layout = .channelsFirst
        return graph
    }

    func testAReshapeMergingTheBatchIsKeptWholeWithOneUnknownLength() throws {
        let source = graph(target: [-1, 6])
        var converted = source
        try KerasLayersPass().run(&converted)
        try converted.verify()
        XCTAssertEqual(converted.nodes.map(\.op), [
            .reshape(ReshapeAttributes(targetShape: [-1, 6], includesBatch: true)), .activation(.plainRelu)])
        let input = Tensor.random([2, 4, 6], seed: 9)
        let expected = try ReferenceEvaluator(graph: source).run(["x": input])
        let got = try ReferenceEvaluator(graph: converted).run(["x": input])
        XCTAssertEqual(got[0].shape, [8, 6])
        XCTAssertLessThanOrEqual(largestDifference(got[0], expected[0]), 0)
    }

    /// torch's LSTM output `(T, N, 2, H)` reshaped to `[0, 0, -1]` under a dynamic batch and length:
    /// ONNX's 0 copies lengths only known at run time, which keras.ops.reshape cannot say.
    func testAReshapeCopyingUnknownLengthsIsRefusedWithTheReason() {
        var converted = graph(target: [0, 0, -1], input: [nil, nil, 2, 3])
        XCTAssertThrowsError(try KerasLayersPass().run(&converted)) { error in
            XCTAssertEqual((error as? PassError)?.subject, "fold")
            XCTAssertTrue("\(error)".contains("copies an input length (0) known only at run time"), "\(error)")
        }
    }
}
