import ScionIR

/// Keras layer configurations to ops: the one table the reader (and later the writer) shares.
///
/// `op(className:config:)` returns nil for a layer it does not interpret; the reader keeps such a
/// layer as an opaque node with its weights. Config keys follow Keras 2 and Keras 3 alike.
struct KerasLayerTable {
    /// 2 for tf.keras / tf_keras files, 3 for Keras 3: a few defaults and formulas differ.
    let kerasMajorVersion: Int

    /// Raised for a config the table understands the class of but not the values of.
    struct Unsupported: Error { let reason: String }

    func op(className: String, config: JSON) throws -> Op? {
        if let kind = AugmentationKind(rawValue: className), kind.isKerasLayer, var settings = config.object {
            // Identity at inference; the settings are kept for Keras (name, trainable and dtype are
            // the node's, written again by the writer). tf.keras adds `rng_type`, which Keras 3
            // refuses to deserialize.
            for key in ["name", "trainable", "dtype", "rng_type"] { settings[key] = nil }
            return .augmentation(AugmentationAttributes(kind: kind, configuration: JSON.object(settings).serialized))
        }
        let c = LayerConfig(json: config, className: className)
        if let kind = ResizingKind(rawValue: className) { return try resizing(kind, c) }
        switch className {
        case "Dense":
            return .dense(DenseAttributes(units: try c.int("units"), useBias: c.bool("use_bias", true),
                                          activation: try activation(c.json["activation"])))
        case "Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D":
            let rank = try c.rankFromName()
            return .conv(ConvAttributes(
                filters: try c.int("filters"), kernelSize: try c.tuple("kernel_size", rank),
                strides: try c.tuple("strides", rank, default: 1), dilations: try c.tuple("dilation_rate", rank, default: 1),
                padding: try c.padding(), groups: c.optionalInt("groups") ?? 1, useBias: c.bool("use_bias", true),
                activation: try activation(c.json["activation"]), layout: try c.layout()))
        case "DepthwiseConv1D", "DepthwiseConv2D":
            return .depthwiseConv(try depthwise(c, rank: try c.rankFromName()))
        case "SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D":
            return .separableConv(SeparableConvAttributes(
                filters: try c.int("filters"), depthwise: try depthwise(c, rank: try c.rankFromName())))
        case "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution2DTranspose":
            let rank = try c.rankFromName()
            let outputPadding = c.json["output_padding"].flatMap { $0.isNull ? nil : $0.intArray }
            return .convTranspose(ConvTransposeAttributes(
                filters: try c.int("filters"), kernelSize: try c.tuple("kernel_size", rank),
                strides: try c.tuple("strides", rank, default: 1), dilations: try c.tuple("dilation_rate", rank, default: 1),
                padding: try c.padding(),
                outputPadding: outputPadding.map { $0.count == 1 ? Array(repeating: $0[0], count: rank) : $0 },
                useBias: c.bool("use_bias", true), activation: try activation(c.json["activation"]), layout: try c.layout()))
        case "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
             "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D":
            let rank = try c.rankFromName()
            let poolSize = try c.tuple("pool_size", rank)
            let strides = c.json["strides"].flatMap { $0.isNull ? nil : $0.intArray }
            return .pool(PoolAttributes(
                kind: className.hasPrefix("Max") ? .max : .average, poolSize: poolSize,
                strides: strides.map { $0.count == 1 ? Array(repeating: $0[0], count: rank) : $0 } ?? poolSize,
                padding: try c.padding(), layout: try c.layout()))
        case "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
             "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
             "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D":
            return .globalPool(GlobalPoolAttributes(
                kind: className.hasPrefix("GlobalMax") ? .max : .average, rank: try c.rankFromName(),
                keepDimensions: c.bool("keepdims", false), layout: try c.layout()))
        case "BatchNormalization", "SyncBatchNormalization":
            let axes = c.json["axis"]?.intArray ?? [-1]
            guard axes.count == 1 else { throw Unsupported(reason: "BatchNormalization over several axes \(axes)") }
            return .batchNormalization(BatchNormalizationAttributes(
                axis: axes[0], epsilon: c.float("epsilon", 1e-3), momentum: c.float("momentum", 0.99),
                center: c.bool("center", true), scale: c.bool("scale", true)))
        case "GroupNormalization":
            let axes = c.json["axis"]?.intArray ?? [-1]
            guard axes.count == 1 else { throw Unsupported(reason: "GroupNormalization over several axes \(axes)") }
            return .groupNormalization(GroupNormalizationAttributes(
                groups: c.optionalInt("groups") ?? 32, axis: axes[0], epsilon: c.float("epsilon", 1e-3),
                center: c.bool("center", true), scale: c.bool("scale", true)))
        case "RMSNormalization":
            // Keras lists the normalized axes; ONNX's RMSNormalization takes every axis from one on.
            let axes = (c.json["axis"]?.intArray ?? c.json["axis"]?.int.map { [$0] } ?? [-1]).sorted()
            guard let first = axes.first, axes.last == -1, axes == Array(first..<0) else {
                throw Unsupported(reason: "RMSNormalization over axes \(axes): only trailing axes counted from the end (-1, as by default) are read")
            }
            return .onnx(.rmsNormalization(RMSNormalizationAttributes(axis: first, epsilon: c.float("epsilon", 1e-6))))
        case "LayerNormalization":
            return .layerNormalization(LayerNormalizationAttributes(
                axes: c.json["axis"]?.intArray ?? [-1], epsilon: c.float("epsilon", 1e-3),
                center: c.bool("center", true), scale: c.bool("scale", true)))
        case "Activation":
            return .activation(try activation(c.json["activation"]))
        case "ReLU":
            let maxValue = c.json["max_value"].flatMap { $0.isNull ? nil : $0.float }
            return .activation(.relu(maxValue: maxValue, negativeSlope: c.float("negative_slope", 0),
                                     threshold: c.float("threshold", 0)))
        case "LeakyReLU":
            // Keras 2 calls the slope `alpha` (default 0.3); Keras 3 `negative_slope` (default 0.3).
            let slope = c.json["negative_slope"]?.float ?? c.json["alpha"]?.float ?? 0.3
            return .activation(.leakyRelu(alpha: slope))
        case "ELU":
            return .activation(.elu(alpha: c.float("alpha", 1)))
        case "Softmax":
            let axes = c.json["axis"]?.intArray ?? [-1]
            guard axes.count == 1 else { throw Unsupported(reason: "Softmax over several axes \(axes)") }
            return .activation(.softmax(axis: axes[0]))
        case "PReLU":
            return .prelu(PReLUAttributes(sharedAxes: c.json["shared_axes"]?.intArray ?? []))
        case "Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise", "ActivityRegularization":
            return .dropout(DropoutAttributes(rate: c.float("rate", c.float("stddev", 0))))
        case "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D":
            return .dropout(DropoutAttributes(rate: c.float("rate", 0), spatial: true))
        case "Flatten":
            return .flatten(FlattenAttributes(layout: try c.layout()))
        case "Reshape":
            guard let target = c.json["target_shape"]?.intArray else { throw c.missing("target_shape") }
            return .reshape(ReshapeAttributes(targetShape: target))
        case "Permute":
            guard let dimensions = c.json["dims"]?.intArray else { throw c.missing("dims") }
            return .permute(PermuteAttributes(dimensions: dimensions))
        case "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D":
            return .zeroPadding(SpatialPaddingAttributes(
                padding: try c.pairs("padding", rank: try c.rankFromName()), layout: try c.layout()))
        case "Cropping1D", "Cropping2D", "Cropping3D":
            return .cropping(SpatialPaddingAttributes(
                padding: try c.pairs("cropping", rank: try c.rankFromName()), layout: try c.layout()))
        case "UpSampling1D", "UpSampling2D", "UpSampling3D":
            let rank = try c.rankFromName()
            let key = rank == 1 ? "length" : "size"
            return .upSampling(UpSamplingAttributes(
                size: try c.tuple(key, rank, default: 2), interpolation: c.json["interpolation"]?.string ?? "nearest",
                layout: try c.layout()))
        case "Add": return .elementwise(.add)
        case "Subtract": return .elementwise(.subtract)
        case "Multiply": return .elementwise(.multiply)
        case "Average": return .elementwise(.average)
        case "Maximum": return .elementwise(.maximum)
        case "Minimum": return .elementwise(.minimum)
        case "Concatenate":
            return .concatenate(ConcatenateAttributes(axis: c.optionalInt("axis") ?? -1))
        case "Rescaling":
            guard let scale = c.json["scale"]?.floatArray else { throw c.missing("scale") }
            return .rescaling(RescalingAttributes(scale: scale, offset: c.json["offset"]?.floatArray ?? [0]))
        case "Normalization":
            return .normalization(NormalizationAttributes(
                axes: c.json["axis"].flatMap { $0.isNull ? [] : $0.intArray } ?? [-1], invert: c.bool("invert", false),
                mean: c.json["mean"].flatMap { $0.isNull ? nil : Self.flatFloats($0) },
                variance: c.json["variance"].flatMap { $0.isNull ? nil : Self.flatFloats($0) }))
        case "UnitNormalization":
            let axis = c.json["axis"]
            guard let axes = axis?.int.map({ [$0] }) ?? axis?.intArray ?? (axis == nil ? [-1] : nil) else {
                throw Unsupported(reason: "UnitNormalization axis \(axis?.serialized ?? "")")
            }
            // Keras 3's floor on the norm, for tf.keras files too: Keras 3 reads them with it, and
            // tf.keras's (l2_normalize floors the squared norm at 1e-12) differs only below 1e-6.
            return .unitNormalization(UnitNormalizationAttributes(axes: axes))
        case "EinsumDense":
            return .einsumDense(try KerasAttention.einsumDense(config, activation: try activation(c.json["activation"])))
        case "Embedding":
            var embedding = EmbeddingAttributes(inputDimension: try c.int("input_dim"), outputDimension: try c.int("output_dim"))
            embedding.maskZero = c.bool("mask_zero", false)
            return .embedding(embedding)
        case "Masking":
            guard let value = Self.maskValue(config) else {
                throw Unsupported(reason: "Masking mask_value \(config["mask_value"]?.serialized ?? "") is not a number")
            }
            return .masking(MaskingAttributes(maskValue: value))
        case "SimpleRNN", "LSTM", "GRU", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D":
            return try recurrent(className: className, config: config).map(Op.recurrent)
        case "CustomScaleLayer":
            return .scaledResidual(ScaledResidualAttributes(scale: c.float("scale", 1)))
        case "LayerScale":
            return .layerScale(LayerScaleAttributes())
        case "StochasticDepth":
            return .stochasticDepth(DropoutAttributes(rate: c.float("drop_path_rate", 0)))
        case "Identity":
            return .identity
        default:
            return nil
        }
    }

