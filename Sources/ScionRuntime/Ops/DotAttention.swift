import Foundation
import ScionIR

/// Keras's Attention ("dot", "concat") and AdditiveAttention on `[B, Tq, D]` queries and
/// `[B, Tv, D]` keys, as one score rule: `dot` is `c · q·kᵀ`; the others are
/// `w · Σ_d a_d · tanh(c · (q_d + k_d))` (concat: a = 1, w the learned weight; additive: c = 1,
/// w = 1, a the learned vector). Masked scores lose 1e9, softmax over the keys, times the value.
/// The VJP recomputes the forward.
struct DotAttentionPass {
    var scores: RuntimeTensor, probabilities: RuntimeTensor, output: RuntimeTensor
}

extension Executor {
    func dotAttention(_ node: Node, _ inputs: [RuntimeTensor], _ a: AttentionAttributes) throws -> RuntimeTensor {
        try dotAttentionPass(node, inputs, a).output
    }

    /// The learned factors: c (scalar scale), w (concat weight) and a (additive scale per feature).
    func attentionFactors(_ node: Node, _ a: AttentionAttributes, dim: Int) throws -> (c: Float, w: Float, a: [Float]) {
        let scale = a.useScale ? try require(node, .other("scale")) : []
        switch a.score {
        case .dot: return (scale.first ?? 1, 1, [])
        case .concat: return (scale.first ?? 1, try require(node, .other("concat_score_weight")).first ?? 1, Array(repeating: 1, count: dim))
        case .additive:
            guard !a.useScale || scale.count == dim else { throw RuntimeError(node.name, "scale has \(scale.count) values, not \(dim)") }
            return (1, 1, a.useScale ? scale : Array(repeating: 1, count: dim))
        }
    }

    func dotAttentionPass(_ node: Node, _ inputs: [RuntimeTensor], _ a: AttentionAttributes) throws -> DotAttentionPass {
        guard inputs.count == (a.hasKey ? 3 : 2) else { throw RuntimeError(node.name, "\(a.kerasClass) needs query, value (and key)") }
        let (q, v) = (inputs[0], inputs[1])
        let k = a.hasKey ? inputs[2] : v
        guard q.rank == 3, v.rank == 3, k.rank == 3, q.shape[0] == k.shape[0], q.shape[2] == k.shape[2], k.shape[1] == v.shape[1] else {
            throw RuntimeError(node.name, "\(a.kerasClass) of query \(q.shape), value \(v.shape) and key \(k.shape) does not fit")
        }
        let (batch, tq, tv, dim) = (q.shape[0], q.shape[1], k.shape[1], q.shape[2])
        let factors = try attentionFactors(node, a, dim: dim)
        var scores: RuntimeTensor
        if a.score == .dot {
            scores = Kernels.batchedProduct(q, k, transposeB: true)
            if factors.c != 1 { scores.data = scores.data.map { $0 * factors.c } }
        } else {
            scores = RuntimeTensor(zeros: [batch, tq, tv])
            for b in 0..<batch {
                for t in 0..<tq {
                    for s in 0..<tv {
                        var total: Float = 0
                        for d in 0..<dim {
                            let z = q.data[(b * tq + t) * dim + d] + k.data[(b * tv + s) * dim + d]
                            total += factors.a[d] * Foundation.tanh(factors.c * z)
                        }
                        scores.data[(b * tq + t) * tv + s] = factors.w * total
                    }
                }
            }
        }
        var masked = scores
        if a.useCausalMask {
            for index in masked.data.indices where index % tv > (index / tv) % tq { masked.data[index] -= 1e9 }
        }
        let probabilities = Kernels.softmax(masked, axis: -1, logarithm: false)
        return DotAttentionPass(scores: scores, probabilities: probabilities, output: Kernels.batchedProduct(probabilities, v, transposeB: false))
    }
}

extension Trainer {
    func dotAttentionBackward(_ node: Node, _ a: AttentionAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        let pass = try executor.dotAttentionPass(node, inputs, a)
        let (q, v) = (inputs[0], inputs[1])
        let k = a.hasKey ? inputs[2] : v
        let (batch, tq, tv, dim) = (q.shape[0], q.shape[1], k.shape[1], q.shape[2])
        let dOut = RuntimeTensor(shape: pass.output.shape, data: dy.data)
        let dV = Kernels.batchedProduct(pass.probabilities, dOut, transposeB: false, transposeA: true)
        let dP = Kernels.batchedProduct(dOut, v, transposeB: true)
        var dS = dP
        for row in 0..<(batch * tq) {
            let base = row * tv
            var dot: Float = 0
            for s in 0..<tv { dot += dP.data[base + s] * pass.probabilities.data[base + s] }
            for s in 0..<tv { dS.data[base + s] = pass.probabilities.data[base + s] * (dP.data[base + s] - dot) }
        }
        let factors = try executor.attentionFactors(node, a, dim: dim)
        var dQ = RuntimeTensor(zeros: q.shape), dK = RuntimeTensor(zeros: k.shape)
        var dC: Float = 0, dW: Float = 0, dA = [Float](repeating: 0, count: dim)
        if a.score == .dot {
            dQ = Kernels.batchedProduct(dS, k, transposeB: false)
            dK = Kernels.batchedProduct(dS, q, transposeB: false, transposeA: true)
            dQ.data = dQ.data.map { $0 * factors.c }
            dK.data = dK.data.map { $0 * factors.c }
            // scores = c · (q·kᵀ): dc = Σ dS · scores / c.
            dC = factors.c == 0 ? 0 : zip(dS.data, pass.scores.data).reduce(0) { $0 + $1.0 * $1.1 } / factors.c
        } else {
            for b in 0..<batch {
                for t in 0..<tq {
                    for s in 0..<tv {
                        let g = dS.data[(b * tq + t) * tv + s]
                        var sum: Float = 0
                        for d in 0..<dim {
                            let (qi, ki) = ((b * tq + t) * dim + d, (b * tv + s) * dim + d)
                            let z = q.data[qi] + k.data[ki]
                            let h = Foundation.tanh(factors.c * z)
                            sum += factors.a[d] * h
                            dA[d] += g * factors.w * h
                            let inner = g * factors.w * factors.a[d] * (1 - h * h)
                            dQ.data[qi] += inner * factors.c
                            dK.data[ki] += inner * factors.c
                            dC += inner * z
                        }
                        dW += g * sum
                    }
                }
            }
        }
        var step = StepGradients(inputs: [dQ, dV] + (a.hasKey ? [dK] : []))
        if !a.hasKey, let value = step.inputs[1] {
            step.inputs[1] = RuntimeTensor(shape: value.shape, data: zip(value.data, dK.data).map(+))
        }
        if a.useScale, let scale = graph.parameter(of: node, role: .other("scale")) {
            step.parameters.append((scale.name, a.score == .additive ? dA : [dC]))
        }
        if a.score == .concat, let weight = graph.parameter(of: node, role: .other("concat_score_weight")) {
            step.parameters.append((weight.name, [dW]))
        }
        return step
    }
}
