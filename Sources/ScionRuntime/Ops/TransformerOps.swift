import Foundation
import ScionIR

/// ONNX's RMSNormalization and RotaryEmbedding (opset 23), ArgMax/ArgMin and CumSum, with their
/// VJPs, computed as onnx's reference does (onnx/reference/ops/op_rms_normalization.py,
/// op_rotary_embedding.py, op_argmax.py, op_cumsum.py).
extension Executor {
    /// The scale: parameter `scale` (Keras's weight name) when constant, else the second input.
    func rmsScale(_ node: Node, _ inputs: [RuntimeTensor]) throws -> RuntimeTensor {
        if let values = parameter(node, .other("scale")), let shape = parameterShape(node, .other("scale")) { return RuntimeTensor(shape: shape, data: values) }
        guard inputs.count > 1 else { throw RuntimeError(node.name, "RMSNormalization has no scale") }
        return inputs[1]
    }

    /// `x / sqrt(mean(x²) + ε)` over the axes from `axis` on, and the reciprocal root of each group.
    func rmsNormalized(_ node: Node, _ x: RuntimeTensor, _ a: RMSNormalizationAttributes) throws -> (RuntimeTensor, [Float], Int) {
        let first = a.axis < 0 ? a.axis + x.rank : a.axis
        guard (0..<max(x.rank, 1)).contains(first) else { throw RuntimeError(node.name, "RMSNormalization axis \(a.axis) is outside input \(x.shape)") }
        let inner = x.shape[first...].reduce(1, *)
        let groups = inner == 0 ? 0 : x.count / inner
        var normalized = x
        var roots = [Float](repeating: 0, count: groups)
        for group in 0..<groups {
            let base = group * inner
            var total: Double = 0
            for offset in 0..<inner { total += Double(x.data[base + offset]) * Double(x.data[base + offset]) }
            let root = Float(1 / (total / Double(inner) + Double(a.epsilon)).squareRoot())
            roots[group] = root
            for offset in 0..<inner { normalized.data[base + offset] *= root }
        }
        return (normalized, roots, inner)
    }

    func rmsNormalization(_ node: Node, _ inputs: [RuntimeTensor], _ a: RMSNormalizationAttributes) throws -> RuntimeTensor {
        guard let x = inputs.first else { throw RuntimeError(node.name, "RMSNormalization has no input") }
        let (normalized, _, _) = try rmsNormalized(node, x, a)
        let scaled = try Kernels.broadcast(normalized, try rmsScale(node, inputs), node: node.name, *)
        guard scaled.shape == x.shape else { throw RuntimeError(node.name, "RMSNormalization's scale widens input \(x.shape) to \(scaled.shape)") }
        return scaled
    }

