import Foundation
import ScionIR

/// One setting of a layer as Keras names it (`filters`, `kernel_size`, `activation`) and its value
/// as a person reads it (`[3, 3]`, `softmax`, `same`). Numbers that are measured rather than counted
/// (epsilon, a Rescaling's scale) compare within 1e-6 of the largest value in the field, so the same
/// value reached by two roundings (1/6 computed in two orders) is not called a change.
struct LayerField: Equatable {
    var name: String
    var text: String
    var numbers: [Double] = []

    init(_ name: String, _ text: String) { self.name = name; self.text = text }
    init(_ name: String, _ value: Int) { self.name = name; self.text = "\(value)" }
    init(_ name: String, _ value: Bool) { self.name = name; self.text = value ? "true" : "false" }
    init(_ name: String, _ values: [Int]) { self.name = name; self.text = LayerFields.list(values) }
    init(_ name: String, float value: Float) { self.init(name, floats: [value], list: false) }
    init(_ name: String, floats values: [Float], list: Bool = true) {
        self.name = name
        self.numbers = values.map(Double.init)
        let spelled = values.map { Readable.setting($0) }
        self.text = list || spelled.count != 1 ? "[" + spelled.joined(separator: ", ") + "]" : spelled[0]
    }

    static func == (a: LayerField, b: LayerField) -> Bool {
        guard a.name == b.name else { return false }
        guard !a.numbers.isEmpty || !b.numbers.isEmpty else { return a.text == b.text }
        // Rounding scales with the largest value in play (an offset near 0 among offsets near 1
        // carries their rounding), so a list compares against its largest magnitude.
        let scale = (a.numbers + b.numbers).map(abs).max() ?? 0
        return a.numbers.count == b.numbers.count && zip(a.numbers, b.numbers).allSatisfy { x, y in
            x == y || abs(x - y) <= 1e-6 * scale
        }
    }
}

