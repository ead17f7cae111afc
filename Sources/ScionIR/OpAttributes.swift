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

/// A fully connected layer: `x @ kernel + bias`, kernel `[inputs, units]`.
public struct DenseAttributes: Equatable, Sendable {
    /// Number of outputs per sample (the kernel is `[inputs, units]`).
    public var units: Int
    /// Whether a `bias` parameter is added.
    public var useBias: Bool
    /// The activation fused after the op (`.linear` for none).
    public var activation: Activation
    /// Attributes with these values.
    public init(units: Int, useBias: Bool = true, activation: Activation = .linear) {
        self.units = units; self.useBias = useBias; self.activation = activation
    }
}

/// Convolution of rank 1, 2 or 3. Kernel `[k..., in/groups, filters]` channels-last,
/// `[filters, in/groups, k...]` channels-first.
public struct ConvAttributes: Equatable, Sendable {
    /// Number of output channels.
    public var filters: Int
    /// The window per spatial axis.
    public var kernelSize: [Int]
    /// Step per spatial axis.
    public var strides: [Int]
    /// Spacing between kernel taps per spatial axis (1: dense).
    public var dilations: [Int]
    /// How the input is padded.
    public var padding: Padding
    /// Number of groups the channels are split into (1: an ordinary convolution).
    public var groups: Int
    /// Whether a `bias` parameter is added.
    public var useBias: Bool
    /// The activation fused after the op (`.linear` for none).
    public var activation: Activation
    /// Where the channel axis is: channels-last from Keras, channels-first from ONNX or after the layout pass.
    public var layout: Layout
    /// Number of spatial axes: 1, 2 or 3.
    public var rank: Int { kernelSize.count }
    /// Attributes with these values.
    public init(filters: Int, kernelSize: [Int], strides: [Int], dilations: [Int], padding: Padding,
                groups: Int = 1, useBias: Bool = true, activation: Activation = .linear, layout: Layout) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides
        self.dilations = dilations; self.padding = padding; self.groups = groups
        self.useBias = useBias; self.activation = activation; self.layout = layout
    }
}

/// Depthwise convolution; kernel `[k..., in, depthMultiplier]` channels-last.
public struct DepthwiseConvAttributes: Equatable, Sendable {
    /// The window per spatial axis.
    public var kernelSize: [Int]
    /// Step per spatial axis.
    public var strides: [Int]
    /// Spacing between kernel taps per spatial axis (1: dense).
    public var dilations: [Int]
    /// How the input is padded.
    public var padding: Padding
    /// Output channels per input channel.
    public var depthMultiplier: Int
    /// Whether a `bias` parameter is added.
    public var useBias: Bool
    /// The activation fused after the op (`.linear` for none).
    public var activation: Activation
    /// Where the channel axis is: channels-last from Keras, channels-first from ONNX or after the layout pass.
    public var layout: Layout
    /// Number of spatial axes: 1, 2 or 3.
    public var rank: Int { kernelSize.count }
    /// Attributes with these values.
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
    /// Number of output channels.
    public var filters: Int
    /// The depthwise step: window, strides, dilations, padding, multiplier, bias, activation.
    public var depthwise: DepthwiseConvAttributes
    /// Number of spatial axes: 1, 2 or 3.
    public var rank: Int { depthwise.rank }
    /// Attributes with these values.
    public init(filters: Int, depthwise: DepthwiseConvAttributes) {
        self.filters = filters; self.depthwise = depthwise
    }
}

