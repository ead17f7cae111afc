/// How a spatial op pads its input.
public enum Padding: Equatable, Hashable, Sendable {
    /// No padding.
    case valid
    /// Output size `ceil(input / stride)`, extra padding at the end (ONNX's SAME_UPPER).
    case same
    /// Keras Conv1D's causal padding: everything at the start.
    case causal
    /// Explicit pads, ONNX order: all begins, then all ends.
    case explicit([Int])
}

/// Where the channel axis of an image-like tensor is.
public enum Layout: String, Equatable, Hashable, Sendable, Codable {
    /// NHWC, kernels HWIO: Keras.
    case channelsLast
    /// NCHW, kernels OIHW: ONNX.
    case channelsFirst
}

public struct DenseAttributes: Equatable, Sendable {
    public var units: Int
    public var useBias: Bool
    public var activation: Activation
    public init(units: Int, useBias: Bool = true, activation: Activation = .linear) {
        self.units = units; self.useBias = useBias; self.activation = activation
    }
}

/// Convolution of rank 1, 2 or 3. Kernel `[k..., in/groups, filters]` channels-last,
/// `[filters, in/groups, k...]` channels-first.
public struct ConvAttributes: Equatable, Sendable {
    public var filters: Int
    public var kernelSize: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padding: Padding
    public var groups: Int
    public var useBias: Bool
    public var activation: Activation
    public var layout: Layout
    public var rank: Int { kernelSize.count }
    public init(filters: Int, kernelSize: [Int], strides: [Int], dilations: [Int], padding: Padding,
                groups: Int = 1, useBias: Bool = true, activation: Activation = .linear, layout: Layout) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides
        self.dilations = dilations; self.padding = padding; self.groups = groups
        self.useBias = useBias; self.activation = activation; self.layout = layout
    }
}

/// Depthwise convolution; kernel `[k..., in, depthMultiplier]` channels-last.
public struct DepthwiseConvAttributes: Equatable, Sendable {
    public var kernelSize: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padding: Padding
    public var depthMultiplier: Int
    public var useBias: Bool
    public var activation: Activation
    public var layout: Layout
    public var rank: Int { kernelSize.count }
    public init(kernelSize: [Int], strides: [Int], dilations: [Int], padding: Padding, depthMultiplier: Int,
                useBias: Bool, activation: Activation, layout: Layout) {
        self.kernelSize = kernelSize; self.strides = strides; self.dilations = dilations
        self.padding = padding; self.depthMultiplier = depthMultiplier; self.useBias = useBias
        self.activation = activation; self.layout = layout
    }
}

/// Depthwise then pointwise convolution (Keras SeparableConv): parameters
/// `depthwise_kernel [k..., in, multiplier]`, `pointwise_kernel [1..., in*multiplier, filters]`, `bias`.
public struct SeparableConvAttributes: Equatable, Sendable {
    public var filters: Int
    public var depthwise: DepthwiseConvAttributes
    public var rank: Int { depthwise.rank }
    public init(filters: Int, depthwise: DepthwiseConvAttributes) {
        self.filters = filters; self.depthwise = depthwise
    }
}

/// Transposed convolution; Keras kernel `[k..., filters, in]`.
public struct ConvTransposeAttributes: Equatable, Sendable {
    public var filters: Int
    public var kernelSize: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padding: Padding
    public var outputPadding: [Int]?
    public var useBias: Bool
    public var activation: Activation
    public var layout: Layout
    /// ONNX ConvTranspose's `group`: channels-first kernel `[in, filters/groups, k...]`. Keras: 1.
    public var groups: Int
    public var rank: Int { kernelSize.count }
    public init(filters: Int, kernelSize: [Int], strides: [Int], dilations: [Int], padding: Padding,
                outputPadding: [Int]?, useBias: Bool, activation: Activation, layout: Layout, groups: Int = 1) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides
        self.dilations = dilations; self.padding = padding; self.outputPadding = outputPadding
        self.useBias = useBias; self.activation = activation; self.layout = layout; self.groups = groups
    }
}

