import Foundation
import ScionIR

/// The VJP of ONNX Attention (Ops/ScaledDotProductAttention.swift): it recomputes the forward and
/// runs it back, Y's gradient and the present key's and value's (a cache read by later steps) alike.
extension Trainer {
    func scaledAttentionBackward(_ node: Node, _ a: ScaledDotProductAttentionAttributes, _ inputs: [RuntimeTensor],
                                 upstream: [RuntimeTensor?]) throws -> StepGradients {
        if a.sequenceFirst {
            // keras.ops.dot_product_attention's layout: run ONNX's and move the axes of Y's and Q, K, V's gradients.
            let (moved, headsFirst) = try Executor.headsFirstForm(node, inputs, a)
            var step = try scaledAttentionBackward(node, headsFirst, moved, upstream: [upstream.first.flatMap { $0.map(Executor.swappedSequence) }])
            for position in 0..<3 { step.inputs[position] = step.inputs[position].map(Executor.swappedSequence) }
            return step
        }
        if upstream.count > 3, upstream[3] != nil {
            throw RuntimeError(node.name, "Attention's qk_matmul_output has no gradient yet; only Y and the present key and value are trained through")
        }
        let pass = try executor.scaledAttentionPass(node, inputs, a, outputCount: 3)
        let l = pass.layout, keys = l.totalKeys
        let groups = l.batch * l.queryHeads
        // dY in heads-first layout [B·Hq, Sq, Dv].
        var dHeads = RuntimeTensor(zeros: [groups, l.queryLength, l.valueSize])
        if let dy = upstream.first ?? nil {
            let heads = l.flat
                ? Kernels.transpose(RuntimeTensor(shape: [l.batch, l.queryLength, l.queryHeads, l.valueSize], data: dy.data), [0, 2, 1, 3])
                : dy
            dHeads.data = heads.data
        }
        let dV = Kernels.batchedProduct(pass.probabilities, dHeads, transposeB: false, transposeA: true)
        let dP = Kernels.batchedProduct(dHeads, pass.value, transposeB: true)
        // Softmax's VJP per row; a fully masked row has P = 0 and passes nothing.
        var dScores = dP
        for row in 0..<(dP.count / max(keys, 1)) {
            let base = row * keys
            var dot: Float = 0
            for j in 0..<keys { dot += dP.data[base + j] * pass.probabilities.data[base + j] }
            for j in 0..<keys { dScores.data[base + j] = pass.probabilities.data[base + j] * (dP.data[base + j] - dot) }
        }
        var dRaw = dScores
        if a.softcap > 0 {
            // d/dx c·tanh(x/c) = 1 - tanh², and tanh = capped / c.
            dRaw.data = zip(dScores.data, pass.capped.data).map { g, capped in g * (1 - (capped / a.softcap) * (capped / a.softcap)) }
        }
        let scale = a.scale ?? 1 / Float(l.keySize).squareRoot()
        var dQ = Kernels.batchedProduct(dRaw, pass.key, transposeB: false)
        dQ.data = dQ.data.map { $0 * scale }
        var dK = Kernels.batchedProduct(dRaw, pass.query, transposeB: false, transposeA: true)
        dK.data = dK.data.map { $0 * scale }
        // Repeated heads add their gradients back into their key/value head; the present outputs' own
        // gradients join them there.
        var dPresentKey = Self.summedRepeats(dK, l, size: l.keySize)
        var dPresentValue = Self.summedRepeats(dV, l, size: l.valueSize)
        for (index, present) in [(1, 0), (2, 1)] {
            guard upstream.count > index, let d = upstream[index] else { continue }
            if present == 0 { dPresentKey.data = zip(dPresentKey.data, d.data).map(+) } else { dPresentValue.data = zip(dPresentValue.data, d.data).map(+) }
        }
        let (dPastKey, dNewKey) = Self.splitCache(dPresentKey, past: l.pastLength)
        let (dPastValue, dNewValue) = Self.splitCache(dPresentValue, past: l.pastLength)
        func original(_ heads: RuntimeTensor, _ like: RuntimeTensor) -> RuntimeTensor {
            guard l.flat else { return RuntimeTensor(shape: like.shape, data: heads.data) }
            return RuntimeTensor(shape: like.shape, data: Kernels.transpose(heads, [0, 2, 1, 3]).data)
        }
        var gradients: [RuntimeTensor?] = [
            original(RuntimeTensor(shape: [l.batch, l.queryHeads, l.queryLength, l.keySize], data: dQ.data), inputs[0]),
            original(dNewKey, inputs[1]), original(dNewValue, inputs[2]),
        ]
        if let position = a.maskPosition {
            // A float mask is added to the scores (a learned position bias can be one); a bool one selects.
            gradients.append(a.mask == .additive ? try maskGradient(dScores, mask: inputs[position], l) : nil)
        }
        if a.pastPosition != nil { gradients += [dPastKey, dPastValue] }
        return StepGradients(inputs: gradients)
    }

    /// `[B·Hq, S, D]` gradients of repeated heads summed into their `[B, Hkv, S, D]` head.
    static func summedRepeats(_ d: RuntimeTensor, _ l: ScaledAttentionLayout, size: Int) -> RuntimeTensor {
        let block = l.totalKeys * size
        var summed = RuntimeTensor(zeros: [l.batch, l.keyValueHeads, l.totalKeys, size])
        for group in 0..<(l.batch * l.queryHeads) {
            let target = (group / l.repeats) * block
            for offset in 0..<block { summed.data[target + offset] += d.data[group * block + offset] }
        }
        return summed
    }

    /// A present key's or value's gradient split into the cache's part and the new part.
    static func splitCache(_ d: RuntimeTensor, past: Int) -> (past: RuntimeTensor, new: RuntimeTensor) {
        let (batch, heads, total, size) = (d.shape[0], d.shape[1], d.shape[2], d.shape[3])
        var cached = [Float](), fresh = [Float]()
        for group in 0..<(batch * heads) {
            let base = group * total * size
            cached.append(contentsOf: d.data[base..<(base + past * size)])
            fresh.append(contentsOf: d.data[(base + past * size)..<(base + total * size)])
        }
        return (RuntimeTensor(shape: [batch, heads, past, size], data: cached), RuntimeTensor(shape: [batch, heads, total - past, size], data: fresh))
    }

    /// An additive mask's gradient: the scores' summed over the axes it broadcast along, its padding dropped.
    func maskGradient(_ dScores: RuntimeTensor, mask: RuntimeTensor, _ l: ScaledAttentionLayout) throws -> RuntimeTensor {
        let maskKeys = mask.shape.last ?? 1
        let full = RuntimeTensor(shape: [l.batch, l.queryHeads, l.queryLength, l.totalKeys], data: dScores.data)
        let kept = maskKeys == l.totalKeys ? full : full.keepingKeys(maskKeys)
        return try Kernels.sumToShape(kept, mask.shape)
    }
}

private extension RuntimeTensor {
    /// The first `count` positions of the last axis.
    func keepingKeys(_ count: Int) -> RuntimeTensor {
        let length = shape[rank - 1]
        var data = [Float]()
        for row in 0..<(self.count / length) { data.append(contentsOf: self.data[(row * length)..<(row * length + count)]) }
        return RuntimeTensor(shape: Array(shape.dropLast()) + [count], data: data)
    }
}