/// Transposed convolution; Keras kernel `[k..., filters, in]`.
public struct ConvTransposeAttributes: Equatable, Sendable {
    /// Number of output channels.
    public var filters: Int
    /// The window per spatial axis.
    public var kernelSize: [Int]
    /// Step per spatial axis.
    public var strides: [Int]
    /// Spacing between kernel taps per spatial axis (1: dense).
    public var dilations: [Int]
    /// How the input is padded.
    public var padding: Padding
    /// Extra size added at the end of each spatial axis of the output; nil for none.
    public var outputPadding: [Int]?
    /// Whether a `bias` parameter is added.
    public var useBias: Bool
    /// The activation fused after the op (`.linear` for none).
    public var activation: Activation
    /// Where the channel axis is: channels-last from Keras, channels-first from ONNX or after the layout pass.
    public var layout: Layout
    /// ONNX ConvTranspose's `group`: channels-first kernel `[in, filters/groups, k...]`. Keras: 1.
    public var groups: Int
    /// Number of spatial axes: 1, 2 or 3.
    public var rank: Int { kernelSize.count }
    /// Attributes with these values.
    public init(filters: Int, kernelSize: [Int], strides: [Int], dilations: [Int], padding: Padding,
                outputPadding: [Int]?, useBias: Bool, activation: Activation, layout: Layout, groups: Int = 1) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides
        self.dilations = dilations; self.padding = padding; self.outputPadding = outputPadding
        self.useBias = useBias; self.activation = activation; self.layout = layout; self.groups = groups
    }
}

/// Max or average pooling.
public enum PoolKind: String, Equatable, Sendable { case max, average }

/// Max or average pooling over a window.
public struct PoolAttributes: Equatable, Sendable {
    /// Max or average pooling.
    public var kind: PoolKind
    /// The window per spatial axis.
    public var poolSize: [Int]
    /// Step per spatial axis.
    public var strides: [Int]
    /// How the input is padded.
    public var padding: Padding
    /// Average pooling: whether padded cells count in the divisor (Keras: no).
    public var countIncludePad: Bool
    /// Whether the output size rounds up instead of down (ONNX `ceil_mode`).
    public var ceilMode: Bool
    /// Where the channel axis is: channels-last from Keras, channels-first from ONNX or after the layout pass.
    public var layout: Layout
    /// Spacing of the window's cells per spatial axis (ONNX MaxPool's `dilations`; Keras pools have none).
    public var dilations: [Int]
    /// Number of spatial axes: 1, 2 or 3.
    public var rank: Int { poolSize.count }
    /// Whether the window's cells are adjacent (every dilation 1).
    public var isDense: Bool { dilations.allSatisfy { $0 == 1 } }
    /// Attributes with these values; no `dilations` means adjacent cells.
    public init(kind: PoolKind, poolSize: [Int], strides: [Int], padding: Padding,
                countIncludePad: Bool = false, ceilMode: Bool = false, layout: Layout, dilations: [Int]? = nil) {
        self.kind = kind; self.poolSize = poolSize; self.strides = strides; self.padding = padding
        self.countIncludePad = countIncludePad; self.ceilMode = ceilMode; self.layout = layout
        self.dilations = dilations ?? poolSize.map { _ in 1 }
    }
}

/// Max or average over every spatial position.
public struct GlobalPoolAttributes: Equatable, Sendable {
    /// Max or average pooling.
    public var kind: PoolKind
    /// Number of spatial axes pooled: 1, 2 or 3.
    public var rank: Int
    /// Whether reduced axes stay, with size 1.
    public var keepDimensions: Bool
    /// Where the channel axis is: channels-last from Keras, channels-first from ONNX or after the layout pass.
    public var layout: Layout
    /// Keras's mask (GlobalAveragePooling1D reading `Embedding(mask_zero=True)` or `Masking`): the
    /// node's second input is the mask source `[batch, time, ...]`, always in its original order
    /// (the layout pass leaves it), and a step counts where some value of the source at that step
    /// differs from `maskValue`. The average is over counted steps only; a row with none is 0/0
    /// (NaN), as in Keras. Nil without a mask.
    public var maskValue: Float? = nil
    /// Attributes with these values.
    public init(kind: PoolKind, rank: Int, keepDimensions: Bool = false, layout: Layout, maskValue: Float? = nil) {
        self.kind = kind; self.rank = rank; self.keepDimensions = keepDimensions; self.layout = layout
        self.maskValue = maskValue
    }
}

