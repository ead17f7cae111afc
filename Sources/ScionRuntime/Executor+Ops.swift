import ScionIR

/// Each op's forward computation, channels-first: one exhaustive switch, so a new op makes the
/// compiler ask for its kernel here (longer bodies live in Executor+LayerOps.swift).
extension Executor {
    func evaluate(_ node: Node, _ inputs: [RuntimeTensor]) throws -> RuntimeTensor {
        guard let x = inputs.first ?? constantValue(node) else { throw RuntimeError(node.name, "has no input") }
        switch node.op {
        case .conv(let a):
            guard a.layout == .channelsFirst else { throw RuntimeError(node.name, "a channels-last convolution is left after the layout pass") }
            let bias = try foldedBiases[node.name] ?? (a.useBias ? require(node, .bias) : nil)
            let y = try Kernels.convolution(x, kernel: try require(node, .kernel), kernelShape: parameterShape(node, .kernel) ?? [],
                                            bias: bias, attributes: a, node: node.name, samplesSideBySide: training)
            return try Kernels.activate(y, fusedReLUs[node.name] ?? a.activation, node: node.name)
        case .pool(let a):
            return try Kernels.pool(x, a, node: node.name)
        case .globalPool(let a):
            return Kernels.globalPool(x, a)
        case .batchNormalization(let a):
            if folded.contains(node.name) { return x }
            return try batchNormalization(node, x, a)
        case .activation(let activation):
            if passThrough.contains(node.name) { return x }
            return try Kernels.activate(x, activation, node: node.name)
        case .dense(let a):
            let kernel = try require(node, .kernel)
            var y = Kernels.matmul(x, kernel, columns: a.units)
            if a.useBias { Kernels.addRows(&y, try require(node, .bias)) }
            return try Kernels.activate(y, a.activation, node: node.name)
        case .gemm(let a):
            return try gemm(node, inputs, a)
        case .matMul:
            if inputs.count == 2 { return try Kernels.batchedMatmul(inputs[0], inputs[1], node: node.name) }
            let kernel = try require(node, .kernel)
            guard let shape = parameterShape(node, .kernel), shape.count == 2 else { throw RuntimeError(node.name, "needs a rank-2 kernel") }
            return Kernels.matmul(x, kernel, columns: shape[1])
        case .elementwise(let operation):
            let y = try Kernels.elementwise(operation, inputs, node: node.name)
            return try fusedReLUs[node.name].map { try Kernels.activate(y, $0, node: node.name) } ?? y
        case .concatenate(let a):
            return try Kernels.concatenate(inputs, axis: a.axis, node: node.name)
        case .flatten(let a):
            let axis = a.axis < 0 ? a.axis + x.rank : a.axis
            let leading = x.shape.prefix(axis).reduce(1, *)
            return RuntimeTensor(shape: [leading, x.count / max(leading, 1)], data: x.data)
        case .reshape(let a):
            return try Kernels.reshape(x, a, node: node.name)
        case .transpose(let a):
            return Kernels.transpose(x, a.permutation)
        case .permute(let a):
            return Kernels.transpose(x, [0] + a.dimensions)
        case .dropout, .identity, .stochasticDepth:
            return x
        case .rescaling(let a):
            return Kernels.rescale(x, a)
        case .zeroPadding(let a):
            return Kernels.pad(x, begins: [0, 0] + a.padding.map { $0[0] }, ends: [0, 0] + a.padding.map { $0[1] }, value: 0)
        case .cropping(let a):
            return Kernels.pad(x, begins: [0, 0] + a.padding.map { -$0[0] }, ends: [0, 0] + a.padding.map { -$0[1] }, value: 0)
        case .pad(let a):
            switch a.mode {
            case .constant:
                let rank = a.pads.count / 2
                return Kernels.pad(x, begins: Array(a.pads.prefix(rank)), ends: Array(a.pads.suffix(rank)), value: a.value)
            case .reflect, .edge:
                return try Kernels.padReflectingOrRepeating(x, pads: a.pads, reflect: a.mode == .reflect, node: node.name)
            case .wrap:
                throw unsupported(node, "Pad in wrap mode")
            }
        case .constant:
            return x
        case .clip(let a):
            return RuntimeTensor(shape: x.shape, data: x.data.map { min(max($0, a.minimum ?? -.infinity), a.maximum ?? .infinity) })
        case .convTranspose(let a):
            return try Kernels.activate(try convolutionTranspose(node, x, a), a.activation, node: node.name)
        case .prelu:
            return try prelu(node, x)
        case .layerNormalization(let a):
            return try layerNormalization(node, x, a)
        case .groupNormalization(let a):
            return try Kernels.groupNormalization(x, a, gamma: a.scale ? require(node, .gamma) : nil,
                                                  beta: a.center ? require(node, .beta) : nil, node: node.name)
        case .scaledResidual(let a):
            return try scaledResidual(node, inputs, a)
        case .layerScale(let a):
            return try layerScale(node, x, a)
        case .normalization(let a):
            return try normalization(node, x, a)
        case .embedding(let a):
            return try embedding(node, x, a)
        case .upSampling(let a):
            guard a.interpolation == "nearest", x.rank == a.size.count + 2 else {
                throw unsupported(node, "UpSampling with \(a.interpolation) interpolation")
            }
            return upsampleNearest(x, a.size)
        case .resize(let a):
            guard let result = resizeByCopying(x, a) else { throw unsupported(node, "Resize other than whole-factor nearest") }
            return result
        case .opaque(let a):
            guard let result = try opaqueEvaluator?(node, inputs) else { throw unsupported(node, "\(a.domain) \(a.type)") }
            return result
        case .localResponseNormalization(let a):
            return Kernels.localResponseNormalization(x, a)
        case .cast:
            // Values are held as float32; integer casts of shape arithmetic stay exact below 2^24.
            return x
        case .gather(let a):
            guard inputs.count == 2 else { throw RuntimeError(node.name, "Gather needs data and indices") }
            return try Kernels.gather(inputs[0], indices: inputs[1], axis: a.axis, node: node.name)
        case .unary(let operation):
            guard let f = Self.unaryFunction(operation) else { throw unsupported(node, "\(node.op.typeName)") }
            return RuntimeTensor(shape: x.shape, data: x.data.map(f))
        case .reduce(let a):
            return try Kernels.reduce(x, a, node: node.name)
        case .slice(let a):
            return try slice(node, x, a)
        case .squeeze(let a):
            return try squeeze(node, x, a)
        case .unsqueeze(let a):
            return unsqueeze(x, a)
        case .depthwiseConv, .separableConv:
            throw RuntimeError(node.name, "is a \(node.op.typeName): lower the graph to grouped convolutions first (ExecutorLowering)")
        case .split:
            // `run` slices a Split itself: it is the one op with several outputs.
            throw RuntimeError(node.name, "Split is evaluated by the run loop, not one output at a time")
        case .comparison, .select, .coercedSoftmax:
            throw unsupported(node, node.op.typeName)
        }
    }

