/// Attributes of the ops ONNX files bring that no Keras layer matches exactly. Each mirrors the ONNX
/// operator's meaning at opset 13+ (the importer converts older forms), so the ONNX writer can emit
/// them without guessing.

/// The element type a `.constant` node produces (its parameter's type; shape inference sees only
/// parameter shapes).
public struct ConstantAttributes: Equatable, Sendable {
    /// Element type of the constant.
    public var dtype: DType
    /// Attributes with these values.
    public init(dtype: DType) { self.dtype = dtype }
}

/// ONNX Gemm: `alpha * op(A) @ op(B) + beta * C`.
public struct GemmAttributes: Equatable, Sendable {
    /// Factor on the product.
    public var alpha: Float
    /// Factor on C.
    public var beta: Float
    /// Whether A is transposed before the product.
    public var transposeA: Bool
    /// Whether B is transposed before the product.
    public var transposeB: Bool
    /// Attributes with these values.
    public init(alpha: Float = 1, beta: Float = 1, transposeA: Bool = false, transposeB: Bool = false) {
        self.alpha = alpha; self.beta = beta; self.transposeA = transposeA; self.transposeB = transposeB
    }
}

/// One-input elementwise math with no activation counterpart.
public enum UnaryOperation: String, Equatable, Sendable, CaseIterable {
    case negate, absolute, squareRoot, reciprocal, logarithm, errorFunction, floor, ceil, round, sign, not
    case sine, cosine
    case tangent, arcsine, arccosine, arctangent
    case hyperbolicSine, hyperbolicCosine, inverseHyperbolicSine, inverseHyperbolicCosine, inverseHyperbolicTangent

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
        case .tangent: "Tan"
        case .arcsine: "Asin"
        case .arccosine: "Acos"
        case .arctangent: "Atan"
        case .hyperbolicSine: "Sinh"
        case .hyperbolicCosine: "Cosh"
        case .inverseHyperbolicSine: "Asinh"
        case .inverseHyperbolicCosine: "Acosh"
        case .inverseHyperbolicTangent: "Atanh"
        }
    }
}

/// A comparison or logical operation; the result is bool.
public enum ComparisonOperation: String, Equatable, Sendable, CaseIterable {
    case equal, greater, greaterOrEqual, less, lessOrEqual, and, or, xor

    /// The ONNX op type, also the name in tables.
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

/// How a reduction combines the values along its axes (ONNX Reduce*).
public enum ReduceKind: String, Equatable, Sendable, CaseIterable {
    case mean, sum, maximum, minimum, product, l1, l2, logSumExp, sumSquare

    /// The ONNX op type, also the name in tables.
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

/// A reduction over some axes.
public struct ReduceAttributes: Equatable, Sendable {
    /// The reduction.
    public var kind: ReduceKind
    /// nil reduces every axis (ONNX's default when no axes are given).
    public var axes: [Int]?
    /// Whether reduced axes stay, with size 1.
    public var keepDimensions: Bool
    /// Attributes with these values.
    public init(kind: ReduceKind, axes: [Int]?, keepDimensions: Bool) {
        self.kind = kind; self.axes = axes; self.keepDimensions = keepDimensions
    }
}

/// ONNX Gather: picks slices along `axis` by index.
public struct GatherAttributes: Equatable, Sendable {
    /// The axis indexed.
    public var axis: Int
    /// Attributes with these values.
    public init(axis: Int) { self.axis = axis }
}

/// Converts the input to another element type.
public struct CastAttributes: Equatable, Sendable {
    /// The element type the input is converted to.
    public var to: DType
    /// Attributes with these values.
    public init(to: DType) { self.to = to }
}

/// Axes of Squeeze or Unsqueeze, resolved at import (never empty for Squeeze: "all size-1 axes" is
/// turned into the list).
public struct AxesAttributes: Equatable, Sendable {
    /// The axes removed (Squeeze) or inserted (Unsqueeze), non-negative.
    public var axes: [Int]
    /// Attributes with these values.
    public init(axes: [Int]) { self.axes = axes }
}

/// ONNX Slice with constant bounds; ends past the dimension are clamped as ONNX does.
public struct SliceAttributes: Equatable, Sendable {
    /// First index taken, per axis in `axes` (negative counts from the end).
    public var starts: [Int]
    /// Index the slice stops before, per axis in `axes`.
    public var ends: [Int]
    /// The axes sliced, one per entry of `starts`, `ends` and `steps`.
    public var axes: [Int]
    /// Step per axis in `axes` (negative walks backwards).
    public var steps: [Int]
    /// Attributes with these values.
    public init(starts: [Int], ends: [Int], axes: [Int], steps: [Int]) {
        self.starts = starts; self.ends = ends; self.axes = axes; self.steps = steps
    }
}

/// Splits one input into consecutive parts along `axis`: of given lengths, or `parts` equal ones
/// when the axis's length is known only at run time (ONNX's `num_outputs`, torch's `chunk` on a
/// dynamic shape).
public struct SplitAttributes: Equatable, Sendable {
    /// The axis split.
    public var axis: Int
    /// Length of each output along `axis`; empty when the parts are equal and sized at run time.
    public var sizes: [Int]
    /// Number of outputs.
    public var parts: Int
    /// Parts of these lengths.
    public init(axis: Int, sizes: [Int]) { self.axis = axis; self.sizes = sizes; parts = sizes.count }
    /// `parts` equal parts of a length known at run time.
    public init(axis: Int, equalParts parts: Int) { self.axis = axis; sizes = []; self.parts = parts }

