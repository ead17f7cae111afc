import CVectorKernels

/// What a 1x1 convolution applies to its input as it reads it, instead of a pass that writes a
/// changed copy of the whole input first.
enum InputPrologue: Sendable {
    /// A BatchNormalization and its fused ReLU (Executor+NormalizedInputs.swift).
    case affine(InputAffine)
    /// A squeeze-and-excitation's gate (Executor+GatedInputs.swift).
    case gate(SampleGate)

    /// Input rows `first ..< first + rows` (pixels counted over the whole batch), read from
    /// `source` (row `first`'s values) and written into `target` as rows of `channels` values.
    func apply(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, first: Int, rows: Int, channels: Int) {
        switch self {
        case .affine(let affine): affine.apply(source, into: target, rows: rows, channels: channels)
        case .gate(let gate): gate.apply(source, into: target, first: first, rows: rows, channels: channels)
        }
    }
}

/// `x · s` for a channels-last `x` `[N, H, W, C]` and a gate `s` `[N, 1, 1, C]`: each sample's
/// pixels times that sample's per-channel weights (EfficientNet's and MobileNetV3's
/// squeeze-and-excitation), done by the 1x1 convolution that reads the product.
///
/// Either side of the product can carry the gate: `(x · s) · W = x · (diag(s) · W)`. Scaling a
/// sample's input costs `pixels · C` products, scaling its filters `C · F`: EfficientNetB0's
/// 56x56 blocks gate 451,584 values where their 24 filters hold 3,456, while its 7x7 blocks gate
/// 56,448 values against 221,184 weights. The cheaper side is taken per convolution
/// (`scalesFilters`). The two sides round differently (within a unit in the last place of each
/// product), so the fused pass is not bit for bit the separate multiplication's.
struct SampleGate: Sendable {
    /// `[N, C]`: sample `n`'s weight for channel `c` at `n · C + c`.
    let weights: [Float]
    let pixelsPerSample: Int

    /// Whether this convolution's filters (`filters` of them) should carry the gate: a sample's
    /// filters are fewer than half its pixels (half, as the filters are scaled into a new buffer
    /// each pass where the input rows are scaled into a scratch block already in cache).
    func scalesFilters(filters: Int) -> Bool { 2 * filters <= pixelsPerSample }

    /// Rows `first ..< first + rows` of `x`, gated, into `target` (rows of `channels` values).
    func apply(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, first: Int, rows: Int, channels: Int) {
        precondition(weights.count % max(channels, 1) == 0 && (first + rows + pixelsPerSample - 1) / pixelsPerSample <= weights.count / max(channels, 1),
                     "a gate of \(weights.count) weights for \(channels) channels")
        weights.withUnsafeBufferPointer { gate in
            guard let gate = gate.baseAddress else { return }
            // A sample's run of rows at a time, each with its own weights.
            var row = first
            while row < first + rows {
                let sample = row / pixelsPerSample, end = min(first + rows, (sample + 1) * pixelsPerSample)
                scion_scale_rows_into(source + (row - first) * channels, channels, target + (row - first) * channels, end - row, channels,
                                      gate + sample * channels)
                row = end
            }
        }
    }

    /// A 1x1 convolution's kernel (`depth` input channels, `filters` filters, in `order`) with input
    /// channel `k`'s weights times sample `sample`'s gate weight `k`, in the same order.
    func filters(for sample: Int, kernel: WeightValues, order: Kernels.FilterOrder, depth: Int, filters: Int) -> WeightValues {
        precondition((sample + 1) * depth <= weights.count, "a gate of \(weights.count) weights for sample \(sample) of \(depth) channels")
        let expected = order == .panels ? scion_panels_count(filters, depth) : depth * filters
        precondition(kernel.count == expected, "a kernel of \(kernel.count) values for \(depth) channels and \(filters) filters")
        let scaled = [Float](unsafeUninitializedCapacity: kernel.count) { buffer, initialized in
            kernel.withUnsafeBufferPointer { source in
                weights.withUnsafeBufferPointer { gate in
                    guard let to = buffer.baseAddress, let from = source.baseAddress, let s = gate.baseAddress else { return }
                    let scale = s + sample * depth
                    switch order {
                    case .filtersFirst:
                        // [F, C]: each filter's row times the gate, value by value.
                        for f in 0..<filters {
                            for k in 0..<depth { to[f * depth + k] = from[f * depth + k] * scale[k] }
                        }
                    case .filtersLast:
                        // [C, F]: row k times the gate's weight k.
                        for k in 0..<depth {
                            let weight = scale[k]
                            for f in 0..<filters { to[k * filters + f] = from[k * filters + f] * weight }
                        }
                    case .panels:
                        // Panels of 64 filters, each [C, width rounded up to 16]: row k of each times weight k.
                        for first in stride(from: 0, to: filters, by: 64) {
                            let padded = scion_narrow_padded(min(64, filters - first)), panel = depth * first
                            for k in 0..<depth {
                                let weight = scale[k], row = panel + k * padded
                                for n in 0..<padded { to[row + n] = from[row + n] * weight }
                            }
                        }
                    }
                }
            }
            initialized = kernel.count
        }
        return WeightValues(scaled)
    }
}
