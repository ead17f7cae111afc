import Foundation
import ScionIR

/// ONNX Attention (opset 23), as onnx's reference computes it (onnx/reference/ops/op_attention.py):
///
/// ```
///  Q [B, Hq, Sq, D] (3-D [B, Sq, Hq·D] split into heads)     K, V likewise with Hkv heads
///  K, V = past ++ K, past ++ V along the sequence (the present key and value outputs)
///  each key/value head repeated Hq / Hkv times (grouped-query: query head h reads kv head h / reps)
///  scores = scale · Q·Kᵀ;  softcap · tanh(scores / softcap);  + mask (bool: false → -inf; shorter
///  than the keys: padded with -inf) + causal (key j hidden from query i when j > i + past)
///  softmax over the keys; a row whose mask hides every key is zero;  Y = P · V
/// ```
///
/// The forward keeps its intermediates (`ScaledAttentionPass`) for the VJP.
struct ScaledAttentionPass {
    var layout: ScaledAttentionLayout
    /// Q, and K and V with the cache joined and heads repeated: `[B·Hq, S, D]`.
    var query: RuntimeTensor, key: RuntimeTensor, value: RuntimeTensor
    /// Scores after the softcap, before the mask: `[B·Hq, Sq, T]`.
    var capped: RuntimeTensor
    /// The additive mask (causal and the mask input joined), `[B·Hq, Sq, T]`; nil when none.
    var bias: [Float]?
    /// Softmax of the masked scores, fully masked rows zero: `[B·Hq, Sq, T]`.
    var probabilities: RuntimeTensor
    /// Y, the present key and value, and the scores output: as many as the node has outputs.
    var outputs: [RuntimeTensor]
}

/// The lengths of one Attention call.
struct ScaledAttentionLayout {
    let batch: Int, queryHeads: Int, keyValueHeads: Int
    let queryLength: Int, newKeys: Int, pastLength: Int
    let keySize: Int, valueSize: Int
    /// Whether Q, K, V and Y are `[B, S, heads × size]`.
    let flat: Bool
    var totalKeys: Int { pastLength + newKeys }
    var repeats: Int { queryHeads / keyValueHeads }
}

extension Executor {
    func scaledDotProductAttention(_ node: Node, _ inputs: [RuntimeTensor], _ a: ScaledDotProductAttentionAttributes) throws -> [RuntimeTensor] {
        guard a.sequenceFirst else { return try scaledAttentionPass(node, inputs, a, outputCount: node.outputs.count).outputs }
        let (moved, headsFirst) = try Self.headsFirstForm(node, inputs, a)
        return [Self.swappedSequence(try scaledAttentionPass(node, moved, headsFirst, outputCount: 1).outputs[0])]
    }

    /// `[B, S, H, D]` <-> `[B, H, S, D]`.
    static func swappedSequence(_ x: RuntimeTensor) -> RuntimeTensor { Kernels.transpose(x, [0, 2, 1, 3]) }

    /// keras.ops.dot_product_attention's `[B, S, H, D]` inputs as ONNX's 4-D Attention reads them.
    static func headsFirstForm(_ node: Node, _ inputs: [RuntimeTensor], _ a: ScaledDotProductAttentionAttributes) throws
        -> ([RuntimeTensor], ScaledDotProductAttentionAttributes)
    {
        guard inputs.count >= 3, inputs.prefix(3).allSatisfy({ $0.rank == 4 }) else {
            throw RuntimeError(node.name, "dot_product_attention needs 4-D query, key and value, got \(inputs.prefix(3).map(\.shape))")
        }
        var headsFirst = a
        headsFirst.sequenceFirst = false
        return (inputs.prefix(3).map(swappedSequence) + inputs.dropFirst(3), headsFirst)
    }

    /// Q, K or V as `[B, heads, S, size]`: 4-D as given, 3-D split into heads.
    static func headsFirst(_ x: RuntimeTensor, heads: Int) -> RuntimeTensor {
        guard x.rank == 3 else { return x }
        let split = RuntimeTensor(shape: [x.shape[0], x.shape[1], heads, x.shape[2] / heads], data: x.data)
        return Kernels.transpose(split, [0, 2, 1, 3])
    }

    /// `[B, H, S, D]` with each head repeated `times` times in place (`h0 h0 h1 h1...`), as `[B·H·times, S, D]`.
    static func repeatedHeads(_ x: RuntimeTensor, times: Int) -> RuntimeTensor {
        let (batch, heads, length, size) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let block = length * size
        guard times > 1 else { return RuntimeTensor(shape: [batch * heads, length, size], data: x.data) }
        var data = [Float]()
        data.reserveCapacity(x.count * times)
        for group in 0..<(batch * heads) {
            for _ in 0..<times { data.append(contentsOf: x.data[(group * block)..<((group + 1) * block)]) }
        }
        return RuntimeTensor(shape: [batch * heads * times, length, size], data: data)
    }

