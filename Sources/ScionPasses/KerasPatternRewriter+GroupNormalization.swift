import ScionIR

extension KerasPatternRewriter {
    /// torch's exported GroupNorm (ONNX had no GroupNormalization before opset 18, and torch's
    /// exporter still writes this form) is one GroupNormalization:
    ///
    /// ```
    ///  x [N, C, ...] → Reshape [0, G, -1] → InstanceNormalization(scale 1, bias 0) → Reshape to x's shape
    ///                → Mul γ [C, 1, ...] → Add β [C, 1, ...]
    ///    →  GroupNormalization(groups G, axis 1) on x, gamma γ, beta β
    /// ```
    ///
    /// The Mul and the Add are taken when they are per channel (GroupNorm without `affine` has
    /// neither); every value in between must have no other reader.
    mutating func foldGroupNormalization(_ position: Int) throws {
        let grouping = graph.nodes[position]
        guard case .reshape(let groupingShape) = grouping.op, groupingShape.includesBatch, let x = grouping.inputs.first,
              let inputShape = shape(x), inputShape.rank >= 3, let channels = inputShape[1],
              let sampleLengths = knownSampleLengths(inputShape),
              let grouped = grouping.outputs.first, let groupedShape = shape(grouped), groupedShape.rank == 3,
              let groups = groupedShape[1], groups > 0, channels % groups == 0,
              let normalizer = soleReader(of: grouped), case .groupNormalization(let normalization) = graph.nodes[normalizer].op,
              normalization.axis == 1, normalization.groupCount(channels: groups) == groups,
              try hasIdentityAffine(graph.nodes[normalizer]),
              let normalized = graph.nodes[normalizer].outputs.first, let restorer = soleReader(of: normalized),
              case .reshape(let restoring) = graph.nodes[restorer].op, restoring.includesBatch,
              let restored = graph.nodes[restorer].outputs.first, let restoredShape = shape(restored),
              restoredShape.rank == inputShape.rank, knownSampleLengths(restoredShape) == sampleLengths else { return }
        var attributes = GroupNormalizationAttributes(groups: groups, axis: 1, epsilon: normalization.epsilon, center: false, scale: false)
        var parameters: [String] = []
        var output = restored
        var folded = [grouping.name, graph.nodes[restorer].name]
        // γ then β, each a per-channel constant read by this Mul or Add alone.
        for (operation, role) in [(ElementwiseOperation.multiply, ParameterRole.gamma), (.add, .beta)] {
            guard let reader = soleReader(of: output), case .elementwise(operation) = graph.nodes[reader].op,
                  graph.nodes[reader].inputs.count == 2, graph.nodes[reader].inputs[0] == output,
                  let (_, parameter) = privateConstant(graph.nodes[reader].inputs[1]), parameter.dtype == .float32,
                  let vector = Self.channelVector(parameter.shape, rank: inputShape.rank), vector.axis == 1, vector.length == channels,
                  let next = graph.nodes[reader].outputs.first else { break }
            graph.parameters[parameter.name]?.role = role
            graph.parameters[parameter.name]?.shape = [channels]
            parameters.append(parameter.name)
            if role == .gamma { attributes.scale = true } else { attributes.center = true }
            folded.append(graph.nodes[reader].name)
            output = next
        }
        guard attributes.scale || !attributes.center else { return }
        let unitParameters = graph.nodes[normalizer].parameters
        graph.nodes[normalizer].op = .groupNormalization(attributes)
        graph.nodes[normalizer].inputs = [x]
        graph.nodes[normalizer].outputs = [output]
        graph.nodes[normalizer].parameters = parameters
        removed.formUnion(folded)
        let stillUsed = Set(graph.nodes.enumerated().filter { !removed.contains($0.element.name) }.flatMap { $0.element.parameters })
        for name in unitParameters where !stillUsed.contains(name) { graph.parameters[name] = nil }
    }

    /// True when a group normalization's own gamma and beta (when it has them) are ones and zeros:
    /// torch's InstanceNormalization inside GroupNorm, whose real affine follows as Mul and Add.
    private func hasIdentityAffine(_ node: Node) throws -> Bool {
        for name in node.parameters {
            guard let parameter = graph.parameters[name], let values = try floats(parameter) else { return false }
            switch parameter.role {
            case .gamma: if values.contains(where: { $0 != 1 }) { return false }
            case .beta: if values.contains(where: { $0 != 0 }) { return false }
            default: return false
            }
        }
        return true
    }
}
