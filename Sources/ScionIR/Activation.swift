/// Elementwise (or, for softmax, per-axis) activation functions, as a layer of their own or fused
/// into a Dense/Conv layer the way Keras's `activation=` argument does.
public enum Activation: Equatable, Hashable, Sendable {
    case linear
    /// `max(x, threshold)` style ReLU with Keras's optional cap and leak:
    /// `x >= maxValue ? maxValue : x >= threshold ? x : negativeSlope * (x - threshold)`.
    case relu(maxValue: Float?, negativeSlope: Float, threshold: Float)
    case leakyRelu(alpha: Float)
    case elu(alpha: Float)
    case selu
    case sigmoid
    /// `clip(alpha * x + beta, 0, 1)`: Keras 2 uses alpha 0.2, Keras 3 uses 1/6 (and beta 0.5).
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    case swish
    case tanh
    case gelu(approximate: Bool)
    case softplus
    case softsign
    case exponential
    case mish
    case softmax(axis: Int)
    case logSoftmax(axis: Int)
    // Keras 3 additions.
    case celu(alpha: Float)
    case squareplus(b: Float)
    case sparsePlus
    case sparseSigmoid
    case sparsemax(axis: Int)
    case tanhShrink
    case softShrink(threshold: Float)
    case hardShrink(threshold: Float)
    case hardTanh
    case logSigmoid

    /// `max(x, 0)`: ReLU without a cap, slope or threshold.
    public static let plainRelu = Activation.relu(maxValue: nil, negativeSlope: 0, threshold: 0)
    /// `min(max(x, 0), 6)`.
    public static let relu6 = Activation.relu(maxValue: 6, negativeSlope: 0, threshold: 0)

    /// Short human name for tables (`relu6`, `softmax`...).
    public var displayName: String {
        switch self {
        case .linear: "linear"
        case .relu(let maxValue, let slope, let threshold):
            if maxValue == 6, slope == 0, threshold == 0 { "relu6" }
            else if maxValue == nil, slope == 0, threshold == 0 { "relu" }
            else { "relu(max=\(maxValue.map { "\($0)" } ?? "none"), slope=\(slope), threshold=\(threshold))" }
        case .leakyRelu: "leaky_relu"
        case .elu: "elu"
        case .selu: "selu"
        case .sigmoid: "sigmoid"
        case .hardSigmoid: "hard_sigmoid"
        case .hardSwish: "hard_swish"
        case .swish: "swish"
        case .tanh: "tanh"
        case .gelu: "gelu"
        case .softplus: "softplus"
        case .softsign: "softsign"
        case .exponential: "exponential"
        case .mish: "mish"
        case .softmax: "softmax"
        case .logSoftmax: "log_softmax"
        case .celu: "celu"
        case .squareplus: "squareplus"
        case .sparsePlus: "sparse_plus"
        case .sparseSigmoid: "sparse_sigmoid"
        case .sparsemax: "sparsemax"
        case .tanhShrink: "tanh_shrink"
        case .softShrink: "soft_shrink"
        case .hardShrink: "hard_shrink"
        case .hardTanh: "hard_tanh"
        case .logSigmoid: "log_sigmoid"
        }
    }
}

extension Activation {
    /// The axis a per-axis activation (softmax, log-softmax, sparsemax) runs along; nil for the
    /// elementwise ones.
    public var axis: Int? {
        switch self {
        case .softmax(let axis), .logSoftmax(let axis), .sparsemax(let axis): axis
        default: nil
        }
    }

    /// The same activation along another axis (elementwise ones are returned as they are).
    package func withAxis(_ axis: Int) -> Activation {
        switch self {
        case .softmax: .softmax(axis: axis)
        case .logSoftmax: .logSoftmax(axis: axis)
        case .sparsemax: .sparsemax(axis: axis)
        default: self
        }
    }
}
