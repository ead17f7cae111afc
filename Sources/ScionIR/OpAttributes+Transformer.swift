/// The opset-23 ops of transformer exports (Attention, RMSNormalization, RotaryEmbedding) and the
/// index ops beside them (ArgMax/ArgMin, CumSum), as ONNX defines them.

/// How Attention's optional mask is spelled: a bool mask keeps the true positions, a float mask is
/// added to the scores.
public enum AttentionMaskKind: String, Equatable, Sendable, CaseIterable {
    case boolean, additive
}

/// ONNX Attention (opset 23): `softmax(softcap(Q·Kᵀ · scale) + mask) · V` per head, with
/// grouped-query heads, a causal mask and a key/value cache. Inputs: Q, K, V, then the mask when
/// `mask` is set, then past key and past value when `hasPast`. Outputs: Y, then the present key
/// and value (past and new joined along the sequence), then the scores `qkOutputMode` names.
public struct ScaledDotProductAttentionAttributes: Equatable, Sendable {
    /// `q_num_heads` and `kv_num_heads`: how 3-D `[B, S, heads × size]` inputs split into heads;
    /// nil for 4-D `[B, heads, S, size]` inputs, whose heads are their second axis.
    public var queryHeads: Int?, keyValueHeads: Int?
    /// The mask's spelling; nil without a mask.
    public var mask: AttentionMaskKind?
    /// Whether query i sees only keys up to i plus the cached length (bottom-right aligned).
    public var isCausal: Bool
    /// The scores' factor; nil for `1 / sqrt(head size)`.
    public var scale: Float?
    /// `softcap · tanh(scores / softcap)` before the mask when positive.
    public var softcap: Float
    /// Whether past key and value inputs extend K and V.
    public var hasPast: Bool
    /// Which scores the fourth output holds: 0 the products (softcapped), 1 after softcap, 2 with the
    /// mask added, 3 after softmax.
    public var qkOutputMode: Int
    /// ONNX's `softmax_precision` (an element type code) when the file names one; the executor
    /// computes in float32 whatever it says.
    public var softmaxPrecision: Int?
    /// 4-D inputs and output laid out `[B, S, heads, size]`, as keras.ops.dot_product_attention takes
    /// them (ONNX's are `[B, heads, S, size]`); such a node has no cache and one output.
    public var sequenceFirst: Bool

    /// Attributes with these values.
    public init(queryHeads: Int? = nil, keyValueHeads: Int? = nil, mask: AttentionMaskKind? = nil, isCausal: Bool = false,
                scale: Float? = nil, softcap: Float = 0, hasPast: Bool = false, qkOutputMode: Int = 0, softmaxPrecision: Int? = nil,
                sequenceFirst: Bool = false) {
        self.queryHeads = queryHeads; self.keyValueHeads = keyValueHeads; self.mask = mask; self.isCausal = isCausal
        self.scale = scale; self.softcap = softcap; self.hasPast = hasPast; self.qkOutputMode = qkOutputMode
        self.softmaxPrecision = softmaxPrecision; self.sequenceFirst = sequenceFirst
    }

    /// How many inputs the node reads.
    public var inputCount: Int { 3 + (mask == nil ? 0 : 1) + (hasPast ? 2 : 0) }
    /// The mask's input position, when there is one.
    public var maskPosition: Int? { mask == nil ? nil : 3 }
    /// The past key's input position (the past value's follows), when there is one.
    public var pastPosition: Int? { hasPast ? 3 + (mask == nil ? 0 : 1) : nil }
}

/// ONNX RMSNormalization (opset 23, Keras's RMSNormalization): `x / sqrt(mean(x²) + epsilon) · scale`,
/// the mean over the axes from `axis` to the last; scale is the `scale` parameter (Keras's weight
/// name) when constant, the second input when computed.
public struct RMSNormalizationAttributes: Equatable, Sendable {
    /// The first normalized axis (negative counts from the end).
    public var axis: Int
    /// Added to the mean square.
    public var epsilon: Float
    /// Attributes with these values.
    public init(axis: Int = -1, epsilon: Float = 1e-5) { self.axis = axis; self.epsilon = epsilon }
}

