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

extension Kernels {
    /// `blockBroadcast` for large operands, in runs of values that read the small operand the same
    /// way, split over the cores (EfficientNet's squeeze-and-excitation scale multiplies a whole
    /// batch-32 activation: one core alone does not reach the memory's speed). nil when no pattern
    /// fits or the operands are small.
    static func blockBroadcastOverCores<K: BinaryArithmetic>(_ a: RuntimeTensor, _ b: RuntimeTensor, shape: [Int],
                                                             _: K.Type) -> RuntimeTensor? {
        let swapped = a.shape != shape
        let (full, small) = swapped ? (b, a) : (a, b)
        guard full.shape == shape, full.count >= 1 << 17, let pattern = pattern(of: small.shape, against: shape) else { return nil }
        // Each run: `length` full values against the small operand's values from `start(run)`, one
        // value for the whole run when `stride` is 0.
        let length: Int, stride: Int, start: @Sendable (Int) -> Int
        var smallValues = small.data
        switch pattern {
        case .perBlock(let inner): (length, stride, start) = (inner, 0, { $0 })
        case .cyclic:
            // A short operand (a per-channel constant on an RGB image: 3 values) repeated into runs
            // of up to 256 values, as many as divide the whole: runs of 3 cost a loop each.
            let period = max(small.count, 1), periods = full.count / period
            let repeats = (1...max(1, 256 / period)).last { periods % $0 == 0 } ?? 1
            if repeats > 1 { smallValues = Array((0..<repeats).map { _ in small.data }.joined()) }
            (length, stride, start) = (period * repeats, 1, { _ in 0 })
        case .cyclicPerBlock(let inner, let period): (length, stride, start) = (period, 1, { $0 * period / inner * period })
        }
        guard length > 0 else { return nil }
        var output = uninitialized(full.count)
        full.data.withUnsafeBufferPointer { f in
            smallValues.withUnsafeBufferPointer { s in
                output.withUnsafeMutableBufferPointer { o in
                    let addresses = (Int(bitPattern: f.baseAddress), Int(bitPattern: s.baseAddress), Int(bitPattern: o.baseAddress))
                    splitOverCores(full.count / length) { runs in
                        guard let f = UnsafePointer<Float>(bitPattern: addresses.0), let s = UnsafePointer<Float>(bitPattern: addresses.1),
                              let o = UnsafeMutablePointer<Float>(bitPattern: addresses.2) else { return }
                        for run in runs {
                            let (x, y, values) = (f + run * length, o + run * length, s + start(run))
                            if stride == 0 {
                                let value = values[0]
                                if swapped { for i in 0..<length { y[i] = K.combine(value, x[i]) } }
                                else { for i in 0..<length { y[i] = K.combine(x[i], value) } }
                            } else if swapped {
                                for i in 0..<length { y[i] = K.combine(values[i], x[i]) }
                            } else {
                                for i in 0..<length { y[i] = K.combine(x[i], values[i]) }
                            }
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: shape, data: output)
    }
}

extension Kernels {
    /// A broadcast whose last axes are whole in both operands (Swin's attention mask `[1, W, 1, T, T]`
    /// on scores `[N, W, H, T, T]`): each run of those axes combined at once, the operands' offsets
    /// found once per run rather than per value; runs over the cores when many. nil when the shared
    /// run is shorter than 16 values.
    static func runBroadcast<K: BinaryArithmetic>(_ a: RuntimeTensor, _ b: RuntimeTensor, shape: [Int], _ kind: K.Type) -> RuntimeTensor? {
        let rank = shape.count
        let shapeA = Array(repeating: 1, count: rank - a.rank) + a.shape
        let shapeB = Array(repeating: 1, count: rank - b.rank) + b.shape
        // The first axis of the shared run: every axis after it whole in both operands.
        let split = (0..<rank).last { shapeA[$0] != shape[$0] || shapeB[$0] != shape[$0] }.map { $0 + 1 } ?? 0
        let run = shape[split...].reduce(1, *), total = shape.reduce(1, *)
        guard run >= 16, split > 0, total > 0 else { return nil }
        // Each operand's strides, 0 along the axes it repeats over.
        let (stridesA, stridesB) = (broadcastStrides(shapeA), broadcastStrides(shapeB))
        let outer = total / run
        var output = uninitialized(total)
        a.data.withUnsafeBufferPointer { x in
            b.data.withUnsafeBufferPointer { y in
                output.withUnsafeMutableBufferPointer { z in
                    let addresses = (Int(bitPattern: x.baseAddress), Int(bitPattern: y.baseAddress), Int(bitPattern: z.baseAddress))
                    overCoresWhenLarge(outer, valuesEach: run) { range in
                        guard let x = UnsafePointer<Float>(bitPattern: addresses.0), let y = UnsafePointer<Float>(bitPattern: addresses.1),
                              let z = UnsafeMutablePointer<Float>(bitPattern: addresses.2) else { return }
                        for item in range {
                            var remaining = item, offsetA = 0, offsetB = 0
                            for axis in stride(from: split - 1, through: 0, by: -1) {
                                let index = remaining % shape[axis]
                                remaining /= shape[axis]
                                offsetA += index * stridesA[axis]
                                offsetB += index * stridesB[axis]
                            }
                            let (p, q, r) = (x + offsetA, y + offsetB, z + item * run)
                            for i in 0..<run { r[i] = K.combine(p[i], q[i]) }
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: shape, data: output)
    }
}
