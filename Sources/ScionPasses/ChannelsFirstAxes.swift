/// Axis arithmetic of the channels-last to channels-first conversion, for a value of rank `r`.
///
/// A channels-last value `[N, d1, ..., d(r-2), C]` becomes `[N, C, d1, ..., d(r-2)]`: the channel
/// axis moves from last to 1 and every spatial axis moves one place right. Every permutation the
/// layout pass writes comes from here, so each is spelled out once.
enum ChannelsFirstAxes {
    /// Transpose permutation taking channels-last data to channels-first: `[0, r-1, 1, ..., r-2]`
    /// (output axis 1 is input axis r-1, the channels).
    static func toChannelsFirst(rank: Int) -> [Int] {
        rank < 2 ? Array(0..<max(rank, 0)) : [0, rank - 1] + Array(1..<(rank - 1))
    }

    /// The inverse: `[0, 2, ..., r-1, 1]` (output axis r-1 is input axis 1, the channels).
    static func toChannelsLast(rank: Int) -> [Int] {
        rank < 2 ? Array(0..<max(rank, 0)) : [0] + Array(2..<rank) + [1]
    }

    /// Where channels-last axis `axis` (negative counts from the end) sits once the value is
    /// channels-first: 0 stays 0, the last axis becomes 1, spatial axis `i` becomes `i + 1`. Nil when
    /// the axis is outside the rank.
    static func channelsFirstPosition(of axis: Int, rank: Int) -> Int? {
        let resolved = axis < 0 ? axis + rank : axis
        guard (0..<rank).contains(resolved) else { return nil }
        if resolved == 0 { return 0 }
        if resolved == rank - 1 { return 1 }
        return resolved + 1
    }

    /// Convolution kernels, rank `k` spatial axes: Keras `[k..., in/groups, out]` (HWIO) to ONNX
    /// `[out, in/groups, k...]` (OIHW): output axis 0 is input axis k+1, axis 1 is input axis k,
    /// then the spatial axes in order. The same permutation takes a Keras transposed-convolution
    /// kernel `[k..., out, in]` to ONNX ConvTranspose's `[in, out, k...]`.
    static func kernelToChannelsFirst(spatialRank: Int) -> [Int] {
        [spatialRank + 1, spatialRank] + Array(0..<spatialRank)
    }

    /// A per-sample tensor without the batch axis, `[d1, ..., d(r-2), C]` (PReLU's alpha), to
    /// `[C, d1, ..., d(r-2)]`: `[r-2, 0, 1, ..., r-3]` for a tensor of rank r-1.
    static func sampleToChannelsFirst(sampleRank: Int) -> [Int] {
        sampleRank < 1 ? [] : [sampleRank - 1] + Array(0..<(sampleRank - 1))
    }

    /// Dense kernel rows after a Flatten: a Keras Flatten of channels-last `[N, s..., C]` numbers its
    /// features `(s..., c)` row-major; the channels-first Flatten that replaces it numbers them
    /// `(c, s...)`. Seen as `[s1, ..., sk, C, units]`, the kernel's new row order is the transpose
    /// `[k, 0, ..., k-1, k+1]` (reshaped back to `[C·S, units]`): new row `c·S + s` is old row
    /// `s·C + c`.
    static func flattenedRowsToChannelsFirst(spatialRank: Int) -> [Int] {
        [spatialRank] + Array(0..<spatialRank) + [spatialRank + 1]
    }
}

/// The reverse conversion, channels-first (ONNX) to channels-last (Keras), for `KerasLayersPass`.
/// A channels-first value `[N, C, d1, ..., d(r-2)]` becomes `[N, d1, ..., d(r-2), C]`.
enum ChannelsLastAxes {
    /// Where channels-first axis `axis` sits once the value is channels-last: 0 stays 0, 1 (the
    /// channels) becomes the last axis, spatial axis `i` becomes `i - 1`. Nil outside the rank.
    static func channelsLastPosition(of axis: Int, rank: Int) -> Int? {
        let resolved = axis < 0 ? axis + rank : axis
        guard (0..<rank).contains(resolved) else { return nil }
        if resolved == 0 { return 0 }
        if resolved == 1 { return rank - 1 }
        return resolved - 1
    }

    /// ONNX convolution kernels `[out, in/groups, k...]` (OIHW) to Keras `[k..., in/groups, out]`
    /// (HWIO); the same permutation takes ONNX ConvTranspose's `[in, out, k...]` to Keras's
    /// `[k..., out, in]`.
    static func kernelToChannelsLast(spatialRank: Int) -> [Int] {
        Array(2..<(spatialRank + 2)) + [1, 0]
    }

    /// A depthwise ONNX kernel `[in × multiplier, 1, k...]`, read as `[in, multiplier, k...]`, to
    /// Keras's `[k..., in, multiplier]` (the inverse of `GroupedConvolutionPass`'s reshape followed by
    /// `kernelToChannelsFirst`; output channel `c × multiplier + m` is input channel `c`'s `m`-th filter).
    static func groupedKernelToDepthwise(spatialRank: Int) -> [Int] {
        Array(2..<(spatialRank + 2)) + [0, 1]
    }

    /// PReLU's per-sample slope `[C, d1, ..., dk]` to `[d1, ..., dk, C]`.
    static func sampleToChannelsLast(sampleRank: Int) -> [Int] {
        sampleRank < 1 ? [] : Array(1..<sampleRank) + [0]
    }

    /// Dense kernel rows after a Flatten that now flattens channels-last data: ONNX numbered the
    /// features `(c, s...)`, Keras numbers them `(s..., c)`. Seen as `[C, s1, ..., sk, units]`, the
    /// new row order is the transpose `[1, ..., k, 0, k+1]`.
    static func flattenedRowsToChannelsLast(spatialRank: Int) -> [Int] {
        Array(1..<(spatialRank + 1)) + [0, spatialRank + 1]
    }
}
