import ScionIR

/// Which way `LayoutRewriter` moves the channels, and everything that follows from it: the axis
/// maps, the kernel and parameter permutations, the names of inserted values, and the few choices
/// where Keras (the channels-last target) and ONNX (the channels-first target) genuinely differ.
///
/// ```
///  toChannelsFirst (Keras → ONNX, executor)       toChannelsLast (ONNX → Keras layers)
///
///  source value  [N, d1, ..., dk, C]              source value  [N, C, d1, ..., dk]
///  converted     [N, C, d1, ..., dk]              converted     [N, d1, ..., dk, C]
///  kernel        HWIO → OIHW                      kernel        OIHW → HWIO
///  inserted      x/to_channels_first              inserted      x/to_channels_last
/// ```
///
/// Every permutation the layout rewriter writes comes from here, so each is spelled out once.
enum LayoutDirection: Equatable, Sendable {
    /// Channels-last (Keras) to channels-first (ONNX): `ChannelsFirstLayoutPass`.
    case toChannelsFirst
    /// Channels-first (ONNX) to channels-last Keras layers: phase two of `KerasLayersPass`.
    case toChannelsLast

    /// Layout the spatial ops of the source graph are written in; they are the ones converted.
    var sourceLayout: Layout { self == .toChannelsFirst ? .channelsLast : .channelsFirst }

    /// Layout the converted spatial ops are written in.
    var targetLayout: Layout { self == .toChannelsFirst ? .channelsFirst : .channelsLast }

    /// `channels_first` / `channels_last`, for names of inserted values (`x/to_channels_first`).
    var targetName: String { self == .toChannelsFirst ? "channels_first" : "channels_last" }

    /// The source layout's name, for the Transposes back (`x/to_channels_last` going channels-first).
    var sourceName: String { self == .toChannelsFirst ? "channels_last" : "channels_first" }

    /// The Keras side must end up with Keras layers only: ops Keras has no layer for are refused
    /// before anything is written, and attributes are spelled as Keras writes them (the last axis
    /// as -1, a Flatten with Keras's own data format, shared axes in ascending order).
    var writesKerasLayers: Bool { self == .toChannelsLast }

    /// Rank of a value whose shape is unknown taken from the op producing it (a convolution after
    /// an opaque Keras layer still has the convolution's rank). ONNX files carry their ranks.
    var infersRanksFromOps: Bool { self == .toChannelsFirst }

    /// An explicit source Transpose between the two layouts (tf2onnx's `[0, 3, 1, 2]` after an NHWC
    /// input) costs nothing: its result is the other form of its input. Keras graphs have none.
    var followsLayoutTransposes: Bool { self == .toChannelsLast }

    /// A Flatten whose Dense reader permutes its rows may reach it through a Concatenate of rank-2
    /// values (Keras multi-branch heads); only that Flatten's block of rows moves.
    var followsFlattenThroughConcatenate: Bool { self == .toChannelsFirst }

    /// The form a flexible op reads when the Transposes cost the same and its readers have no wish:
    /// the order the ONNX writer maps directly, or the channels-last form of the Keras layers around it.
    var formOnTie: LayoutRewriter.Form { self == .toChannelsFirst ? .original : .converted }

    // MARK: - Axis maps

    /// Transpose permutation taking a source value of rank `r` to the converted form: channels-first
    /// `[0, r-1, 1, ..., r-2]` (output axis 1 is input axis r-1, the channels), channels-last
    /// `[0, 2, ..., r-1, 1]` (output axis r-1 is input axis 1).
    func toConverted(rank: Int) -> [Int] {
        self == .toChannelsFirst ? Self.channelsLastToChannelsFirst(rank: rank) : Self.channelsFirstToChannelsLast(rank: rank)
    }

    /// The inverse of `toConverted`.
    func toOriginal(rank: Int) -> [Int] {
        self == .toChannelsFirst ? Self.channelsFirstToChannelsLast(rank: rank) : Self.channelsLastToChannelsFirst(rank: rank)
    }

    static func channelsLastToChannelsFirst(rank: Int) -> [Int] {
        rank < 2 ? Array(0..<max(rank, 0)) : [0, rank - 1] + Array(1..<(rank - 1))
    }

    static func channelsFirstToChannelsLast(rank: Int) -> [Int] {
        rank < 2 ? Array(0..<max(rank, 0)) : [0] + Array(2..<rank) + [1]
    }

    /// Where source axis `axis` (negative counts from the end) sits in the converted value; nil
    /// outside the rank. Channels-first: 0 stays 0, the last axis becomes 1, spatial axis `i`
    /// becomes `i + 1`. Channels-last: 0 stays 0, 1 becomes the last axis, spatial axis `i`
    /// becomes `i - 1`.
    func convertedPosition(of axis: Int, rank: Int) -> Int? {
        let resolved = axis < 0 ? axis + rank : axis
        guard (0..<rank).contains(resolved) else { return nil }
        if resolved == 0 { return 0 }
        switch self {
        case .toChannelsFirst: return resolved == rank - 1 ? 1 : resolved + 1
        case .toChannelsLast: return resolved == 1 ? rank - 1 : resolved - 1
        }
    }