public enum PoolKind: String, Equatable, Sendable { case max, average }

public struct PoolAttributes: Equatable, Sendable {
    public var kind: PoolKind
    public var poolSize: [Int]
    public var strides: [Int]
    public var padding: Padding
    /// Average pooling: whether padded cells count in the divisor (Keras: no).
    public var countIncludePad: Bool
    public var ceilMode: Bool
    public var layout: Layout
    public var rank: Int { poolSize.count }
    public init(kind: PoolKind, poolSize: [Int], strides: [Int], padding: Padding,
                countIncludePad: Bool = false, ceilMode: Bool = false, layout: Layout) {
        self.kind = kind; self.poolSize = poolSize; self.strides = strides; self.padding = padding
        self.countIncludePad = countIncludePad; self.ceilMode = ceilMode; self.layout = layout
    }
}

public struct GlobalPoolAttributes: Equatable, Sendable {
    public var kind: PoolKind
    public var rank: Int
    public var keepDimensions: Bool
    public var layout: Layout
    public init(kind: PoolKind, rank: Int, keepDimensions: Bool = false, layout: Layout) {
        self.kind = kind; self.rank = rank; self.keepDimensions = keepDimensions; self.layout = layout
    }
}

/// Parameters, each `[channels]`, in this order when present: `gamma`, `beta`, `moving_mean`,
/// `moving_variance` (the moving statistics are never trainable).
public struct BatchNormalizationAttributes: Equatable, Sendable {
    public var axis: Int
    public var epsilon: Float
    public var momentum: Float
    public var center: Bool
    public var scale: Bool
    public init(axis: Int, epsilon: Float, momentum: Float, center: Bool, scale: Bool) {
        self.axis = axis; self.epsilon = epsilon; self.momentum = momentum; self.center = center; self.scale = scale
    }
}

public struct LayerNormalizationAttributes: Equatable, Sendable {
    public var axes: [Int]
    public var epsilon: Float
    public var center: Bool
    public var scale: Bool
    public init(axes: [Int], epsilon: Float, center: Bool, scale: Bool) {
        self.axes = axes; self.epsilon = epsilon; self.center = center; self.scale = scale
    }
}

public struct PReLUAttributes: Equatable, Sendable {
    /// Axes (1-based, batch excluded, as Keras counts) along which one slope is shared.
    public var sharedAxes: [Int]
    public init(sharedAxes: [Int]) { self.sharedAxes = sharedAxes }
}

public struct DropoutAttributes: Equatable, Sendable {
    public var rate: Float
    /// Drops whole feature maps (SpatialDropout) instead of single elements.
    public var spatial: Bool
    public init(rate: Float, spatial: Bool = false) { self.rate = rate; self.spatial = spatial }
}

public struct FlattenAttributes: Equatable, Sendable {
    /// Keras flattens channels-last data in NHWC order; an ONNX Flatten works on NCHW.
    public var layout: Layout
    /// Axes before `axis` form the first output dimension, the rest the second (ONNX Flatten). Keras
    /// always flattens at 1: everything but the batch.
    public var axis: Int
    public init(layout: Layout, axis: Int = 1) { self.layout = layout; self.axis = axis }
}

public struct ReshapeAttributes: Equatable, Sendable {
    /// Target shape without the batch dimension (Keras); one entry may be -1. With `includesBatch`
    /// (ONNX Reshape) the whole shape, where 0 copies the input's dimension unless `allowZero`.
    public var targetShape: [Int]
    /// ONNX's Reshape names every dimension, the batch included.
    public var includesBatch: Bool
    /// ONNX `allowzero=1`: a 0 means an empty dimension rather than "copy the input's".
    public var allowZero: Bool
    public init(targetShape: [Int], includesBatch: Bool = false, allowZero: Bool = false) {
        self.targetShape = targetShape; self.includesBatch = includesBatch; self.allowZero = allowZero
    }
}

public struct PermuteAttributes: Equatable, Sendable {
    /// Permutation of the non-batch axes, 1-based as Keras writes it (`(2, 1)` swaps the two).
    public var dimensions: [Int]
    public init(dimensions: [Int]) { self.dimensions = dimensions }
}

