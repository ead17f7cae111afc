import ScionIR

/// Normalizations: BatchNormalization (inference from moving statistics; training from the batch's,
/// updating the moving averages), LayerNormalization, Keras's Normalization (fixed statistics) and
/// ONNX's LRN. Forward kernels, the training-mode forward and the VJPs; the batch-statistics
/// kernels are in Kernels+BatchNormalization.swift, LRN's in Kernels+Pooling.swift.
extension Executor {
    func batchNormalization(_ node: Node, _ x: RuntimeTensor, _ a: BatchNormalizationAttributes) throws -> RuntimeTensor {
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        guard (0..<x.rank).contains(axis) else { throw RuntimeError(node.name, "axis \(a.axis) is outside rank \(x.rank)") }
        let (scale, shift) = try batchNormalizationAffine(node, a, channels: x.shape[axis])
        // A ReLU after it that nothing else reads (`fuseActivations`: always a plain or capped one), in the same pass.
        var y = x
        Kernels.perAxisInPlace(&y, axis: axis, scale: scale, shift: shift, reluCap: fusedReLUCap(of: node.name))
        return y
    }

    /// Inference-mode BatchNormalization as `y = x * scale + shift` per channel.
    func batchNormalizationAffine(_ node: Node, _ a: BatchNormalizationAttributes, channels: Int) throws -> (scale: [Float], shift: [Float]) {
        let mean = try require(node, .movingMean), variance = try require(node, .movingVariance)
        let gamma = a.scale ? try require(node, .gamma) : [Float](repeating: 1, count: channels)
        let beta = a.center ? try require(node, .beta) : [Float](repeating: 0, count: channels)
        guard [mean.count, variance.count, gamma.count, beta.count].allSatisfy({ $0 == channels }) else {
            throw RuntimeError(node.name, "statistics do not have \(channels) values")
        }
        let scale = (0..<channels).map { gamma[$0] / (variance[$0] + a.epsilon).squareRoot() }
        let shift = (0..<channels).map { beta[$0] - mean[$0] * scale[$0] }
        return (scale, shift)
    }

    /// GroupNormalization (and ONNX InstanceNormalization): statistics per sample and group of channels.
    func groupNormalization(_ node: Node, _ x: RuntimeTensor, _ a: GroupNormalizationAttributes) throws -> RuntimeTensor {
        try Kernels.groupNormalization(x, a, gamma: a.scale ? require(node, .gamma) : nil, beta: a.center ? require(node, .beta) : nil,
                                       node: node.name)
    }

    /// `(x - mean) / sqrt(variance + epsilon) * gamma + beta` over trailing axes.
    func layerNormalization(_ node: Node, _ x: RuntimeTensor, _ a: LayerNormalizationAttributes) throws -> RuntimeTensor {
        let axes = a.axes.map { $0 < 0 ? $0 + x.rank : $0 }.sorted()
        guard let first = axes.first, axes.allSatisfy({ (0..<x.rank).contains($0) }) else {
            throw RuntimeError(node.name, "LayerNormalization over axes \(a.axes) of rank \(x.rank)")
        }
        if axes != Array(first..<x.rank) {
            // Move the normalized axes last (in order, as gamma is laid out), normalize, move back.
            let permutation = (0..<x.rank).filter { !axes.contains($0) } + axes
            let inverse = (0..<x.rank).map { permutation.firstIndex(of: $0) ?? $0 }
            var moved = a
            moved.axes = Array((x.rank - axes.count)..<x.rank)
            return Kernels.transpose(try layerNormalization(node, Kernels.transpose(x, permutation), moved), inverse)
        }
        var y = x
        try layerNormalizeTrailing(node, &y, from: first, a)
        return y
    }

    /// LayerNormalization over the axes from `first` to the last, in place.
    func layerNormalizeTrailing(_ node: Node, _ x: inout RuntimeTensor, from first: Int, _ a: LayerNormalizationAttributes) throws {
        let inner = x.shape[first...].reduce(1, *)
        let gamma = a.scale ? try require(node, .gamma) : [Float](repeating: 1, count: inner)
        let beta = a.center ? try require(node, .beta) : [Float](repeating: 0, count: inner)
        guard gamma.count == inner, beta.count == inner else { throw RuntimeError(node.name, "gamma/beta do not have \(inner) values") }
        Kernels.layerNormalizeRows(&x.data, count: inner, gamma: gamma, beta: beta, epsilon: a.epsilon)
    }

