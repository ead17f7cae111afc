import ScionIR

/// Inference-time BatchNormalization folding, exact up to float rounding: a BatchNormalization over
/// the channels of a convolution's output that nothing else reads (and that is not a requested
/// output) scales the convolution's kernel and bias instead: `W' = W · s`, `b' = b · s + t` per
/// filter, with `s = gamma / sqrt(variance + epsilon)`, `t = beta - mean · s`.
///
/// Which pairs fold is decided from the graph alone, before any weight is read, so that each kernel
/// is scaled in the same pass that puts it in its final order (`Executor.loadWeights`) rather than
/// in a pass of its own.
struct BatchNormalizationFold {
    /// The convolution node's name, and the BatchNormalization's, which then passes values through.
    var convolution: String
    var normalization: Node
    var attributes: BatchNormalizationAttributes
    /// The convolution's kernel and bias parameters (nil: the convolution has no bias, and the
    /// folded one is kept apart, `Executor.foldedBiases`).
    var kernel: String
    var bias: String?
    var filters: Int

    /// The folds `graph` allows: a linear convolution whose only reader is a BatchNormalization over
    /// axis 1, with a kernel (and bias) no other node reads.
    static func candidates(in graph: Graph) -> [BatchNormalizationFold] {
        var readers: [String: [Int]] = [:]
        for (index, node) in graph.nodes.enumerated() { for input in node.inputs { readers[input, default: []].append(index) } }
        let outputs = Set(graph.outputs)
        var parameterUses: [String: Int] = [:]
        for node in graph.nodes { for parameter in node.parameters { parameterUses[parameter, default: 0] += 1 } }
        var folds: [BatchNormalizationFold] = []
        for node in graph.nodes {
            guard case .conv(let a) = node.op, a.activation == .linear, let output = node.outputs.first,
                  !outputs.contains(output), let next = readers[output], next.count == 1 else { continue }
            let bn = graph.nodes[next[0]]
            guard case .batchNormalization(let b) = bn.op, b.axis == 1 || b.axis == -3 && a.rank == 2,
                  let kernel = graph.parameter(of: node, role: .kernel), parameterUses[kernel.name] == 1,
                  let filters = kernel.shape.first, filters > 0, kernel.elementCount % filters == 0 else { continue }
            let bias = a.useBias ? graph.parameter(of: node, role: .bias) : nil
            if a.useBias && (bias == nil || parameterUses[bias?.name ?? ""] != 1) { continue }
            folds.append(BatchNormalizationFold(convolution: node.name, normalization: bn, attributes: b, kernel: kernel.name,
                                                bias: bias?.name, filters: filters))
        }
        return folds
    }

    /// The per-filter scales for the kernel and the folded bias, from the BatchNormalization's
    /// statistics and the convolution's bias in `weights`; nil when any of them is missing or does
    /// not have one value per filter (then nothing folds).
    func scalesAndBias(_ graph: Graph, _ weights: [String: [Float]]) -> (scales: [Float], bias: [Float])? {
        func values(_ role: ParameterRole) -> [Float]? { graph.parameter(of: normalization, role: role).flatMap { weights[$0.name] } }
        let convolutionBias = bias == nil ? [Float](repeating: 0, count: filters) : bias.flatMap { weights[$0] }
        guard var shifts = convolutionBias, shifts.count == filters, let mean = values(.movingMean), let variance = values(.movingVariance),
              mean.count == filters, variance.count == filters else { return nil }
        let gamma = attributes.scale ? values(.gamma) : [Float](repeating: 1, count: filters)
        let beta = attributes.center ? values(.beta) : [Float](repeating: 0, count: filters)
        guard let gamma, let beta, gamma.count == filters, beta.count == filters else { return nil }
        let scales = (0..<filters).map { gamma[$0] / (variance[$0] + attributes.epsilon).squareRoot() }
        for f in 0..<filters { shifts[f] = shifts[f] * scales[f] + beta[f] - mean[f] * scales[f] }
        return (scales, shifts)
    }
}
