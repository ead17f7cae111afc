import ScionIR
@testable import ScionPasses
import XCTest

/// Weights broadcast over the batch (ViT's class token and position embedding) become Dense kernels
/// over ones of the batch: the weight's bytes as they were, trainable as they were, and no Shape or
/// Expand left for the Keras writer to refuse. Numbers are checked against Keras and onnxruntime
/// on torch's own exports in Tests/Interop/check_torch.py (vit, learned_tokens).
final class BroadcastWeightsTests: XCTestCase {
    /// torchvision's ViT as the ONNX reader leaves it: `Expand(class_token, Concat(Shape(x)[0:1], [1, 8]))`,
    /// Concat with the patch tokens, `+ pos_embedding`. `tokenLengths` are the Expand's lengths after the batch.
    func vitGraph(tokenLengths: [Int] = [1, 8], frozenPosition: Bool = false) -> Graph {
        var sketch = GraphSketch(inputs: [("tokens", [nil, 4, 8])])
        sketch.add("batch", .onnx(.shape(ShapeOfAttributes(start: 0, end: 1))), ["tokens"])
        sketch.nodes.append(Node(name: "lengths", op: .onnx(.constant(ConstantAttributes(dtype: .int64))), inputs: [], outputs: ["lengths"],
                                 parameters: ["lengths/value"]))
        sketch.parameters.add(Parameter(name: "lengths/value", role: .value, shape: [tokenLengths.count], dtype: .int64, trainable: false,
                                        storage: TensorStorage(bytes: tokenLengths.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) })))
        sketch.add("target", .concatenate(ConcatenateAttributes(axis: 0)), ["batch", "lengths"])
        sketch.add("class_token", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: [("value", [1, 1, 8])])
        sketch.add("expand", .onnx(.expand), ["class_token", "target"])
        sketch.add("cat", .concatenate(ConcatenateAttributes(axis: 1)), ["expand", "tokens"])
        sketch.add("pos_embedding", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: [("value", [1, 5, 8])],
                   trainable: !frozenPosition)
        sketch.add("add", .elementwise(.add), ["cat", "pos_embedding"])
        sketch.outputs = ["add"]
        var graph = sketch.graph
        graph.layout = .channelsFirst
        return graph
    }

    func toKeras(_ source: Graph) throws -> Graph {
        var graph = source
        try KerasLayersPass().run(&graph)
        try graph.verify()
        return graph
    }

    func dense(_ graph: Graph, reading weight: String) throws -> (node: Node, kernel: Parameter) {
        let node = try XCTUnwrap(graph.nodes.first { node in
            if case .dense = node.op { return node.parameters == [weight] } else { return false }
        }, "no Dense holds \(weight)")
        return (node, try XCTUnwrap(graph.parameter(of: node, role: .kernel)))
    }

    func testClassTokenAndPositionEmbeddingBecomeTrainableDenseKernels() throws {
        let source = vitGraph()
        let graph = try toKeras(source)
        XCTAssertEqual(graph.nodes.map(\.op.typeName),
                       ["Slice", "Rescaling", "Dense", "Concatenate", "Slice", "Rescaling", "Dense", "Reshape", "Add"])
        let token = try dense(graph, reading: "class_token/value")
        XCTAssertEqual(token.node.name, "class_token", "the layer is named after the weight it holds")
        XCTAssertEqual(token.node.op, .dense(DenseAttributes(units: 8, useBias: false)))
        XCTAssertEqual(token.kernel.shape, [1, 8])
        XCTAssertTrue(token.kernel.trainable && token.node.trainable)
        XCTAssertEqual(try token.kernel.storage.bytes(), try XCTUnwrap(source.parameters["class_token/value"]).storage.bytes())
        let position = try dense(graph, reading: "pos_embedding/value")
        XCTAssertEqual(position.kernel.shape, [1, 40])
        XCTAssertEqual(try position.kernel.storage.bytes(), try XCTUnwrap(source.parameters["pos_embedding/value"]).storage.bytes())
        XCTAssertEqual(graph.parameters.all.map(\.elementCount).reduce(0, +), 8 + 40, "no weight added, none copied")
        // The ones come from the patch tokens (the Concat partner), sliced to (N, 1, 1), times 0 plus 1.
        let slice = try XCTUnwrap(graph.nodes.first)
        XCTAssertEqual(slice.inputs, ["tokens"])
        XCTAssertEqual(slice.op, .onnx(.slice(SliceAttributes(starts: [0, 0], ends: [1, 1], axes: [1, 2], steps: [1, 1]))))
        XCTAssertEqual(graph.nodes[1].op, .rescaling(RescalingAttributes(scale: [0], offset: [1])))
        XCTAssertEqual(graph.nodes[7].op, .reshape(ReshapeAttributes(targetShape: [5, 8])))
        XCTAssertEqual(graph.values["add"]?.shape, Shape([nil, 5, 8]))
    }

    func testAFrozenConstantBecomesAFrozenDense() throws {
        let graph = try toKeras(vitGraph(frozenPosition: true))
        let position = try dense(graph, reading: "pos_embedding/value")
        XCTAssertFalse(position.kernel.trainable)
        XCTAssertFalse(position.node.trainable, "Keras must not be told the frozen constant trains")
        XCTAssertTrue(try dense(graph, reading: "class_token/value").node.trainable)
    }

    /// TorchScript at a fixed batch (no dynamic axes) writes the Expand's target as a constant `[2, 1, 8]`:
    /// the Concat partner, of batch 2, gives the ones.
    func testAFixedBatchExpandUsesTheConcatPartnersBatch() throws {
        var source = vitGraph()
        source.inputs = [ValueInfo(name: "tokens", shape: Shape([2, 4, 8]), dtype: .float32)]
        source.nodes.removeAll { ["batch", "target"].contains($0.name) }
        let target = Parameter(name: "target/value", role: .value, shape: [3], dtype: .int64, trainable: false,
                               storage: TensorStorage(bytes: [2, 1, 8].flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) }))
        source.parameters.add(target)
        source.nodes.insert(Node(name: "target", op: .onnx(.constant(ConstantAttributes(dtype: .int64))), inputs: [], outputs: ["target"],
                                 parameters: ["target/value"]), at: 0)
        let graph = try toKeras(source)
        XCTAssertEqual(try dense(graph, reading: "class_token/value").kernel.shape, [1, 8])
        XCTAssertFalse(graph.nodes.contains { if case .onnx = $0.op { $0.op.typeName == "Expand" } else { false } })
        XCTAssertEqual(graph.values["add"]?.shape, Shape([2, 5, 8]))
    }

    /// `class_token.expand(n, 3, -1)` would repeat the token along the sequence too: three copies of
    /// one weight are not one kernel. Left alone, and refused by the layout pass naming the Shape.
    func testAWeightBroadcastAlongASampleAxisIsLeftAlone() throws {
        var source = vitGraph(tokenLengths: [3, 8])
        source.nodes.removeAll { ["cat", "pos_embedding", "add"].contains($0.name) }
        source.outputs = ["expand"]
        var graph = source
        XCTAssertThrowsError(try KerasLayersPass().run(&graph)) { error in
            XCTAssertTrue("\(error)".contains("Keras layers need their lengths known before run time"), "\(error)")
        }
    }
}
