import Foundation
import ScionIR

/// Backward steps beyond the core CNN set: LayerNormalization, reductions, Gemm with weights,
/// unary math, Embedding, Keras's Normalization, and every op that only moves values around.
extension Trainer {
    func backwardMore(_ node: Node, _ inputs: [RuntimeTensor], y: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients? {
        guard let x = inputs.first else { return nil }
        switch node.op {
        case .layerNormalization(let a):
            return try layerNormalizationBackward(node, a, x, dy: dy)
        case .groupNormalization(let a):
            let gamma = a.scale ? try executor.require(node, .gamma) : nil
            let gradients = try Kernels.groupNormalizationBackward(x, a, gamma: gamma, dy: dy, node: node.name)
            var step = StepGradients(inputs: [gradients.input])
            if a.scale, let name = graph.parameter(of: node, role: .gamma)?.name { step.parameters.append((name, gradients.gamma)) }
            if a.center, let name = graph.parameter(of: node, role: .beta)?.name { step.parameters.append((name, gradients.beta)) }
            return step
        case .reduce(let a):
            return StepGradients(inputs: [try reduceBackward(a, x, y: y, dy: dy, node: node.name)])
        case .gemm(let a) where inputs.count == 1:
            return try gemmBackward(node, a, x, dy: dy)
        case .unary(let operation):
            guard let derivative = Self.unaryDerivative(operation) else { return nil }
            return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: (0..<x.count).map { dy.data[$0] * derivative(x.data[$0], y.data[$0]) })])
        case .embedding(let a):
            guard let table = graph.parameter(of: node, role: .embeddings) else { return nil }
            var dTable = [Float](repeating: 0, count: table.elementCount)
            for (position, value) in x.data.enumerated() {
                let row = Int(value)
                for k in 0..<a.outputDimension { dTable[row * a.outputDimension + k] += dy.data[position * a.outputDimension + k] }
            }
            return StepGradients(inputs: [nil], parameters: [(table.name, dTable)])
        case .normalization:
            // An affine map with fixed statistics: the gradient is the output's change per unit of input.
            let unit = try executor.evaluate(node, [RuntimeTensor(shape: x.shape, data: [Float](repeating: 1, count: x.count))])
            let zero = try executor.evaluate(node, [RuntimeTensor(zeros: x.shape)])
            return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: (0..<x.count).map { dy.data[$0] * (unit.data[$0] - zero.data[$0]) })])
        case .slice, .upSampling, .resize, .gather, .pad:
            return try movementBackward(node, inputs, dy: dy)
        default:
            return nil
        }
    }

    /// Ops that only copy input values to output places (slices, nearest-neighbour upsampling and
    /// resizing, reflected or repeated padding, Gather): run the op once more on the input's element
    /// indices, then add each output gradient to the element it was copied from.
    func movementBackward(_ node: Node, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients? {
        if case .pad(let a) = node.op, a.mode == .constant { return nil }
        guard let x = inputs.first else { return nil }
        guard x.count < 1 << 24 else {
            throw RuntimeError(node.name, "\(node.op.typeName) on \(x.count) values is too large to differentiate (16M at most)")
        }
        let indices = RuntimeTensor(shape: x.shape, data: (0..<x.count).map(Float.init))
        let sources = try executor.evaluate(node, [indices] + inputs.dropFirst())
        guard sources.count == dy.count else { return nil }
        var dx = [Float](repeating: 0, count: x.count)
        for (position, source) in sources.data.enumerated() { dx[Int(source)] += dy.data[position] }
        return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: dx)] + inputs.dropFirst().map { _ in nil })
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

    /// Each input element's share of its reduced value's gradient (maxima and minima split it among ties).
    func reduceBackward(_ a: ReduceAttributes, _ x: RuntimeTensor, y: RuntimeTensor, dy: RuntimeTensor, node: String) throws -> RuntimeTensor {
        let axes = Set((a.axes ?? Array(0..<x.rank)).map { $0 < 0 ? $0 + x.rank : $0 })
        let kept = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let keptStrides = RuntimeTensor(shape: kept, data: []).strides, strides = x.strides
        let group = Float(x.count / max(kept.reduce(1, *), 1))
        func target(_ position: Int) -> Int {
            var index = 0
            for axis in 0..<x.rank where !axes.contains(axis) { index += (position / strides[axis] % x.shape[axis]) * keptStrides[axis] }
            return index
        }
        var ties = [Float](repeating: 0, count: y.count)
        if a.kind == .maximum || a.kind == .minimum {
            for position in 0..<x.count where x.data[position] == y.data[target(position)] { ties[target(position)] += 1 }
        }
        var dx = [Float](repeating: 0, count: x.count)
        for position in 0..<x.count {
            let t = target(position), v = x.data[position], g = dy.data[t]
            switch a.kind {
            case .sum: dx[position] = g
            case .mean: dx[position] = g / group
            case .maximum, .minimum: dx[position] = v == y.data[t] ? g / ties[t] : 0
            case .sumSquare: dx[position] = 2 * v * g
            case .l1: dx[position] = v > 0 ? g : v < 0 ? -g : 0
            case .l2: dx[position] = y.data[t] > 0 ? g * v / y.data[t] : 0
            case .logSumExp: dx[position] = g * exp(v - y.data[t])
            case .product:
                guard v != 0 else { throw RuntimeError(node, "ReduceProd over a zero has no gradient here") }
                dx[position] = g * y.data[t] / v
            }
        }
        return RuntimeTensor(shape: x.shape, data: dx)
    }

    /// ONNX Gemm with its weight and bias as parameters: `y = alpha · op(x) · op(W) + beta · C`.
    func gemmBackward(_ node: Node, _ a: GemmAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients? {
        guard !a.transposeA, let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 2,
              let weights = executor.weights[kernel.name] else { return nil }
        let w = RuntimeTensor(shape: kernel.shape, data: weights)
        let b = a.transposeB ? Kernels.transpose(w, [1, 0]) : w
        let scaled = RuntimeTensor(shape: dy.shape, data: dy.data.map { $0 * a.alpha })
        let dx = Kernels.matmul(scaled, Kernels.transpose(b, [1, 0]).data, columns: b.shape[0])
        var dB = Kernels.matmul(Kernels.transpose(x, [1, 0]), scaled.data, columns: b.shape[1])
        if a.transposeB { dB = Kernels.transpose(dB, [1, 0]) }
        var step = StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: dx.data)], parameters: [(kernel.name, dB.data)])
        if let bias = graph.parameter(of: node, role: .bias) {
            let summed = try Kernels.sumToShape(RuntimeTensor(shape: dy.shape, data: dy.data.map { $0 * a.beta }), bias.shape)
            step.parameters.append((bias.name, summed.data))
        }
        return step
    }

    /// f'(x) for ONNX's elementwise math, written with the input x and output y; nil where the
    /// derivative is zero almost everywhere and useless (floor, round...) or undefined.
    static func unaryDerivative(_ operation: UnaryOperation) -> ((Float, Float) -> Float)? {
        switch operation {
        case .negate: return { _, _ in -1 }
        case .absolute: return { x, _ in x > 0 ? 1 : x < 0 ? -1 : 0 }
        case .squareRoot: return { _, y in y > 0 ? 0.5 / y : 0 }
        case .reciprocal: return { _, y in -y * y }
        case .logarithm: return { x, _ in 1 / x }
        case .errorFunction: return { x, _ in 1.1283791670955126 * exp(-x * x) }
        case .sine: return { x, _ in cos(x) }
        case .cosine: return { x, _ in -sin(x) }
        case .floor, .ceil, .round, .sign, .not: return nil
        }
    }
}
