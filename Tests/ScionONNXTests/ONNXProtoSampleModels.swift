import Foundation
import ScionIR
import ScionONNX

/// Models built in Swift for the codec tests: one that uses every attribute kind (including the
/// ones no standard op uses, so only Scion reads it back), and one valid enough for onnx's checker
/// with every kind of tensor data Scion writes.
enum ONNXProtoSampleModels {
    private static func bytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { ONNXProtoTestSupport.littleEndian($0) }
    }

    static func allAttributeKinds() -> ONNXModel {
        let small = ONNXTensor(name: "t", dimensions: [2], dataType: 1, data: .raw(bytes([1, -0.0])))
        let nanTensor = ONNXTensor(name: "", dimensions: [], dataType: 1, data: .raw(bytes([.nan])))
        let branch = ONNXGraph(
            name: "branch",
            nodes: [ONNXNode(name: "inner", opType: "Identity", inputs: ["a"], outputs: ["b"],
                             attributes: [ONNXAttribute(name: "deep", value: .graph(ONNXGraph(name: "deeper")))])],
            initializers: [small],
            inputs: [ONNXValueInfo(name: "a", elementType: 0, shape: nil)],
            outputs: [ONNXValueInfo(name: "b", elementType: 1, shape: [])]
        )
        let attributes: [ONNXAttribute] = [
            ONNXAttribute(name: "f", value: .float(-1.25)),
            ONNXAttribute(name: "zero", value: .float(0)),
            ONNXAttribute(name: "i", value: .int(-7)),
            ONNXAttribute(name: "s", value: .string(Array("héllo\u{0}x".utf8))),
            ONNXAttribute(name: "empty string", value: .string([])),
            ONNXAttribute(name: "t", value: .tensor(small)),
            ONNXAttribute(name: "g", value: .graph(branch)),
            ONNXAttribute(name: "floats", value: .floats([0.5, .infinity, -.greatestFiniteMagnitude])),
            ONNXAttribute(name: "no floats", value: .floats([])),
            ONNXAttribute(name: "ints", value: .ints([Int64.min, 0, Int64.max])),
            ONNXAttribute(name: "strings", value: .strings([[], [0xFF, 0x00], Array("b".utf8)])),
            ONNXAttribute(name: "tensors", value: .tensors([small, nanTensor])),
            ONNXAttribute(name: "graphs", value: .graphs([branch, ONNXGraph(name: "")])),
        ]
        let graph = ONNXGraph(
            name: "kinds",
            nodes: [
                ONNXNode(name: "everything", opType: "Custom", domain: "com.example", inputs: ["x", "", "w"],
                         outputs: ["y"], attributes: attributes),
                ONNXNode(name: "", opType: "Relu", inputs: ["y"], outputs: ["z"]),
            ],
            initializers: [
                ONNXTensor(name: "w", dimensions: [2, 2], dataType: 10, data: .raw([0, 60, 0, 188, 0, 0, 255, 127])),
                ONNXTensor(name: "labels", dimensions: [3], dataType: 8, data: .strings([Array("a".utf8), [], [0x00]])),
                ONNXTensor(name: "far", dimensions: [4], dataType: 7,
                           data: .external(location: "weights/far.bin", offset: 4096, length: 32)),
                ONNXTensor(name: "far without length", dimensions: [1], dataType: 6,
                           data: .external(location: "far.bin", offset: 0, length: nil)),
                ONNXTensor(name: "nibbles", dimensions: [3], dataType: 22, data: .raw([0x21, 0x03])),
                ONNXTensor(name: "empty", dimensions: [0], dataType: 11, data: .raw([])),
            ],
            inputs: [
                ONNXValueInfo(name: "x", elementType: 1, shape: [.parameter("batch"), .unknown, .value(3), .parameter("")]),
                ONNXValueInfo(name: "untyped", elementType: 0, shape: nil),
                ONNXValueInfo(name: "rank unknown", elementType: 7, shape: nil),
            ],
            outputs: [ONNXValueInfo(name: "z", elementType: 1, shape: [])],
            valueInfo: [ONNXValueInfo(name: "y", elementType: 1, shape: [.value(0), .value(-1)])]
        )
        return ONNXModel(
            irVersion: 10,
            operatorSets: [ONNXOperatorSet(domain: "", version: 21), ONNXOperatorSet(domain: "com.example", version: 1)],
            producerName: "scion-tests", producerVersion: "1.0", domain: "org.example", modelVersion: 42,
            documentation: "every attribute kind", graph: graph,
            metadata: [(key: "author", value: "scion"), (key: "empty", value: "")]
        )
    }

    /// A model onnx.checker accepts with full_check: storage, raw, external and string
    /// initializers, a subgraph (If), and float, int, string, tensor and list attributes. The
    /// external initializer's bytes are written to `external.bin` in `externalDirectory`.
    static func checkable(externalDirectory: URL) throws -> (ONNXModel, CountingSource) {
        let weights = CountingSource(content: bytes([1, 2, 3, 4, 5, 6]))
        let externalBytes = [UInt8](repeating: 0xEE, count: 8) + bytes([0.25, -0.5])
        try Data(externalBytes).write(to: externalDirectory.appendingPathComponent("external.bin"))
        let batch = ONNXDimension.parameter("N")
        func branch(_ name: String, _ opType: String, _ other: String) -> ONNXGraph {
            ONNXGraph(name: name,
                      nodes: [ONNXNode(name: "\(name)_op", opType: opType, inputs: ["activated", other],
                                       outputs: ["\(name)_out"])],
                      outputs: [ONNXValueInfo(name: "\(name)_out", elementType: 1, shape: [batch, .value(2)])])
        }
        let nodes = [
            ONNXNode(name: "matmul", opType: "MatMul", inputs: ["X", "W"], outputs: ["XW"]),
            ONNXNode(name: "bias", opType: "Add", inputs: ["XW", "B"], outputs: ["XWB"]),
            ONNXNode(name: "shift", opType: "Add", inputs: ["XWB", "E"], outputs: ["shifted"]),
            ONNXNode(name: "leaky", opType: "LeakyRelu", inputs: ["shifted"], outputs: ["activated"],
                     attributes: [ONNXAttribute(name: "alpha", value: .float(0.2))]),
            ONNXNode(name: "floats", opType: "Constant", inputs: [], outputs: ["C1"],
                     attributes: [ONNXAttribute(name: "value_floats", value: .floats([1.5, 2.5]))]),
            ONNXNode(name: "tensor", opType: "Constant", inputs: [], outputs: ["C3"],
                     attributes: [ONNXAttribute(name: "value", value: .tensor(
                        ONNXTensor(name: "", dimensions: [2], dataType: 1, data: .raw(bytes([3, 4])))))]),
            ONNXNode(name: "ints", opType: "Constant", inputs: [], outputs: ["C2"],
                     attributes: [ONNXAttribute(name: "value_ints", value: .ints([1, 2]))]),
            ONNXNode(name: "cast", opType: "Cast", inputs: ["C2"], outputs: ["C2F"],
                     attributes: [ONNXAttribute(name: "to", value: .int(1))]),
            ONNXNode(name: "strings", opType: "Constant", inputs: [], outputs: ["C4"],
                     attributes: [ONNXAttribute(name: "value_strings", value: .strings([Array("x".utf8), Array("y".utf8)]))]),
            ONNXNode(name: "string", opType: "Constant", inputs: [], outputs: ["C5"],
                     attributes: [ONNXAttribute(name: "value_string", value: .string(Array("hello".utf8)))]),
            ONNXNode(name: "choose", opType: "If", inputs: ["cond"], outputs: ["Z"],
                     attributes: [ONNXAttribute(name: "then_branch", value: .graph(branch("then", "Add", "C1"))),
                                  ONNXAttribute(name: "else_branch", value: .graph(branch("else", "Sub", "C3")))]),
        ]
        let graph = ONNXGraph(
            name: "checkable",
            nodes: nodes,
            initializers: [
                ONNXTensor(name: "W", dimensions: [3, 2], dataType: 1, data: .storage(TensorStorage(source: weights))),
                ONNXTensor(name: "B", dimensions: [2], dataType: 1, data: .raw(bytes([0.5, -0.5]))),
                ONNXTensor(name: "E", dimensions: [2], dataType: 1, data: .external(location: "external.bin", offset: 8, length: 8)),
                ONNXTensor(name: "names", dimensions: [2], dataType: 8, data: .strings([Array("first".utf8), Array("second".utf8)])),
            ],
            inputs: [ONNXValueInfo(name: "X", elementType: 1, shape: [batch, .value(3)]),
                     ONNXValueInfo(name: "cond", elementType: 9, shape: [])],
            outputs: [ONNXValueInfo(name: "Z", elementType: 1, shape: [batch, .value(2)]),
                      ONNXValueInfo(name: "C2F", elementType: 1, shape: [.value(2)]),
                      ONNXValueInfo(name: "C4", elementType: 8, shape: [.value(2)]),
                      ONNXValueInfo(name: "C5", elementType: 8, shape: [])],
            valueInfo: [ONNXValueInfo(name: "activated", elementType: 1, shape: [batch, .unknown])]
        )
        let model = ONNXModel(irVersion: 8, operatorSets: [ONNXOperatorSet(domain: "", version: 17)],
                              producerName: "scion-tests", producerVersion: "1", documentation: "checker sample",
                              graph: graph, metadata: [(key: "purpose", value: "test")])
        return (model, weights)
    }
}
