import CVectorKernels
import ScionIR

/// What a channels-last convolution does to its values as it writes them: the bias per channel,
/// then an activation (a ReLU, capped or not, swish, sigmoid or GELU: the ones the models put after
/// their convolutions and dense layers). The kernels apply it to each block of output rows right after computing
/// it, on the core that computed it, while the block is still in that core's cache: applied as a
/// separate pass over a whole batch-32 activation it read and wrote each value from memory again,
/// on one thread (a swish after every convolution was a fifth of EfficientNetB0's pass).
///
/// The arithmetic is the unfused ops' own (`x + b`, then `min(max(·, 0), cap)` or
/// `v / (1 + e^-v)` with `Kernels.exponential`), so fusing changes no value.
struct ConvolutionEpilogue: Sendable {
    enum Function: Equatable, Sendable { case linear, relu(cap: Float), swish, sigmoid, gelu(approximate: Bool) }

    let bias: [Float]?
    let function: Function
    /// The part of the activation asked for that this epilogue does not apply (`.linear` when it
    /// applies all of it): the caller runs it after the kernel, as its own pass.
    let remaining: Activation

    init(bias: [Float]?, activation: Activation) {
        self.bias = bias
        switch activation {
        case .relu(let cap, 0, 0): (function, remaining) = (.relu(cap: cap ?? .infinity), .linear)
        case .swish: (function, remaining) = (.swish, .linear)
        case .sigmoid: (function, remaining) = (.sigmoid, .linear)
        case .gelu(let approximate): (function, remaining) = (.gelu(approximate: approximate), .linear)
        default: (function, remaining) = (.linear, activation)
        }
    }

    /// Whether applying it changes nothing (no bias, no activation).
    var isIdentity: Bool { bias == nil && function == .linear }

    /// Whether a product kernel can apply it to its values in registers before storing them
    /// (`scion_gemm_panels_then`: the bias and a capped ReLU; not swish or sigmoid), and the cap.
    var inRegisters: (relu: Bool, cap: Float)? {
        switch function {
        case .linear: (false, 0)
        case .relu(let cap): (true, cap)
        case .swish, .sigmoid, .gelu: nil
        }
    }

    /// Over `rows` whole rows of `channels` values each.
    func apply(_ values: UnsafeMutablePointer<Float>, rows: Int, channels: Int) {
        apply(values, rows: rows, stride: channels, firstChannel: 0, count: channels)
    }

    /// Over channels `firstChannel ..< firstChannel + count` of `rows` rows `stride` values apart,
    /// `values` pointing at the first row's first one (a depthwise output row's block of channels).
    func apply(_ values: UnsafeMutablePointer<Float>, rows: Int, stride: Int, firstChannel: Int, count: Int) {
        guard !isIdentity else { return }
        withBias(from: firstChannel) { shift in
            switch function {
            // Swish and sigmoid run in CVectorKernels (AVX-512 where the CPU has it: 16 lanes,
            // against the 4 of Swift's baseline build; the same bits).
            case .swish: scion_activate_rows(values, rows, count, stride, shift, SCION_ACTIVATION_SWISH)
            case .sigmoid: scion_activate_rows(values, rows, count, stride, shift, SCION_ACTIVATION_SIGMOID)
            case .gelu(let approximate):
                scion_activate_rows(values, rows, count, stride, shift, approximate ? SCION_ACTIVATION_GELU_TANH : SCION_ACTIVATION_GELU)
            case .linear: scion_clamp_rows(values, rows, count, stride, shift, 0, .infinity)
            case .relu(let cap): scion_clamp_rows(values, rows, count, stride, shift, 1, cap)
            }
        }
    }

    /// Over every value of `values` (no bias: an activation node's own pass), in place, on both
    /// cores when there are many.
    func applyToAll(_ values: inout [Float]) {
        guard bias == nil, !isIdentity else { return }
        values.withUnsafeMutableBufferPointer { buffer in
            let address = Int(bitPattern: buffer.baseAddress)
            Kernels.overCoresWhenLarge(buffer.count, valuesEach: 1) { range in
                guard let base = UnsafeMutablePointer<Float>(bitPattern: address) else { return }
                apply(base + range.lowerBound, rows: 1, stride: range.count, firstChannel: 0, count: range.count)
            }
        }
    }

    /// Over every row of `width` values of `values`, in place, rows on both cores when there are many.
    func applyToRows(_ values: inout [Float], width: Int) {
        guard !isIdentity, width > 0 else { return }
        values.withUnsafeMutableBufferPointer { buffer in
            let address = Int(bitPattern: buffer.baseAddress)
            Kernels.overCoresWhenLarge(buffer.count / width, valuesEach: width) { range in
                guard let base = UnsafeMutablePointer<Float>(bitPattern: address) else { return }
                apply(base + range.lowerBound * width, rows: range.count, channels: width)
            }
        }
    }

    /// `body` with the bias from channel `first` on (nil without a bias).
    private func withBias(from first: Int, _ body: (UnsafePointer<Float>?) -> Void) {
        guard let bias else { return body(nil) }
        bias.withUnsafeBufferPointer { body($0.baseAddress.map { $0 + first }) }
    }
}

/// A residual sum done by the convolution before it (Executor+ResidualConvolutions.swift): the
/// output buffer holds the sum's other operand on entry; each block of it is set aside before the
/// product overwrites the block, and added back after the convolution's own (linear) epilogue, the
/// sum's ReLU in the same pass. `(conv + bias) + residual`: the bits the separate addition gave.
struct ResidualAddition: Sendable {
    /// The sum's fused ReLU: its cap (`.infinity` uncapped), nil for none.
    let reluCap: Float?

    /// `target[i] = relu(target[i] + saved[i])` for `count` values (the ReLU when there is one).
    func apply(_ target: UnsafeMutablePointer<Float>, adding saved: UnsafePointer<Float>, count: Int) {
        // One row of `count` values whose "bias" is the saved block: the sum value by value.
        scion_clamp_rows(target, 1, count, count, saved, reluCap == nil ? 0 : 1, reluCap ?? .infinity)
    }

    /// A copy of `count` values from `values`, for `apply` after they are overwritten.
    static func setAside(_ values: UnsafePointer<Float>, count: Int) -> UnsafeMutablePointer<Float> {
        let copy = UnsafeMutablePointer<Float>.allocate(capacity: count)
        copy.update(from: values, count: count)
        return copy
    }
}

/// A BatchNormalization (and its fused ReLU) a 1x1 convolution applies to its input as it reads it
/// (Executor+NormalizedInputs.swift): each block of input rows is normalized into the core's
/// scratch, with the BatchNormalization's own arithmetic (`scion_affine_rows`'s).
struct InputAffine: Sendable {
    let scale: [Float]
    let shift: [Float]
    /// The fused ReLU's cap (`.infinity` uncapped), nil for none.
    let reluCap: Float?

    /// `rows` rows of `channels` values from `source`, normalized, into `target`.
    func apply(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, rows: Int, channels: Int) {
        precondition(scale.count == channels && shift.count == channels, "a normalization of \(scale.count) channels for \(channels)")
        scale.withUnsafeBufferPointer { s in
            shift.withUnsafeBufferPointer { t in
                scion_affine_rows_into(source, channels, target, rows, channels, s.baseAddress, t.baseAddress, reluCap == nil ? 0 : 1,
                                       reluCap ?? .infinity)
            }
        }
    }
}