    /// Rotates x's feature pairs by the cached angles; `inverse` turns the other way (the VJP).
    func rotaryEmbedding(_ node: Node, _ inputs: [RuntimeTensor], _ a: RotaryEmbeddingAttributes, inverse: Bool = false,
                         gradient: RuntimeTensor? = nil) throws -> RuntimeTensor {
        guard inputs.count >= 3 else { throw RuntimeError(node.name, "RotaryEmbedding needs x, cos_cache and sin_cache") }
        let source = gradient ?? inputs[0]
        let (cosine, sine) = (inputs[1], inputs[2])
        // [B, S, H, D] as the reference lays it out.
        let x: RuntimeTensor
        switch source.rank {
        case 4: x = Kernels.transpose(source, [0, 2, 1, 3])
        case 3 where a.heads > 0 && source.shape[2] % a.heads == 0:
            x = RuntimeTensor(shape: [source.shape[0], source.shape[1], a.heads, source.shape[2] / a.heads], data: source.data)
        default: throw RuntimeError(node.name, "RotaryEmbedding of input \(source.shape) with num_heads \(a.heads) does not fit")
        }
        let (batch, length, heads, size) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let rotated = a.rotaryDimensions == 0 ? size : a.rotaryDimensions
        let half = rotated / 2
        guard rotated <= size, rotated % 2 == 0, cosine.shape.last == half, sine.shape == cosine.shape else {
            throw RuntimeError(node.name, "RotaryEmbedding's caches \(cosine.shape), \(sine.shape) do not fit \(rotated) rotated features")
        }
        /// The cache row of position s of batch b.
        let row: (Int, Int) throws -> Int
        if a.hasPositionIDs {
            let ids = inputs[3]
            guard ids.shape == [batch, length], cosine.rank == 2 else {
                throw RuntimeError(node.name, "RotaryEmbedding's position ids \(ids.shape) and caches \(cosine.shape) do not fit input \(source.shape)")
            }
            row = { b, s in
                let id = Int(ids.data[b * length + s])
                guard (0..<cosine.shape[0]).contains(id) else { throw RuntimeError(node.name, "position id \(id) is outside the cache's \(cosine.shape[0]) rows") }
                return id
            }
        } else {
            guard cosine.shape == [batch, length, half] else {
                throw RuntimeError(node.name, "RotaryEmbedding's caches \(cosine.shape) without position ids need shape \([batch, length, half])")
            }
            row = { b, s in b * length + s }
        }
        var output = x
        let direction: Float = inverse ? -1 : 1
        for b in 0..<batch {
            for s in 0..<length {
                let cacheBase = try row(b, s) * half
                for h in 0..<heads {
                    let base = ((b * length + s) * heads + h) * size
                    for i in 0..<half {
                        let (first, second) = a.interleaved ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                        let c = cosine.data[cacheBase + i], n = direction * sine.data[cacheBase + i]
                        output.data[first] = c * x.data[first] - n * x.data[second]
                        output.data[second] = n * x.data[first] + c * x.data[second]
                    }
                }
            }
        }
        return source.rank == 4 ? Kernels.transpose(output, [0, 2, 1, 3]) : RuntimeTensor(shape: source.shape, data: output.data)
    }

    func argExtreme(_ node: Node, _ x: RuntimeTensor, _ a: ArgExtremeAttributes) throws -> RuntimeTensor {
        guard let axis = Shape(x.shape.map { $0 }).normalizedAxis(a.axis), x.shape[axis] > 0 else {
            throw RuntimeError(node.name, "\(node.op.typeName) over axis \(a.axis) of input \(x.shape) has nothing to search")
        }
        let length = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *), outer = x.shape[..<axis].reduce(1, *)
        var indices = [Float](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var best = 0, bestValue = x.data[o * length * inner + i]
                for k in 1..<length {
                    let value = x.data[(o * length + k) * inner + i]
                    let better = a.largest ? value > bestValue : value < bestValue
                    if better || (a.selectLastIndex && value == bestValue) { best = k; bestValue = value }
                }
                indices[o * inner + i] = Float(best)
            }
        }
        var shape = x.shape
        if a.keepDimensions { shape[axis] = 1 } else { shape.remove(at: axis) }
        return RuntimeTensor(shape: shape, data: indices)
    }

    static func cumulativeSum(_ x: RuntimeTensor, axis: Int, exclusive: Bool, reverse: Bool) -> RuntimeTensor {
        let length = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *), outer = x.shape[..<axis].reduce(1, *)
        var output = x
        for o in 0..<outer {
            for i in 0..<inner {
                var total: Float = 0
                for step in 0..<length {
                    let k = reverse ? length - 1 - step : step
                    let index = (o * length + k) * inner + i
                    if exclusive { output.data[index] = total; total += x.data[index] } else { total += x.data[index]; output.data[index] = total }
                }
            }
        }
        return output
    }

    /// CumSum's axis, from the attribute or the second input, resolved against a value of `shape`.
    func cumulativeSumAxis(_ node: Node, _ inputs: [RuntimeTensor], _ a: CumulativeSumAttributes, shape: [Int]) throws -> Int {
        guard let axis = a.axis ?? inputs.dropFirst().first.flatMap({ $0.count == 1 ? Int(exactly: $0.data[0]) : nil }),
              let resolved = Shape(shape.map { $0 }).normalizedAxis(axis) else {
            throw RuntimeError(node.name, "CumSum's axis \(a.axis.map { "\($0)" } ?? "input") does not name one axis of input \(shape)")
        }
        return resolved
    }

    func cumulativeSum(_ node: Node, _ inputs: [RuntimeTensor], _ a: CumulativeSumAttributes) throws -> RuntimeTensor {
        guard let x = inputs.first else { throw RuntimeError(node.name, "CumSum has no input") }
        let axis = try cumulativeSumAxis(node, inputs, a, shape: x.shape)
        return Self.cumulativeSum(x, axis: axis, exclusive: a.exclusive, reverse: a.reverse)
    }
}

