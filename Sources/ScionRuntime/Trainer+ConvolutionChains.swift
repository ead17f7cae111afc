import ScionIR

/// Convolutions trained together with the frozen BatchNormalization and the ReLU after them.
///
/// The trainer keeps every node apart to differentiate it, so `conv → BatchNormalization (frozen) →
/// ReLU6`, the unit of MobileNet, ResNet and EfficientNet-like bases, ran as three passes forward
/// and three backward, each writing a fresh tensor. A frozen BatchNormalization (inference mode, as
/// Keras fine-tunes) is a constant per-filter affine map, so the three are one step with the exact
/// same derivative: `y = relu(s · (W ⋆ x + b) + t)`, dL/dz = `s · dy` where the ReLU passed, and the
/// kernel's gradient is that of `W` as trained (Kernels+ConvolutionChain.swift). Only values nothing
/// else reads are skipped: the convolution's and the normalization's outputs must each have one reader.
extension Trainer {
    /// A convolution and what follows it in one training step; `output` is the last one's value.
    struct ConvolutionChain {
        let convolution: Int
        let batchNormalization: Int?
        /// The ReLU node after it, if any (a ReLU fused in the convolution's own attributes has none).
        let activation: Int?
        /// The ReLU's cap (`.infinity` uncapped), nil without a ReLU.
        let cap: Float?
        let output: String
    }

