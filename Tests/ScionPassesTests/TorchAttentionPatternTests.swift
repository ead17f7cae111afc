import Foundation
import Scion
import ScionIR
@testable import ScionPasses
import ScionRuntime
import ScionTestSupport
import XCTest

/// torch's exported attention blocks (fixtures/torch_attention, made by
/// fixtures/make_torch_attention.py) become Keras MultiHeadAttention layers, and the rewritten
/// graph gives onnxruntime's outputs on the original files (max|a-b| <= 1e-4 * max|b|).
final class TorchAttentionPatternTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/torch_attention")

    func attentionNodes(_ graph: Graph) -> [Node] {
        graph.nodes.filter { if case .multiHeadAttention = $0.op { true } else { false } }
    }

    /// Runs `graph` (lowered for the executor as `scion run` does) on the stored inputs of `name`
    /// (`suffix` "3": the batch-3 arrays) and compares with onnxruntime's stored outputs.
    func assertMatchesOnnxRuntime(_ graph: Graph, _ name: String, suffix: String = "", file: StaticString = #filePath, line: UInt = #line) throws {
        let inputs = try FixtureArrays.read(Self.folder, name, "input\(suffix)")
        let expected = try FixtureArrays.read(Self.folder, name, "output\(suffix)")
        XCTAssertEqual(inputs.count, graph.inputs.count, file: file, line: line)
        XCTAssertEqual(expected.count, 1, file: file, line: line)
        let executor = try Model(graph: graph, format: graph.layout == .channelsFirst ? .onnx : .kerasArchive, path: name).executor()
        let results = try executor.run(Dictionary(uniqueKeysWithValues: zip(executor.graph.inputs.map(\.name), inputs)))
        let got = try XCTUnwrap(results[graph.outputs[0]], file: file, line: line)
        let want = expected[0]
        XCTAssertEqual(got.shape, want.shape, "\(name)\(suffix)", file: file, line: line)
        let scale = want.data.map(abs).max() ?? 1
        let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name)\(suffix): max |a-b| \(worst), max |b| \(scale)", file: file, line: line)
    }

    /// Two encoder layers (2 heads of 8, then 4 heads of 4, width 16) exported four ways: each
    /// attention becomes one MultiHeadAttention with torch's weights (4 · (16·16 + 16) parameters),
    /// each LayerNorm one LayerNormalization (at opset 14 from its ReduceMean/Sub/Pow/Sqrt/Div
    /// spelling), every node is a Keras layer, and the numbers are onnxruntime's, for batch 2 and,
    /// where the export keeps the batch dynamic, batch 3.
    func testEncoderLayersBecomeMultiHeadAttentionWithOnnxRuntimesNumbers() throws {
        for (name, suffixes) in [("encoder", [""]), ("encoder_batch", ["", "3"]), ("encoder_dynamo", ["", "3"]), ("encoder_opset14", [""])] {
            var graph = try Model.load(Self.folder.appendingPathComponent("\(name).onnx").path).graph
            try KerasLayersPass().run(&graph)
            let attention = attentionNodes(graph)
            XCTAssertEqual(attention.count, 2, name)
            var shapes: [[Int]] = []
            for node in attention {
                guard case .multiHeadAttention(let a) = node.op else { continue }
                shapes.append([a.numHeads, a.keyDim, a.valueDim])
                XCTAssertEqual(node.inputs.count, 2, name)
                XCTAssertEqual(node.inputs[0], node.inputs[1], "\(name): self-attention reads one value twice")
                XCTAssertEqual(graph.parameters(of: node).reduce(0) { $0 + $1.elementCount }, 4 * (16 * 16 + 16), name)
            }
            XCTAssertEqual(shapes, [[2, 8, 8], [4, 4, 4]], name)
            XCTAssertEqual(graph.nodes.filter { if case .layerNormalization = $0.op { true } else { false } }.count, 4, name)
            // torch's exact GELU stays Div, Erf (keras.ops.erf), Add, Mul, Mul; nothing else is left as an ONNX op.
            for node in graph.nodes where node.op != .onnx(.unary(.errorFunction)) {
                if case .onnx = node.op { XCTFail("\(name): \(node.name) is still ONNX's \(node.op.typeName)") }
            }
            for suffix in suffixes { try assertMatchesOnnxRuntime(graph, name, suffix: suffix) }
        }
    }

    /// Attention written by hand: three Linear, scores divided by hd (the difference from Keras's
    /// 1/sqrt(hd) goes into the query kernel), an output Linear to 12 features (`output_shape`).
    func testHandWrittenAttentionWithOtherScaleAndOutputWidth() throws {
        var graph = try Model.load(Self.folder.appendingPathComponent("manual.onnx").path).graph
        try KerasLayersPass().run(&graph)
        let attention = attentionNodes(graph)
        XCTAssertEqual(attention.count, 1)
        guard case .multiHeadAttention(let a) = attention.first?.op else { return XCTFail("no MultiHeadAttention") }
        XCTAssertEqual([a.numHeads, a.keyDim, a.valueDim], [4, 4, 4])
        XCTAssertEqual(a.outputShape, [12])
        XCTAssertEqual(graph.parameters(of: attention[0]).reduce(0) { $0 + $1.elementCount }, 3 * (16 * 16 + 16) + 16 * 12 + 12)
        for suffix in ["", "3"] { try assertMatchesOnnxRuntime(graph, "manual", suffix: suffix) }
    }

    /// torch's causal mask (-inf above the diagonal, added to the scores) is Keras's use_causal_mask.
    func testCausalMaskBecomesUseCausalMask() throws {
        var graph = try Model.load(Self.folder.appendingPathComponent("causal.onnx").path).graph
        try KerasLayersPass().run(&graph)
        let attention = attentionNodes(graph)
        XCTAssertEqual(attention.count, 1)
        guard case .multiHeadAttention(let a) = attention.first?.op else { return XCTFail("no MultiHeadAttention") }
        XCTAssertTrue(a.useCausalMask)
        XCTAssertFalse(a.hasAttentionMask)
        try assertMatchesOnnxRuntime(graph, "causal")
    }

    /// torch's decoder layer: causal self-attention on the target (read twice), then cross-attention
    /// with the query from the target's stream and key and value from the memory (a second input).
    func testDecoderLayerCrossAttentionReadsTheMemory() throws {
        var graph = try Model.load(Self.folder.appendingPathComponent("decoder.onnx").path).graph
        try KerasLayersPass().run(&graph)
        let attention = attentionNodes(graph)
        XCTAssertEqual(attention.count, 2)
        XCTAssertEqual(attention.map { $0.inputs[0] == $0.inputs[1] }, [true, false])
        XCTAssertEqual(attention.last?.inputs.last, "memory")
        XCTAssertEqual(attention.map { if case .multiHeadAttention(let a) = $0.op { a.useCausalMask } else { false } }, [true, false])
        try assertMatchesOnnxRuntime(graph, "decoder")
    }

    /// A mask that is not causal (banded), or the key's heads interleaved, is not what
    /// MultiHeadAttention computes from these weights: the pattern leaves every node in place (and
    /// the graph still computes onnxruntime's numbers).
    func testOtherAttentionsAreLeftAlone() throws {
        for name in ["banded", "interleaved"] {
            let source = try Model.load(Self.folder.appendingPathComponent("\(name).onnx").path).graph
            var rewriter = KerasPatternRewriter(passName: "keras-layers", graph: source)
            try rewriter.rewrite()
            XCTAssertTrue(attentionNodes(rewriter.graph).isEmpty, name)
            XCTAssertTrue(rewriter.graph.nodes.contains { $0.op == .activation(.softmax(axis: -1)) }, name)
            try assertMatchesOnnxRuntime(rewriter.graph, name)
        }
    }
}
