import ScionIR

/// One Keras 3 layer to write: its class, its module (where Keras 3 finds the class) and its
/// config without the common keys (`name`, `trainable`, `dtype`), which the model writer adds.
struct KerasLayerSpecification {
    var className: String
    /// Nil for a class registered by name (`registeredName` is then `package>Name`).
    var module: String? = "keras.layers"
    var registeredName: String?
    var config: [String: JSON]
    /// Which inputs this layer reads: the node's inputs (`.nodeInput`) or an earlier layer of the same
    /// expansion (`.step`). Nil means all of the node's inputs, in order.
    var inputs: [KerasLayerInput]?
    /// Merge layers take their inputs as one list argument; other layers one tensor per argument.
    var takesList: Bool = false
    /// An operation node's positional arguments (`KerasOperationWriter`); nil for a layer.
    var arguments: [KerasCallArgument]?

    /// A Keras 3 operation node (`keras.ops` call) rather than a layer: no weights, and a config of
    /// its own settings only.
    var isOperation: Bool { arguments != nil }

    /// Keyword names of the last inputs, passed by keyword instead of position
    /// (MultiHeadAttention's `key` and `attention_mask`).
    var keywordInputs: [String] = []
    /// Other keyword arguments of the call (MultiHeadAttention's `use_causal_mask`).
    var callKeywords: [String: JSON] = [:]
    /// The keyword taking the inputs after the first as one list (a recurrent layer's `initial_state`).
    var listKeywordInput: String? = nil
}

enum KerasLayerInput: Equatable {
    case nodeInput(Int)
    case step(Int)
}

/// IR ops to Keras 3 layer configs: the inverse of `KerasLayerTable`. Configs hold only the keys
/// whose values differ from Keras 3's defaults or matter for inference; initializers and
/// regularizers are left to their defaults because the weights are loaded afterwards.
///
/// Most ops become one layer. An op Keras 3 can only express with two layers (a fused activation
/// Keras 3 has no name for, Keras 2's hard sigmoid) becomes a short chain, the last layer producing
/// the node's output.
struct KerasConfigWriter {
    struct Refusal: Error { let reason: String }

    /// The writers take channels-last graphs of Keras layers; `KerasLayersPass` makes one from an
    /// ONNX graph (`Model.write` runs it).
    static let onnxRefusal = "the graph is channels-first (read from ONNX); KerasLayersPass must convert it before a Keras writer"