    /// The chains among `steps`, by convolution node index, and the node indices they absorb.
    static func convolutionChains(_ graph: Graph, steps: [Int], trainable: Set<String>,
                                  trainingBatchNorms: Set<String>) -> (chains: [Int: ConvolutionChain], absorbed: Set<Int>) {
        var readers: [String: [Int]] = [:]
        for (index, node) in graph.nodes.enumerated() { for input in Set(node.inputs) { readers[input, default: []].append(index) } }
        let inSteps = Set(steps)
        func onlyReader(_ value: String) -> Node? {
            guard !graph.outputs.contains(value), let reader = readers[value], reader.count == 1, inSteps.contains(reader[0]),
                  graph.nodes[reader[0]].inputs == [value], graph.nodes[reader[0]].outputs.count == 1 else { return nil }
            return graph.nodes[reader[0]]
        }
        let indices = Dictionary(graph.nodes.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        var chains: [Int: ConvolutionChain] = [:], absorbed = Set<Int>()
        for index in steps {
            let node = graph.nodes[index]
            guard case .conv(let a) = node.op, a.layout == .channelsFirst, node.inputs.count == 1, node.outputs.count == 1,
                  let z = node.outputs.first, let rank = graph.values[z]?.shape?.rank else { continue }
            var cap: Float?, normalization: Int?, activation: Int?, last = z
            switch a.activation {
            case .linear:
                if let reader = onlyReader(last), case .batchNormalization(let b) = reader.op, (b.axis == 1 || b.axis == 1 - rank),
                   !trainingBatchNorms.contains(reader.name), !reader.parameters.contains(where: trainable.contains) {
                    normalization = indices[reader.name]
                    last = reader.outputs[0]
                }
                if let reader = onlyReader(last), case .activation(.relu(let maxValue, 0, 0)) = reader.op {
                    activation = indices[reader.name]
                    cap = maxValue ?? .infinity
                    last = reader.outputs[0]
                }
            case .relu(let maxValue, 0, 0):
                cap = maxValue ?? .infinity
            default:
                continue
            }
            chains[index] = ConvolutionChain(convolution: index, batchNormalization: normalization, activation: activation, cap: cap, output: last)
            absorbed.formUnion([normalization, activation].compactMap { $0 })
        }
        return (chains, absorbed)
    }

    /// The chain's per-filter scale and shift (the BatchNormalization's, with the convolution's bias
    /// folded in) and its ReLU cap, from the weights as they stand.
    func epilogue(_ chain: ConvolutionChain, _ node: Node, _ a: ConvAttributes, filters: Int) throws -> Kernels.ChainEpilogue {
        var scale = [Float](repeating: 1, count: filters), shift = [Float](repeating: 0, count: filters)
        if let index = chain.batchNormalization {
            let norm = graph.nodes[index]
            guard case .batchNormalization(let b) = norm.op else { throw RuntimeError(norm.name, "is no BatchNormalization") }
            let mean = try executor.require(norm, .movingMean), variance = try executor.require(norm, .movingVariance)
            let (gamma, beta) = try affine(norm, b, channels: filters)
            guard mean.count == filters, variance.count == filters else {
                throw RuntimeError(norm.name, "statistics do not have \(filters) values")
            }
            // As Executor.batchNormalization computes them.
            for f in 0..<filters {
                scale[f] = gamma[f] / (variance[f] + b.epsilon).squareRoot()
                shift[f] = beta[f] - mean[f] * scale[f]
            }
        }
        if a.useBias {
            let bias = try executor.require(node, .bias)
            guard bias.count == filters else { throw RuntimeError(node.name, "has \(bias.count) biases for \(filters) filters") }
            for f in 0..<filters { shift[f] += scale[f] * bias[f] }
        }
        return Kernels.ChainEpilogue(scale: scale, shift: shift, cap: chain.cap)
    }

    /// The chain's forward step: its output, and the input as its kernel laid it out when that is
    /// not the tensor itself (for the backward step).
    func chainForward(_ chain: ConvolutionChain, _ x: RuntimeTensor) throws -> (RuntimeTensor, Saved?) {
        let node = graph.nodes[chain.convolution]
        guard case .conv(let a) = node.op, let kernelShape = executor.parameterShape(node, .kernel) else {
            throw RuntimeError(node.name, "is missing its 'kernel' weights")
        }
        let kernel = try executor.require(node, .kernel)
        let g = try Kernels.ConvGeometry(input: x.shape, kernelShape: kernelShape, a, node: node.name)
        let e = try epilogue(chain, node, a, filters: g.filters)
        if g.isPointwise {
            let (y, columns) = Kernels.pointwiseChainForward(x, kernel: kernel, filters: g.filters, e)
            return (y, .chainInput(columns))
        }
        if g.isDepthwise && g.filtersPerGroup == 1 {
            let (y, input) = Kernels.depthwiseChainForward(x, kernel: kernel, g, e)
            return (y, .chainInput(input))
        }
        var z = try Kernels.convolution(x, kernel: kernel, kernelShape: kernelShape, bias: nil, attributes: a, node: node.name,
                                        samplesSideBySide: true)
        Kernels.applyChainEpilogue(&z, filters: g.filters, e)
        return (z, nil)
    }

    /// The chain's VJP, given the gradient of its output `y`.
    func chainBackward(_ chain: ConvolutionChain, _ x: RuntimeTensor, y: RuntimeTensor, dy: RuntimeTensor, saved: Saved?,
                       inputGradient: Bool) throws -> StepGradients {
        let node = graph.nodes[chain.convolution]
        guard case .conv(let a) = node.op, let kernel = graph.parameter(of: node, role: .kernel),
              let weights = executor.weights[kernel.name] else {
            throw RuntimeError(node.name, "is missing its 'kernel' weights")
        }
        let g = try Kernels.ConvGeometry(input: x.shape, kernelShape: kernel.shape, a, node: node.name)
        guard dy.shape == g.outputShape, y.shape == g.outputShape else {
            throw RuntimeError(node.name, "gradient \(dy.shape) does not match output \(g.outputShape)")
        }
        let e = try epilogue(chain, node, a, filters: g.filters)
        let dx: [Float]?, dKernel: [Float], dBias: [Float]
        switch saved {
        case .chainInput(let columns) where g.isPointwise:
            (dx, dKernel, dBias) = Kernels.pointwiseChainBackward(columns: columns, kernel: weights, y: y, dy: dy, channels: g.channels, e,
                                                                  inputGradient: inputGradient, biasGradient: a.useBias)
        case .chainInput(let input) where g.isDepthwise && g.filtersPerGroup == 1:
            (dx, dKernel, dBias) = Kernels.depthwiseChainBackward(input: input, kernel: weights, y: y, dy: dy, g, e,
                                                                  inputGradient: inputGradient, biasGradient: a.useBias)
        default:
            let dz = Kernels.chainGradient(y: y, dy: dy, filters: g.filters, e)
            let result = try Kernels.convolutionBackward(x, kernel: weights, kernelShape: kernel.shape, dz: dz, attributes: a,
                                                         inputGradient: inputGradient, node: node.name)
            (dx, dKernel, dBias) = (result.dx?.data, result.dKernel, result.dBias)
        }
        var step = StepGradients(inputs: [dx.map { RuntimeTensor(shape: x.shape, data: $0) }], parameters: [(kernel.name, dKernel)])
        if a.useBias, let bias = graph.parameter(of: node, role: .bias) { step.parameters.append((bias.name, dBias)) }
        return step
    }
}

extension Kernels.ConvGeometry {
    /// A 1x1 convolution, stride 1, no padding, one group: a matrix product per sample.
    var isPointwise: Bool {
        kh == 1 && kw == 1 && sh == 1 && sw == 1 && top == 0 && left == 0 && oh == height && ow == width && groups == 1
    }
}
