import ScionIR

extension ONNXGraphBuilder {
    mutating func recurrent(_ node: Node, _ a: RecurrentAttributes, input: String) throws {
        throw unsupported(node, "layer type '\(node.op.typeName)' has no ONNX equivalent in Scion yet")
    }
}
