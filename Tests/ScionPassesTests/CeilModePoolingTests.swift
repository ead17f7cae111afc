import ScionIR
@testable import ScionPasses
import XCTest

/// torch's `MaxPool2d(ceil_mode=True)` (GoogLeNet's pools) in Keras: padding at the end lets
/// floor-mode pooling reach ONNX's rounded-up length (zeros over values that cannot be negative,
/// float32's lowest value otherwise). GoogLeNet exported by torch, converted and run by Keras 3, matches onnxruntime on every
/// layer (docs/onnx-to-keras.md).
final class CeilModePoolingTests: XCTestCase {
    func pool(_ kind: PoolKind = .max, pads: [Int] = [0, 0, 0, 0]) -> Op {
        .pool(PoolAttributes(kind: kind, poolSize: [3, 3], strides: [2, 2], padding: .explicit(pads),
                             countIncludePad: false, ceilMode: true, layout: .channelsFirst))
    }

    /// `image (2, 3, 8, 8) → conv (pads 1) → [relu] → pool k3 s2 ceil_mode`: 4 × 4 where floor gives 3 × 3
    /// (5 × 5 and 4 × 4 with the pool's own pads of 1).
    func graph(relu: Bool, pool op: Op) -> Graph {
        var sketch = GraphSketch(inputs: [("image", [2, 3, 8, 8])])
        var value = sketch.add("conv", .conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1],
                                                           padding: .explicit([1, 1, 1, 1]), groups: 1, useBias: true,
                                                           layout: .channelsFirst)),
                               ["image"], parameters: [("kernel", [4, 3, 3, 3]), ("bias", [4])])
        if relu { value = sketch.add("relu", .activation(.plainRelu), [value]) }
        sketch.add("pool", op, [value])
        sketch.outputs = ["pool"]
        var graph = sketch.graph
        graph.layout = .channelsFirst
        return graph
    }

    func testCeilModeMaxPoolAfterReLUIsPaddedWithZerosAtTheEnd() throws {
        for pads in [[0, 0, 0, 0], [1, 1, 1, 1]] {
            let source = graph(relu: true, pool: pool(pads: pads))
            var converted = source
            try KerasLayersPass().run(&converted)
            try converted.verify()
            let padding = try XCTUnwrap(converted.nodes.first { $0.name == "pool/pad" })
            let pools = converted.nodes.compactMap { node -> PoolAttributes? in if case .pool(let a) = node.op { a } else { nil } }
            guard case .zeroPadding(let zeros) = padding.op, let pooled = pools.first else {
                return XCTFail("no ZeroPadding before the pooling: \(converted.nodes.map(\.op.typeName))")
            }
            // pads 0: 8 → 9 (windows at 0, 2, 4, 6); pads 1: 1 + 8 + 1 = 10, windows at 0, 2, 4, 6 fit, the one at 8 needs 11.
            XCTAssertEqual(zeros.padding, pads[0] == 0 ? [[0, 1], [0, 1]] : [[1, 2], [1, 2]])
            XCTAssertEqual(pooled.padding, .valid)
            XCTAssertFalse(pooled.ceilMode)
            let input = Tensor.random([2, 3, 8, 8], seed: 3)
            let expected = try ReferenceEvaluator(graph: source).run(["image": input])
            let got = try ReferenceEvaluator(graph: converted).run(["image": input])
            XCTAssertEqual(expected[0].shape, pads[0] == 0 ? [2, 4, 4, 4] : [2, 4, 5, 5], "floor mode gives 3 and 4")
            XCTAssertEqual(got[0].shape, expected[0].shape, "the converted model returns the source's layout")
            XCTAssertLessThanOrEqual(largestDifference(got[0], expected[0]), 1e-4)
        }
    }

    /// Without the ReLU the padding is a keras.ops Pad with float32's lowest value, not zeros.
    func testCeilModeMaxPoolOverValuesThatMayBeNegativeIsPaddedWithTheLowestValue() throws {
        let source = graph(relu: false, pool: pool())
        var converted = source
        try KerasLayersPass().run(&converted)
        try converted.verify()
        let padding = try XCTUnwrap(converted.nodes.first { $0.name == "pool/pad" })
        XCTAssertEqual(padding.op, .onnx(.pad(PadAttributes(pads: [0, 0, 0, 0, 0, 1, 1, 0], mode: .constant,
                                                             value: -Float.greatestFiniteMagnitude))))
        let input = Tensor.random([2, 3, 8, 8], seed: 4)
        let expected = try ReferenceEvaluator(graph: source).run(["image": input])
        let got = try ReferenceEvaluator(graph: converted).run(["image": input])
        XCTAssertEqual(got[0].shape, [2, 4, 4, 4])
        XCTAssertLessThanOrEqual(largestDifference(got[0], expected[0]), 1e-4)
    }

    func testCeilModeAverageThatRoundsUpIsRefused() {
        var converted = graph(relu: true, pool: pool(.average))
        XCTAssertThrowsError(try KerasLayersPass().run(&converted)) { error in
            XCTAssertTrue("\(error)".contains("AveragePool divides its last window"), "\(error)")
        }
    }

    /// Where rounding up changes nothing (9 long: windows at 0, 2, 4, 6 end exactly), no padding.
    func testCeilModeThatChangesNothingNeedsNoPadding() throws {
        var sketch = GraphSketch(inputs: [("image", [2, 3, 9, 9])])
        sketch.add("pool", pool(), ["image"])
        sketch.outputs = ["pool"]
        var converted = sketch.graph
        converted.layout = .channelsFirst
        try KerasLayersPass().run(&converted)
        XCTAssertFalse(converted.nodes.contains { $0.name == "pool/pad" })
    }
}