enum LayerFields {
    /// The settings of `op` in Keras's vocabulary, in the order Keras lists them. `input` (the
    /// layer's input shape) lets explicit pads print as `same` or `valid` when that is what they are.
    static func fields(_ op: Op, input: Shape?) -> [LayerField] {
        switch op {
        case .dense(let a):
            return [LayerField("units", a.units), LayerField("activation", activation(a.activation)), LayerField("use_bias", a.useBias)]
        case .conv(let a):
            return [LayerField("filters", a.filters), LayerField("kernel_size", a.kernelSize), LayerField("strides", a.strides),
                    LayerField("padding", padding(a.padding, input, a.layout, a.kernelSize, a.strides, a.dilations)),
                    LayerField("data_format", format(a.layout)), LayerField("dilation_rate", a.dilations),
                    LayerField("groups", a.groups), LayerField("activation", activation(a.activation)), LayerField("use_bias", a.useBias)]
        case .depthwiseConv(let a):
            return depthwise(a, input)
        case .separableConv(let a):
            return [LayerField("filters", a.filters)] + depthwise(a.depthwise, input)
        case .convTranspose(let a):
            return [LayerField("filters", a.filters), LayerField("kernel_size", a.kernelSize), LayerField("strides", a.strides),
                    LayerField("padding", cropping(a, input)), LayerField("output_padding", a.outputPadding.map(list) ?? "None"),
                    LayerField("data_format", format(a.layout)), LayerField("dilation_rate", a.dilations), LayerField("groups", a.groups),
                    LayerField("activation", activation(a.activation)), LayerField("use_bias", a.useBias)]
        case .pool(let a):
            return [LayerField("pool_size", a.poolSize), LayerField("strides", a.strides),
                    LayerField("padding", padding(a.padding, input, a.layout, a.poolSize, a.strides, a.dilations)),
                    LayerField("data_format", format(a.layout)), LayerField("count_include_pad", a.countIncludePad),
                    LayerField("ceil_mode", a.ceilMode), LayerField("dilations", a.dilations)]
        case .globalPool(let a):
            return [LayerField("data_format", format(a.layout)), LayerField("keepdims", a.keepDimensions)]
        case .batchNormalization(let a):
            return [LayerField("axis", a.axis), LayerField("momentum", float: a.momentum), LayerField("epsilon", float: a.epsilon),
                    LayerField("center", a.center), LayerField("scale", a.scale)]
        case .groupNormalization(let a):
            return [LayerField("groups", a.groups), LayerField("axis", a.axis), LayerField("epsilon", float: a.epsilon),
                    LayerField("center", a.center), LayerField("scale", a.scale)]
        case .layerNormalization(let a):
            return [LayerField("axis", a.axes), LayerField("epsilon", float: a.epsilon), LayerField("center", a.center),
                    LayerField("scale", a.scale)]
        case .attention(let a):
            return [LayerField("score_mode", a.score.rawValue), LayerField("use_scale", a.useScale), LayerField("dropout", float: a.dropout),
                    LayerField("key", a.hasKey ? "given" : "the value"), LayerField("use_causal_mask", a.useCausalMask)]
        case .unitNormalization(let a):
            return [LayerField("axis", a.axes)]
        case .einsumDense(let a):
            return [LayerField("equation", a.equation),
                    LayerField("output_shape", "(" + a.outputShape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + ")"),
                    LayerField("bias_axes", a.biasAxes ?? "None"), LayerField("activation", activation(a.activation))]
        case .multiHeadAttention(let a):
            return [LayerField("num_heads", a.numHeads), LayerField("key_dim", a.keyDim), LayerField("value_dim", a.valueDim),
                    LayerField("dropout", float: a.dropout), LayerField("use_bias", a.useBias),
                    LayerField("output_shape", a.outputShape.map(list) ?? "None"),
                    LayerField("attention_axes", a.attentionAxes.map(list) ?? "default"),
                    LayerField("key", a.hasKey ? "given" : "the value"), LayerField("attention_mask", a.hasAttentionMask),
                    LayerField("use_causal_mask", a.useCausalMask)]
        case .activation(let a):
            return activationLayer(a)
        case .prelu(let a):
            return [LayerField("shared_axes", a.sharedAxes)]
        case .augmentation(let a):
            // Its Keras settings, one field each (they only matter to training).
            return OpaqueConfigFields.fields(a.configuration)
        case .dropout(let a), .stochasticDepth(let a):
            return [LayerField("rate", float: a.rate), LayerField("spatial", a.spatial)]
        case .flatten(let a):
            return [LayerField("data_format", format(a.layout)), LayerField("axis", a.axis)]
        case .reshape(let a):
            return [LayerField("target_shape", a.targetShape), LayerField("includes_batch", a.includesBatch)]
        case .permute(let a):
            return [LayerField("dims", a.dimensions)]
        case .zeroPadding(let a), .cropping(let a):
            return [LayerField(op.typeName.hasPrefix("Crop") ? "cropping" : "padding", pairs(a.padding)),
                    LayerField("data_format", format(a.layout))]
        case .upSampling(let a):
            return [LayerField("size", a.size), LayerField("interpolation", a.interpolation), LayerField("data_format", format(a.layout))]
        case .elementwise, .onnx(.matMul), .onnx(.select), .identity, .onnx(.unary), .onnx(.comparison), .onnx(.expand),
             .onnx(.tile):
            return []
        case .onnx(.range):
            return []
        case .onnx(.mod(let a)):
            return [LayerField("fmod", a.fmod)]
        case .onnx(.constantOfShape(let a)):
            return [LayerField("value", float: Float(a.value)), LayerField("dtype", a.dtype.rawValue)]
        case .onnx(.trilu(let a)):
            return [LayerField("upper", a.upper), LayerField("k", a.k.map { "\($0)" } ?? "input")]
        case .onnx(.computedPad(let a)):
            return [LayerField("mode", a.mode.rawValue), LayerField("value", a.value.map { "\($0)" } ?? "input"),
                    LayerField("axes", a.axes.map(LayerFields.list) ?? "None")]
        case .onnx(.computedSlice(let a)):
            return [LayerField("axes", a.hasAxes ? "input" : "None"), LayerField("steps", a.hasSteps ? "input" : "None")]
        case .onnx(.scatterND(let a)):
            return [LayerField("reduction", a.reduction.rawValue)]
        case .onnx(.gatherND(let a)):
            return [LayerField("batch_dims", a.batchDimensions)]
        case .onnx(.gatherElements(let a)):
            return [LayerField("axis", a.axis)]
        case .onnx(.einsum(let a)):
            return [LayerField("equation", a.equation)]
        case .onnx(.scaledDotProductAttention(let a)):
            return [LayerField("q_num_heads", a.queryHeads.map { "\($0)" } ?? "None"),
                    LayerField("kv_num_heads", a.keyValueHeads.map { "\($0)" } ?? "None"),
                    LayerField("mask", a.mask?.rawValue ?? "None"), LayerField("is_causal", a.isCausal),
                    LayerField("scale", a.scale.map { "\($0)" } ?? "None"), LayerField("softcap", float: a.softcap),
                    LayerField("past", a.hasPast), LayerField("qk_matmul_output_mode", a.qkOutputMode),
                    LayerField("sequence_first", a.sequenceFirst)]
        case .onnx(.rmsNormalization(let a)):
            return [LayerField("axis", a.axis), LayerField("epsilon", float: a.epsilon)]
        case .onnx(.rotaryEmbedding(let a)):
            return [LayerField("interleaved", a.interleaved), LayerField("rotary_embedding_dim", a.rotaryDimensions),
                    LayerField("num_heads", a.heads)]
        case .onnx(.argExtreme(let a)):
            return [LayerField("axis", a.axis), LayerField("keepdims", a.keepDimensions), LayerField("select_last_index", a.selectLastIndex)]
        case .onnx(.depthSpace(let a)):
            return [LayerField("blocksize", a.blockSize), LayerField("mode", a.toDepth ? "None" : a.columnRowDepth ? "CRD" : "DCR")]
        case .onnx(.cumulativeSum(let a)):
            return [LayerField("axis", a.axis.map { "\($0)" } ?? "input"), LayerField("exclusive", a.exclusive), LayerField("reverse", a.reverse)]
        case .onnx(.shape(let a)):
            return [LayerField("start", a.start), LayerField("end", a.end.map { "\($0)" } ?? "None")]
        case .onnx(.computedBatchNormalization(let a)), .onnx(.computedInstanceNormalization(let a)):
            return [LayerField("epsilon", float: a.epsilon)]
        case .onnx(.computedReshape(let a)):
            return [LayerField("allowzero", a.allowZero)]
        case .concatenate(let a):
            return [LayerField("axis", a.axis)]
        case .rescaling(let a):
            var fields = [LayerField("scale", floats: a.scale, list: a.scale.count > 1),
                          LayerField("offset", floats: a.offset, list: a.offset.count > 1)]
            if a.scale.count > 1 || a.offset.count > 1 { fields.append(LayerField("axis", a.axis)) }
            return fields
        case .resizing(let a):
            var fields = [LayerField("height", a.height), LayerField("width", a.width)]
            if a.kind == .resizing {
                fields += [LayerField("interpolation", a.interpolation.rawValue), LayerField("crop_to_aspect_ratio", a.cropToAspectRatio),
                           LayerField("pad_to_aspect_ratio", a.padToAspectRatio), LayerField("fill_value", float: a.fillValue),
                           LayerField("antialias", a.antialias)]
            }
            return fields + [LayerField("data_format", format(a.layout))]
        case .normalization(let a):
            return [LayerField("axis", a.axes), LayerField("invert", a.invert),
                    LayerField("mean", floats: a.mean ?? []), LayerField("variance", floats: a.variance ?? [])]
        case .embedding(let a):
            return [LayerField("input_dim", a.inputDimension), LayerField("output_dim", a.outputDimension)]
        case .masking(let a):
            return [LayerField("mask_value", float: a.maskValue)]
        case .recurrent(let a):
            var fields = [LayerField(a.convolution == nil ? "units" : "filters", a.units), LayerField("activation", activation(a.activation))]
            if let convolution = a.convolution {
                fields += [LayerField("kernel_size", convolution.kernelSize), LayerField("strides", convolution.strides),
                           LayerField("dilation_rate", convolution.dilations),
                           LayerField("padding", convolution.padding == .same ? "same" : "valid")]
            }
            if a.cell != .simpleRNN { fields.append(LayerField("recurrent_activation", activation(a.recurrentActivation))) }
            fields += [LayerField("use_bias", a.useBias), LayerField("return_sequences", a.returnSequences),
                       LayerField("return_state", a.returnState), LayerField("go_backwards", a.goBackwards)]
            if a.cell == .gru { fields.append(LayerField("reset_after", a.resetAfter)) }
            fields += [LayerField("dropout", float: a.dropout), LayerField("recurrent_dropout", float: a.recurrentDropout)]
            if let merge = a.bidirectional { fields.append(LayerField("merge_mode", merge == .separate ? "None" : merge.rawValue)) }
            return fields
        case .scaledResidual(let a):
            return [LayerField("scale", float: a.scale)]
        case .layerScale(let a):
            return [LayerField("axis", a.axis)]
        case .transpose(let a):
            return [LayerField("perm", a.permutation)]
        case .onnx(.constant(let a)):
            return [LayerField("dtype", a.dtype.rawValue)]
        case .onnx(.gemm(let a)):
            return [LayerField("alpha", float: a.alpha), LayerField("beta", float: a.beta), LayerField("transA", a.transposeA),
                    LayerField("transB", a.transposeB)]
        case .onnx(.reduce(let a)):
            return [LayerField("axes", a.axes.map(list) ?? "all"), LayerField("keepdims", a.keepDimensions)]
        case .onnx(.gather(let a)):
            return [LayerField("axis", a.axis)]
        case .onnx(.cast(let a)):
            return [LayerField("to", a.to.rawValue)]
        case .onnx(.squeeze(let a)), .onnx(.unsqueeze(let a)):
            return [LayerField("axes", a.axes)]
        case .onnx(.slice(let a)):
            return [LayerField("starts", a.starts), LayerField("ends", a.ends), LayerField("axes", a.axes), LayerField("steps", a.steps)]
        case .onnx(.split(let a)):
            return [LayerField("axis", a.axis), a.sizes.isEmpty ? LayerField("num_outputs", a.parts) : LayerField("split", a.sizes)]
        case .onnx(.pad(let a)):
            return [LayerField("pads", a.pads), LayerField("mode", a.mode.rawValue), LayerField("value", float: a.value)]
        case .onnx(.clip(let a)):
            return [LayerField("min", a.minimum.map { Readable.setting($0) } ?? "None"),
                    LayerField("max", a.maximum.map { Readable.setting($0) } ?? "None")]
        case .onnx(.resize(let a)):
            return [LayerField("mode", a.mode), LayerField("coordinate_transformation_mode", a.coordinateTransformation),
                    LayerField("nearest_mode", a.nearestMode), LayerField("scales", floats: a.scales ?? []),
                    LayerField("sizes", a.sizes.map(list) ?? "None")]
        case .onnx(.localResponseNormalization(let a)):
            return [LayerField("size", a.size), LayerField("alpha", float: a.alpha), LayerField("beta", float: a.beta),
                    LayerField("bias", float: a.bias)]
        case .onnx(.coercedSoftmax(let a)):
            return [LayerField("axis", a.axis)]
        case .opaque(let a):
            return OpaqueConfigFields.fields(a.configuration)
        }
    }

