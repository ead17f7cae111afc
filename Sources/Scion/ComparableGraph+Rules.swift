import ScionIR
import ScionPasses

/// The equivalences `ComparableGraph` rewrites by, each exact. First every layer's own spelling is
/// made canonical (`ComparableGraph+Spelling.swift`: axes counted from the start, padding as
/// explicit pads, Flatten as the Reshape it is); then, until nothing changes:
///
/// ```
///  Identity, Activation(linear), Dropout*        →  removed (the value passes through)
///  Transpose p → Transpose q                     →  Transpose q∘p (removed when the identity)
///  Transpose p → BatchNormalization/Activation   →  the op (axis moved) → Transpose p
///  Reshape to its input's shape                  →  removed
///  Rescaling → Rescaling                         →  one Rescaling
///  Add(Add(a, b), c), and Multiply, Maximum...   →  Add(a, b, c)
///  Add of n → Rescaling(1/n)                     →  Average
///  Rescaling(a, b) → ReLU(max 1)                 →  hard_sigmoid(a, b)   (Keras 2's hard_sigmoid, written for Keras 3)
///  Rescaling(a, b) → ReLU(max m) → Rescaling(1/m)→  hard_sigmoid(a/m, b/m)  (MobileNetV3's)
///  ZeroPadding → Conv / DepthwiseConv            →  the convolution with the pads added
///  Conv2DTranspose → Cropping                    →  the transposed convolution cropping its output
///  DepthwiseConv → 1x1 Conv                      →  SeparableConv
///  Add(a, Rescaling(s)(x))                       →  CustomScaleLayer(s)(a, x)
///  Transpose p → LayerNormalization → Transpose p⁻¹  →  LayerNormalization over the moved axis
///  Transpose p → Flatten (→ Concatenate) → Dense  →  Flatten → Dense, the kernel's rows read in p's order
///  GlobalPooling(keepdims) → Reshape(N, C)       →  GlobalPooling
///  Conv/Dense → BatchNormalization*              →  one layer (compare only: tf2onnx folds it)
///  Conv/Dense(linear) → Activation               →  Conv/Dense(activation)
/// ```
/// (* with the matching option.) A merge happens only when the first layer's output has no other
/// reader and is not a model output, so no value anyone can see is lost.
extension ComparableGraph {
    mutating func applyRules(_ options: Options) {
        for index in layers.indices { canonicalizeSpelling(index, options) }
        var changed = true
        var rounds = 0
        while changed && rounds < 64 {
            changed = false
            rounds += 1
            var index = 0
            while index < layers.count {
                if elideIfPassThrough(index, options) {
                    changed = true
                    continue
                }
                if mergeWithReader(index, options) { changed = true }
                index += 1
            }
        }
    }