    /// `inputShapes`: each input's shape, nil where unknown.
    func layers(for node: Node, inputShapes: [[Int?]?]) throws -> [KerasLayerSpecification] {
        let inputRanks = inputShapes.map { $0?.count }
        switch node.op {
        case .dense(let a):
            return try withActivation(a.activation) { name in
                KerasLayerSpecification(className: "Dense", config: [
                    "units": .number(Double(a.units)), "use_bias": .bool(a.useBias), "activation": .string(name)])
            }
        case .conv(let a):
            try requireChannelsLast(a.layout)
            return try withActivation(a.activation) { name in
                KerasLayerSpecification(className: "Conv\(a.rank)D", config: [
                    "filters": .number(Double(a.filters)), "kernel_size": Self.ints(a.kernelSize),
                    "strides": Self.ints(a.strides), "dilation_rate": Self.ints(a.dilations),
                    "padding": .string(try Self.padding(a.padding)), "groups": .number(Double(a.groups)),
                    "use_bias": .bool(a.useBias), "data_format": "channels_last", "activation": .string(name)])
            }
        case .depthwiseConv(let a):
            try requireChannelsLast(a.layout)
            return try withActivation(a.activation) { name in
                KerasLayerSpecification(className: "DepthwiseConv\(a.rank)D", config: try Self.depthwise(a, activation: name))
            }
        case .separableConv(let a):
            try requireChannelsLast(a.depthwise.layout)
            return try withActivation(a.depthwise.activation) { name in
                var config = try Self.depthwise(a.depthwise, activation: name)
                config["filters"] = .number(Double(a.filters))
                return KerasLayerSpecification(className: "SeparableConv\(a.rank)D", config: config)
            }
        case .convTranspose(let a):
            try requireChannelsLast(a.layout)
            guard a.groups == 1 else { throw Refusal(reason: "Keras has no grouped transposed convolution") }
            return try withActivation(a.activation) { name in
                KerasLayerSpecification(className: "Conv\(a.rank)DTranspose", config: [
                    "filters": .number(Double(a.filters)), "kernel_size": Self.ints(a.kernelSize),
                    "strides": Self.ints(a.strides), "dilation_rate": Self.ints(a.dilations),
                    "padding": .string(try Self.padding(a.padding)),
                    "output_padding": a.outputPadding.map(Self.ints) ?? .null,
                    "use_bias": .bool(a.useBias), "data_format": "channels_last", "activation": .string(name)])
            }
        case .pool(let a):
            try requireChannelsLast(a.layout)
            guard !a.countIncludePad || a.padding == .valid, !a.ceilMode, a.isDense else {
                throw Refusal(reason: "Keras pooling cannot count padding, round up or space its window's cells (dilations)")
            }
            return [KerasLayerSpecification(className: (a.kind == .max ? "MaxPooling" : "AveragePooling") + "\(a.rank)D", config: [
                "pool_size": Self.ints(a.poolSize), "strides": Self.ints(a.strides),
                "padding": .string(try Self.padding(a.padding)), "data_format": "channels_last"])]
        case .globalPool(let a):
            try requireChannelsLast(a.layout)
            var specification = KerasLayerSpecification(className: (a.kind == .max ? "GlobalMaxPooling" : "GlobalAveragePooling") + "\(a.rank)D",
                                                         config: ["keepdims": .bool(a.keepDimensions), "data_format": "channels_last"])
            // The mask source is not a call argument: Keras rebuilds the mask (KerasModelPlan.checkImpliedMask).
            if a.maskValue != nil { specification.inputs = [.nodeInput(0)] }
            return [specification]
        case .batchNormalization(let a):
            return [KerasLayerSpecification(className: "BatchNormalization", config: [
                "axis": .number(Double(a.axis)), "epsilon": Self.number(a.epsilon), "momentum": Self.number(a.momentum),
                "center": .bool(a.center), "scale": .bool(a.scale)])]
        case .groupNormalization(let a):
            return [KerasLayerSpecification(className: "GroupNormalization", config: [
                "groups": .number(Double(a.groups)), "axis": .number(Double(a.axis)), "epsilon": Self.number(a.epsilon),
                "center": .bool(a.center), "scale": .bool(a.scale)])]
        case .layerNormalization(let a):
            return [KerasLayerSpecification(className: "LayerNormalization", config: [
                "axis": Self.ints(a.axes), "epsilon": Self.number(a.epsilon), "center": .bool(a.center), "scale": .bool(a.scale)])]
        case .multiHeadAttention(let a):
            return [KerasAttention.layer(a)]
        case .attention(let a):
            return [KerasAttention.layer(a)]
        case .unitNormalization(let a):
            return [KerasLayerSpecification(className: "UnitNormalization", config: ["axis": Self.ints(a.axes)])]
        case .einsumDense(let a):
            return try withActivation(a.activation) { name in
                KerasLayerSpecification(className: "EinsumDense", config: KerasAttention.einsumDenseConfig(a, activation: name))
            }
        case .activation(let activation):
            return try standaloneActivation(activation)
        case .prelu(let a):
            return [KerasLayerSpecification(className: "PReLU", config: ["shared_axes": a.sharedAxes.isEmpty ? .null : Self.ints(a.sharedAxes)])]
        case .dropout(let a):
            if a.spatial, let rank = inputRanks.first ?? nil, (3...5).contains(rank) {
                return [KerasLayerSpecification(className: "SpatialDropout\(rank - 2)D", config: ["rate": Self.number(a.rate)])]
            }
            return [KerasLayerSpecification(className: "Dropout", config: ["rate": Self.number(a.rate)])]
        case .flatten(let a):
            try requireChannelsLast(a.layout)
            guard a.axis == 1 else { throw Refusal(reason: "Keras flattens from axis 1 only") }
            return [KerasLayerSpecification(className: "Flatten", config: ["data_format": "channels_last"])]
        case .reshape(let a):
            if a.includesBatch {
                // keras.ops.reshape names the batch axis too; an ONNX 0 ("copy the input's length") has no spelling there.
                guard a.allowZero || !a.targetShape.contains(0) else { throw Refusal(reason: Self.onnxRefusal) }
                return [KerasOperationWriter.call("Reshape", config: ["newshape": Self.ints(a.targetShape)])]
            }
            return [KerasLayerSpecification(className: "Reshape", config: ["target_shape": Self.ints(a.targetShape)])]
        case .permute(let a):
            return [KerasLayerSpecification(className: "Permute", config: ["dims": Self.ints(a.dimensions)])]
        case .transpose(let a):
            // A Transpose that keeps the batch axis is a Permute; Keras numbers the other axes from 1,
            // as the permutation already does.
            guard a.permutation.first == 0, a.permutation.count >= 2 else {
                // Only keras.ops.transpose moves the batch axis.
                return [KerasOperationWriter.call("Transpose", config: ["axes": Self.ints(a.permutation)])]
            }
            return [KerasLayerSpecification(className: "Permute", config: ["dims": Self.ints(Array(a.permutation.dropFirst()))])]
        case .zeroPadding(let a), .cropping(let a):
            try requireChannelsLast(a.layout)
            let isPadding = if case .zeroPadding = node.op { true } else { false }
            let rank = a.padding.count
            let value: JSON = rank == 1 ? Self.ints(a.padding[0]) : .array(a.padding.map(Self.ints))
            var config: [String: JSON] = [isPadding ? "padding" : "cropping": value]
            if rank > 1 { config["data_format"] = "channels_last" }
            return [KerasLayerSpecification(className: (isPadding ? "ZeroPadding" : "Cropping") + "\(rank)D", config: config)]
        case .upSampling(let a):
            try requireChannelsLast(a.layout)
            let rank = a.size.count
            if rank == 1 { return [KerasLayerSpecification(className: "UpSampling1D", config: ["size": .number(Double(a.size[0]))])] }
            var config: [String: JSON] = ["size": Self.ints(a.size), "data_format": "channels_last"]
            if rank == 2 { config["interpolation"] = .string(a.interpolation) }
            return [KerasLayerSpecification(className: "UpSampling\(rank)D", config: config)]
        case .elementwise(let operation):
            switch operation {
            case .add, .subtract, .multiply, .average, .maximum, .minimum:
                // Unknown shapes keep the layer: Keras checks it on load, and a file read from Keras
                // (a Lambda before the merge) is written back as it was.
                let known = inputShapes.compactMap { $0 }
                guard known.count == inputShapes.count, !KerasMergeShapes.layerComputesBroadcast(known) else {
                    return [KerasLayerSpecification(className: operation.typeName, config: [:], takesList: true)]
                }
                return try KerasOperationWriter.broadcastingMerge(operation, shapes: known)
            case .divide, .power:
                guard node.inputs.count == 2 else { throw Refusal(reason: "Keras has no \(operation.typeName) layer of \(node.inputs.count) inputs") }
                return [KerasOperationWriter.call(operation == .divide ? "TrueDivide" : "Power", arguments: [.tensor, .tensor])]
            }
        case .concatenate(let a):
            return [KerasLayerSpecification(className: "Concatenate", config: ["axis": .number(Double(a.axis))], takesList: true)]
        case .rescaling(let a):
            guard a.axis == -1 else { throw Refusal(reason: Self.onnxRefusal) }
            return [Self.rescaling(scale: a.scale, offset: a.offset)]
        case .resizing(let a):
            return [try Self.resizing(a, trainable: node.trainable)]
        case .normalization(let a):
            var config: [String: JSON] = ["axis": Self.ints(a.axes), "invert": .bool(a.invert)]
            if let mean = a.mean, let variance = a.variance {
                config["mean"] = .array(mean.map(Self.number)); config["variance"] = .array(variance.map(Self.number))
            }
            return [KerasLayerSpecification(className: "Normalization", config: config)]
        case .embedding(let a):
            return [KerasLayerSpecification(className: "Embedding", config: [
                "input_dim": .number(Double(a.inputDimension)), "output_dim": .number(Double(a.outputDimension)),
                "mask_zero": .bool(a.maskZero)])]
        case .masking(let a):
            return [KerasLayerSpecification(className: "Masking", config: ["mask_value": Self.number(a.maskValue)])]
        case .recurrent(let a):
            var specification = try Self.recurrent(a, trainable: node.trainable)
            // The mask source is not a call argument: Keras rebuilds the mask (KerasModelPlan.checkImpliedMask).
            // Initial states go as the call's `initial_state` list.
            let states = (node.inputs.count - a.initialStateCount)..<node.inputs.count
            if a.maskValue != nil || a.initialStateCount > 0 { specification.inputs = [.nodeInput(0)] + states.map { .nodeInput($0) } }
            if a.initialStateCount > 0 { specification.listKeywordInput = "initial_state" }
            return [specification]
        case .scaledResidual(let a):
            return [KerasLayerSpecification(className: "CustomScaleLayer", module: "keras.src.applications.inception_resnet_v2",
                                            registeredName: "CustomScaleLayer", config: ["scale": Self.number(a.scale)], takesList: true)]
        case .layerScale(let a):
            guard a.axis == -1 else { throw Refusal(reason: Self.onnxRefusal) }
            return [KerasLayerSpecification(className: "LayerScale", module: "keras.src.applications.convnext",
                                            registeredName: "LayerScale", config: ["init_values": 1e-6, "projection_dim": .number(-1)])]
        case .stochasticDepth(let a):
            return [KerasLayerSpecification(className: "StochasticDepth", module: "keras.src.applications.convnext",
                                            registeredName: "StochasticDepth", config: ["drop_path_rate": Self.number(a.rate)])]
        case .identity:
            return [KerasLayerSpecification(className: "Identity", config: [:])]
        case .augmentation(let a):
            // Written back as read: its settings matter to Keras's training only.
            guard a.kind.isKerasLayer else { throw Refusal(reason: "\(a.kind.rawValue) is Scion's training-only augmentation, not a Keras layer") }
            guard let data = a.configuration.data(using: .utf8), let config = try? JSON.parse(data).object else {
                throw Refusal(reason: "\(a.kind.rawValue) has a configuration that is not a JSON object")
            }
            var kept = KerasOpaqueConfig.forKerasThree(className: a.kind.rawValue, config: config, trainable: node.trainable)
            for key in ["name", "trainable", "dtype"] { kept[key] = nil }
            return [KerasLayerSpecification(className: a.kind.rawValue, config: kept)]
        case .opaque(let a):
            if a.domain == "keras.ops" {
                // Its call's arguments were not kept: it cannot be written back as read.
                throw Refusal(reason: "cannot be written: \(a.uninterpretedReason)")
            }
            guard a.domain == "keras", let data = a.configuration.data(using: .utf8),
                  let config = try? JSON.parse(data).object else {
                throw Refusal(reason: "\(a.domain) op '\(a.type)' has no Keras layer equivalent")
            }
            var kept = KerasOpaqueConfig.forKerasThree(className: a.type, config: config, trainable: node.trainable)
            for key in ["name", "trainable", "dtype"] { kept[key] = nil }
            guard let registration = a.registration else {
                return [KerasLayerSpecification(className: a.type, config: kept, takesList: a.takesList)]
            }
            // A user's class: named as the file named it, so Keras finds the registered class.
            return [KerasLayerSpecification(className: a.type, module: registration.module,
                                            registeredName: registration.registeredName, config: kept,
                                            takesList: a.takesList)]
        case .onnx(let operation):
            return try KerasOperationWriter.layers(for: operation, node: node, inputRanks: inputRanks)
        }
    }

