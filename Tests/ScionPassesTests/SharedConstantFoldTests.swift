import ScionIR
@testable import ScionPasses
import XCTest

/// torch's dynamo exporter keeps one copy of equal weights: swin's and ConvNeXt's zero LayerNorm
/// betas and Linear biases are one initializer, read by LayerNormalization nodes directly and by
/// `Add(MatMul(x, W), b)` through the constant node the ONNX reader makes. Folding one MatMul+Add
/// into a Dense used to turn the shared constant's `value` weight into that Dense's `bias` in place,
/// leaving the constant node (still read by an Add that is not folded) without its value:
/// "features.0.2.bias: is missing its 'value' weights".
final class SharedConstantFoldTests: XCTestCase {
    /// `dense = x·W + b` and `shifted = tokens + b` (a rank-3 Add no pattern folds) share `b`.
    func sharedBiasGraph() -> Graph {
        var sketch = GraphSketch(inputs: [("x", [2, 4]), ("tokens", [2, 3, 4])])
        sketch.add("b", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: [("value", [4])])
        sketch.add("W", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: [("value", [4, 4])])
        let product = sketch.add("matmul", .onnx(.matMul), ["x", "W"])
        sketch.add("dense", .elementwise(.add), [product, "b"])
        sketch.add("shifted", .elementwise(.add), ["tokens", "b"])
        sketch.outputs = ["dense", "shifted"]
        var graph = sketch.graph
        graph.layout = .channelsFirst
        return graph
    }

    func testFoldingASharedConstantIntoADenseLeavesTheConstantItsValue() throws {
        let source = sharedBiasGraph()
        // The Dense takes b in the `denseBias` sweep; the rank-3 Add still reads the constant node
        // until the later `constantArithmetic` sweep makes it a Rescaling. Shapes are inferred
        // between sweeps, and the constant used to have no `value` weight then.
        var rewriter = KerasPatternRewriter(passName: "keras-layers", graph: source)
        try rewriter.rewrite()
        var graph = rewriter.graph
        try graph.verify()
        XCTAssertEqual(graph.nodes.map(\.op.typeName), ["Dense", "Rescaling"])
        let dense = try XCTUnwrap(graph.nodes.first { if case .dense = $0.op { true } else { false } })
        let bias = try XCTUnwrap(graph.parameter(of: dense, role: .bias))
        XCTAssertEqual(bias.shape, [4])
        XCTAssertEqual(try bias.storage.bytes(), try XCTUnwrap(source.parameters["b/value"]).storage.bytes())
        guard case .rescaling(let shift) = graph.nodes[1].op else { return XCTFail("no Rescaling") }
        let values = try XCTUnwrap(source.parameters["b/value"]).storage.bytes().withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(shift.offset, values)
    }

    func testAConstantReadOnlyByTheDenseBecomesItsBiasItself() throws {
        var source = sharedBiasGraph()
        source.nodes.removeAll { $0.name == "shifted" }
        source.outputs = ["dense"]
        var rewriter = KerasPatternRewriter(passName: "keras-layers", graph: source)
        try rewriter.rewrite()
        try rewriter.graph.verify()
        XCTAssertEqual(rewriter.graph.nodes.map(\.op.typeName), ["Dense"])
        XCTAssertEqual(rewriter.graph.parameters.names.sorted(), ["W/value", "b/value"], "no copy when nothing else reads b")
        XCTAssertEqual(rewriter.graph.parameters["b/value"]?.role, .bias)
    }
}

/// nn.TransformerEncoder deep-copies its layer, so dynamo's export keeps one copy of each
/// projection weight, read by one `Gemm(transB=1)` per layer. Each fold used to transpose the shared
/// weight again: the second put it back, and both Dense layers computed with `Wᵀ`.
final class SharedGemmWeightTests: XCTestCase {
    func testAGemmWeightSharedByTwoGemmsIsTransposedOnce() throws {
        var sketch = GraphSketch(inputs: [("x", [2, 3])])
        sketch.add("first", .onnx(.gemm(GemmAttributes(transposeB: true))), ["x"], parameters: [("kernel", [3, 3])])
        sketch.call("second", sharing: "first", ["first"])
        sketch.outputs = ["second"]
        var source = sketch.graph
        source.layout = .channelsFirst
        var converted = source
        try KerasLayersPass().run(&converted)
        try converted.verify()
        XCTAssertEqual(converted.nodes.map(\.op.typeName), ["Dense", "Dense"])
        let input = Tensor.random([2, 3], seed: 7)
        let expected = try ReferenceEvaluator(graph: source).run(["x": input])
        let got = try ReferenceEvaluator(graph: converted).run(["x": input])
        XCTAssertLessThanOrEqual(largestDifference(got[0], expected[0]), 1e-5)
    }
}
