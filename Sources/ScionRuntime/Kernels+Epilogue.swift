/// What a convolution does to its result after the matrix products, in one pass over the values:
/// the bias per output channel, then a (capped) ReLU. Separate passes cost a full read and write of
/// the activation each, and the ReLU pass used to copy the buffer it could not prove unshared.
extension Kernels {
    /// `values` is `planes` channel planes of `plane` values each, channel `p % bias.count` for plane `p`.
    static func epilogue(_ values: inout [Float], planes: Int, plane: Int, bias: [Float]?, reluCap: Float?) {
        guard bias != nil || reluCap != nil, plane > 0 else { return }
        let channels = bias?.count ?? 1
        values.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            for p in 0..<planes {
                let start = base + p * plane
                let shift = bias?[p % channels] ?? 0
                if let cap = reluCap {
                    for i in 0..<plane { start[i] = min(max(start[i] + shift, 0), cap) }
                } else {
                    for i in 0..<plane { start[i] += shift }
                }
            }
        }
    }

    /// A (capped) ReLU applied in place: for results the caller owns alone (an addition's sum).
    static func reluInPlace(_ tensor: inout RuntimeTensor, cap: Float) {
        tensor.data.withUnsafeMutableBufferPointer { buffer in
            for i in buffer.indices { buffer[i] = min(max(buffer[i], 0), cap) }
        }
    }
}