    private func requireChannelsLast(_ layout: Layout) throws {
        guard layout == .channelsLast else { throw Refusal(reason: Self.onnxRefusal) }
    }

    /// A layer with a fused activation: fused when Keras 3 has a name for it, otherwise the layer
    /// with `linear` followed by the activation as a layer of its own.
    private func withActivation(_ activation: Activation, _ make: (String) throws -> KerasLayerSpecification) throws
        -> [KerasLayerSpecification]
    {
        if let name = Self.activationName(activation) { return [try make(name)] }
        var chain = [try make("linear")]
        for var step in try standaloneActivation(activation) {
            step.inputs = (step.inputs ?? [.nodeInput(0)]).map { input in
                switch input {
                case .nodeInput: .step(0)
                case .step(let index): .step(index + 1)
                }
            }
            chain.append(step)
        }
        return chain
    }

    /// An activation as layers: the parametrised ones as their own classes, the rest as `Activation`.
    private func standaloneActivation(_ activation: Activation) throws -> [KerasLayerSpecification] {
        switch activation {
        case .relu(let maxValue, let slope, let threshold):
            return [KerasLayerSpecification(className: "ReLU", config: [
                "max_value": maxValue.map(Self.number) ?? .null, "negative_slope": Self.number(slope),
                "threshold": Self.number(threshold)])]
        case .leakyRelu(let alpha):
            return [KerasLayerSpecification(className: "LeakyReLU", config: ["negative_slope": Self.number(alpha)])]
        case .elu(let alpha):
            return [KerasLayerSpecification(className: "ELU", config: ["alpha": Self.number(alpha)])]
        case .softmax(let axis):
            return [KerasLayerSpecification(className: "Softmax", config: ["axis": .number(Double(axis))])]
        case .gelu(approximate: true):
            // Keras 3's `gelu` activation is the exact one; keras.ops.gelu takes the flag.
            return [KerasOperationWriter.call("Gelu", module: "keras.src.ops.nn", config: ["approximate": .bool(true)])]
        case .hardSigmoid(let alpha, let beta):
            if let name = Self.activationName(activation) {
                return [KerasLayerSpecification(className: "Activation", config: ["activation": .string(name)])]
            }
            // clip(alpha x + beta, 0, 1) exactly: an affine Rescaling, then ReLU capped at 1.
            var clip = KerasLayerSpecification(className: "ReLU", config: [
                "max_value": 1, "negative_slope": 0, "threshold": 0])
            clip.inputs = [.step(0)]
            return [Self.rescaling(scale: [alpha], offset: [beta]), clip]
        default:
            guard let name = Self.activationName(activation) else {
                throw Refusal(reason: "activation \(activation.displayName) with these parameters has no Keras 3 equivalent")
            }
            return [KerasLayerSpecification(className: "Activation", config: ["activation": .string(name)])]
        }
    }