    func unsupported(_ node: Node, _ what: String) -> RuntimeError {
        RuntimeError(node.name, "\(what) is not supported by the executor yet")
    }

    /// A constant node's tensor (it has no inputs).
    func constantValue(_ node: Node) -> RuntimeTensor? {
        guard case .constant = node.op, let name = node.parameters.first, let values = weights[name],
              let shape = graph.parameters[name]?.shape else { return nil }
        return RuntimeTensor(shape: shape, data: values)
    }

    func batchNormalization(_ node: Node, _ x: RuntimeTensor, _ a: BatchNormalizationAttributes) throws -> RuntimeTensor {
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        guard (0..<x.rank).contains(axis) else { throw RuntimeError(node.name, "axis \(a.axis) is outside rank \(x.rank)") }
        let channels = x.shape[axis]
        let mean = try require(node, .movingMean), variance = try require(node, .movingVariance)
        let gamma = a.scale ? try require(node, .gamma) : [Float](repeating: 1, count: channels)
        let beta = a.center ? try require(node, .beta) : [Float](repeating: 0, count: channels)
        guard [mean.count, variance.count, gamma.count, beta.count].allSatisfy({ $0 == channels }) else {
            throw RuntimeError(node.name, "statistics do not have \(channels) values")
        }
        // y = x * scale + shift, per channel.
        let scale = (0..<channels).map { gamma[$0] / (variance[$0] + a.epsilon).squareRoot() }
        let shift = (0..<channels).map { beta[$0] - mean[$0] * scale[$0] }
        return Kernels.perAxis(x, axis: axis, scale: scale, shift: shift)
    }

    func gemm(_ node: Node, _ inputs: [RuntimeTensor], _ a: GemmAttributes) throws -> RuntimeTensor {
        var x = inputs[0]
        if a.transposeA { x = Kernels.transpose(x, [1, 0]) }
        var b: RuntimeTensor
        if inputs.count >= 2 {
            b = inputs[1]
        } else {
            guard let shape = parameterShape(node, .kernel) else { throw RuntimeError(node.name, "is missing its weight") }
            b = RuntimeTensor(shape: shape, data: try require(node, .kernel))
        }
        if a.transposeB { b = Kernels.transpose(b, [1, 0]) }
        guard x.rank == 2, b.rank == 2, x.shape[1] == b.shape[0] else {
            throw RuntimeError(node.name, "Gemm of \(x.shape) and \(b.shape) does not fit")
        }
        var y = Kernels.matmul(x, b.data, columns: b.shape[1])
        if a.alpha != 1 { y.data = y.data.map { $0 * a.alpha } }
        let c = inputs.count >= 3 ? inputs[2] : parameterShape(node, .bias).map { RuntimeTensor(shape: $0, data: parameter(node, .bias) ?? []) }
        if let c {
            let scaled = a.beta == 1 ? c : RuntimeTensor(shape: c.shape, data: c.data.map { $0 * a.beta })
            y = try Kernels.elementwise(.add, [y, scaled], node: node.name)
        }
        return y
    }
}
