import XCTest
import ScionIR
@testable import ScionONNX

/// The ONNX reader on the mask and index ops torch's exporters write: constant chains fold (Mod,
/// Equal, Where, Not, a reversed Slice and a Transpose of torch's pads table), run-time ones become
/// the IR's ops with what is constant kept as attributes, and forms the executor cannot run stay
/// opaque. (Numbers: Tests/Interop/runtime_op_cases.py against onnxruntime.)
final class ONNXIndexingImportTests: XCTestCase {
    private func int64s(_ name: String, _ values: [Int64], _ dimensions: [Int64]? = nil) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions ?? [Int64(values.count)], dataType: ONNXDataType.int64.rawValue,
                   data: .raw(values.withUnsafeBytes { [UInt8]($0) }))
    }

    private func constant(_ output: String, _ values: [Int64], _ dimensions: [Int64]? = nil) -> ONNXNode {
        ONNXNode(name: output, opType: "Constant", inputs: [], outputs: [output],
                 attributes: [ONNXAttribute(name: "value", value: .tensor(int64s(output, values, dimensions)))])
    }

    private func input(_ name: String, _ dimensions: [Int64?]) -> ONNXValueInfo {
        ONNXValueInfo(name: name, elementType: ONNXDataType.float.rawValue,
                      shape: dimensions.map { $0.map { .value($0) } ?? .parameter("batch") })
    }

    private func importing(_ nodes: [ONNXNode], initializers: [ONNXTensor] = [], inputs: [ONNXValueInfo],
                           outputs: [ONNXValueInfo], opset: Int64 = 17) throws -> Graph {
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers, inputs: inputs, outputs: outputs)
        return try ONNXImporter.importModel(ONNXModel(irVersion: 8, operatorSets: [ONNXOperatorSet(domain: "", version: opset)], graph: graph),
                                            file: "indexing.onnx", folder: "/tmp")
    }

    /// TorchScript's window padding and masked reshape targets on static shapes: every operand is a
    /// constant, so the Pad and the Reshape get constant attributes.
    func testTorchPadsTableAndMaskedTargetsFold() throws {
        let nodes = [
            // pads as torch writes them: a [rank, 2] table, rows reversed, transposed, flattened.
            constant("table", [0, 0, 1, 2, 3, 4], [3, 2]),
            constant("start", [-1]), constant("end", [-9_223_372_036_854_775_807]), constant("axis", [0]), constant("step", [-1]),
            ONNXNode(name: "reverse", opType: "Slice", inputs: ["table", "start", "end", "axis", "step"], outputs: ["reversed"]),
            ONNXNode(name: "transpose", opType: "Transpose", inputs: ["reversed"], outputs: ["pairs"], attributes: [.ints("perm", [1, 0])]),
            constant("flat", [-1]),
            ONNXNode(name: "flatten", opType: "Reshape", inputs: ["pairs", "flat"], outputs: ["pads"]),
            ONNXNode(name: "pad", opType: "Pad", inputs: ["x", "pads"], outputs: ["padded"]),
            // A target whose -1 is chosen by a mask: Where(Mod(lengths, 3) == 0, -1, sizes).
            constant("lengths", [6, 7]), constant("three", [3], []), constant("zero", [0], []),
            constant("minus", [-1, -1]), constant("sizes", [2, 12]),
            ONNXNode(name: "mod", opType: "Mod", inputs: ["lengths", "three"], outputs: ["rest"]),
            ONNXNode(name: "equal", opType: "Equal", inputs: ["rest", "zero"], outputs: ["divides"]),
            ONNXNode(name: "not", opType: "Not", inputs: ["divides"], outputs: ["other"]),
            ONNXNode(name: "where", opType: "Where", inputs: ["other", "sizes", "minus"], outputs: ["target"]),
            ONNXNode(name: "reshape", opType: "Reshape", inputs: ["padded", "target"], outputs: ["y"]),
        ]
        let graph = try importing(nodes, inputs: [input("x", [2, 3, 2])], outputs: [input("y", [nil, 12])])
        XCTAssertEqual(graph.nodes.map(\.op), [
            .onnx(.pad(PadAttributes(pads: [3, 1, 0, 4, 2, 0], mode: .constant))),
            .reshape(ReshapeAttributes(targetShape: [-1, 12], includesBatch: true)),
        ])
        XCTAssertEqual(graph.values["y"]?.shape, Shape([9, 12]))
    }

    /// Lengths known only at run time: the ops stay as the IR's, constant operands kept as attributes.
    func testRunTimeOperandsBecomeTheIRsOps() throws {
        let nodes = [
            ONNXNode(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
            // The batch: a length no folding can know.
            ONNXNode(name: "gather", opType: "Gather", inputs: ["s", "zero"], outputs: ["length"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "mod", opType: "Mod", inputs: ["length", "two"], outputs: ["odd"]),
            ONNXNode(name: "slice", opType: "Slice", inputs: ["x", "odd", "big", "axes"], outputs: ["sliced"]),
            ONNXNode(name: "trilu", opType: "Trilu", inputs: ["sliced", "k"], outputs: ["upper"], attributes: [.int("upper", 1)]),
            ONNXNode(name: "range", opType: "Range", inputs: ["zero", "length", "one"], outputs: ["positions"]),
            ONNXNode(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["ones"],
                     attributes: [ONNXAttribute(name: "value", value: .tensor(int64s("value", [1], [1])))]),
            ONNXNode(name: "einsum", opType: "Einsum", inputs: ["upper", "upper"], outputs: ["scores"],
                     attributes: [.string("equation", "bij,bkj->bik")]),
            ONNXNode(name: "diagonal", opType: "Einsum", inputs: ["scores"], outputs: ["y"], attributes: [.string("equation", "bii->bi")]),
        ]
        let graph = try importing(nodes, initializers: [int64s("one", [1], []), int64s("two", [2], []), int64s("zero", [0], []),
                                                        int64s("big", [Int64.max]), int64s("axes", [1]), int64s("k", [2], [])],
                                  // The Range is an output: unread, a Range over the batch waits as index arithmetic
                                  // (ONNXImporter+BatchIndices) and is never imported.
                                  inputs: [input("x", [nil, 5, 4])], outputs: [input("y", [nil, 5]), input("positions", [nil])])
        let ops = Dictionary(uniqueKeysWithValues: graph.nodes.map { ($0.name, $0.op) })
        XCTAssertEqual(ops["mod"], .onnx(.mod(ModAttributes(fmod: false))))
        XCTAssertEqual(ops["slice"], .onnx(.computedSlice(ComputedSliceAttributes(hasAxes: true, hasSteps: false, knownAxes: [1]))))
        XCTAssertEqual(graph.values["sliced"]?.shape, Shape([nil, nil, 4]))
        XCTAssertEqual(ops["trilu"], .onnx(.trilu(TriluAttributes(upper: true, k: 2))))
        XCTAssertEqual(graph.node(named: "trilu")?.inputs, ["sliced"])
        XCTAssertEqual(ops["range"], .onnx(.range))
        XCTAssertEqual(ops["fill"], .onnx(.constantOfShape(ConstantOfShapeAttributes(value: 1, dtype: .int64))))
        XCTAssertEqual(ops["einsum"], .onnx(.einsum(EinsumAttributes(equation: "bij,bkj->bik"))))
        // A diagonal (a letter twice in one term) is not an equation the executor runs: kept as read.
        guard case .opaque(let a)? = ops["diagonal"] else { return XCTFail("the diagonal Einsum is read") }
        XCTAssertEqual(a.type, "Einsum")
    }
}