    func scaledAttentionLayout(_ node: Node, _ inputs: [RuntimeTensor], _ a: ScaledDotProductAttentionAttributes) throws
        -> ScaledAttentionLayout
    {
        guard inputs.count == a.inputCount else { throw RuntimeError(node.name, "Attention needs \(a.inputCount) inputs, got \(inputs.count)") }
        let (q, k, v) = (inputs[0], inputs[1], inputs[2])
        let describe = "Q \(q.shape), K \(k.shape) and V \(v.shape)"
        guard q.rank == k.rank, k.rank == v.rank, q.rank == 3 || q.rank == 4, q.shape[0] == k.shape[0], k.shape[0] == v.shape[0] else {
            throw RuntimeError(node.name, "Attention of \(describe) does not fit (rank 3 or 4 alike, one batch)")
        }
        let flat = q.rank == 3
        let queryHeads: Int, keyValueHeads: Int
        if flat {
            guard let qh = a.queryHeads, let kvh = a.keyValueHeads, qh > 0, kvh > 0,
                  q.shape[2] % qh == 0, k.shape[2] % kvh == 0, v.shape[2] % kvh == 0 else {
                throw RuntimeError(node.name, "Attention of \(describe) does not split into q_num_heads \(a.queryHeads ?? 0) and kv_num_heads \(a.keyValueHeads ?? 0)")
            }
            (queryHeads, keyValueHeads) = (qh, kvh)
        } else {
            (queryHeads, keyValueHeads) = (q.shape[1], k.shape[1])
        }
        let keySize = flat ? k.shape[2] / keyValueHeads : k.shape[3]
        let valueSize = flat ? v.shape[2] / keyValueHeads : v.shape[3]
        let newKeys = flat ? k.shape[1] : k.shape[2]
        guard keyValueHeads > 0, queryHeads % keyValueHeads == 0, (flat ? q.shape[2] / queryHeads : q.shape[3]) == keySize,
              (flat ? v.shape[1] : v.shape[2]) == newKeys, flat || v.shape[1] == keyValueHeads else {
            throw RuntimeError(node.name, "Attention of \(describe) does not fit (query heads a multiple of key/value heads, one head size for Q and K)")
        }
        var pastLength = 0
        if let past = a.pastPosition {
            let (pastKey, pastValue) = (inputs[past], inputs[past + 1])
            guard pastKey.rank == 4, pastValue.rank == 4, pastKey.shape == [q.shape[0], keyValueHeads, pastKey.shape[2], keySize],
                  pastValue.shape == [q.shape[0], keyValueHeads, pastKey.shape[2], valueSize] else {
                throw RuntimeError(node.name, "Attention's past key \(pastKey.shape) and value \(pastValue.shape) do not fit \(describe)")
            }
            pastLength = pastKey.shape[2]
        }
        return ScaledAttentionLayout(batch: q.shape[0], queryHeads: queryHeads, keyValueHeads: keyValueHeads,
                                     queryLength: flat ? q.shape[1] : q.shape[2], newKeys: newKeys, pastLength: pastLength,
                                     keySize: keySize, valueSize: valueSize, flat: flat)
    }

    /// K or V with its cache joined along the sequence: `[B, Hkv, P + S, D]`.
    static func present(_ new: RuntimeTensor, past: RuntimeTensor?) -> RuntimeTensor {
        guard let past else { return new }
        let (groups, size) = (new.shape[0] * new.shape[1], new.shape[3])
        let (pastBlock, newBlock) = (past.shape[2] * size, new.shape[2] * size)
        var data = [Float]()
        data.reserveCapacity(past.count + new.count)
        for group in 0..<groups {
            data.append(contentsOf: past.data[(group * pastBlock)..<((group + 1) * pastBlock)])
            data.append(contentsOf: new.data[(group * newBlock)..<((group + 1) * newBlock)])
        }
        return RuntimeTensor(shape: [new.shape[0], new.shape[1], past.shape[2] + new.shape[2], size], data: data)
    }

