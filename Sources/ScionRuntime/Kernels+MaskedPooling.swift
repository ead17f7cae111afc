import ScionIR

/// Keras's masked GlobalAveragePooling1D (`GlobalPoolAttributes.maskValue`): the average over the
/// steps the mask keeps, as keras/src/layers/pooling/global_average_pooling1d.py computes it:
/// `sum(where(mask, x, 0)) / sum(mask)`. A row whose every step is masked is 0/0, NaN, as in Keras.
/// `x` is channels-first `[batch, channels, time]` (the layout pass has run); the mask source keeps
/// its original order `[batch, time, ...]`.
extension Kernels {
    /// The kept steps `[batch * time]` and each row's count of them.
    static func maskedSteps(_ x: RuntimeTensor, source: RuntimeTensor?, _ a: GlobalPoolAttributes, node: String) throws
        -> (kept: [Bool], counts: [Float])
    {
        guard let value = a.maskValue else { throw RuntimeError(node, "has no Keras mask") }
        guard x.rank == 3, a.rank == 1, a.kind == .average else {
            throw RuntimeError(node, "only a GlobalAveragePooling1D of a [batch, channels, time] value reads a Keras mask, got \(x.shape)")
        }
        let (batch, time) = (x.shape[0], x.shape[2])
        guard let source else { throw RuntimeError(node, "has no mask source") }
        let kept = try keptSteps(source, value: value, batch: batch, time: time, node: node)
        let counts = (0..<batch).map { row in Float(kept[(row * time)..<((row + 1) * time)].filter { $0 }.count) }
        return (kept, counts)
    }

    /// Keras's mask as kept steps `[batch * time]`: a step is kept where some value of the mask
    /// source `[batch, time, ...]` differs from `value` (`tokens != 0` after Embedding(mask_zero=True)).
    static func keptSteps(_ source: RuntimeTensor, value: Float, batch: Int, time: Int, node: String) throws -> [Bool] {
        guard source.rank >= 2, source.shape[0] == batch, source.shape[1] == time else {
            throw RuntimeError(node, "its mask source must be [batch, time, ...] = [\(batch), \(time), ...], got \(source.shape)")
        }
        let perStep = source.count / max(batch * time, 1)
        return (0..<(batch * time)).map { step in
            source.data[(step * perStep)..<((step + 1) * perStep)].contains { $0 != value }
        }
    }

    static func maskedGlobalAverage(_ x: RuntimeTensor, source: RuntimeTensor?, _ a: GlobalPoolAttributes, node: String) throws
        -> RuntimeTensor
    {
        let (kept, counts) = try maskedSteps(x, source: source, a, node: node)
        let (batch, channels, time) = (x.shape[0], x.shape[1], x.shape[2])
        var output = [Float](repeating: 0, count: batch * channels)
        for row in 0..<batch {
            for channel in 0..<channels {
                let plane = row * channels + channel
                var sum: Float = 0
                for step in 0..<time where kept[row * time + step] { sum += x.data[plane * time + step] }
                output[plane] = sum / counts[row]
            }
        }
        return RuntimeTensor(shape: a.keepDimensions ? [batch, channels, 1] : [batch, channels], data: output)
    }

    /// Each kept step gets its row's gradient over the row's count; masked steps get none (Keras's
    /// `where` passes no gradient to them).
    static func maskedGlobalAverageBackward(_ x: RuntimeTensor, source: RuntimeTensor?, _ a: GlobalPoolAttributes,
                                            dy: RuntimeTensor, node: String) throws -> RuntimeTensor {
        let (kept, counts) = try maskedSteps(x, source: source, a, node: node)
        let (batch, channels, time) = (x.shape[0], x.shape[1], x.shape[2])
        var dx = [Float](repeating: 0, count: x.count)
        for row in 0..<batch {
            for channel in 0..<channels {
                let plane = row * channels + channel
                for step in 0..<time where kept[row * time + step] { dx[plane * time + step] = dy.data[plane] / counts[row] }
            }
        }
        return RuntimeTensor(shape: x.shape, data: dx)
    }
}
