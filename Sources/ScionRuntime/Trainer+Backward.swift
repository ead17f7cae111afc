import Foundation
import ScionIR

/// The backward pass: one vector-Jacobian product per op, from the loss back to the trainable
/// tensors. Gradients flow only into values that depend on trainable weights, so the frontier and
/// frozen side branches cost nothing.
extension Trainer {
    /// One step's gradients: per input (nil where not needed) and per parameter name.
    struct StepGradients {
        var inputs: [RuntimeTensor?]
        var parameters: [(String, [Float])] = []
    }

    /// dL/dw for every trainable tensor, given dL/d(output) for the batch in `tape`. With
    /// `skipOutputActivation`, the gradient given is already at the input of the output's activation
    /// (cross-entropy through softmax, or through sigmoid: `p - y`, exact and stable).
    func backward(_ tape: Tape, outputGradient: RuntimeTensor, skipOutputActivation: Bool) throws -> [String: [Float]] {
        var gradients: [String: RuntimeTensor] = [output: outputGradient]
        var result: [String: [Float]] = [:]
        for index in steps.reversed() {
            let node = graph.nodes[index]
            let upstream = node.outputs.map { gradients.removeValue(forKey: $0) }
            guard upstream.contains(where: { $0 != nil }) else { continue }
            let wanted = node.inputs.map { needsGradient.contains($0) }
            let ownsTrainable = node.parameters.contains(where: trainable.contains)
            guard wanted.contains(true) || ownsTrainable else { continue }
            let inputs = try node.inputs.map { name -> RuntimeTensor in
                guard let value = tape.values[name] else { throw RuntimeError(node.name, "reads \(name), which is not computed") }
                return value
            }
            let step: StepGradients
            if case .split(let a) = node.op, let x = inputs.first {
                // The gradient of a split is its parts' gradients side by side (zeros for unused parts).
                let parts = try zip(upstream, Kernels.split(x, axis: a.axis, sizes: a.sizes, node: node.name)).map { $0 ?? RuntimeTensor(zeros: $1.shape) }
                step = StepGradients(inputs: [try Kernels.concatenate(parts, axis: a.axis, node: node.name)])
            } else {
                guard let dy = upstream[0], let output = node.outputs.first, let y = tape.values[output] else { continue }
                let skip = skipOutputActivation && output == self.output
                step = try backwardStep(node, inputs, y: y, dy: dy, saved: tape.saved[index], wanted: wanted, skipActivation: skip)
            }
            for (position, input) in node.inputs.enumerated() where wanted[position] {
                guard let d = step.inputs[position] else { continue }
                if let existing = gradients[input] {
                    gradients[input] = RuntimeTensor(shape: existing.shape, data: zip(existing.data, d.data).map(+))
                } else {
                    gradients[input] = d
                }
            }
            for (name, d) in step.parameters where trainable.contains(name) {
                if let existing = result[name] { result[name] = zip(existing, d).map(+) } else { result[name] = d }
            }
        }
        return result
    }

