/// Attributes of the ops ONNX files bring that no Keras layer matches exactly. Each mirrors the ONNX
/// operator's meaning at opset 13+ (the importer converts older forms), so the ONNX writer can emit
/// them without guessing.

/// The element type a `.constant` node produces (its parameter's type; shape inference sees only
/// parameter shapes).
public struct ConstantAttributes: Equatable, Sendable {
    public var dtype: DType
    public init(dtype: DType) { self.dtype = dtype }
}

public struct GemmAttributes: Equatable, Sendable {
    public var alpha: Float
    public var beta: Float
    public var transposeA: Bool
    public var transposeB: Bool
    public init(alpha: Float = 1, beta: Float = 1, transposeA: Bool = false, transposeB: Bool = false) {
        self.alpha = alpha; self.beta = beta; self.transposeA = transposeA; self.transposeB = transposeB
    }
}

/// One-input elementwise math with no activation counterpart.
public enum UnaryOperation: String, Equatable, Sendable, CaseIterable {
    case negate, absolute, squareRoot, reciprocal, logarithm, errorFunction, floor, ceil, round, sign, not
    case sine, cosine

    /// The ONNX op type, also the name in tables.
    public var typeName: String {
        switch self {
        case .negate: "Neg"
        case .absolute: "Abs"
        case .squareRoot: "Sqrt"
        case .reciprocal: "Reciprocal"
        case .logarithm: "Log"
        case .errorFunction: "Erf"
        case .floor: "Floor"
        case .ceil: "Ceil"
        case .round: "Round"
        case .sign: "Sign"
        case .not: "Not"
        case .sine: "Sin"
        case .cosine: "Cos"
        }
    }
}

public enum ComparisonOperation: String, Equatable, Sendable, CaseIterable {
    case equal, greater, greaterOrEqual, less, lessOrEqual, and, or, xor

    public var typeName: String {
        switch self {
        case .equal: "Equal"
        case .greater: "Greater"
        case .greaterOrEqual: "GreaterOrEqual"
        case .less: "Less"
        case .lessOrEqual: "LessOrEqual"
        case .and: "And"
        case .or: "Or"
        case .xor: "Xor"
        }
    }
}

public enum ReduceKind: String, Equatable, Sendable, CaseIterable {
    case mean, sum, maximum, minimum, product, l1, l2, logSumExp, sumSquare

    public var typeName: String {
        switch self {
        case .mean: "ReduceMean"
        case .sum: "ReduceSum"
        case .maximum: "ReduceMax"
        case .minimum: "ReduceMin"
        case .product: "ReduceProd"
        case .l1: "ReduceL1"
        case .l2: "ReduceL2"
        case .logSumExp: "ReduceLogSumExp"
        case .sumSquare: "ReduceSumSquare"
        }
    }
}

public struct ReduceAttributes: Equatable, Sendable {
    public var kind: ReduceKind
    /// nil reduces every axis (ONNX's default when no axes are given).
    public var axes: [Int]?
    public var keepDimensions: Bool
    public init(kind: ReduceKind, axes: [Int]?, keepDimensions: Bool) {
        self.kind = kind; self.axes = axes; self.keepDimensions = keepDimensions
    }
}

public struct GatherAttributes: Equatable, Sendable {
    public var axis: Int
    public init(axis: Int) { self.axis = axis }
}

public struct CastAttributes: Equatable, Sendable {
    public var to: DType
    public init(to: DType) { self.to = to }
}

/// Axes of Squeeze or Unsqueeze, resolved at import (never empty for Squeeze: "all size-1 axes" is
/// turned into the list).
public struct AxesAttributes: Equatable, Sendable {
    public var axes: [Int]
    public init(axes: [Int]) { self.axes = axes }
}

/// ONNX Slice with constant bounds; ends past the dimension are clamped as ONNX does.
public struct SliceAttributes: Equatable, Sendable {
    public var starts: [Int]
    public var ends: [Int]
    public var axes: [Int]
    public var steps: [Int]
    public init(starts: [Int], ends: [Int], axes: [Int], steps: [Int]) {
        self.starts = starts; self.ends = ends; self.axes = axes; self.steps = steps
    }
}

public struct SplitAttributes: Equatable, Sendable {
    public var axis: Int
    /// Length of each output along `axis`.
    public var sizes: [Int]
    public init(axis: Int, sizes: [Int]) { self.axis = axis; self.sizes = sizes }
}

public enum PadMode: String, Equatable, Sendable { case constant, reflect, edge, wrap }

/// ONNX Pad: all begins, then all ends, one per axis (batch and channels included); negative pads crop.
public struct PadAttributes: Equatable, Sendable {
    public var pads: [Int]
    public var mode: PadMode
    public var value: Float
    public init(pads: [Int], mode: PadMode, value: Float = 0) { self.pads = pads; self.mode = mode; self.value = value }
}

public struct ClipAttributes: Equatable, Sendable {
    public var minimum: Float?
    public var maximum: Float?
    public init(minimum: Float?, maximum: Float?) { self.minimum = minimum; self.maximum = maximum }
}

/// ONNX Resize (opset 13 form) with constant scales or sizes over every axis.
public struct ResizeAttributes: Equatable, Sendable {
    /// `nearest`, `linear` or `cubic`.
    public var mode: String
    public var coordinateTransformation: String
    public var nearestMode: String
    public var cubicCoefficient: Float
    public var excludeOutside: Bool
    public var extrapolationValue: Float
    /// One factor per axis, or nil when `sizes` is given.
    public var scales: [Float]?
    public var sizes: [Int]?
    public init(mode: String, coordinateTransformation: String, nearestMode: String, cubicCoefficient: Float = -0.75,
                excludeOutside: Bool = false, extrapolationValue: Float = 0, scales: [Float]?, sizes: [Int]?) {
        self.mode = mode; self.coordinateTransformation = coordinateTransformation; self.nearestMode = nearestMode
        self.cubicCoefficient = cubicCoefficient; self.excludeOutside = excludeOutside
        self.extrapolationValue = extrapolationValue; self.scales = scales; self.sizes = sizes
    }
}

/// Local response normalization across channels (AlexNet, GoogLeNet), channels-first.
public struct LocalResponseNormalizationAttributes: Equatable, Sendable {
    public var size: Int
    public var alpha: Float
    public var beta: Float
    public var bias: Float
    public init(size: Int, alpha: Float, beta: Float, bias: Float) {
        self.size = size; self.alpha = alpha; self.beta = beta; self.bias = bias
    }
}

public struct CoercedSoftmaxAttributes: Equatable, Sendable {
    /// Axes from here on are flattened into one before the softmax.
    public var axis: Int
    /// LogSoftmax rather than Softmax.
    public var logarithm: Bool
    public init(axis: Int, logarithm: Bool) { self.axis = axis; self.logarithm = logarithm }
}