/// Parameters, each `[channels]`, in this order when present: `gamma`, `beta`, `moving_mean`,
/// `moving_variance` (the moving statistics are never trainable).
public struct BatchNormalizationAttributes: Equatable, Sendable {
    /// The channel axis, which keeps its own statistics (Keras's `axis`; 1 after the layout pass).
    public var axis: Int
    /// Added to the variance before its square root.
    public var epsilon: Float
    /// Weight of the old moving statistics in each training update (Keras's `momentum`).
    public var momentum: Float
    /// Whether a `beta` offset is learned.
    public var center: Bool
    /// Whether a `gamma` factor is learned.
    public var scale: Bool
    /// Attributes with these values.
    public init(axis: Int, epsilon: Float, momentum: Float, center: Bool, scale: Bool) {
        self.axis = axis; self.epsilon = epsilon; self.momentum = momentum; self.center = center; self.scale = scale
    }
}

/// Normalization over `axes` per sample; parameters `gamma` and `beta` when present.
public struct LayerNormalizationAttributes: Equatable, Sendable {
    /// The axes normalized together.
    public var axes: [Int]
    /// Added to the variance before its square root.
    public var epsilon: Float
    /// Whether a `beta` offset is learned.
    public var center: Bool
    /// Whether a `gamma` factor is learned.
    public var scale: Bool
    /// Attributes with these values.
    public init(axes: [Int], epsilon: Float, center: Bool, scale: Bool) {
        self.axes = axes; self.epsilon = epsilon; self.center = center; self.scale = scale
    }
}

/// Parametric ReLU: a learned slope (`alpha` parameter) for negative inputs.
public struct PReLUAttributes: Equatable, Sendable {
    /// Axes (1-based, batch excluded, as Keras counts) along which one slope is shared.
    public var sharedAxes: [Int]
    /// Attributes with these values.
    public init(sharedAxes: [Int]) { self.sharedAxes = sharedAxes }
}

/// Dropout (and stochastic depth): identity at inference.
public struct DropoutAttributes: Equatable, Sendable {
    /// Fraction of values dropped while training.
    public var rate: Float
    /// Drops whole feature maps (SpatialDropout) instead of single elements.
    public var spatial: Bool
    /// Attributes with these values.
    public init(rate: Float, spatial: Bool = false) { self.rate = rate; self.spatial = spatial }
}

/// Collapses the input to two dimensions: the axes before `axis`, and the rest.
public struct FlattenAttributes: Equatable, Sendable {
    /// Keras flattens channels-last data in NHWC order; an ONNX Flatten works on NCHW.
    public var layout: Layout
    /// Axes before `axis` form the first output dimension, the rest the second (ONNX Flatten). Keras
    /// always flattens at 1: everything but the batch.
    public var axis: Int
    /// Attributes with these values.
    public init(layout: Layout, axis: Int = 1) { self.layout = layout; self.axis = axis }
}

/// A new shape for the same elements.
public struct ReshapeAttributes: Equatable, Sendable {
    /// Target shape without the batch dimension (Keras); one entry may be -1. With `includesBatch`
    /// (ONNX Reshape) the whole shape, where 0 copies the input's dimension unless `allowZero`.
    public var targetShape: [Int]
    /// ONNX's Reshape names every dimension, the batch included.
    public var includesBatch: Bool
    /// ONNX `allowzero=1`: a 0 means an empty dimension rather than "copy the input's".
    public var allowZero: Bool
    /// Attributes with these values.
    public init(targetShape: [Int], includesBatch: Bool = false, allowZero: Bool = false) {
        self.targetShape = targetShape; self.includesBatch = includesBatch; self.allowZero = allowZero
    }
}