    static func depthwise(_ a: DepthwiseConvAttributes, _ input: Shape?) -> [LayerField] {
        [LayerField("kernel_size", a.kernelSize), LayerField("strides", a.strides),
         LayerField("padding", padding(a.padding, input, a.layout, a.kernelSize, a.strides, a.dilations)),
         LayerField("depth_multiplier", a.depthMultiplier), LayerField("data_format", format(a.layout)),
         LayerField("dilation_rate", a.dilations), LayerField("activation", activation(a.activation)), LayerField("use_bias", a.useBias)]
    }

    /// An activation layer's settings: ReLU's three, LeakyReLU's slope, Softmax's axis; the name
    /// for the others.
    static func activationLayer(_ a: Activation) -> [LayerField] {
        switch a {
        case .relu(let maxValue, let slope, let threshold):
            return [LayerField("max_value", maxValue.map { Readable.setting($0) } ?? "None"),
                    LayerField("negative_slope", float: slope), LayerField("threshold", float: threshold)]
        case .leakyRelu(let alpha): return [LayerField("negative_slope", float: alpha)]
        case .elu(let alpha): return [LayerField("alpha", float: alpha)]
        case .softmax(let axis), .logSoftmax(let axis), .sparsemax(let axis):
            return [LayerField("activation", a.displayName), LayerField("axis", axis)]
        default: return [LayerField("activation", activation(a))]
        }
    }