    /// Numbers of a possibly nested JSON array, flattened (Keras writes statistics as nested lists).
    /// Masking's `mask_value` (0 when absent); nil when the file gives something else than a number
    /// (Keras 3 accepts a serialized tensor there), which Scion does not interpret.
    static func maskValue(_ config: JSON) -> Float? {
        guard let value = config["mask_value"], !value.isNull else { return 0 }
        return value.float
    }

    static func flatFloats(_ value: JSON, depth: Int = 0) -> [Float]? {
        if let number = value.float { return [number] }
        guard depth < 8, let array = value.array else { return nil }
        var result: [Float] = []
        for element in array {
            guard let inner = flatFloats(element, depth: depth + 1) else { return nil }
            result += inner
        }
        return result
    }

    private func depthwise(_ c: LayerConfig, rank: Int) throws -> DepthwiseConvAttributes {
        DepthwiseConvAttributes(
            kernelSize: try c.tuple("kernel_size", rank), strides: try c.tuple("strides", rank, default: 1),
            dilations: try c.tuple("dilation_rate", rank, default: 1), padding: try c.padding(),
            depthMultiplier: c.optionalInt("depth_multiplier") ?? 1, useBias: c.bool("use_bias", true),
            activation: try activation(c.json["activation"]), layout: try c.layout())
    }

