import ScionIR

/// ONNX's instance and group normalizations to the IR's `groupNormalization` (Keras's
/// GroupNormalization): channels at axis 1, scale and bias per channel as `gamma` and `beta`.
extension ONNXImportSession {
    /// InstanceNormalization: one group per channel.
    func instanceNormalization(_ node: ONNXNode, _ x: String) -> MappedNode? {
        guard let scale = input(node, 1), let bias = input(node, 2) else { return nil }
        guard isConstant(scale), isConstant(bias), let rank = rank(x), rank >= 2 else {
            // A scale or bias computed in the graph: operands, not weights.
            return MappedNode(op: .onnx(.computedInstanceNormalization(ComputedNormalizationAttributes(
                epsilon: floatAttribute(node, "epsilon", 1e-5)))), inputs: [x, scale, bias])
        }
        let attributes = GroupNormalizationAttributes(groups: -1, axis: 1, epsilon: floatAttribute(node, "epsilon", 1e-5))
        return MappedNode(op: .groupNormalization(attributes), inputs: [x], parameters: [(scale, .gamma, nil), (bias, .beta, nil)])
    }

    /// GroupNormalization: from opset 21 scale and bias are per channel, as the IR holds them. Opsets
    /// 18-20 give them per group, which only matches when every group is one channel; other forms
    /// stay opaque.
    func groupNormalization(_ node: ONNXNode, _ x: String) -> MappedNode? {
        guard let scale = input(node, 1), let bias = input(node, 2), isConstant(scale), isConstant(bias),
              let shape = shape(x), shape.rank >= 2, let channels = shape[1] else { return nil }
        let groups = intAttribute(node, "num_groups", 0)
        guard groups > 0, channels % groups == 0, opset >= 21 || groups == channels,
              constants[scale]?.shape.reduce(1, *) == channels, constants[bias]?.shape.reduce(1, *) == channels else { return nil }
        let attributes = GroupNormalizationAttributes(groups: groups, axis: 1, epsilon: floatAttribute(node, "epsilon", 1e-5))
        return MappedNode(op: .groupNormalization(attributes), inputs: [x], parameters: [(scale, .gamma, nil), (bias, .beta, nil)])
    }
}