    /// An activation's name as Keras spells it, with its settings when they are not Keras's
    /// defaults: `relu`, `relu6`, `hard_sigmoid(alpha=0.2, beta=0.5)`.
    static func activation(_ a: Activation) -> String {
        switch a {
        case .relu(let maxValue, let slope, let threshold):
            if slope == 0, threshold == 0 { return maxValue == nil ? "relu" : maxValue == 6 ? "relu6" : "relu(max_value=\(Readable.setting(maxValue ?? 0)))" }
            return "relu(max_value=\(maxValue.map { Readable.setting($0) } ?? "None"), negative_slope=\(Readable.setting(slope)), threshold=\(Readable.setting(threshold)))"
        case .leakyRelu(let alpha): return "leaky_relu(negative_slope=\(Readable.setting(alpha)))"
        case .elu(let alpha): return alpha == 1 ? "elu" : "elu(alpha=\(Readable.setting(alpha)))"
        case .hardSigmoid(let alpha, let beta): return "hard_sigmoid(alpha=\(Readable.setting(alpha)), beta=\(Readable.setting(beta)))"
        case .celu(let alpha): return "celu(alpha=\(Readable.setting(alpha)))"
        case .squareplus(let b): return "squareplus(b=\(Readable.setting(b)))"
        case .softShrink(let t): return "soft_shrink(threshold=\(Readable.setting(t)))"
        case .hardShrink(let t): return "hard_shrink(threshold=\(Readable.setting(t)))"
        case .gelu(let approximate): return approximate ? "gelu(approximate=True)" : "gelu"
        case .softmax(let axis), .logSoftmax(let axis), .sparsemax(let axis):
            return axis == -1 ? a.displayName : "\(a.displayName)(axis=\(axis))"
        default: return a.displayName
        }
    }

