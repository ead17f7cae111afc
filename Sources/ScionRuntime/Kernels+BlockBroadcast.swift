import ScionIR

/// The broadcasts CNNs make on every image, without the general kernel's index walk per value:
/// one operand the full shape, the other one value per channel and sample (`[N, C, 1, 1]` against
/// `[N, C, H, W]`: squeeze-and-excitation's scale) or repeating along the last axes (`[C]` against
/// `[N, H, W, C]`: a per-channel constant), or both (`[N, 1, 1, C]` against `[N, H, W, C]`: the same
/// scale on channels-last values).
extension Kernels {
    /// nil when neither pattern fits (the caller walks the general way).
    @inline(__always)
    static func blockBroadcast(_ a: RuntimeTensor, _ b: RuntimeTensor, shape: [Int],
                               _ combine: (Float, Float) -> Float) -> RuntimeTensor? {
        if a.shape == shape, let pattern = pattern(of: b.shape, against: shape) {
            return RuntimeTensor(shape: shape, data: apply(full: a.data, small: b.data, pattern) { combine($0, $1) })
        }
        if b.shape == shape, let pattern = pattern(of: a.shape, against: shape) {
            return RuntimeTensor(shape: shape, data: apply(full: b.data, small: a.data, pattern) { combine($1, $0) })
        }
        return nil
    }

    /// How a smaller operand repeats over the full shape: each of its values over `inner` consecutive
    /// values (`perBlock`), or the whole of it again and again (`cyclic`).
    enum BroadcastPattern {
        case perBlock(inner: Int)
        case cyclic
        /// Block `b` of `inner` values repeats the small operand's `b`-th run of `period` values.
        case cyclicPerBlock(inner: Int, period: Int)
    }

    static func pattern(of small: [Int], against full: [Int]) -> BroadcastPattern? {
        guard small.count <= full.count else { return nil }
        let padded = Array(repeating: 1, count: full.count - small.count) + small
        // Leading axes equal, then only ones: each value covers a contiguous block (a scalar: one
        // block of everything).
        if let split = (0...full.count).first(where: { k in
            padded[..<k] == full[..<k] && padded[k...].allSatisfy { $0 == 1 }
        }) {
            return .perBlock(inner: full[split...].reduce(1, *))
        }
        // Leading ones, then trailing axes equal: the operand repeats whole.
        if let split = (0...full.count).first(where: { k in
            padded[..<k].allSatisfy { $0 == 1 } && padded[k...] == full[k...]
        }), split < full.count {
            return .cyclic
        }
        // Leading axes equal, then ones, then trailing axes equal.
        for k in 1..<full.count where padded[..<k] == full[..<k] && padded[k] == 1 && full[k] != 1 {
            guard let end = (k...full.count).first(where: { $0 == full.count || padded[$0] != 1 }),
                  end < full.count, padded[end...] == full[end...] else { return nil }
            return .cyclicPerBlock(inner: full[k...].reduce(1, *), period: full[end...].reduce(1, *))
        }
        return nil
    }

    @inline(__always)
    static func apply(full: [Float], small: [Float], _ pattern: BroadcastPattern,
                      _ combine: (Float, Float) -> Float) -> [Float] {
        let count = full.count
        return [Float](unsafeUninitializedCapacity: count) { output, initialized in
            full.withUnsafeBufferPointer { f in
                small.withUnsafeBufferPointer { s in
                    switch pattern {
                    case .perBlock(let inner):
                        for block in 0..<(inner == 0 ? 0 : count / inner) {
                            let value = s[block], start = block * inner
                            for i in start..<(start + inner) { output[i] = combine(f[i], value) }
                        }
                    case .cyclicPerBlock(let inner, let period):
                        guard let small = s.baseAddress else { break }
                        for block in 0..<(inner == 0 ? 0 : count / inner) {
                            let values = small + block * period
                            var i = block * inner
                            while i < (block + 1) * inner {
                                for j in 0..<period { output[i + j] = combine(f[i + j], values[j]) }
                                i += period
                            }
                        }
                    case .cyclic:
                        let period = s.count
                        var i = 0
                        while i < count {
                            for j in 0..<period { output[i + j] = combine(f[i + j], s[j]) }
                            i += period
                        }
                    }
                }
            }
            initialized = count
        }
    }

    /// Two operands of one shape, value by value, through pointers (no per-value bounds checks).
    @inline(__always)
    static func sameShape(_ a: [Float], _ b: [Float], _ combine: (Float, Float) -> Float) -> [Float] {
        let count = min(a.count, b.count)
        return [Float](unsafeUninitializedCapacity: count) { output, initialized in
            a.withUnsafeBufferPointer { x in
                b.withUnsafeBufferPointer { y in
                    for i in 0..<count { output[i] = combine(x[i], y[i]) }
                }
            }
            initialized = count
        }
    }
}
