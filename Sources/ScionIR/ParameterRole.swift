/// The part a weight plays in its op. The raw values are Keras's own variable names
/// (`moving_mean`), so the Keras readers and writers spell a role with `rawValue` and every other
/// module matches cases: a misspelt role is a compile error, not a weight silently not found.
///
/// Two escape hatches keep every weight a file can hold:
/// - `sublayer`: a variable of a layer's sublayer (a recurrent layer's cell, Bidirectional's two
///   directions, MultiHeadAttention's projections), named by the attribute path Keras nests it
///   under: `forward_layer/cell/recurrent_kernel` is `.sublayer("forward_layer/cell", .recurrentKernel)`.
/// - `other`: a name Scion does not know (an opaque layer's `var3`, a custom layer's weights).
///
/// Equality and hashing go by `rawValue`, so `.other("kernel")` and `.kernel` are one role however
/// a value was built.
public enum ParameterRole: Sendable {
    case kernel
    case bias
    /// A depthwise convolution's kernel (Keras 3 stores it as `kernel`; the IR names it this in every
    /// format).
    case depthwiseKernel
    case pointwiseKernel
    /// A recurrent cell's state-to-state weights.
    case recurrentKernel
    /// Normalization scale and offset.
    case gamma
    case beta
    /// BatchNormalization's running statistics.
    case movingMean
    case movingVariance
    /// Normalization's adapted statistics.
    case mean
    case variance
    case count
    /// PReLU's slopes.
    case alpha
    /// Embedding's table.
    case embeddings
    /// A constant node's tensor (an ONNX initializer or Constant feeding an operand).
    case value
    indirect case sublayer(String, ParameterRole)
    case other(String)

    /// Roles with a case of their own, in the order `init(rawValue:)` tries them.
    private static let named: [ParameterRole] = [
        .kernel, .bias, .depthwiseKernel, .pointwiseKernel, .recurrentKernel, .gamma, .beta,
        .movingMean, .movingVariance, .mean, .variance, .count, .alpha, .embeddings, .value,
    ]

    /// Statistics a layer accumulates or adapts instead of learning (BatchNormalization's moving
    /// mean and variance, Normalization's mean, variance and count): never trainable, and updated by
    /// the forward pass rather than by gradients. The one place this is decided; a sublayer's
    /// variable is a statistic when its own role is.
    public var isStatistic: Bool {
        switch self {
        case .movingMean, .movingVariance, .mean, .variance, .count: true
        case .sublayer(_, let leaf): leaf.isStatistic
        default: false
        }
    }

    /// The variable's own role, below any sublayers (`forward_layer/cell/kernel` -> `kernel`).
    public var leaf: ParameterRole {
        if case .sublayer(_, let leaf) = self { return leaf.leaf }
        return self
    }
}

extension ParameterRole: RawRepresentable {
    /// Any name is a role: one Scion does not know becomes `.other`, one with `/` a sublayer's, so
    /// `rawValue` gives back exactly the name read.
    public init(rawValue: String) {
        if let slash = rawValue.lastIndex(of: "/") {
            let path = String(rawValue[..<slash])
            self = .sublayer(path, ParameterRole(rawValue: String(rawValue[rawValue.index(after: slash)...])))
        } else {
            self = Self.named.first { $0.rawValue == rawValue } ?? .other(rawValue)
        }
    }

    /// Keras's name of the variable.
    public var rawValue: String {
        switch self {
        case .kernel: "kernel"
        case .bias: "bias"
        case .depthwiseKernel: "depthwise_kernel"
        case .pointwiseKernel: "pointwise_kernel"
        case .recurrentKernel: "recurrent_kernel"
        case .gamma: "gamma"
        case .beta: "beta"
        case .movingMean: "moving_mean"
        case .movingVariance: "moving_variance"
        case .mean: "mean"
        case .variance: "variance"
        case .count: "count"
        case .alpha: "alpha"
        case .embeddings: "embeddings"
        case .value: "value"
        case .sublayer(let path, let leaf): path + "/" + leaf.rawValue
        case .other(let name): name
        }
    }
}

extension ParameterRole: Hashable {
    /// Equal when the names are.
    public static func == (a: ParameterRole, b: ParameterRole) -> Bool { a.rawValue == b.rawValue }
    /// Hashes the name.
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
}

extension ParameterRole: CustomStringConvertible {
    /// The raw name, so messages read `is missing its 'moving_mean' weights` as before.
    public var description: String { rawValue }
}