    /// Keras's Normalization: `(x - mean) / max(sqrt(variance), 1e-7)` along the kept axis (or its
    /// inverse).
    func normalization(_ node: Node, _ x: RuntimeTensor, _ a: NormalizationAttributes) throws -> RuntimeTensor {
        let (scale, shift) = try normalizationAffine(node, a)
        let axes = a.axes.map { $0 < 0 ? $0 + x.rank : $0 }
        if axes.isEmpty || scale.count == 1 {
            return RuntimeTensor(shape: x.shape, data: x.data.map { $0 * scale[0] + shift[0] })
        }
        guard axes.count == 1, x.shape[axes[0]] == scale.count else {
            throw RuntimeError(node.name, "Normalization over axes \(a.axes) with \(scale.count) statistics is not supported")
        }
        return Kernels.perAxis(x, axis: axes[0], scale: scale, shift: shift)
    }

    /// A Normalization as `x * scale + shift`, one pair per statistic.
    func normalizationAffine(_ node: Node, _ a: NormalizationAttributes) throws -> (scale: [Float], shift: [Float]) {
        let mean = try a.mean ?? require(node, .mean), variance = try a.variance ?? require(node, .variance)
        guard mean.count == variance.count else {
            throw RuntimeError(node.name, "Normalization has \(mean.count) means and \(variance.count) variances")
        }
        let deviation = variance.map { max($0.squareRoot(), 1e-7) }
        return a.invert ? (deviation, mean) : (deviation.map { 1 / $0 }, zip(mean, deviation).map { -$0 / $1 })
    }
}

extension Trainer {
    /// A trainable BatchNormalization while training: normalizes with the batch's statistics and
    /// saves them, for its VJP and `updateMovingAverages`.
    func batchNormalizationTraining(_ node: Node, _ a: BatchNormalizationAttributes,
                                    _ inputs: [RuntimeTensor]) throws -> (RuntimeTensor, Saved?) {
        guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        guard (0..<x.rank).contains(axis) else { throw RuntimeError(node.name, "axis \(a.axis) is outside rank \(x.rank)") }
        let (gamma, beta) = try affine(node, a, channels: x.shape[axis])
        let (y, statistics) = Kernels.batchNormalizationTraining(x, axis: axis, gamma: gamma, beta: beta, epsilon: a.epsilon)
        return (y, .batchStatistics(statistics))
    }

    /// A BatchNormalization's gamma and beta (ones and zeros when it has no scale or center).
    func affine(_ node: Node, _ a: BatchNormalizationAttributes, channels: Int) throws -> ([Float], [Float]) {
        let gamma = a.scale ? try executor.require(node, .gamma) : [Float](repeating: 1, count: channels)
        let beta = a.center ? try executor.require(node, .beta) : [Float](repeating: 0, count: channels)
        guard gamma.count == channels, beta.count == channels else {
            throw RuntimeError(node.name, "gamma and beta do not have \(channels) values")
        }
        return (gamma, beta)
    }

    /// Moves each training-mode BatchNormalization's moving averages toward the batch's statistics.
    mutating func updateMovingAverages(_ tape: Tape) {
        for (index, saved) in tape.saved {
            guard case .batchStatistics(let statistics) = saved else { continue }
            let node = graph.nodes[index]
            guard case .batchNormalization(let a) = node.op else { continue }
            for (role, batch) in [(ParameterRole.movingMean, statistics.mean), (.movingVariance, statistics.variance)] {
                guard let name = graph.parameter(of: node, role: role)?.name, var moving = executor.weights[name],
                      moving.count == batch.count else { continue }
                for c in moving.indices { moving[c] = moving[c] * a.momentum + batch[c] * (1 - a.momentum) }
                executor.weights[name] = moving
            }
        }
    }

    func batchNormalizationBackward(_ node: Node, _ a: BatchNormalizationAttributes, _ x: RuntimeTensor, dy: RuntimeTensor,
                                    saved: Saved?) throws -> StepGradients {
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        let channels = x.shape[axis]
        let (gamma, _) = try affine(node, a, channels: channels)
        var names: (gamma: String?, beta: String?) = (nil, nil)
        if a.scale { names.gamma = graph.parameter(of: node, role: .gamma)?.name }
        if a.center { names.beta = graph.parameter(of: node, role: .beta)?.name }
        let dx: RuntimeTensor, dGamma: [Float], dBeta: [Float]
        if case .batchStatistics(let statistics) = saved {
            (dx, dGamma, dBeta) = Kernels.batchNormalizationTrainingBackward(dy, axis: axis, gamma: gamma, statistics)
        } else {
            // Inference mode: y = gamma · (x - mean) / sqrt(variance + epsilon) + beta, statistics fixed.
            // A frozen layer's (the usual case: Keras keeps fine-tuned BatchNormalization in inference
            // mode) gamma and beta need no gradient.
            let mean = try executor.require(node, .movingMean), variance = try executor.require(node, .movingVariance)
            let inverse = variance.map { 1 / ($0 + a.epsilon).squareRoot() }
            let wanted = [names.gamma, names.beta].contains { $0.map(trainable.contains) ?? false }
            (dx, dGamma, dBeta) = Kernels.frozenBatchNormalizationBackward(x, dy: dy, axis: axis, gamma: gamma, mean: mean,
                                                                            inverse: inverse, parameterGradients: wanted)
        }
        var step = StepGradients(inputs: [dx])
        if let name = names.gamma, !dGamma.isEmpty { step.parameters.append((name, dGamma)) }
        if let name = names.beta, !dBeta.isEmpty { step.parameters.append((name, dBeta)) }
        return step
    }

