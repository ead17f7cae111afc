import ScionIR

/// The IR's group normalization as ONNX: InstanceNormalization when every group is one channel (all
/// opsets), GroupNormalization from opset 21 (per-channel scale), and before that the form torch's
/// exporter writes: Reshape to `[N, groups, -1]`, InstanceNormalization with unit scale and zero
/// bias, Reshape back, then Mul and Add by gamma and beta laid out as `[C, 1, ...]`.
extension ONNXGraphBuilder {
    mutating func emitGroupNormalization(_ node: Node, _ a: GroupNormalizationAttributes, parameters: [Parameter],
                                         role: [ParameterRole: String], inputShape: Shape?) throws {
        let output = node.outputs.first ?? node.name, input = node.inputs.first ?? ""
        guard let shape = inputShape, shape.rank >= 2, shape.normalizedAxis(a.axis) == 1 else {
            throw unsupported(node, "GroupNormalization over axis \(a.axis) of a rank-\(inputShape?.rank ?? 0) tensor (ONNX normalizes axis 1)")
        }
        guard let channels = shape[1], let groups = a.groupCount(channels: channels) else {
            throw unsupported(node, "GroupNormalization needs a known channel count that splits into \(a.groups) groups")
        }
        /// The parameter, or a constant standing for a layer without it (`scale` or `center` off).
        func perChannel(_ parameterRole: ParameterRole, _ fill: Float) -> String {
            role[parameterRole] ?? constant("\(node.name)/\(parameterRole.rawValue)", floats: Array(repeating: fill, count: channels),
                                            dimensions: [Int64(channels)])
        }
        let epsilon = ONNXAttribute.float("epsilon", a.epsilon)
        if groups == channels {
            add("InstanceNormalization", name: node.name, inputs: [input, perChannel(.gamma, 1), perChannel(.beta, 0)], output: output,
                attributes: [epsilon])
            return
        }
        if hasNative(21) {
            add("GroupNormalization", name: node.name, inputs: [input, perChannel(.gamma, 1), perChannel(.beta, 0)], output: output,
                attributes: [epsilon, .int("num_groups", groups)])
            return
        }
        let grouped = intermediate("Reshape", name: "\(node.name)/group", inputs: [input, constant("\(node.name)/group_shape", int64s: [0, Int64(groups), -1])])
        let unit = constant("\(node.name)/unit_scale", floats: Array(repeating: 1, count: groups), dimensions: [Int64(groups)])
        let zero = constant("\(node.name)/zero_bias", floats: Array(repeating: 0, count: groups), dimensions: [Int64(groups)])
        let normalized = intermediate("InstanceNormalization", name: node.name, inputs: [grouped, unit, zero], attributes: [epsilon])
        // Back to the input's shape, the batch copied (0) so any batch size runs.
        let lengths = [Int64(0)] + (1..<shape.rank).map { Int64(shape[$0] ?? -1) }
        guard lengths.dropFirst().filter({ $0 < 0 }).count <= 1 else {
            throw unsupported(node, "GroupNormalization before opset 21 needs the input's shape (at most one unknown length)")
        }
        // gamma and beta as [C, 1, ...] so they broadcast over the positions after the channels.
        let broadcast = constant("\(node.name)/channel_shape", int64s: [Int64(channels)] + Array(repeating: 1, count: shape.rank - 2))
        var steps: [(opType: String, role: ParameterRole)] = []
        if a.scale { steps.append(("Mul", .gamma)) }
        if a.center { steps.append(("Add", .beta)) }
        let restoredShape = constant("\(node.name)/input_shape", int64s: lengths)
        var value = node.name + "/ungroup"
        if steps.isEmpty {
            add("Reshape", name: value, inputs: [normalized, restoredShape], output: output)
            return
        }
        value = intermediate("Reshape", name: value, inputs: [normalized, restoredShape])
        for (position, step) in steps.enumerated() {
            let operand = intermediate("Reshape", name: "\(node.name)/\(step.role.rawValue)", inputs: [perChannel(step.role, step.opType == "Mul" ? 1 : 0), broadcast])
            let name = "\(node.name)/\(step.opType == "Mul" ? "scale" : "shift")"
            if position == steps.count - 1 {
                add(step.opType, name: name, inputs: [value, operand], output: output)
            } else {
                value = intermediate(step.opType, name: name, inputs: [value, operand])
            }
        }
    }
}