/// Keras's Permute: reorders the axes after the batch.
public struct PermuteAttributes: Equatable, Sendable {
    /// Permutation of the non-batch axes, 1-based as Keras writes it (`(2, 1)` swaps the two).
    public var dimensions: [Int]
    /// Attributes with these values.
    public init(dimensions: [Int]) { self.dimensions = dimensions }
}

/// Padding or cropping per spatial axis: `(before, after)` pairs, in spatial order.
public struct SpatialPaddingAttributes: Equatable, Sendable {
    /// `[before, after]` per spatial axis, in spatial order.
    public var padding: [[Int]]
    /// Where the channel axis is: channels-last from Keras, channels-first from ONNX or after the layout pass.
    public var layout: Layout
    /// Attributes with these values.
    public init(padding: [[Int]], layout: Layout) { self.padding = padding; self.layout = layout }
}

/// Repeats each spatial position `size` times per axis.
public struct UpSamplingAttributes: Equatable, Sendable {
    /// The factor per spatial axis.
    public var size: [Int]
    /// `nearest` or `bilinear`, as Keras names them.
    public var interpolation: String
    /// Where the channel axis is: channels-last from Keras, channels-first from ONNX or after the layout pass.
    public var layout: Layout
    /// Attributes with these values.
    public init(size: [Int], interpolation: String, layout: Layout) {
        self.size = size; self.interpolation = interpolation; self.layout = layout
    }
}

/// How an elementwise node combines its inputs (Keras merge layers, ONNX binary ops).
public enum ElementwiseOperation: String, Equatable, Sendable {
    case add, subtract, multiply, average, maximum, minimum
    /// ONNX Div and Pow (two inputs, numpy broadcasting).
    case divide, power