    /// LayerNormalization over trailing axes (others moved last first, as the forward does).
    func layerNormalizationBackward(_ node: Node, _ a: LayerNormalizationAttributes, _ x: RuntimeTensor,
                                    dy: RuntimeTensor) throws -> StepGradients {
        let axes = a.axes.map { $0 < 0 ? $0 + x.rank : $0 }.sorted()
        guard let first = axes.first else { throw RuntimeError(node.name, "LayerNormalization without axes") }
        var (input, upstream) = (x, dy)
        var inverse: [Int]?
        if axes != Array(first..<x.rank) {
            let permutation = (0..<x.rank).filter { !axes.contains($0) } + axes
            inverse = Self.inverse(permutation)
            (input, upstream) = (Kernels.transpose(x, permutation), Kernels.transpose(dy, permutation))
        }
        let inner = axes.reduce(1) { $0 * x.shape[$1] }
        let gamma = a.scale ? try executor.require(node, .gamma) : [Float](repeating: 1, count: inner)
        var dGamma = [Float](repeating: 0, count: inner), dBeta = [Float](repeating: 0, count: inner)
        var dx = [Float](repeating: 0, count: x.count)
        let count = Float(inner)
        for start in stride(from: 0, to: x.count, by: inner) {
            let slice = input.data[start..<(start + inner)]
            let mean = slice.reduce(0, +) / count
            let variance = slice.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / count
            let scale = 1 / (variance + a.epsilon).squareRoot()
            var sum: Float = 0, dot: Float = 0
            for i in 0..<inner {
                let normalized = (input.data[start + i] - mean) * scale, g = upstream.data[start + i]
                dGamma[i] += g * normalized
                dBeta[i] += g
                sum += g * gamma[i]
                dot += g * gamma[i] * normalized
            }
            for i in 0..<inner {
                let normalized = (input.data[start + i] - mean) * scale
                dx[start + i] = scale / count * (count * upstream.data[start + i] * gamma[i] - sum - normalized * dot)
            }
        }
        var result = RuntimeTensor(shape: input.shape, data: dx)
        if let inverse { result = Kernels.transpose(result, inverse) }
        var step = StepGradients(inputs: [result])
        if a.scale, let name = graph.parameter(of: node, role: .gamma)?.name { step.parameters.append((name, dGamma)) }
        if a.center, let name = graph.parameter(of: node, role: .beta)?.name { step.parameters.append((name, dBeta)) }
        return step
    }

    /// GroupNormalization: the kernel's gradients for the input, gamma and beta (Kernels+GroupNormalization.swift).
    func groupNormalizationBackward(_ node: Node, _ a: GroupNormalizationAttributes, _ x: RuntimeTensor,
                                    dy: RuntimeTensor) throws -> StepGradients {
        let gamma = a.scale ? try executor.require(node, .gamma) : nil
        let gradients = try Kernels.groupNormalizationBackward(x, a, gamma: gamma, dy: dy, node: node.name)
        var step = StepGradients(inputs: [gradients.input])
        if a.scale, let name = graph.parameter(of: node, role: .gamma)?.name { step.parameters.append((name, gradients.gamma)) }
        if a.center, let name = graph.parameter(of: node, role: .beta)?.name { step.parameters.append((name, gradients.beta)) }
        return step
    }

    /// Keras's Normalization is an affine map with fixed statistics: the gradient is the output's
    /// change per unit of input, read off the forward kernel at ones and at zeros.
    func normalizationBackward(_ node: Node, _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients {
        let unit = try executor.evaluate(node, [RuntimeTensor(shape: x.shape, data: [Float](repeating: 1, count: x.count))])
        let zero = try executor.evaluate(node, [RuntimeTensor(zeros: x.shape)])
        return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: (0..<x.count).map { dy.data[$0] * (unit.data[$0] - zero.data[$0]) })])
    }
}