/// Padding or cropping per spatial axis: `(before, after)` pairs, in spatial order.
public struct SpatialPaddingAttributes: Equatable, Sendable {
    public var padding: [[Int]]
    public var layout: Layout
    public init(padding: [[Int]], layout: Layout) { self.padding = padding; self.layout = layout }
}

public struct UpSamplingAttributes: Equatable, Sendable {
    public var size: [Int]
    public var interpolation: String
    public var layout: Layout
    public init(size: [Int], interpolation: String, layout: Layout) {
        self.size = size; self.interpolation = interpolation; self.layout = layout
    }
}

public enum ElementwiseOperation: String, Equatable, Sendable {
    case add, subtract, multiply, average, maximum, minimum
    /// ONNX Div and Pow (two inputs, numpy broadcasting).
    case divide, power

    public var typeName: String {
        switch self {
        case .add: "Add"
        case .subtract: "Subtract"
        case .multiply: "Multiply"
        case .average: "Average"
        case .maximum: "Maximum"
        case .minimum: "Minimum"
        case .divide: "Divide"
        case .power: "Power"
        }
    }
}

public struct ConcatenateAttributes: Equatable, Sendable {
    public var axis: Int
    public init(axis: Int) { self.axis = axis }
}

public struct RescalingAttributes: Equatable, Sendable {
    /// One value, or one per channel along `axis`.
    public var scale: [Float]
    public var offset: [Float]
    /// The axis per-channel values run along: -1 (Keras), 1 after a channels-first layout pass.
    public var axis: Int
    public init(scale: [Float], offset: [Float], axis: Int = -1) {
        self.scale = scale; self.offset = offset; self.axis = axis
    }
}

public struct LayerScaleAttributes: Equatable, Sendable {
    /// The axis `gamma` runs along: -1 (Keras), 1 after a channels-first layout pass.
    public var axis: Int
    public init(axis: Int = -1) { self.axis = axis }
}

public struct TransposeAttributes: Equatable, Sendable {
    public var permutation: [Int]
    public init(permutation: [Int]) { self.permutation = permutation }
}

public struct NormalizationAttributes: Equatable, Sendable {
    /// Axes that keep their own statistics (Keras default: the last).
    public var axes: [Int]
    /// Keras's `invert=True` undoes the normalization.
    public var invert: Bool
    /// Statistics given in the layer's config (`Normalization(mean=..., variance=...)`); when nil they
    /// are the `mean` and `variance` parameters (an adapted layer).
    public var mean: [Float]?
    public var variance: [Float]?
    public init(axes: [Int], invert: Bool = false, mean: [Float]? = nil, variance: [Float]? = nil) {
        self.axes = axes; self.invert = invert; self.mean = mean; self.variance = variance
    }
}

public struct EmbeddingAttributes: Equatable, Sendable {
    public var inputDimension: Int
    public var outputDimension: Int
    public init(inputDimension: Int, outputDimension: Int) {
        self.inputDimension = inputDimension; self.outputDimension = outputDimension
    }
}

public struct ScaledResidualAttributes: Equatable, Sendable {
    public var scale: Float
    public init(scale: Float) { self.scale = scale }
}

/// A layer or op Scion does not interpret: kept whole so it can be listed and written back.
public struct OpaqueAttributes: Equatable, Sendable {
    /// `keras` for Keras layers, the ONNX domain for ONNX nodes.
    public var domain: String
    /// The Keras class name or ONNX op type.
    public var type: String
    /// The original configuration, serialized (JSON for Keras).
    public var configuration: String
    /// Output shapes when the reader knows them (a Keras LSTM's from its `units` and
    /// `return_sequences`), so shape inference, cutting and writers see past the op; nil when unknown.
    public var outputShapes: [Shape?]?
    public init(domain: String, type: String, configuration: String, outputShapes: [Shape?]? = nil) {
        self.domain = domain; self.type = type; self.configuration = configuration; self.outputShapes = outputShapes
    }
}