    /// The causal mask and the mask input as one additive `[B·Hq, Sq, T]`; nil when there is neither.
    func scaledAttentionBias(_ node: Node, _ inputs: [RuntimeTensor], _ a: ScaledDotProductAttentionAttributes,
                             _ l: ScaledAttentionLayout) throws -> [Float]? {
        guard a.isCausal || a.maskPosition != nil else { return nil }
        let (rows, keys) = (l.queryLength, l.totalKeys)
        let target = [l.batch, l.queryHeads, rows, keys]
        var bias = [Float](repeating: 0, count: target.reduce(1, *))
        if let position = a.maskPosition {
            let mask = inputs[position]
            // Right-aligned broadcasting against [B, Hq, Sq, T]; a mask shorter than the keys is padded.
            let maskKeys = mask.shape.last ?? 1
            let padded = Array(repeating: 1, count: max(0, 4 - mask.rank)) + mask.shape
            let fits = (1...4).contains(mask.rank) && maskKeys <= keys
                && zip(padded.dropLast(), target.dropLast()).allSatisfy { $0 == $1 || $0 == 1 }
            guard fits else { throw RuntimeError(node.name, "Attention's mask \(mask.shape) does not broadcast to \(target)") }
            let strides = Kernels.broadcastStrides(padded)
            let boolean = a.mask == .boolean
            for b in 0..<l.batch {
                for h in 0..<l.queryHeads {
                    for i in 0..<rows {
                        let base = ((b * l.queryHeads + h) * rows + i) * keys
                        let source = b * strides[0] + h * strides[1] + i * strides[2]
                        for j in 0..<keys {
                            if j >= maskKeys { bias[base + j] = -.infinity; continue }
                            let value = mask.data[source + j * strides[3]]
                            bias[base + j] = boolean ? (value == 0 ? -.infinity : 0) : value
                        }
                    }
                }
            }
        }
        if a.isCausal {
            // Bottom-right aligned: query i sees keys up to i + the cached length.
            for group in 0..<(l.batch * l.queryHeads) {
                for i in 0..<rows {
                    let base = (group * rows + i) * keys
                    for j in 0..<keys where j > i + l.pastLength { bias[base + j] = -.infinity }
                }
            }
        }
        return bias
    }

    func scaledAttentionPass(_ node: Node, _ inputs: [RuntimeTensor], _ a: ScaledDotProductAttentionAttributes,
                             outputCount: Int) throws -> ScaledAttentionPass {
        let l = try scaledAttentionLayout(node, inputs, a)
        let query = Self.headsFirst(inputs[0], heads: l.queryHeads)
        var presentKey = Self.headsFirst(inputs[1], heads: l.keyValueHeads)
        var presentValue = Self.headsFirst(inputs[2], heads: l.keyValueHeads)
        if let past = a.pastPosition {
            presentKey = Self.present(presentKey, past: inputs[past])
            presentValue = Self.present(presentValue, past: inputs[past + 1])
        }
        let q = RuntimeTensor(shape: [l.batch * l.queryHeads, l.queryLength, l.keySize], data: query.data)
        let k = Self.repeatedHeads(presentKey, times: l.repeats), v = Self.repeatedHeads(presentValue, times: l.repeats)
        let scale = a.scale ?? 1 / Float(l.keySize).squareRoot()
        var raw = Kernels.batchedProduct(q, k, transposeB: true)
        raw.data = raw.data.map { $0 * scale }
        var capped = raw
        if a.softcap > 0 { capped.data = raw.data.map { a.softcap * Foundation.tanh($0 / a.softcap) } }
        let bias = try scaledAttentionBias(node, inputs, a, l)
        let keys = l.totalKeys
        var scores = capped
        if let bias { scores.data = zip(capped.data, bias).map(+) }
        var probabilities = scores
        for row in 0..<(scores.count / max(keys, 1)) {
            let base = row * keys
            // A row whose mask hides every key attends to nothing (onnx's fully-masked-row rule).
            if let bias, (0..<keys).allSatisfy({ bias[base + $0] == -.infinity }) {
                for j in 0..<keys { probabilities.data[base + j] = 0 }
                continue
            }
            var peak = -Float.infinity
            for j in 0..<keys { peak = max(peak, scores.data[base + j]) }
            var total: Float = 0
            for j in 0..<keys {
                let e = Foundation.exp(scores.data[base + j] - peak)
                probabilities.data[base + j] = e
                total += e
            }
            for j in 0..<keys { probabilities.data[base + j] /= total }
        }
        let heads = Kernels.batchedProduct(probabilities, v, transposeB: false)
        var y = RuntimeTensor(shape: [l.batch, l.queryHeads, l.queryLength, l.valueSize], data: heads.data)
        if l.flat {
            y = Kernels.transpose(y, [0, 2, 1, 3])
            y.shape = [l.batch, l.queryLength, l.queryHeads * l.valueSize]
        }
        var outputs = [y, presentKey, presentValue]
        if outputCount > 3 {
            let chosen = switch a.qkOutputMode {
            case 0: raw
            case 1: capped
            case 2: scores
            default: probabilities
            }
            outputs.append(RuntimeTensor(shape: [l.batch, l.queryHeads, l.queryLength, keys], data: chosen.data))
        }
        return ScaledAttentionPass(layout: l, query: q, key: k, value: v, capped: capped, bias: bias, probabilities: probabilities,
                                   outputs: Array(outputs.prefix(max(outputCount, 1))))
    }
}