    /// Keras 3's name for an activation, when one computes exactly this function.
    static func activationName(_ activation: Activation) -> String? {
        switch activation {
        case .linear: "linear"
        case .relu(let maxValue, let slope, let threshold):
            slope == 0 && threshold == 0 ? (maxValue == nil ? "relu" : maxValue == 6 ? "relu6" : nil) : nil
        case .leakyRelu(let alpha): alpha == 0.2 ? "leaky_relu" : nil
        case .elu(let alpha): alpha == 1 ? "elu" : nil
        case .selu: "selu"
        case .sigmoid: "sigmoid"
        case .hardSigmoid(let alpha, let beta): abs(alpha - 1.0 / 6.0) < 1e-7 && beta == 0.5 ? "hard_sigmoid" : nil
        case .hardSwish: "hard_silu"
        case .swish: "silu"
        case .tanh: "tanh"
        case .gelu(let approximate): approximate ? nil : "gelu"
        case .softplus: "softplus"
        case .softsign: "softsign"
        case .exponential: "exponential"
        case .mish: "mish"
        case .softmax(let axis): axis == -1 ? "softmax" : nil
        case .logSoftmax(let axis): axis == -1 ? "log_softmax" : nil
        case .celu(let alpha): alpha == 1 ? "celu" : nil
        case .squareplus(let b): b == 4 ? "squareplus" : nil
        case .sparsePlus: "sparse_plus"
        case .sparseSigmoid: "sparse_sigmoid"
        case .sparsemax(let axis): axis == -1 ? "sparsemax" : nil
        case .tanhShrink: "tanh_shrink"
        case .softShrink(let threshold): threshold == 0.5 ? "soft_shrink" : nil
        case .hardShrink(let threshold): threshold == 0.5 ? "hard_shrink" : nil
        case .hardTanh: "hard_tanh"
        case .logSigmoid: "log_sigmoid"
        }
    }