    /// A per-sample tensor without the batch axis, in source order, to converted order: PReLU's
    /// alpha, a Reshape's target shape, the flattened features a Dense reads. Channels-first
    /// `[d1, ..., dk, C]` → `[C, d1, ..., dk]` is `[k, 0, ..., k-1]`; channels-last
    /// `[C, d1, ..., dk]` → `[d1, ..., dk, C]` is `[1, ..., k, 0]`.
    func samplePermutation(sampleRank: Int) -> [Int] {
        guard sampleRank >= 1 else { return [] }
        switch self {
        case .toChannelsFirst: return [sampleRank - 1] + Array(0..<(sampleRank - 1))
        case .toChannelsLast: return Array(1..<sampleRank) + [0]
        }
    }

    /// Convolution kernels with `k` spatial axes: Keras `[k..., in/groups, out]` (HWIO) to ONNX
    /// `[out, in/groups, k...]` (OIHW), or back. The same permutation takes a Keras transposed-
    /// convolution kernel `[k..., out, in]` to ONNX ConvTranspose's `[in, out, k...]`, or back.
    func kernelPermutation(spatialRank: Int) -> [Int] {
        switch self {
        case .toChannelsFirst: return [spatialRank + 1, spatialRank] + Array(0..<spatialRank)
        case .toChannelsLast: return Array(2..<(spatialRank + 2)) + [1, 0]
        }
    }

    /// A depthwise ONNX kernel `[in × multiplier, 1, k...]`, read as `[in, multiplier, k...]`, to
    /// Keras's `[k..., in, multiplier]` (the inverse of `GroupedConvolutionPass`'s reshape followed by
    /// the channels-first kernel permutation; output channel `c × multiplier + m` is input channel
    /// `c`'s `m`-th filter). Only the channels-last direction builds depthwise convolutions.
    static func groupedKernelToDepthwise(spatialRank: Int) -> [Int] {
        Array(2..<(spatialRank + 2)) + [0, 1]
    }

    /// Dense kernel rows after a Flatten that now flattens the converted value. Keras numbers the
    /// features of `[N, s..., C]` `(s..., c)`, ONNX those of `[N, C, s...]` `(c, s...)`. Seen as the
    /// flattened sample shape followed by the units, the new row order is the sample permutation
    /// with the units axis kept last: channels-first, new row `c·S + s` is old row `s·C + c`.
    func flattenedRowsPermutation(spatialRank: Int) -> [Int] {
        samplePermutation(sampleRank: spatialRank + 1) + [spatialRank + 1]
    }

    /// True for a source value of rank 3 or more whose every non-batch axis but the channels has
    /// length 1 (`[N, 1, ..., 1, C]` channels-last, `[N, C, 1, ..., 1]` channels-first): both forms
    /// hold the same elements in the same memory order.
    func hasOnlyChannels(_ shape: Shape) -> Bool {
        guard shape.rank >= 3 else { return false }
        switch self {
        case .toChannelsFirst: return shape.dimensions.dropFirst().dropLast().allSatisfy { $0 == 1 }
        case .toChannelsLast: return shape.dimensions.dropFirst(2).allSatisfy { $0 == 1 }
        }
    }

    /// A source sample's lengths (no batch axis) split into the spatial ones and the channels.
    func splitSample(_ lengths: [Int]) -> (spatial: [Int], channels: Int)? {
        switch self {
        case .toChannelsFirst: return lengths.last.map { (Array(lengths.dropLast()), $0) }
        case .toChannelsLast: return lengths.first.map { (Array(lengths.dropFirst()), $0) }
        }
    }

    /// The inverse of `splitSample`: the source order of a flattened sample's features.
    func sampleShape(spatial: [Int], channels: Int) -> [Int] {
        self == .toChannelsFirst ? spatial + [channels] : [channels] + spatial
    }

    // MARK: - What each parameter change is called (in messages and in the shared-parameter check)

    var convolutionKernelChange: String {
        self == .toChannelsFirst ? "convolution kernel to OIHW" : "convolution kernel to HWIO"
    }

    var transposedKernelChange: String {
        self == .toChannelsFirst ? "transposed convolution kernel to IOHW"
            : "transposed convolution kernel to Keras's [k..., out, in]"
    }

    var preluAlphaChange: String {
        self == .toChannelsFirst ? "PReLU alpha to channels-first" : "PReLU alpha to channels-last"
    }

    var flattenedRowsChange: String {
        self == .toChannelsFirst ? "Dense rows for a channels-first Flatten" : "Dense rows for a channels-last Flatten"
    }
}
