import ScionIR

/// One spelling per meaning for a single layer, before layers are merged:
///
/// ```
///  axis 3 of a rank-4 value, axis -1          →  -1 (the last axis, Keras's default); others from the start
///  padding "same" / "valid" / "causal"         →  the explicit pads they amount to for the input's size
///  Conv2DTranspose "same"                      →  the explicit crop of its full output
///  Permute (2, 1)                              →  Transpose [0, 2, 1]
///  Flatten, Squeeze, Unsqueeze, Reshape        →  Reshape to the output's shape (all are row-major)
///  Reshape (N,1,1,C) → (N,C,1,1)               →  Transpose [0, 3, 1, 2] (the same move of a 1x1 image)
///  Normalization(mean, variance)               →  Rescaling(1/σ, -mean/σ) (what it computes)
///  a Rescaling of equal values                 →  one value, no axis (-1)
///  CustomScaleLayer(scale 1)                   →  Add
///  Neg                                         →  Rescaling(-1) (keras.ops.negative; ONNX read back as Keras)
///  ReduceMean/Max over every axis between batch and channels (channels-last) →  GlobalAverage/MaxPooling
///  Slice with step 1 of those axes only       →  Cropping (what the Keras reader makes of either)
/// ```
/// Fields are put back into Keras's words for display (`LayerFields`): explicit pads equal to what
/// "same" gives print as `same`.
extension ComparableGraph {
    mutating func canonicalizeSpelling(_ index: Int, _ options: Options) {
        let layer = layers[index]
        let input = layer.inputs.first.flatMap { shape($0) }
        let output = shape(layer.output)
        let outputRank = output?.rank
        func axis(_ value: Int, _ rank: Int?) -> Int {
            guard let rank else { return value }
            let resolved = value < 0 ? value + rank : value
            return resolved == rank - 1 ? -1 : resolved
        }
        switch layer.op {
        case .conv(let a) where a.groups > 1 && a.groups == input.flatMap({ Self.channels($0, a.layout) }) && a.filters % a.groups == 0:
            // One group per input channel is a depthwise convolution; its kernel [k, k, 1, C·m]
            // holds the depthwise kernel [k, k, C, m]'s elements in the same order.
            layers[index].op = .depthwiseConv(DepthwiseConvAttributes(
                kernelSize: a.kernelSize, strides: a.strides, dilations: a.dilations, padding: a.padding,
                depthMultiplier: a.filters / a.groups, useBias: a.useBias, activation: a.activation, layout: a.layout))
            for position in layers[index].parameters.indices where layers[index].parameters[position].role == .kernel {
                layers[index].parameters[position].role = .depthwiseKernel
            }
            canonicalizeSpelling(index, options)
        case .conv(var a):
            a.padding = Self.explicit(a.padding, input: input, layout: a.layout, kernel: a.kernelSize, strides: a.strides,
                                      dilations: a.dilations)
            layers[index].op = .conv(a)
        case .depthwiseConv(var a):
            a.padding = Self.explicit(a.padding, input: input, layout: a.layout, kernel: a.kernelSize, strides: a.strides,
                                      dilations: a.dilations)
            layers[index].op = .depthwiseConv(a)
        case .separableConv(var a):
            a.depthwise.padding = Self.explicit(a.depthwise.padding, input: input, layout: a.depthwise.layout,
                                                kernel: a.depthwise.kernelSize, strides: a.depthwise.strides,
                                                dilations: a.depthwise.dilations)
            layers[index].op = .separableConv(a)
        case .pool(var a):
            a.padding = Self.explicit(a.padding, input: input, layout: a.layout, kernel: a.poolSize, strides: a.strides,
                                      dilations: a.dilations)
            layers[index].op = .pool(a)
        case .convTranspose(var a):
            if let crop = Self.crop(a, input: input, output: output) {
                a.padding = .explicit(crop)
                a.outputPadding = nil
            }
            layers[index].op = .convTranspose(a)
        case .batchNormalization(var a):
            a.axis = axis(a.axis, outputRank)
            // ONNX's BatchNormalization always has a scale and a bias: ones and zeros are none.
            if options.inferenceOnly { dropIdentityAffine(index, center: &a.center, scale: &a.scale) }
            layers[index].op = .batchNormalization(a)
        case .groupNormalization(var a):
            a.axis = axis(a.axis, outputRank)
            // One group per channel is spelled -1 (Keras) or by the count (a GroupNormalization with
            // as many groups as channels, ONNX's InstanceNormalization read back).
            if let channels = layer.parameter(.gamma)?.shape.first ?? layer.parameter(.beta)?.shape.first, a.groups == channels {
                a.groups = -1
            }
            // ONNX's InstanceNormalization always has a scale and a bias: ones and zeros are none.
            if options.inferenceOnly { dropIdentityAffine(index, center: &a.center, scale: &a.scale) }
            layers[index].op = .groupNormalization(a)
        case .concatenate(var a):
            a.axis = axis(a.axis, outputRank)
            layers[index].op = .concatenate(a)
        case .activation(let activation) where activation.axis != nil:
            layers[index].op = .activation(activation.withAxis(axis(activation.axis ?? -1, outputRank)))
        case .layerNormalization(var a):
            a.axes = a.axes.map { value in outputRank.map { value < 0 ? value + $0 : value } ?? value }.sorted()
            layers[index].op = .layerNormalization(a)
        case .rescaling(let a):
            layers[index].op = .rescaling(Self.canonical(a, axis: axis(a.axis, outputRank)))
        case .resizing(let a):
            // tf.keras's RandomCrop computes at inference what Resizing(crop_to_aspect_ratio=True)
            // does, which is how the Keras writer spells it for Keras 3.
            layers[index].op = .resizing(a.inferenceForm)
        case .layerScale(let a):
            // x · gamma: a Rescaling by the learned per-channel gamma (kept as the weight).
            if let gamma = floats(layer.parameter(.gamma)) {
                layers[index].op = .rescaling(Self.canonical(RescalingAttributes(scale: gamma, offset: [0]), axis: axis(a.axis, outputRank)))
                layers[index].weightsInSettings = [.gamma]
            }
        case .permute(let a):
            layers[index].op = .transpose(TransposeAttributes(permutation: [0] + a.dimensions))
        case .flatten(let a) where a.axis == 1:
            // Flatten is row-major whatever its layout says (the layout only guides layout passes).
            reshape(index, to: output, from: input)
        case .reshape, .onnx(.squeeze), .onnx(.unsqueeze):
            reshape(index, to: output, from: input)
        case .scaledResidual(let a) where a.scale == 1:
            // a + 1·x is an Add (ONNX writes no Mul by one).
            layers[index].op = .elementwise(.add)
        case .onnx(.unary(.negate)):
            layers[index].op = .rescaling(RescalingAttributes(scale: [-1], offset: [0]))
        case .onnx(.reduce(let a)) where a.kind == .mean || a.kind == .maximum:
            if let rank = input?.rank, (3...5).contains(rank), a.axes == Array(1..<(rank - 1)) {
                layers[index].op = .globalPool(GlobalPoolAttributes(kind: a.kind == .mean ? .average : .max, rank: rank - 2,
                                                                    keepDimensions: a.keepDimensions, layout: .channelsLast))
            }
        case .onnx(.slice(let a)):
            if let cropping = Self.cropping(a, input: input) { layers[index].op = .cropping(cropping) }
        case .normalization(let a):
            if let rescaling = normalizationAsRescaling(a, layer: layer, rank: input?.rank) {
                // The statistics stay as weights: compared when the other model has them too.
                layers[index].op = .rescaling(rescaling)
                layers[index].weightsInSettings = [.mean, .variance, .count]
            }
        // Already canonical: an activation without an axis, a Flatten from a later axis, a
        // CustomScaleLayer scaling by other than 1. (Every Conv has its padding made explicit above.)
        case .activation, .flatten, .scaledResidual:
            break
        // Ops with one spelling.
        case .dense, .globalPool, .upSampling, .zeroPadding, .cropping, .prelu, .dropout, .stochasticDepth, .identity,
             .multiHeadAttention, .einsumDense, .unitNormalization, .attention, .augmentation, .transpose,
             .elementwise, .embedding, .masking, .recurrent, .onnx(.localResponseNormalization),
             .onnx(.coercedSoftmax), .onnx(.clip), .onnx(.unary):
            break
        case .onnx(.constant), .onnx(.gemm), .onnx(.matMul), .onnx(.comparison), .onnx(.select), .onnx(.reduce),
             .onnx(.gather), .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedReshape),
             .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization), .onnx(.cast),
             .onnx(.split), .onnx(.pad), .onnx(.resize), .opaque:
            break
        }
    }

    /// A Rescaling with one scale and one offset when all its values are equal (a LayerScale's gamma
    /// at its initial value is one number repeated; an ONNX export writes it as a scalar), its axis
    /// only when it has per-channel values.
    static func canonical(_ a: RescalingAttributes, axis: Int) -> RescalingAttributes {
        func collapsed(_ values: [Float]) -> [Float] { values.allSatisfy { $0 == values.first } && !values.isEmpty ? [values[0]] : values }
        var result = RescalingAttributes(scale: collapsed(a.scale), offset: collapsed(a.offset), axis: -1)
        if result.scale.count > 1 || result.offset.count > 1 { result.axis = axis }
        return result
    }

    /// A Slice with step 1 of only the axes between batch and channels of a channels-last value of
    /// known shape, as the Cropping it is (begin and end counts per spatial axis); nil otherwise.
    static func cropping(_ a: SliceAttributes, input: Shape?) -> SpatialPaddingAttributes? {
        guard let input, (3...5).contains(input.rank), a.steps.allSatisfy({ $0 == 1 }) else { return nil }
        var crops = [[Int]](repeating: [0, 0], count: input.rank - 2)
        for (position, axis) in a.axes.enumerated() {
            let resolved = axis < 0 ? axis + input.rank : axis
            guard (1..<(input.rank - 1)).contains(resolved), let length = input[resolved] else { return nil }
            func clamped(_ value: Int) -> Int { min(max(value < 0 ? value + length : value, 0), length) }
            let (start, end) = (clamped(a.starts[position]), clamped(a.ends[position]))
            guard start < end else { return nil }
            crops[resolved - 1] = [start, length - end]
        }
        return SpatialPaddingAttributes(padding: crops, layout: .channelsLast)
    }

    /// A small float32 weight's values (per-channel statistics and scales).
    func floats(_ parameter: Parameter?) -> [Float]? {
        guard let parameter, parameter.dtype == .float32, parameter.elementCount <= 1 << 16,
              let bytes = try? parameter.storage.bytes(), bytes.count == parameter.elementCount * 4 else { return nil }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    static func channels(_ shape: Shape, _ layout: Layout) -> Int? {
        shape.rank >= 3 ? shape[layout == .channelsLast ? shape.rank - 1 : 1] : nil
    }

    /// A reshape that keeps the batch axis, written as Keras's Reshape to the output's known shape;
    /// one that moves only axes of length 1 between the channels-first and channels-last places
    /// (tf2onnx's layout change of a 1x1 image) is the Transpose it amounts to.
    mutating func reshape(_ index: Int, to output: Shape?, from input: Shape?) {
        guard let output, let input, output.rank >= 1, input.rank >= 1, output[0] == input[0] else { return }
        if let permutation = Self.layoutPermutation(from: input, to: output) {
            layers[index].op = .transpose(TransposeAttributes(permutation: permutation))
            return
        }
        let rest = output.dimensions.dropFirst()
        guard rest.allSatisfy({ $0 != nil }) else { return }
        layers[index].op = .reshape(ReshapeAttributes(targetShape: rest.compactMap { $0 }))
    }

    /// The channels-first ↔ channels-last permutation that turns `input` into `output` when the
    /// axes it moves have length 1 (so a reshape does the same).
    static func layoutPermutation(from input: Shape, to output: Shape) -> [Int]? {
        let rank = input.rank
        guard rank >= 3, output.rank == rank, input != output else { return nil }
        let toLast = [0] + Array(2..<rank) + [1], toFirst = [0, rank - 1] + Array(1..<(rank - 1))
        for permutation in [toLast, toFirst] where permutation.map({ input[$0] }) == output.dimensions {
            let moved = input.dimensions.dropFirst().filter { $0 != 1 }
            let kept = output.dimensions.dropFirst().filter { $0 != 1 }
            if moved == kept { return permutation }
        }
        return nil
    }

    /// `(x - mean) / max(σ, 1e-7)` (or its inverse) as the Rescaling it is, statistics read from the
    /// config or the adapted weights, as the executor computes it.
    func normalizationAsRescaling(_ a: NormalizationAttributes, layer: Layer, rank: Int?) -> RescalingAttributes? {
        guard let mean = a.mean ?? floats(layer.parameter(.mean)), let variance = a.variance ?? floats(layer.parameter(.variance)),
              mean.count == variance.count, !mean.isEmpty else { return nil }
        let deviation = variance.map { max($0.squareRoot(), 1e-7) }
        let scale = a.invert ? deviation : deviation.map { 1 / $0 }
        let shift = a.invert ? mean : zip(mean, deviation).map { -$0 / $1 }
        if mean.count == 1 { return RescalingAttributes(scale: scale, offset: shift, axis: -1) }
        guard a.axes.count == 1, let rank else { return nil }
        let axis = a.axes[0] < 0 ? a.axes[0] + rank : a.axes[0]
        return RescalingAttributes(scale: scale, offset: shift, axis: axis == rank - 1 ? -1 : axis)
    }

    /// The pads a sliding window's padding amounts to on an input of known size; the padding as it
    /// is when the size is unknown.
    static func explicit(_ padding: Padding, input: Shape?, layout: Layout, kernel: [Int], strides: [Int], dilations: [Int]) -> Padding {
        let rank = kernel.count
        switch padding {
        case .explicit:
            return padding
        case .valid:
            return .explicit(Array(repeating: 0, count: 2 * rank))
        case .causal:
            guard rank == 1 else { return padding }
            return .explicit([(kernel[0] - 1) * (dilations.first ?? 1), 0])
        case .same:
            guard let input, input.rank == rank + 2, strides.count == rank, dilations.count == rank else { return padding }
            let first = layout == .channelsLast ? 1 : 2
            var begins: [Int] = [], ends: [Int] = []
            for axis in 0..<rank {
                guard let length = input[first + axis] else { return padding }
                let outputLength = (length + strides[axis] - 1) / strides[axis]
                let span = (kernel[axis] - 1) * dilations[axis] + 1
                let total = max((outputLength - 1) * strides[axis] + span - length, 0)
                begins.append(total / 2)
                ends.append(total - total / 2)
            }
            return .explicit(begins + ends)
        }
    }

    /// What a transposed convolution crops from its full output `s·(in-1) + span` to reach the
    /// output's size (odd pixel at the end, as Keras's "same"); nil when sizes are unknown or the
    /// output is larger (output padding, kept as it is).
    static func crop(_ a: ConvTransposeAttributes, input: Shape?, output: Shape?) -> [Int]? {
        guard let input, let output, input.rank == a.rank + 2, output.rank == a.rank + 2,
              a.strides.count == a.rank, a.dilations.count == a.rank else { return nil }
        let first = a.layout == .channelsLast ? 1 : 2
        var begins: [Int] = [], ends: [Int] = []
        for axis in 0..<a.rank {
            guard let length = input[first + axis], let target = output[first + axis] else { return nil }
            let span = (a.kernelSize[axis] - 1) * a.dilations[axis] + 1
            let total = a.strides[axis] * (length - 1) + span - target
            guard total >= 0 else { return nil }
            begins.append(total / 2)
            ends.append(total - total / 2)
        }
        return begins + ends
    }

    /// A beta of zeros and a gamma of ones are no beta and no gamma: ONNX's BatchNormalization and
    /// InstanceNormalization always carry both, Keras layers may have neither.
    mutating func dropIdentityAffine(_ index: Int, center: inout Bool, scale: inout Bool) {
        let layer = layers[index]
        if center, floats(layer.parameter(.beta))?.allSatisfy({ $0 == 0 }) == true {
            center = false
            layers[index].parameters.removeAll { $0.role == .beta }
        }
        if scale, floats(layer.parameter(.gamma))?.allSatisfy({ $0 == 1 }) == true {
            scale = false
            layers[index].parameters.removeAll { $0.role == .gamma }
        }
    }
}
