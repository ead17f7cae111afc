import XCTest
import ScionIR
@testable import ScionONNX

/// Shape arithmetic on a dynamic batch, as torch exports it, folded at import: reshape targets become
/// static with -1 where the batch is, torch's `expand(n, -1, -1)` spelling reduces to `[batch, 1, 1]`,
/// batch*heads merges are undone exactly, and what depends on the batch's value stays computed at run
/// time. (The numbers of whole exported models are compared with onnxruntime at batch 2 and 3 in
/// docs/onnx-conformance.md, "Symbolic dimensions".)
final class SymbolicShapeFoldingTests: XCTestCase {
    private func int64s(_ name: String, _ values: [Int64], _ dimensions: [Int64]? = nil) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions ?? [Int64(values.count)], dataType: ONNXDataType.int64.rawValue,
                   data: .raw(values.withUnsafeBytes { [UInt8]($0) }))
    }

    private func floats(_ name: String, _ values: [Float], _ dimensions: [Int64]) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions, dataType: ONNXDataType.float.rawValue,
                   data: .raw(values.withUnsafeBytes { [UInt8]($0) }))
    }

    /// A float input whose nil lengths are the symbolic `batch`.
    private func input(_ name: String, _ dimensions: [Int64?]) -> ONNXValueInfo {
        ONNXValueInfo(name: name, elementType: ONNXDataType.float.rawValue,
                      shape: dimensions.map { $0.map { .value($0) } ?? .parameter("batch") })
    }

    private func importGraph(_ nodes: [ONNXNode], initializers: [ONNXTensor], input x: ONNXValueInfo, outputs: [String]) throws -> Graph {
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers, inputs: [x],
                              outputs: outputs.map { ONNXValueInfo(name: $0, elementType: ONNXDataType.float.rawValue, shape: nil) })
        let model = ONNXModel(irVersion: 8, operatorSets: [ONNXOperatorSet(domain: "", version: 17)], graph: graph)
        return try ONNXImporter.importModel(model, file: "symbolic.onnx", folder: "/tmp")
    }

    /// Shape(x)[0] as a one-element vector named `name`: Shape -> Gather(0) -> Unsqueeze.
    private func batchVector(of x: String, _ name: String) -> [ONNXNode] {
        [ONNXNode(name: "\(name)_shape", opType: "Shape", inputs: [x], outputs: ["\(name)_s"]),
         ONNXNode(name: "\(name)_gather", opType: "Gather", inputs: ["\(name)_s", "zero"], outputs: ["\(name)_n"], attributes: [.int("axis", 0)]),
         ONNXNode(name: "\(name)_unsqueeze", opType: "Unsqueeze", inputs: ["\(name)_n", "axes0"], outputs: [name])]
    }

    private let indexConstants = [
        ONNXTensor(name: "zero", dimensions: [], dataType: ONNXDataType.int64.rawValue, data: .raw(withUnsafeBytes(of: Int64(0)) { [UInt8]($0) })),
        ONNXTensor(name: "axes0", dimensions: [1], dataType: ONNXDataType.int64.rawValue, data: .raw(withUnsafeBytes(of: Int64(0)) { [UInt8]($0) })),
    ]

    private func types(_ graph: Graph) -> [String] { graph.nodes.map { graph.info.nodeTypes[$0.name] ?? "?" } }

    func testShapeGatherConcatReshapeBecomesAStaticReshapeKeepingTheBatch() throws {
        let nodes = batchVector(of: "x", "b") + [
            ONNXNode(name: "concat", opType: "Concat", inputs: ["b", "tail"], outputs: ["target"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "reshape", opType: "Reshape", inputs: ["x", "target"], outputs: ["y"]),
        ]
        let graph = try importGraph(nodes, initializers: indexConstants + [int64s("tail", [12, 8])], input: input("x", [nil, 96]), outputs: ["y"])
        XCTAssertEqual(types(graph), ["Reshape"])
        XCTAssertEqual(graph.nodes.first?.op, .reshape(ReshapeAttributes(targetShape: [-1, 12, 8], includesBatch: true)))
        XCTAssertEqual(graph.values["y"]?.shape, Shape([nil, 12, 8]))
    }

    func testTwoSymbolicEntriesCopyTheInputsLengthsWhereTheyMatch() throws {
        // [batch, seq, 4, 8] from x [batch, seq, 32]: both open lengths are x's own, so 0 copies them.
        let nodes = [
            ONNXNode(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
            ONNXNode(name: "slice", opType: "Slice", inputs: ["s", "start", "end"], outputs: ["lead"]),
            ONNXNode(name: "concat", opType: "Concat", inputs: ["lead", "tail"], outputs: ["target"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "reshape", opType: "Reshape", inputs: ["x", "target"], outputs: ["y"]),
        ]
        let x = ONNXValueInfo(name: "x", elementType: ONNXDataType.float.rawValue, shape: [.parameter("batch"), .parameter("seq"), .value(32)])
        let graph = try importGraph(nodes, initializers: [int64s("start", [0]), int64s("end", [2]), int64s("tail", [4, 8])],
                                    input: x, outputs: ["y"])
        XCTAssertEqual(graph.nodes.map(\.op), [.reshape(ReshapeAttributes(targetShape: [0, 0, 4, 8], includesBatch: true))])
    }

    func testTorchExpandSpellingReducesToTheBatchAndOnes() throws {
        // TorchScript's cls_token.expand(n, -1, -1): Where(Equal(shape, -1), ones, shape) with shape = [n, -1, -1].
        let nodes = batchVector(of: "x", "b") + [
            ONNXNode(name: "concat", opType: "Concat", inputs: ["b", "minus_ones"], outputs: ["wanted"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "shape_of_wanted", opType: "Shape", inputs: ["wanted"], outputs: ["rank"]),
            ONNXNode(name: "ones", opType: "ConstantOfShape", inputs: ["rank"], outputs: ["one_each"],
                     attributes: [ONNXAttribute(name: "value", value: .tensor(int64s("one", [1], [1])))]),
            ONNXNode(name: "negate", opType: "Mul", inputs: ["one_each", "minus_one"], outputs: ["minus_each"]),
            ONNXNode(name: "equal", opType: "Equal", inputs: ["wanted", "minus_each"], outputs: ["keep"]),
            ONNXNode(name: "where", opType: "Where", inputs: ["keep", "one_each", "wanted"], outputs: ["expand_shape"]),
            ONNXNode(name: "expand", opType: "Expand", inputs: ["cls", "expand_shape"], outputs: ["tokens"]),
            // x itself expanded the same way: every length is x's own, so the shape is all ones.
            ONNXNode(name: "expand_x", opType: "Expand", inputs: ["x", "expand_shape"], outputs: ["same"]),
        ]
        let initializers = indexConstants + [int64s("minus_ones", [-1, -1]), int64s("minus_one", [-1], []),
                                             floats("cls", Array(repeating: 0.5, count: 8), [1, 1, 8])]
        let graph = try importGraph(nodes, initializers: initializers, input: input("x", [nil, 4, 8]), outputs: ["tokens", "same"])
        let importedTypes = types(graph)
        for spelled in ["Equal", "Where", "ConstantOfShape", "Mul", "Gather"] { XCTAssertFalse(importedTypes.contains(spelled), spelled) }
        // The class token's expansion needs the batch at run time: one Shape of x's first axis.
        let shapes = graph.nodes.filter { if case .onnx(.shape) = $0.op { true } else { false } }
        XCTAssertEqual(shapes.map(\.op), [.onnx(.shape(ShapeOfAttributes(start: 0, end: 1)))])
        XCTAssertEqual(shapes.first?.inputs, ["x"])
        XCTAssertEqual(graph.values["tokens"]?.shape?.rank, 3)
        let expandX = try XCTUnwrap(graph.nodes.first { $0.outputs == ["same"] })
        let onesParameter = try XCTUnwrap(graph.nodes.first { $0.outputs == [expandX.inputs[1]] }?.parameters.first)
        let ones = try XCTUnwrap(graph.parameters[onesParameter])
        XCTAssertEqual(try ones.storage.bytes(keep: true), [Int64(1), 1, 1].withUnsafeBytes { [UInt8]($0) })
    }

    func testBatchTimesHeadsMergeAndSplitAreStaticReshapes() throws {
        // torch's attention: [batch, 4, 6] -> [batch*2, 4, 3] -> back to [batch, 4, 6] with Div by 2.
        let nodes = batchVector(of: "x", "b") + [
            ONNXNode(name: "heads", opType: "Mul", inputs: ["b", "two"], outputs: ["bh"]),
            ONNXNode(name: "merge_target", opType: "Concat", inputs: ["bh", "merged_tail"], outputs: ["merge"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "merge", opType: "Reshape", inputs: ["x", "merge"], outputs: ["merged"]),
            ONNXNode(name: "shape_merged", opType: "Shape", inputs: ["merged"], outputs: ["sm"]),
            ONNXNode(name: "first_merged", opType: "Slice", inputs: ["sm", "start", "end"], outputs: ["bh_again"]),
            ONNXNode(name: "unmerge", opType: "Div", inputs: ["bh_again", "two"], outputs: ["b_again"]),
            ONNXNode(name: "split_target", opType: "Concat", inputs: ["b_again", "split_tail"], outputs: ["split"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "split", opType: "Reshape", inputs: ["merged", "split"], outputs: ["y"]),
        ]
        let initializers = indexConstants + [int64s("two", [2]), int64s("merged_tail", [4, 3]), int64s("split_tail", [4, 6]),
                                             int64s("start", [0]), int64s("end", [1])]
        let graph = try importGraph(nodes, initializers: initializers, input: input("x", [nil, 4, 6]), outputs: ["y"])
        XCTAssertEqual(graph.nodes.map(\.op), [.reshape(ReshapeAttributes(targetShape: [-1, 4, 3], includesBatch: true)),
                                               .reshape(ReshapeAttributes(targetShape: [-1, 4, 6], includesBatch: true))])
        XCTAssertEqual(graph.values["merged"]?.shape, Shape([nil, 4, 3]))
    }

    func testALengthThatDependsOnTheBatchsValueStaysComputed() throws {
        // batch / 3 is no polynomial of the batch (it truncates): the Reshape keeps its run-time target.
        let nodes = batchVector(of: "x", "b") + [
            ONNXNode(name: "third", opType: "Div", inputs: ["b", "three"], outputs: ["q"]),
            ONNXNode(name: "concat", opType: "Concat", inputs: ["q", "minus_one"], outputs: ["target"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "reshape", opType: "Reshape", inputs: ["x", "target"], outputs: ["y"]),
        ]
        let graph = try importGraph(nodes, initializers: indexConstants + [int64s("three", [3]), int64s("minus_one", [-1])],
                                    input: input("x", [nil, 6]), outputs: ["y"])
        XCTAssertTrue(types(graph).contains("Div"))
        XCTAssertTrue(graph.nodes.contains { $0.op == .onnx(.computedReshape(ComputedReshapeAttributes(allowZero: false))) })
        XCTAssertTrue(graph.nodes.contains { if case .onnx(.shape) = $0.op { true } else { false } })
    }

    func testZeroInitialStateOfTheBatchsSizeLeavesNoShapeNode() throws {
        // torch's LSTM export: h0 = c0 = ConstantOfShape([1, batch, 2]) with batch = Shape(X)[1] (time-major X).
        let nodes = [
            ONNXNode(name: "shape", opType: "Shape", inputs: ["X"], outputs: ["s"]),
            ONNXNode(name: "gather", opType: "Gather", inputs: ["s", "one"], outputs: ["n"], attributes: [ONNXAttribute(name: "axis", value: .int(0))]),
            ONNXNode(name: "unsqueeze", opType: "Unsqueeze", inputs: ["n", "axes0"], outputs: ["b"]),
            ONNXNode(name: "concat", opType: "Concat", inputs: ["directions", "b", "hidden"], outputs: ["state_shape"],
                     attributes: [ONNXAttribute(name: "axis", value: .int(0))]),
            ONNXNode(name: "zeros", opType: "ConstantOfShape", inputs: ["state_shape"], outputs: ["h0"]),
            ONNXNode(name: "lstm", opType: "LSTM", inputs: ["X", "W", "R", "B", "", "h0", "h0"], outputs: ["Y", "Y_h"],
                     attributes: [ONNXAttribute(name: "hidden_size", value: .int(2))]),
        ]
        let initializers = indexConstants + [int64s("one", [1], []), int64s("directions", [1]), int64s("hidden", [2]),
                                             floats("W", Array(repeating: 0.1, count: 24), [1, 8, 3]),
                                             floats("R", Array(repeating: 0.2, count: 16), [1, 8, 2]),
                                             floats("B", Array(repeating: 0, count: 16), [1, 16])]
        let x = ONNXValueInfo(name: "X", elementType: ONNXDataType.float.rawValue, shape: [.value(5), .parameter("batch"), .value(3)])
        let graph = try importGraph(nodes, initializers: initializers, input: x, outputs: ["Y_h"])
        XCTAssertEqual(types(graph).filter { ["Shape", "ConstantOfShape", "Gather", "Concat"].contains($0) }, [])
        XCTAssertTrue(graph.nodes.contains { if case .recurrent = $0.op { true } else { false } }, "\(types(graph))")
    }

    func testLengthArithmetic() {
        let batch = SymbolicLength(symbol: "batch")
        let four = SymbolicLength(4)
        XCTAssertEqual((batch * four).divided(by: SymbolicLength(2)), batch * SymbolicLength(2))
        // Truncation is the floor for a length: (4b + 1) / 2 = 2b.
        XCTAssertEqual((batch * four + SymbolicLength(1)).divided(by: SymbolicLength(2)), batch * SymbolicLength(2))
        XCTAssertNil(batch.divided(by: SymbolicLength(3)))
        XCTAssertEqual((batch * four).divided(by: batch), four)
        XCTAssertEqual((batch * four + SymbolicLength(3)).remainder(dividingBy: four), SymbolicLength(3))
        XCTAssertNil(batch.remainder(dividingBy: four))
        XCTAssertEqual(batch.isEqual(to: SymbolicLength(-1)), false)
        XCTAssertEqual(batch.isEqual(to: SymbolicLength(0)), false)
        XCTAssertNil(batch.isEqual(to: SymbolicLength(4)))
        XCTAssertEqual(batch.extremum(with: SymbolicLength(1), maximum: true), batch)
        XCTAssertEqual((batch + SymbolicLength(1)).extremum(with: batch, maximum: false), batch)
        XCTAssertNil(batch.extremum(with: SymbolicLength(5), maximum: true))
        XCTAssertEqual((batch * four).description, "4*batch")
        // A hostile file's Int64.min / -1 is refused, not trapped on.
        XCTAssertNil(SymbolicLength(.min).divided(by: SymbolicLength(-1)))
        XCTAssertNil(SymbolicLength(.min).remainder(dividingBy: SymbolicLength(-1)))
    }
}
