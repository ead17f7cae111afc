/// Keras's MultiHeadAttention: queries, keys and values projected per head, scaled dot-product
/// attention over `attention_axes`, the heads projected back.
///
/// ```
///  Q = query · Wq + bq   [B, T..., H, key_dim]        scores = (Q / sqrt(key_dim)) · Kᵀ over the
///  K = key   · Wk + bk   [B, S..., H, key_dim]        attention axes, masked positions set to -1e9,
///  V = value · Wv + bv   [B, S..., H, value_dim]      softmax over all key positions jointly,
///  out = (softmax · V) · Wo + bo   [B, T..., output_shape or query's last length]
/// ```
///
/// Inputs, in this order: query, value, then key when the call passes one (otherwise the value is
/// the key), then the attention mask when the call passes one (`[B, T, S]`, nonzero = attend),
/// then the mask sources of Keras's query and value masks (`queryMaskValue`, `valueMaskValue`).
/// Parameters with Keras's shapes, in Keras's creation order, as sublayer roles:
/// `query_dense/kernel` `[D, H, key_dim]`, `query_dense/bias` `[H, key_dim]`, the same for
/// `key_dense` (`[Dk, H, key_dim]`) and `value_dense` (`[Dv, H, value_dim]`), then
/// `output_dense/kernel` `[H, value_dim, output...]` and `output_dense/bias` `[output...]`; the
/// biases only with `useBias`.
public struct MultiHeadAttentionAttributes: Equatable, Sendable {
    /// Number of heads.
    public var numHeads: Int
    /// Length of each head's query and key projection; the scores are scaled by 1/sqrt(keyDim).
    public var keyDim: Int
    /// Length of each head's value projection (Keras's default: keyDim).
    public var valueDim: Int
    /// Dropout rate on the attention probabilities: training only, the identity at inference.
    public var dropout: Float
    /// Whether the four projections add biases.
    public var useBias: Bool
    /// The output's trailing lengths; nil keeps the query's last length (Keras's default).
    public var outputShape: [Int]?
    /// Axes of the query attended over (counting the batch as 0); nil is Keras's default, every
    /// axis but the batch and the last.
    public var attentionAxes: [Int]?
    /// Whether the call passed a key tensor (the third input); otherwise the value is the key.
    public var hasKey: Bool
    /// Whether the call passed an attention mask (the last input).
    public var hasAttentionMask: Bool
    /// Whether the call asked for the causal mask: query position t attends to positions s <= t.
    public var useCausalMask: Bool
    /// Keras's mask of the query (`Embedding(mask_zero=True)` upstream): an input after the
    /// attention mask is its source `[B, T, ...]`, and query position t attends only where some
    /// value of the source at t differs from this value (`_compute_attention_mask`). Nil without.
    public var queryMaskValue: Float? = nil
    /// Keras's mask of the value (and key, when the value is the key): its source `[B, S, ...]`
    /// follows the query's; key position s is attended only where the source differs from this value.
    public var valueMaskValue: Float? = nil

    /// Attributes with these values.
    public init(numHeads: Int, keyDim: Int, valueDim: Int? = nil, dropout: Float = 0, useBias: Bool = true,
                outputShape: [Int]? = nil, attentionAxes: [Int]? = nil, hasKey: Bool = false,
                hasAttentionMask: Bool = false, useCausalMask: Bool = false) {
        self.numHeads = numHeads; self.keyDim = keyDim; self.valueDim = valueDim ?? keyDim; self.dropout = dropout
        self.useBias = useBias; self.outputShape = outputShape; self.attentionAxes = attentionAxes
        self.hasKey = hasKey; self.hasAttentionMask = hasAttentionMask; self.useCausalMask = useCausalMask
    }

    /// Number of inputs a node with these attributes reads.
    public var inputCount: Int {
        2 + (hasKey ? 1 : 0) + (hasAttentionMask ? 1 : 0) + (queryMaskValue != nil ? 1 : 0) + (valueMaskValue != nil ? 1 : 0)
    }

    /// Position of the key among the inputs (the value's when no key is passed).
    public var keyInput: Int { hasKey ? 2 : 1 }

    /// Position of the attention mask among the inputs, when there is one.
    public var maskInput: Int? { hasAttentionMask ? 2 + (hasKey ? 1 : 0) : nil }

    /// Position of the query's mask source, when Keras masks the query.
    public var queryMaskInput: Int? { queryMaskValue != nil ? 2 + (hasKey ? 1 : 0) + (hasAttentionMask ? 1 : 0) : nil }

    /// Position of the value's mask source, when Keras masks the value.
    public var valueMaskInput: Int? { valueMaskValue != nil ? inputCount - 1 : nil }

    /// Number of inputs the Keras call reads: without the mask sources (Keras derives those masks).
    public var kerasInputCount: Int { 2 + (hasKey ? 1 : 0) + (hasAttentionMask ? 1 : 0) }

    /// The attended axes for a query of `rank`, sorted and non-negative; nil when they do not fit
    /// (the batch, the last axis or an axis out of range).
    public func resolvedAttentionAxes(rank: Int) -> [Int]? {
        guard rank >= 3 else { return nil }
        guard let axes = attentionAxes else { return Array(1..<(rank - 1)) }
        let resolved = axes.map { $0 < 0 ? $0 + rank : $0 }.sorted()
        guard !resolved.isEmpty, Set(resolved).count == resolved.count,
              resolved.allSatisfy({ $0 >= 1 && $0 < rank - 1 }) else { return nil }
        return resolved
    }

    /// The roles of the parameters, in Keras's creation order.
    public var parameterRoles: [ParameterRole] {
        ["query_dense", "key_dense", "value_dense", "output_dense"].flatMap { sublayer in
            [ParameterRole.sublayer(sublayer, .kernel)] + (useBias ? [.sublayer(sublayer, .bias)] : [])
        }
    }
}

/// Keras's Attention (Luong-style, `score_mode` "dot" or "concat") and AdditiveAttention
/// (Bahdanau-style), called with `[query, value]` or `[query, value, key]`:
///
/// ```
///  dot        scores = scale · query · keyᵀ                                   [B, Tq, Tv]
///  concat     scores = concat_score_weight · Σ_d tanh(scale · (query_d + key_d))
///  additive   scores = Σ_d scale_d · tanh(query_d + key_d)
///  output = softmax(scores, masked positions − 1e9) · value                   [B, Tq, dim]
/// ```
///
/// Parameters (each only when used): `scale` (a scalar for Attention, `[dim]` for
/// AdditiveAttention, when `useScale`), then `concat_score_weight` (a scalar, concat mode).
public struct AttentionAttributes: Equatable, Sendable {
    /// How the scores are computed.
    public enum Score: String, Equatable, Sendable {
        case dot, concat, additive
    }

    public var score: Score
    /// Whether a learned `scale` multiplies (Keras's `use_scale`).
    public var useScale: Bool
    /// Dropout rate on the attention distribution: training only.
    public var dropout: Float
    /// Whether the call passed a key (the third input); otherwise the value is the key.
    public var hasKey: Bool
    /// Whether the call asked for the causal mask (query position t attends to s <= t).
    public var useCausalMask: Bool

    /// Attributes with these values.
    public init(score: Score, useScale: Bool, dropout: Float = 0, hasKey: Bool = false, useCausalMask: Bool = false) {
        self.score = score; self.useScale = useScale; self.dropout = dropout; self.hasKey = hasKey
        self.useCausalMask = useCausalMask
    }

    /// The Keras class: AdditiveAttention for additive scores, Attention otherwise.
    public var kerasClass: String { score == .additive ? "AdditiveAttention" : "Attention" }
}