extension Executor {
    /// DepthToSpace/SpaceToDepth: a reshape to six axes, a transpose, a reshape (DepthSpaceAttributes.plan).
    func depthSpace(_ node: Node, _ x: RuntimeTensor, _ a: DepthSpaceAttributes) throws -> RuntimeTensor {
        guard let plan = a.plan(x.shape) else {
            throw RuntimeError(node.name, "\(node.op.typeName) with blocksize \(a.blockSize) does not fit input \(x.shape)")
        }
        return RuntimeTensor(shape: plan.output, data: Kernels.transpose(RuntimeTensor(shape: plan.view, data: x.data), plan.permutation).data)
    }
}

extension Trainer {
    /// DepthToSpace/SpaceToDepth move values without changing them: the gradient moves back.
    func depthSpaceBackward(_ node: Node, _ a: DepthSpaceAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients {
        guard let plan = a.plan(x.shape) else {
            throw RuntimeError(node.name, "\(node.op.typeName) with blocksize \(a.blockSize) does not fit input \(x.shape)")
        }
        let moved = RuntimeTensor(shape: plan.permutation.map { plan.view[$0] }, data: dy.data)
        let inverse = plan.permutation.indices.map { axis in plan.permutation.firstIndex(of: axis) ?? axis }
        return StepGradients(like: x, Kernels.transpose(moved, inverse).data)
    }

    /// RMSNormalization: with n = x·r, dx = r·(dn − n·mean(dn·n)) over each group; the scale's gradient
    /// is Σ dy·n over the axes it broadcast along.
    func rmsNormalizationBackward(_ node: Node, _ a: RMSNormalizationAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws
        -> StepGradients
    {
        let x = inputs[0]
        let (normalized, roots, inner) = try executor.rmsNormalized(node, x, a)
        let scale = try executor.rmsScale(node, inputs)
        let dn = try Kernels.broadcast(dy, scale, node: node.name, *)
        var dx = x
        for (group, root) in roots.enumerated() {
            let base = group * inner
            var mean: Float = 0
            for offset in 0..<inner { mean += dn.data[base + offset] * normalized.data[base + offset] }
            mean /= Float(inner)
            for offset in 0..<inner { dx.data[base + offset] = root * (dn.data[base + offset] - normalized.data[base + offset] * mean) }
        }
        let dScale = try Kernels.sumToShape(RuntimeTensor(shape: x.shape, data: zip(dy.data, normalized.data).map(*)), scale.shape)
        if let weight = graph.parameter(of: node, role: .other("scale")) {
            return StepGradients(inputs: [dx], parameters: [(weight.name, dScale.data)])
        }
        return StepGradients(inputs: [dx, dScale])
    }

    /// RotaryEmbedding is a rotation per pair: its VJP rotates the gradient back; the caches and
    /// position ids get none (they are tables, not learned here).
    func rotaryEmbeddingBackward(_ node: Node, _ a: RotaryEmbeddingAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws
        -> StepGradients
    {
        let dx = try executor.rotaryEmbedding(node, inputs, a, inverse: true, gradient: dy)
        return StepGradients(inputs: [dx] + inputs.dropFirst().map { _ in nil })
    }

    /// CumSum's VJP is the cumulative sum of the gradient run the other way.
    func cumulativeSumBackward(_ node: Node, _ a: CumulativeSumAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws
        -> StepGradients
    {
        let axis = try executor.cumulativeSumAxis(node, inputs, a, shape: dy.shape)
        // The axis input, when there is one, is an index: no gradient.
        return StepGradients(inputs: [Executor.cumulativeSum(dy, axis: axis, exclusive: a.exclusive, reverse: !a.reverse)]
                             + inputs.dropFirst().map { _ in nil })
    }
}