    func backwardStep(_ node: Node, _ inputs: [RuntimeTensor], y: RuntimeTensor, dy: RuntimeTensor, saved: Saved?,
                      wanted: [Bool], skipActivation: Bool) throws -> StepGradients {
        let x = inputs.first ?? y
        let same = { (gradient: [Float]) in StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: gradient)]) }
        // dL/dz for a fused activation y = f(z).
        func throughActivation(_ activation: Activation) throws -> RuntimeTensor {
            if skipActivation || activation == .linear { return dy }
            guard case .preActivation(let z) = saved else { throw RuntimeError(node.name, "lost its pre-activation values") }
            return RuntimeTensor(shape: dy.shape, data: try Kernels.activationGradient(activation, x: z, y: y, dy: dy.data, node: node.name))
        }
        switch node.op {
        case .conv(let a):
            let dz = try throughActivation(a.activation)
            guard let kernel = graph.parameter(of: node, role: .kernel), let weights = executor.weights[kernel.name] else {
                throw RuntimeError(node.name, "is missing its 'kernel' weights")
            }
            let (dx, dKernel, dBias) = try Kernels.convolutionBackward(x, kernel: weights, kernelShape: kernel.shape, dz: dz, attributes: a,
                                                                       inputGradient: wanted.first ?? false, node: node.name)
            var step = StepGradients(inputs: [dx], parameters: [(kernel.name, dKernel)])
            if a.useBias, let bias = graph.parameter(of: node, role: .bias) { step.parameters.append((bias.name, dBias)) }
            return step
        case .dense(let a):
            return try denseBackward(node, x, dz: try throughActivation(a.activation), bias: a.useBias)
        case .matMul where inputs.count == 1:
            return try denseBackward(node, x, dz: dy, bias: false)
        case .batchNormalization(let a):
            return try batchNormalizationBackward(node, a, x, dy: dy, saved: saved)
        case .activation(let activation):
            if skipActivation { return same(dy.data) }
            return same(try Kernels.activationGradient(activation, x: x, y: y, dy: dy.data, node: node.name))
        case .dropout:
            if case .mask(let mask) = saved { return same(zip(dy.data, mask).map(*)) }
            return same(dy.data)
        case .identity, .cast, .flatten, .reshape, .squeeze, .unsqueeze, .stochasticDepth:
            return same(dy.data)
        case .transpose(let a):
            return StepGradients(inputs: [Kernels.transpose(dy, Self.inverse(a.permutation))])
        case .permute(let a):
            return StepGradients(inputs: [Kernels.transpose(dy, Self.inverse([0] + a.dimensions))])
        case .pool(let a):
            return StepGradients(inputs: [try Kernels.poolBackward(x, a, dy: dy, node: node.name)])
        case .globalPool(let a):
            return StepGradients(inputs: [Kernels.globalPoolBackward(x, a, dy: dy)])
        case .elementwise(let operation):
            return StepGradients(inputs: try elementwiseBackward(operation, inputs, dy: dy, node: node.name))
        case .concatenate(let a):
            let axis = a.axis < 0 ? a.axis + x.rank : a.axis
            return StepGradients(inputs: try Kernels.split(dy, axis: axis, sizes: inputs.map { $0.shape[axis] }, node: node.name))
        case .zeroPadding(let a):
            return StepGradients(inputs: [Kernels.pad(dy, begins: [0, 0] + a.padding.map { -$0[0] }, ends: [0, 0] + a.padding.map { -$0[1] }, value: 0)])
        case .cropping(let a):
            return StepGradients(inputs: [Kernels.pad(dy, begins: [0, 0] + a.padding.map { $0[0] }, ends: [0, 0] + a.padding.map { $0[1] }, value: 0)])
        case .pad(let a) where a.mode == .constant:
            let rank = a.pads.count / 2
            return StepGradients(inputs: [Kernels.pad(dy, begins: a.pads.prefix(rank).map { -$0 }, ends: a.pads.suffix(rank).map { -$0 }, value: 0)])
        case .rescaling(let a):
            var unscaled = a
            unscaled.offset = [0]
            return StepGradients(inputs: [Kernels.rescale(dy, unscaled)])
        case .clip(let a):
            let low = a.minimum ?? -.infinity, high = a.maximum ?? .infinity
            return same(zip(dy.data, x.data).map { $1 > low && $1 < high ? $0 : 0 })
        case .prelu:
            guard let alpha = graph.parameter(of: node, role: .alpha), let values = executor.weights[alpha.name] else {
                throw RuntimeError(node.name, "is missing its alpha")
            }
            let slopes = try Kernels.broadcast(x, RuntimeTensor(shape: [1] + alpha.shape, data: values), node: node.name) { $0 >= 0 ? 1 : $1 }
            let dAlpha = try Kernels.sumToShape(RuntimeTensor(shape: x.shape, data: zip(dy.data, x.data).map { $1 < 0 ? $0 * $1 : 0 }), [1] + alpha.shape)
            return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: zip(dy.data, slopes.data).map(*))],
                                 parameters: [(alpha.name, dAlpha.data)])
        case .layerScale(let a):
            guard let gamma = graph.parameter(of: node, role: .gamma), let values = executor.weights[gamma.name] else {
                throw RuntimeError(node.name, "is missing its gamma")
            }
            let axis = a.axis < 0 ? a.axis + x.rank : a.axis
            let dx = Kernels.perAxis(dy, axis: axis, scale: values, shift: [Float](repeating: 0, count: values.count))
            var dGamma = [Float](repeating: 0, count: values.count)
            let inner = x.shape[(axis + 1)...].reduce(1, *)
            for index in x.data.indices { dGamma[(index / inner) % values.count] += dy.data[index] * x.data[index] }
            return StepGradients(inputs: [dx], parameters: [(gamma.name, dGamma)])
        case .constant:
            // A trainable tensor used as a value (an ONNX initializer added or multiplied in).
            return StepGradients(inputs: [], parameters: node.parameters.first.map { [($0, dy.data)] } ?? [])
        case .scaledResidual(let a):
            let scaled = RuntimeTensor(shape: dy.shape, data: dy.data.map { $0 * a.scale })
            return StepGradients(inputs: [try Kernels.sumToShape(dy, inputs[0].shape), try Kernels.sumToShape(scaled, inputs[1].shape)])
        default:
            if let step = try backwardMore(node, inputs, y: y, dy: dy) { return step }
            throw RuntimeError(node.name, "\(node.op.typeName) has no gradient yet, and it lies between the loss and trainable "
                + "weights (freeze the layers before it, or cut it away)")
        }
    }

    /// Dense (and MatMul with a weight) on any rank: `z = x · W (+ b)` over the last axis.
    func denseBackward(_ node: Node, _ x: RuntimeTensor, dz: RuntimeTensor, bias: Bool) throws -> StepGradients {
        guard let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 2, let weights = executor.weights[kernel.name] else {
            throw RuntimeError(node.name, "needs a rank-2 kernel")
        }
        let (inputs, units) = (kernel.shape[0], kernel.shape[1])
        let rows = x.count / max(inputs, 1)
        var dKernel = [Float](repeating: 0, count: inputs * units)
        var dx = [Float](repeating: 0, count: rows * inputs)
        x.data.withUnsafeBufferPointer { input in
            dz.data.withUnsafeBufferPointer { g in
                dKernel.withUnsafeMutableBufferPointer { w in
                    // dW = xᵀ · dz
                    BLAS.gemm(m: inputs, n: units, k: rows, a: input.baseAddress!, transposeA: true, b: g.baseAddress!, c: w.baseAddress!)
                }
                weights.withUnsafeBufferPointer { w in
                    dx.withUnsafeMutableBufferPointer { d in
                        // dx = dz · Wᵀ
                        BLAS.gemm(m: rows, n: inputs, k: units, a: g.baseAddress!, b: w.baseAddress!, transposeB: true, c: d.baseAddress!)
                    }
                }
            }
        }
        var step = StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: dx)], parameters: [(kernel.name, dKernel)])
        if bias, let biasParameter = graph.parameter(of: node, role: .bias) {
            var dBias = [Float](repeating: 0, count: units)
            for (index, value) in dz.data.enumerated() { dBias[index % units] += value }
            step.parameters.append((biasParameter.name, dBias))
        }
        return step
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
            let mean = try executor.require(node, .movingMean), variance = try executor.require(node, .movingVariance)
            let inverse = variance.map { 1 / ($0 + a.epsilon).squareRoot() }
            dx = Kernels.perAxis(dy, axis: axis, scale: (0..<channels).map { gamma[$0] * inverse[$0] }, shift: [Float](repeating: 0, count: channels))
            var g = [Float](repeating: 0, count: channels), b = [Float](repeating: 0, count: channels)
            let inner = x.shape[(axis + 1)...].reduce(1, *)
            for index in x.data.indices {
                let c = (index / inner) % channels
                g[c] += dy.data[index] * (x.data[index] - mean[c]) * inverse[c]
                b[c] += dy.data[index]
            }
            (dGamma, dBeta) = (g, b)
        }
        var step = StepGradients(inputs: [dx])
        if let name = names.gamma { step.parameters.append((name, dGamma)) }
        if let name = names.beta { step.parameters.append((name, dBeta)) }
        return step
    }

    /// Elementwise ops with numpy broadcasting: each operand's partial derivative, summed back to its shape.
    func elementwiseBackward(_ operation: ElementwiseOperation, _ inputs: [RuntimeTensor], dy: RuntimeTensor,
                             node: String) throws -> [RuntimeTensor?] {
        let scaled = { (factor: Float) in RuntimeTensor(shape: dy.shape, data: dy.data.map { $0 * factor }) }
        func times(_ other: RuntimeTensor, _ f: @escaping (Float, Float) -> Float) throws -> RuntimeTensor {
            try Kernels.broadcast(dy, other, node: node, f)
        }
        switch operation {
        case .add:
            return try inputs.map { try Kernels.sumToShape(dy, $0.shape) }
        case .average:
            return try inputs.map { try Kernels.sumToShape(scaled(1 / Float(inputs.count)), $0.shape) }
        case .subtract where inputs.count == 2:
            return [try Kernels.sumToShape(dy, inputs[0].shape), try Kernels.sumToShape(scaled(-1), inputs[1].shape)]
        case .multiply:
            return try inputs.indices.map { position in
                let others = inputs.enumerated().filter { $0.offset != position }.map(\.element)
                guard !others.isEmpty else { return dy }
                let product = try Kernels.elementwise(.multiply, others, node: node)
                return try Kernels.sumToShape(try times(product, *), inputs[position].shape)
            }
        case .divide where inputs.count == 2:
            let (a, b) = (inputs[0], inputs[1])
            let quotient = try Kernels.broadcast(a, b, node: node) { $0 / ($1 * $1) }
            return [try Kernels.sumToShape(try times(b, /), a.shape), try Kernels.sumToShape(try times(quotient) { -$0 * $1 }, b.shape)]
        case .maximum where inputs.count == 2, .minimum where inputs.count == 2:
            let (a, b) = (inputs[0], inputs[1])
            let first = try Kernels.broadcast(a, b, node: node) { operation == .maximum ? ($0 >= $1 ? 1 : 0) : ($0 <= $1 ? 1 : 0) }
            return [try Kernels.sumToShape(try times(first, *), a.shape), try Kernels.sumToShape(try times(first) { $0 * (1 - $1) }, b.shape)]
        default:
            throw RuntimeError(node, "\(operation.typeName) of \(inputs.count) inputs has no gradient yet")
        }
    }

    static func inverse(_ permutation: [Int]) -> [Int] {
        var result = permutation
        for (position, axis) in permutation.enumerated() { result[axis] = position }
        return result
    }
}