    static func rescaling(scale: [Float], offset: [Float]) -> KerasLayerSpecification {
        func value(_ values: [Float]) -> JSON { values.count == 1 ? number(values[0]) : .array(values.map(number)) }
        return KerasLayerSpecification(className: "Rescaling", config: ["scale": value(scale), "offset": value(offset)])
    }

    private static func depthwise(_ a: DepthwiseConvAttributes, activation: String) throws -> [String: JSON] {
        ["kernel_size": ints(a.kernelSize), "strides": ints(a.strides), "dilation_rate": ints(a.dilations),
         "padding": .string(try padding(a.padding)), "depth_multiplier": .number(Double(a.depthMultiplier)),
         "use_bias": .bool(a.useBias), "data_format": "channels_last", "activation": .string(activation)]
    }

    static func padding(_ padding: Padding) throws -> String {
        switch padding {
        case .valid: "valid"
        case .same: "same"
        case .causal: "causal"
        case .explicit: throw Refusal(reason: "explicit padding has no Keras equivalent; \(onnxRefusal)")
        }
    }

    static func ints(_ values: [Int]) -> JSON { .array(values.map { .number(Double($0)) }) }

    /// A float32 as the double that prints back to the same float32 (0.2, not 0.20000000298...).
    static func number(_ value: Float) -> JSON {
        .number(Double("\(value)") ?? Double(value))
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral {
    package init(stringLiteral value: String) { self = .string(value) }
    package init(floatLiteral value: Double) { self = .number(value) }
    package init(integerLiteral value: Int) { self = .number(Double(value)) }
}