    static func format(_ layout: Layout) -> String { layout == .channelsLast ? "channels_last" : "channels_first" }

    static func list(_ values: [Int]) -> String { "[" + values.map(String.init).joined(separator: ", ") + "]" }

    static func pairs(_ values: [[Int]]) -> String { "[" + values.map(list).joined(separator: ", ") + "]" }

    /// Pads as Keras would write them: `valid`, `same`, `causal` when they are what those give on
    /// this input, else `[[top, bottom], [left, right]]`.
    static func padding(_ padding: Padding, _ input: Shape?, _ layout: Layout, _ kernel: [Int], _ strides: [Int], _ dilations: [Int]) -> String {
        switch padding {
        case .valid: return "valid"
        case .same: return "same"
        case .causal: return "causal"
        case .explicit(let pads):
            let rank = pads.count / 2
            if pads.allSatisfy({ $0 == 0 }) { return "valid" }
            if ComparableGraph.explicit(.same, input: input, layout: layout, kernel: kernel, strides: strides, dilations: dilations) == padding {
                return "same"
            }
            if rank == 1, ComparableGraph.explicit(.causal, input: input, layout: layout, kernel: kernel, strides: strides,
                                                   dilations: dilations) == padding {
                return "causal"
            }
            return pairs((0..<rank).map { [pads[$0], pads[rank + $0]] })
        }
    }

    /// A transposed convolution's crop: `valid` for none, `same` for Keras's, else the pairs.
    static func cropping(_ a: ConvTransposeAttributes, _ input: Shape?) -> String {
        guard case .explicit(let pads) = a.padding else { return padding(a.padding, input, a.layout, a.kernelSize, a.strides, a.dilations) }
        let rank = pads.count / 2
        if pads.allSatisfy({ $0 == 0 }) { return "valid" }
        if let input, input.rank == a.rank + 2 {
            // Keras's "same" makes the output `stride` times the input.
            let first = a.layout == .channelsLast ? 1 : 2
            var dimensions = input.dimensions
            for axis in 0..<a.rank { dimensions[first + axis] = input[first + axis].map { $0 * a.strides[axis] } }
            if ComparableGraph.crop(a, input: input, output: Shape(dimensions)) == pads { return "same" }
        }
        return pairs((0..<rank).map { [pads[$0], pads[rank + $0]] })
    }
}