    /// Keras activation by name (`"relu"`), or the dictionary Keras 3 writes for a serialized function.
    func activation(_ value: JSON?) throws -> Activation {
        guard let value, !value.isNull else { return .linear }
        let name: String
        if let string = value.string {
            name = string
        } else if let inner = value["config"]?.string ?? value["config"]?["name"]?.string {
            name = inner
        } else {
            throw Unsupported(reason: "activation \(value.serialized)")
        }
        switch name {
        case "linear", "None": return .linear
        case "relu": return .plainRelu
        case "relu6": return .relu6
        case "leaky_relu": return .leakyRelu(alpha: 0.2)
        case "elu": return .elu(alpha: 1)
        case "selu": return .selu
        case "sigmoid": return .sigmoid
        case "hard_sigmoid":
            // Keras 2: clip(0.2x + 0.5); Keras 3: relu6(x + 3) / 6.
            return kerasMajorVersion >= 3 ? .hardSigmoid(alpha: 1.0 / 6.0, beta: 0.5) : .hardSigmoid(alpha: 0.2, beta: 0.5)
        case "hard_swish", "hard_silu": return .hardSwish
        case "swish", "silu": return .swish
        case "tanh": return .tanh
        case "gelu": return .gelu(approximate: false)
        case "softplus": return .softplus
        case "softsign": return .softsign
        case "exponential": return .exponential
        case "mish": return .mish
        case "softmax": return .softmax(axis: -1)
        case "log_softmax": return .logSoftmax(axis: -1)
        case "celu": return .celu(alpha: 1)
        case "squareplus": return .squareplus(b: 4)
        case "sparse_plus": return .sparsePlus
        case "sparse_sigmoid": return .sparseSigmoid
        case "sparsemax": return .sparsemax(axis: -1)
        case "tanh_shrink": return .tanhShrink
        case "soft_shrink": return .softShrink(threshold: 0.5)
        case "hard_shrink": return .hardShrink(threshold: 0.5)
        case "hard_tanh": return .hardTanh
        case "log_sigmoid": return .logSigmoid
        default: throw Unsupported(reason: "activation '\(name)'")
        }
    }
}