    /// Layers that pass their input on unchanged at inference.
    mutating func elideIfPassThrough(_ index: Int, _ options: Options) -> Bool {
        let layer = layers[index]
        guard layer.inputs.count == 1 else { return false }
        let passes: Bool
        switch layer.op {
        case .identity, .activation(.linear): passes = true
        case .dropout, .stochasticDepth, .augmentation: passes = options.inferenceOnly
        case .transpose(let a): passes = a.permutation == Array(a.permutation.indices)
        case .reshape: passes = shape(layer.inputs[0]).map { $0 == shape(layer.output) && $0.rank > 0 } ?? false
        case .rescaling(let a): passes = a.scale.allSatisfy { $0 == 1 } && a.offset.allSatisfy { $0 == 0 }
        case .resizing(let a): passes = a.isPassThrough && options.inferenceOnly
        case .onnx(.cast(let a)): passes = graph.values[layer.inputs[0]]?.dtype == a.to
        case .activation: // other than linear
            passes = false
        // Layers that compute something of their own.
        case .dense, .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling, .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .groupNormalization,
             .normalization, .layerScale, .onnx(.localResponseNormalization), .prelu, .onnx(.clip),
             .onnx(.coercedSoftmax),
             .embedding, .masking, .recurrent:
            passes = false
        // Shape ops that move, drop or add numbers.
        case .flatten, .permute, .onnx(.squeeze), .onnx(.unsqueeze), .onnx(.slice), .onnx(.split), .onnx(.pad),
             .onnx(.resize), .onnx(.gather), .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedReshape),
             .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization):
            passes = false
        // Merges, arithmetic, constants and layers Scion does not interpret.
        case .elementwise, .concatenate, .scaledResidual, .onnx(.gemm), .onnx(.matMul), .onnx(.unary),
             .onnx(.comparison), .onnx(.select), .onnx(.reduce), .onnx(.constant), .opaque:
            passes = false
        }
        if passes { elide(index) }
        return passes
    }

    /// Tries each merge of layer `index` with the sole reader of its output.
    mutating func mergeWithReader(_ index: Int, _ options: Options) -> Bool {
        guard let next = soleReader(of: layers[index].output) else { return false }
        let (first, second) = (layers[index].op, layers[next].op)
        switch (first, second) {
        case (.transpose(let p), .transpose(let q)) where p.permutation.count == q.permutation.count:
            let composed = q.permutation.map { p.permutation[$0] }
            merge(index, next, op: .transpose(TransposeAttributes(permutation: composed)), name: layers[index].name)
            return true
        case (.transpose(let p), _) where Self.movedThroughTranspose(second, p.permutation, rank: rank(layers[next].output)) != nil:
            sinkTranspose(index, next, permutation: p.permutation)
            return true
        case (.elementwise(let x), .elementwise(let y)) where x == y && [.add, .multiply, .maximum, .minimum].contains(x):
            // (a + b) + c is a + b + c: Keras's Add of three, ONNX's chain of Adds.
            let rest = layers[next].inputs.filter { $0 != layers[index].output }
            guard rest.count == layers[next].inputs.count - 1 else { return false }
            merge(index, next, op: first, name: layers[next].name, inputs: layers[index].inputs + rest)
            return true
        case (.elementwise(.add), .rescaling(let r)) where r.scale.count == 1 && r.offset == [0]
                && abs(r.scale[0] * Float(layers[index].inputs.count) - 1) <= 1e-6:
            // The sum of n divided by n is their Average.
            merge(index, next, op: .elementwise(.average), name: layers[index].name)
            return true
        case (.rescaling(let a), .rescaling(let b)):
            guard let composed = Self.compose(a, b) else { return false }
            merge(index, next, op: .rescaling(composed), name: layers[index].name)
            return true
        case (.rescaling(let a), .activation(.relu(let maxValue?, 0, 0))) where a.scale.count == 1 && a.offset.count == 1:
            if maxValue == 1 {
                merge(index, next, op: .activation(.hardSigmoid(alpha: a.scale[0], beta: a.offset[0])), name: layers[index].name)
                return true
            }
            // clip(a·x + b, 0, m) · (1/m) is clip(a/m·x + b/m, 0, 1).
            guard let last = soleReader(of: layers[next].output), case .rescaling(let c) = layers[last].op,
                  c.scale.count == 1, c.offset == [0], abs(c.scale[0] * maxValue - 1) <= 1e-6 else { return false }
            let gate = Activation.hardSigmoid(alpha: a.scale[0] * c.scale[0], beta: a.offset[0] * c.scale[0])
            merge([index, next, last], op: .activation(gate), name: layers[index].name)
            return true
        case (.zeroPadding(let p), .conv(var a)) where p.layout == a.layout:
            guard let pads = Self.added(p, to: a.padding) else { return false }
            a.padding = pads
            merge(index, next, op: .conv(a), name: layers[next].name, inputs: layers[index].inputs)
            return true
        case (.zeroPadding(let p), .depthwiseConv(var a)) where p.layout == a.layout:
            guard let pads = Self.added(p, to: a.padding) else { return false }
            a.padding = pads
            merge(index, next, op: .depthwiseConv(a), name: layers[next].name, inputs: layers[index].inputs)
            return true
        case (.zeroPadding(let p), .separableConv(var a)) where p.layout == a.depthwise.layout:
            guard let pads = Self.added(p, to: a.depthwise.padding) else { return false }
            a.depthwise.padding = pads
            merge(index, next, op: .separableConv(a), name: layers[next].name, inputs: layers[index].inputs)
            return true
        case (.convTranspose(var a), .cropping(let c)) where c.layout == a.layout:
            guard let pads = Self.added(c, to: a.padding) else { return false }
            a.padding = pads
            merge(index, next, op: .convTranspose(a), name: layers[index].name)
            return true
        case (.depthwiseConv(let d), .conv(let c)) where d.activation == .linear && !d.useBias && d.depthMultiplier >= 1
                && c.kernelSize.allSatisfy({ $0 == 1 }) && c.strides.allSatisfy({ $0 == 1 }) && c.groups == 1
                && c.padding == .explicit(Array(repeating: 0, count: 2 * c.rank)) && c.layout == d.layout:
            var depthwise = d
            depthwise.useBias = c.useBias
            depthwise.activation = c.activation
            merge(index, next, op: .separableConv(SeparableConvAttributes(filters: c.filters, depthwise: depthwise)),
                  name: layers[next].name, roles: [.kernel: .pointwiseKernel])
            return true
        case (.rescaling(let r), .elementwise(.add)) where r.scale.count == 1 && r.offset == [0] && layers[next].inputs.count == 2:
            let other = layers[next].inputs.first { $0 != layers[index].output } ?? layers[index].output
            merge(index, next, op: .scaledResidual(ScaledResidualAttributes(scale: r.scale[0])), name: layers[index].name,
                  inputs: [other] + layers[index].inputs)
            return true
        case (.transpose(let p), .layerNormalization(var n)):
            guard let restore = soleReader(of: layers[next].output), case .transpose(let q) = layers[restore].op,
                  q.permutation.count == p.permutation.count,
                  q.permutation.indices.allSatisfy({ p.permutation[q.permutation[$0]] == $0 }) else { return false }
            // Normalizing axis i of the transposed value is normalizing axis p[i] of the original.
            n.axes = n.axes.map { p.permutation[$0] }.sorted()
            merge([index, next, restore], op: .layerNormalization(n), name: layers[next].name)
            return true
        case (.transpose(let p), .reshape(let r)) where r.targetShape.count == 1:
            return reorderDenseRows(index, next, permutation: p.permutation)
        case (.globalPool(var g), .reshape(let r)) where g.keepDimensions:
            guard let out = shape(layers[next].output), out.rank == 2, r.targetShape.count == 1 else { return false }
            g.keepDimensions = false
            merge(index, next, op: .globalPool(g), name: layers[index].name)
            return true
        case (_, .batchNormalization) where options.foldBatchNormalization && first.fusedActivation == .linear:
            merge(index, next, op: first, name: layers[index].name)
            return true
        case (_, .activation(let activation)) where first.fusedActivation == .linear:
            guard let fused = Self.withActivation(first, activation, rank: rank(layers[next].output)) else { return false }
            merge(index, next, op: fused, name: layers[index].name)
            return true
        default:
            return false
        }
    }

    /// An op that works the same on either side of a transpose, given its axis moved: applied to
    /// the transposed value along axis k, it is applied to the untransposed value along axis p[k].
    static func movedThroughTranspose(_ op: Op, _ p: [Int], rank: Int?) -> Op? {
        func moved(_ axis: Int) -> Int? {
            guard let rank, rank == p.count else { return nil }
            let resolved = axis < 0 ? axis + rank : axis
            guard p.indices.contains(resolved) else { return nil }
            return p[resolved] == rank - 1 ? -1 : p[resolved]
        }
        switch op {
        case .activation(let a):
            guard let axis = a.axis else { return op }
            return moved(axis).map { .activation(a.withAxis($0)) }
        case .batchNormalization(var a):
            guard let axis = moved(a.axis) else { return nil }
            a.axis = axis
            return .batchNormalization(a)
        case .groupNormalization(var a):
            // Groups are runs along the channel axis, which a transpose of other axes leaves alone.
            guard let axis = moved(a.axis) else { return nil }
            a.axis = axis
            return .groupNormalization(a)
        case .rescaling(var a):
            guard a.scale.count > 1 || a.offset.count > 1 else { return op }
            guard let axis = moved(a.axis) else { return nil }
            a.axis = axis
            return .rescaling(a)
        case .resizing:
            // Resamples the spatial axes of its own layout: it stops a transpose.
            return nil
        case .dropout, .identity, .stochasticDepth, .augmentation:
            return op
        // Ops whose result depends on the layout or on axes they do not name: they stop a transpose.
        case .dense, .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling, .layerNormalization, .multiHeadAttention, .einsumDense, .unitNormalization, .attention,
             .normalization, .layerScale,
             .onnx(.localResponseNormalization), .prelu, .onnx(.clip), .onnx(.coercedSoftmax), .embedding, .masking, .recurrent:
            return nil
        // Shape ops (two transposes in a row are composed instead).
        case .flatten, .reshape, .permute, .transpose, .onnx(.squeeze), .onnx(.unsqueeze), .onnx(.slice), .onnx(.split),
             .onnx(.pad), .onnx(.resize), .onnx(.gather), .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedReshape):
            return nil
        // Normalizations whose operands are computed in the graph's own layout.
        case .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization):
            return nil
        // Merges and arithmetic, which read other values laid out their own way.
        case .elementwise, .concatenate, .scaledResidual, .onnx(.gemm), .onnx(.matMul), .onnx(.unary),
             .onnx(.comparison), .onnx(.select), .onnx(.reduce), .onnx(.constant), .onnx(.cast), .opaque:
            return nil
        }
    }

    /// Transpose p → op becomes op → Transpose p (the op's axis moved), so a transpose sinks until it
    /// meets the one undoing it (tf2onnx's NHWC ↔ NCHW pairs around a BatchNormalization) or an op
    /// whose layout matters. The moved op outputs a value the graph does not have (its result before
    /// the transpose); `compare` still taps its real output, held in the other layout.
    mutating func sinkTranspose(_ transpose: Int, _ op: Int, permutation p: [Int]) {
        guard let movedOp = Self.movedThroughTranspose(layers[op].op, p, rank: rank(layers[op].output)) else { return }
        let input = layers[transpose].inputs
        let output = layers[op].output
        let untransposed = output + "#before " + layers[transpose].name
        var first = layers[op], second = layers[transpose]
        first.op = movedOp
        first.inputs = input
        first.output = untransposed
        second.inputs = [untransposed]
        second.output = output
        if let shape = input.first.flatMap({ shape($0) }) { synthesizedShapes[untransposed] = shape }
        layers[transpose] = first
        layers[op] = second
    }

    /// Transpose p → Flatten → Dense is Flatten → Dense with the kernel's rows in the untransposed
    /// order (how a channels-first export flattens an image before its Dense), also with a
    /// Concatenate of flat values between them (the rows the Flatten feeds are permuted). The
    /// transpose goes, the Flatten reads the untransposed value (its output is in another order
    /// than the other model's, so `compare` skips it), the Dense's kernel is read with those rows
    /// permuted.
    mutating func reorderDenseRows(_ transpose: Int, _ flatten: Int, permutation p: [Int]) -> Bool {
        guard let reader = soleReader(of: layers[flatten].output), let transposed = shape(layers[transpose].output),
              transposed.rank == p.count, p.first == 0 else { return false }
        var dense = reader
        var firstRow = 0
        if case .concatenate(let c) = layers[reader].op {
            // Rows of the flattened part start after the inputs before it.
            guard c.axis == -1, let next = soleReader(of: layers[reader].output),
                  let position = layers[reader].inputs.firstIndex(of: layers[flatten].output) else { return false }
            for value in layers[reader].inputs[..<position] {
                guard let width = shape(value), width.rank == 2, let size = width[1] else { return false }
                firstRow += size
            }
            dense = next
            layers[reader].reordered = true
        }
        guard case .dense = layers[dense].op, let kernel = layers[dense].parameter(.kernel), kernel.shape.count == 2,
              let size = kernel.dtype.byteSize else { return false }
        let dimensions = transposed.dimensions.dropFirst().compactMap { $0 }
        guard dimensions.count == p.count - 1, let rowCount = dimensions.checkedProduct, firstRow + rowCount <= kernel.shape[0] else {
            return false
        }
        // Kernel rows run over the transposed axes; row axis j of the untransposed value is
        // transposed axis i where p[i] = j.
        let rows = (1..<p.count).compactMap { j in p.firstIndex(of: j).map { $0 - 1 } }
        let units = kernel.shape[1]
        let start = firstRow * units * size
        guard rows.count == dimensions.count,
              let permutation = try? TensorPermutation(shape: dimensions + [units], permutation: rows + [dimensions.count],
                                                       elementSize: size),
              let source = try? PermutedTensorSource(base: kernel.storage, permutation: permutation,
                                                     byteRange: start..<(start + rowCount * units * size)) else { return false }
        var reordered = kernel
        reordered.storage = TensorStorage(source: source)
        if let position = layers[dense].parameters.firstIndex(where: { $0.role == .kernel }) {
            layers[dense].parameters[position] = reordered
        }
        layers[flatten].inputs = layers[transpose].inputs
        layers[flatten].steps = layers[transpose].steps + layers[flatten].steps
        layers[flatten].reordered = true
        layers.remove(at: transpose)
        return true
    }

    /// Merges layer `first` into its sole reader `second`.
    mutating func merge(_ first: Int, _ second: Int, op: Op, name: String, inputs: [String]? = nil, roles: [ParameterRole: ParameterRole] = [:]) {
        merge([first, second], op: op, name: name, inputs: inputs, roles: roles)
    }

    /// Merges a chain of layers, each the sole reader of the one before, into one layer where the
    /// last was (every input of the chain is computed before it): named `name`, reading `inputs`
    /// (the first's when not given), producing the last one's output. `roles` renames the weights
    /// of the layers after the first (a pointwise convolution's `kernel` in a SeparableConv).
    mutating func merge(_ chain: [Int], op: Op, name: String, inputs: [String]? = nil, roles: [ParameterRole: ParameterRole] = [:]) {
        guard let head = chain.first, let tail = chain.last, head != tail else { return }
        var merged = layers[tail]
        merged.op = op
        merged.inputs = inputs ?? layers[head].inputs
        merged.steps = chain.flatMap { layers[$0].steps }
        var parameters = layers[head].parameters
        for position in chain.dropFirst() {
            for var parameter in layers[position].parameters {
                parameter.role = roles[parameter.role] ?? parameter.role
                if !parameters.contains(where: { $0.role == parameter.role }) { parameters.append(parameter) }
            }
        }
        merged.parameters = parameters
        merged.weightsInSettings = chain.reduce(into: Set<ParameterRole>()) { $0.formUnion(layers[$1].weightsInSettings) }
        if let principal = chain.first(where: { layers[$0].name == name }) {
            merged.trainable = layers[principal].trainable
            merged.layer = layers[principal].layer
        }
        merged.name = name
        layers[tail] = merged
        for position in chain.dropLast().sorted(by: >) { layers.remove(at: position) }
    }

    // MARK: - Op arithmetic

    /// `x·a.scale + a.offset`, then `·b.scale + b.offset`, as one Rescaling; nil when the two run
    /// along different axes.
    static func compose(_ a: RescalingAttributes, _ b: RescalingAttributes) -> RescalingAttributes? {
        let count = max(a.scale.count, a.offset.count, b.scale.count, b.offset.count)
        let lists = [a.scale, a.offset, b.scale, b.offset]
        guard lists.allSatisfy({ $0.count == 1 || $0.count == count }) else { return nil }
        let perChannel = lists.filter { $0.count > 1 }
        if !perChannel.isEmpty, a.axis != b.axis, a.scale.count > 1 || a.offset.count > 1, b.scale.count > 1 || b.offset.count > 1 {
            return nil
        }
        func at(_ list: [Float], _ i: Int) -> Float { list.count == 1 ? list[0] : list[i] }
        let scale = (0..<count).map { at(a.scale, $0) * at(b.scale, $0) }
        let offset = (0..<count).map { at(a.offset, $0) * at(b.scale, $0) + at(b.offset, $0) }
        let axis = a.scale.count > 1 || a.offset.count > 1 ? a.axis : b.axis
        func collapsed(_ values: [Float]) -> [Float] { values.allSatisfy { $0 == values[0] } ? [values[0]] : values }
        return RescalingAttributes(scale: collapsed(scale), offset: collapsed(offset), axis: axis)
    }

    /// Explicit pads plus a ZeroPadding's (or a Cropping's, for a transposed convolution's crop).
    static func added(_ extra: SpatialPaddingAttributes, to padding: Padding) -> Padding? {
        guard case .explicit(let pads) = padding, pads.count == 2 * extra.padding.count,
              extra.padding.allSatisfy({ $0.count == 2 }) else { return nil }
        let rank = extra.padding.count
        var result = pads
        for axis in 0..<rank {
            result[axis] += extra.padding[axis][0]
            result[rank + axis] += extra.padding[axis][1]
        }
        return .explicit(result)
    }

    /// The op with `activation` fused in. Keras fuses per-axis activations (softmax) along the last
    /// axis only.
    static func withActivation(_ op: Op, _ activation: Activation, rank: Int?) -> Op? {
        if let axis = activation.axis {
            guard let rank, axis == rank - 1 || axis == -1 else { return nil }
        }
        let fused = activation.axis == nil ? activation : activation.withAxis(-1)
        return op.withFusedActivation(fused)
    }
}