/// ONNX RotaryEmbedding (opset 23): rotates pairs of features by angles whose cosines and sines are
/// read from two caches. Inputs: x (`[B, heads, S, size]` or `[B, S, heads × size]`), the cos and
/// sin caches, then the position ids when the file gives them (else the caches are `[B, S, half]`).
public struct RotaryEmbeddingAttributes: Equatable, Sendable {
    /// Pairs are neighbours (x0, x1) when interleaved, else the two halves (x0, x_half).
    public var interleaved: Bool
    /// How many leading features rotate (0: all); the rest pass through.
    public var rotaryDimensions: Int
    /// The heads of a 3-D input; 0 when the input is 4-D.
    public var heads: Int
    /// Whether the fourth input holds position ids.
    public var hasPositionIDs: Bool
    /// Attributes with these values.
    public init(interleaved: Bool = false, rotaryDimensions: Int = 0, heads: Int = 0, hasPositionIDs: Bool = true) {
        self.interleaved = interleaved; self.rotaryDimensions = rotaryDimensions; self.heads = heads
        self.hasPositionIDs = hasPositionIDs
    }
}

/// ONNX ArgMax and ArgMin: the index of the largest (smallest) value along one axis, as int64.
public struct ArgExtremeAttributes: Equatable, Sendable {
    /// ArgMax when true, ArgMin when false.
    public var largest: Bool
    /// The axis searched (negative counts from the end).
    public var axis: Int
    /// Whether the searched axis stays, with length 1.
    public var keepDimensions: Bool
    /// Among equal values, the last one's index instead of the first's.
    public var selectLastIndex: Bool
    /// Attributes with these values.
    public init(largest: Bool, axis: Int = 0, keepDimensions: Bool = true, selectLastIndex: Bool = false) {
        self.largest = largest; self.axis = axis; self.keepDimensions = keepDimensions; self.selectLastIndex = selectLastIndex
    }
}

/// ONNX CumSum: inputs x, then the axis when it is computed at run time.
public struct CumulativeSumAttributes: Equatable, Sendable {
    /// The axis summed along (negative counts from the end); nil when the second input holds it.
    public var axis: Int?
    /// Each sum leaves out its own element.
    public var exclusive: Bool
    /// Sums run from the end of the axis.
    public var reverse: Bool
    /// Attributes with these values.
    public init(axis: Int?, exclusive: Bool = false, reverse: Bool = false) {
        self.axis = axis; self.exclusive = exclusive; self.reverse = reverse
    }
}

/// ONNX DepthToSpace and SpaceToDepth on `[N, C, H, W]`: `blockSize`² channels become a block of
/// pixels, or the reverse. The shuffle is a reshape to six axes, a transpose, a reshape back.
public struct DepthSpaceAttributes: Equatable, Sendable {
    /// SpaceToDepth when true, DepthToSpace when false.
    public var toDepth: Bool
    /// The block's side.
    public var blockSize: Int
    /// DepthToSpace's CRD mode (channel, then row and column of the block); false is DCR (block first).
    public var columnRowDepth: Bool
    /// Attributes with these values.
    public init(toDepth: Bool, blockSize: Int, columnRowDepth: Bool = false) {
        self.toDepth = toDepth; self.blockSize = blockSize; self.columnRowDepth = columnRowDepth
    }

    /// The six-axis view of an input `[n, c, h, w]`, its permutation and the output's shape; nil when
    /// the lengths do not divide.
    public func plan(_ input: [Int]) -> (view: [Int], permutation: [Int], output: [Int])? {
        guard input.count == 4, blockSize > 0 else { return nil }
        let (n, c, h, w, b) = (input[0], input[1], input[2], input[3], blockSize)
        if toDepth {
            guard h % b == 0, w % b == 0 else { return nil }
            return ([n, c, h / b, b, w / b, b], [0, 3, 5, 1, 2, 4], [n, c * b * b, h / b, w / b])
        }
        guard c % (b * b) == 0 else { return nil }
        let output = [n, c / (b * b), h * b, w * b]
        return columnRowDepth ? ([n, c / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3], output)
                              : ([n, b, b, c / (b * b), h, w], [0, 3, 4, 1, 5, 2], output)
    }
}