    /// The name in tables (`Add`, `Multiply`...).
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

/// Joins the inputs along one axis.
public struct ConcatenateAttributes: Equatable, Sendable {
    /// The axis the inputs are joined along (negative counts from the end).
    public var axis: Int
    /// Attributes with these values.
    public init(axis: Int) { self.axis = axis }
}

/// `x * scale + offset`.
public struct RescalingAttributes: Equatable, Sendable {
    /// One value, or one per channel along `axis`.
    public var scale: [Float]
    /// One value, or one per channel along `axis`.
    public var offset: [Float]
    /// The axis per-channel values run along: -1 (Keras), 1 after a channels-first layout pass.
    public var axis: Int
    /// Attributes with these values.
    public init(scale: [Float], offset: [Float], axis: Int = -1) {
        self.scale = scale; self.offset = offset; self.axis = axis
    }
}

/// ConvNeXt's LayerScale: `x * gamma`, gamma a learned parameter along `axis`.
public struct LayerScaleAttributes: Equatable, Sendable {
    /// The axis `gamma` runs along: -1 (Keras), 1 after a channels-first layout pass.
    public var axis: Int
    /// Attributes with these values.
    public init(axis: Int = -1) { self.axis = axis }
}

/// Reorders every axis, the batch included.
public struct TransposeAttributes: Equatable, Sendable {
    /// Output axis `i` is input axis `permutation[i]` (the batch axis included).
    public var permutation: [Int]
    /// Attributes with these values.
    public init(permutation: [Int]) { self.permutation = permutation }
}

/// Keras's Normalization: `(x - mean) / sqrt(variance)`.
public struct NormalizationAttributes: Equatable, Sendable {
    /// Axes that keep their own statistics (Keras default: the last).
    public var axes: [Int]
    /// Keras's `invert=True` undoes the normalization.
    public var invert: Bool
    /// Statistics given in the layer's config (`Normalization(mean=..., variance=...)`); when nil they
    /// are the `mean` and `variance` parameters (an adapted layer).
    public var mean: [Float]?
    /// The variance given in the config (with `mean`); nil when held as a parameter.
    public var variance: [Float]?
    /// Attributes with these values.
    public init(axes: [Int], invert: Bool = false, mean: [Float]? = nil, variance: [Float]? = nil) {
        self.axes = axes; self.invert = invert; self.mean = mean; self.variance = variance
    }
}

/// Looks up rows of the `embeddings` parameter, `[inputDimension, outputDimension]`, by index.
public struct EmbeddingAttributes: Equatable, Sendable {
    /// Size of the vocabulary: indices run from 0 to `inputDimension - 1`.
    public var inputDimension: Int
    /// Length of each embedding vector.
    public var outputDimension: Int
    /// Keras's `mask_zero`: index 0 means padding, and the recurrent layers after it skip those
    /// steps (`RecurrentAttributes.maskValue`). The embedding's values themselves do not change.
    public var maskZero: Bool = false
    /// Attributes with these values.
    public init(inputDimension: Int, outputDimension: Int) {
        self.inputDimension = inputDimension; self.outputDimension = outputDimension
    }
}

/// Inception-ResNet's residual: `inputs[0] + scale * inputs[1]`.
public struct ScaledResidualAttributes: Equatable, Sendable {
    /// The factor on the residual branch: `inputs[0] + scale * inputs[1]`.
    public var scale: Float
    /// Attributes with these values.
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
    /// Where Keras finds a class that is not one of its own: the `module` and `registered_name` a
    /// `.keras` config gives (`nil` and `"my_package>ScaleBy"` for a class registered with
    /// `register_keras_serializable`), or `Package>Name` from a `.h5` config's `class_name`. Written
    /// back as read, so Keras finds the user's class again instead of looking for `keras.layers.ScaleBy`.
    public var registration: KerasRegistration?
    /// Whether Keras calls the layer with its inputs as one list (`Lambda(...)([a, b])`) rather than as
    /// separate arguments: the layer's own code decides which it reads, so the writer must repeat it.
    public var takesList: Bool
    /// What the reader could not read in it, when it knows (a `keras.ops` call with arguments it
    /// does not interpret): the refusals of `run` and the writers repeat it.
    public var unreadReason: String?
    /// Attributes with these values.
    public init(domain: String, type: String, configuration: String, outputShapes: [Shape?]? = nil,
                registration: KerasRegistration? = nil, takesList: Bool = false, unreadReason: String? = nil) {
        self.domain = domain; self.type = type; self.configuration = configuration; self.outputShapes = outputShapes
        self.registration = registration; self.takesList = takesList; self.unreadReason = unreadReason
    }
}

extension OpaqueAttributes {
    /// Why Scion cannot compute this op, for the one-line refusals of `run`, `finetune` and the ONNX
    /// writer: a user's class or a Lambda is Python code the file does not hold (or holds only as
    /// bytecode), anything else is a layer or op Scion does not interpret yet.
    public var uninterpretedReason: String {
        if let registration, domain == "keras" {
            let named = registration.registeredName ?? [registration.module, type].compactMap { $0 }.joined(separator: ".")
            return "'\(type)' is a custom layer class (\(named)): its computation is Python code the file does not hold"
        }
        if domain == "keras" && type == "Lambda" {
            return "a Lambda layer's computation is Python bytecode, which Scion does not run"
        }
        if domain == "keras" {
            return "Keras layer type '\(type)' \(unreadReason ?? "is not interpreted by Scion yet")"
        }
        if domain == "keras.ops" {
            return "keras.ops operation \(type) \(unreadReason ?? "is not interpreted by Scion yet")"
        }
        return "\(domain.isEmpty ? "ONNX" : domain) op '\(type)' \(unreadReason ?? "is not interpreted by Scion yet")"
    }
}

/// How a Keras config names a class Keras does not ship: its module (nil when the class was
/// registered by name) and its registered name (`package>Name`).
public struct KerasRegistration: Equatable, Sendable {
    public var module: String?
    public var registeredName: String?
    /// A registration with these names.
    public init(module: String?, registeredName: String?) {
        self.module = module; self.registeredName = registeredName
    }
}