    /// The lengths of the parts of an axis of `length`: `sizes` when given, else ONNX's rule for
    /// `num_outputs`: each part `ceil(length / parts)` long, the last what remains.
    public func sizes(alongLength length: Int) -> [Int] {
        guard sizes.isEmpty, parts > 0 else { return sizes }
        let chunk = (length + parts - 1) / parts
        return (0..<parts).map { Swift.min(chunk, Swift.max(length - $0 * chunk, 0)) }
    }
}

/// What fills the padding of an ONNX Pad: a constant, a reflection, the edge value, or wrap-around.
public enum PadMode: String, Equatable, Sendable { case constant, reflect, edge, wrap }

/// ONNX Pad: all begins, then all ends, one per axis (batch and channels included); negative pads crop.
public struct PadAttributes: Equatable, Sendable {
    /// Begins of every axis, then ends; negative values crop.
    public var pads: [Int]
    /// What fills the padding: a constant, a reflection, the edge value, or wrap-around.
    public var mode: PadMode
    /// The fill value for `constant` mode.
    public var value: Float
    /// Attributes with these values.
    public init(pads: [Int], mode: PadMode, value: Float = 0) { self.pads = pads; self.mode = mode; self.value = value }
}

/// Limits every value to `[minimum, maximum]`.
public struct ClipAttributes: Equatable, Sendable {
    /// Lower bound; nil for none.
    public var minimum: Float?
    /// Upper bound; nil for none.
    public var maximum: Float?
    /// Attributes with these values.
    public init(minimum: Float?, maximum: Float?) { self.minimum = minimum; self.maximum = maximum }
}

/// ONNX Resize (opset 13 form) with constant scales or sizes over every axis.
public struct ResizeAttributes: Equatable, Sendable {
    /// `nearest`, `linear` or `cubic`.
    public var mode: String
    /// ONNX `coordinate_transformation_mode` (`half_pixel`, `asymmetric`, `align_corners`...).
    public var coordinateTransformation: String
    /// ONNX `nearest_mode`: how `nearest` rounds (`round_prefer_floor`, `floor`...).
    public var nearestMode: String
    /// ONNX `cubic_coeff_a`, for `cubic` mode.
    public var cubicCoefficient: Float
    /// ONNX `exclude_outside`: weights of samples outside the input are set to 0.
    public var excludeOutside: Bool
    /// ONNX `extrapolation_value`, for `tf_crop_and_resize`.
    public var extrapolationValue: Float
    /// One factor per axis, or nil when `sizes` is given.
    public var scales: [Float]?
    /// The output size per axis, or nil when `scales` is given.
    public var sizes: [Int]?
    /// Attributes with these values.
    public init(mode: String, coordinateTransformation: String, nearestMode: String, cubicCoefficient: Float = -0.75,
                excludeOutside: Bool = false, extrapolationValue: Float = 0, scales: [Float]?, sizes: [Int]?) {
        self.mode = mode; self.coordinateTransformation = coordinateTransformation; self.nearestMode = nearestMode
        self.cubicCoefficient = cubicCoefficient; self.excludeOutside = excludeOutside
        self.extrapolationValue = extrapolationValue; self.scales = scales; self.sizes = sizes
    }
}

/// Local response normalization across channels (AlexNet, GoogLeNet), channels-first.
public struct LocalResponseNormalizationAttributes: Equatable, Sendable {
    /// Number of neighbouring channels summed over.
    public var size: Int
    /// Factor on the sum of squares.
    public var alpha: Float
    /// Exponent of the denominator.
    public var beta: Float
    /// Added to the scaled sum of squares before the power.
    public var bias: Float
    /// Attributes with these values.
    public init(size: Int, alpha: Float, beta: Float, bias: Float) {
        self.size = size; self.alpha = alpha; self.beta = beta; self.bias = bias
    }
}

/// Softmax of ONNX before opset 13: over all axes from `axis` on, as one flattened axis.
public struct CoercedSoftmaxAttributes: Equatable, Sendable {
    /// Axes from here on are flattened into one before the softmax.
    public var axis: Int
    /// LogSoftmax rather than Softmax.
    public var logarithm: Bool
    /// Attributes with these values.
    public init(axis: Int, logarithm: Bool) { self.axis = axis; self.logarithm = logarithm }
}

/// ONNX Shape: the input's lengths from `start` to `end` (negative counts from the end; clamped), as
/// int64. What exporters compute a shape from when a length is only known at run time (the batch).
public struct ShapeOfAttributes: Equatable, Sendable {
    /// First axis reported.
    public var start: Int
    /// One past the last axis reported; nil for the last axis.
    public var end: Int?
    /// Attributes with these values.
    public init(start: Int = 0, end: Int? = nil) { self.start = start; self.end = end }

    /// The axes reported for an input of `rank`, clamped as ONNX clamps them.
    public func range(rank: Int) -> Range<Int> {
        func clamp(_ value: Int) -> Int { min(max(value < 0 ? value + rank : value, 0), rank) }
        let lower = clamp(start), upper = clamp(end ?? rank)
        return lower..<max(lower, upper)
    }
}

/// ONNX Reshape whose target is computed at run time (its second input): 0 copies the input's length
/// unless `allowZero`, one -1 is inferred.
public struct ComputedReshapeAttributes: Equatable, Sendable {
    /// ONNX `allowzero=1`: a 0 is an empty dimension rather than "copy the input's".
    public var allowZero: Bool
    /// Attributes with these values.
    public init(allowZero: Bool = false) { self.allowZero = allowZero }
}

/// A normalization whose statistics or scale arrive as inputs computed at run time (tf2onnx spells
/// LayerNormalization as a BatchNormalization of computed moments; an InstanceNormalization may
/// take a computed scale), rather than as weights.
public struct ComputedNormalizationAttributes: Equatable, Sendable {
    /// Added to the variance before its square root.
    public var epsilon: Float
    /// Attributes with this epsilon.
    public init(epsilon: Float) { self.epsilon = epsilon }
}
