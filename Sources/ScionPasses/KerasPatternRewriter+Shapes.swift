import ScionIR

/// Padding, global pooling and shape ops in the forms Keras layers take.
extension KerasPatternRewriter {
    /// A constant-zero Pad of the spatial axes only is ZeroPadding; one that only removes is Cropping.
    /// Spatial axes are 2... of a channels-first value, or 1...r-2 of a channels-last one (tf2onnx
    /// leaves some of Keras's ZeroPadding2D on NHWC values).
    mutating func foldPadding(_ position: Int) throws {
        let node = graph.nodes[position]
        guard case .onnx(.pad(let a)) = node.op, a.mode == .constant, a.value == 0, node.inputs.count == 1 else { return }
        let rank = a.pads.count / 2
        guard (3...5).contains(rank), a.pads.count == 2 * rank else { return }
        let untouched = { (axis: Int) in a.pads[axis] == 0 && a.pads[rank + axis] == 0 }
        let layout: Layout
        let spatial: [Int]
        if untouched(0) && untouched(1) {
            layout = .channelsFirst; spatial = Array(2..<rank)
        } else if untouched(0) && untouched(rank - 1) {
            layout = .channelsLast; spatial = Array(1..<(rank - 1))
        } else { return }
        let pairs = spatial.map { [a.pads[$0], a.pads[rank + $0]] }
        let values = pairs.flatMap { $0 }
        if values.allSatisfy({ $0 >= 0 }) {
            graph.nodes[position].op = .zeroPadding(SpatialPaddingAttributes(padding: pairs, layout: layout))
        } else if values.allSatisfy({ $0 <= 0 }) {
            let crops = pairs.map { $0.map { -$0 } }
            graph.nodes[position].op = .cropping(SpatialPaddingAttributes(padding: crops, layout: layout))
        }
    }

    /// Global pooling that keeps its unit axes, followed by a Squeeze / Flatten / Reshape that drops
    /// them, is one global pooling without kept axes; a ReduceMean or ReduceMax over every spatial
    /// axis is a global pooling.
    mutating func foldGlobalPooling(_ position: Int) throws {
        let node = graph.nodes[position]
        if case .globalPool(var a) = node.op, a.keepDimensions {
            guard let output = node.outputs.first, let reader = soleReader(of: output),
                  dropsUnitAxes(graph.nodes[reader], spatialRank: a.rank) else { return }
            a.keepDimensions = false
            graph.nodes[position].op = .globalPool(a)
            graph.nodes[position].outputs = graph.nodes[reader].outputs
            removed.insert(graph.nodes[reader].name)
        } else if case .onnx(.reduce(let a)) = node.op, a.kind == .mean || a.kind == .maximum {
            // Over axes 2... of a channels-first value, or axes 1...r-2 of a channels-last one (tf2onnx
            // keeps Keras's NHWC order around a global pooling it does not fuse).
            guard let input = node.inputs.first, let rank = shape(input)?.rank, rank >= 3, let axes = a.axes,
                  axes.count == rank - 2 else { return }
            let resolved = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
            let layout: Layout
            if resolved == Set(2..<rank) { layout = .channelsFirst } else if resolved == Set(1..<(rank - 1)) { layout = .channelsLast } else { return }
            graph.nodes[position].op = .globalPool(GlobalPoolAttributes(
                kind: a.kind == .mean ? .average : .max, rank: rank - 2, keepDimensions: a.keepDimensions, layout: layout))
        }
    }

    /// A Concat of one input copies it. torchvision's DenseNet exports one per block
    /// (`torch.cat([x], 1)`), and Keras 3 refuses a Concatenate of one input when it reads a legacy
    /// `.h5`, so the node goes and its readers read the input. When the Concat's output is a model
    /// output, the input's producer takes over that name instead; only when the input is itself a
    /// graph input or output does an Identity (a Keras layer) stay in its place.
    mutating func foldSingleInputConcat(_ position: Int) {
        let node = graph.nodes[position]
        guard case .concatenate = node.op, node.inputs.count == 1, node.outputs.count == 1 else { return }
        let (input, output) = (node.inputs[0], node.outputs[0])
        if !graphOutputs.contains(output) {
            rename(output, to: input)
        } else if let producer = producers[input], !graphOutputs.contains(input),
                  let slot = graph.nodes[producer].outputs.firstIndex(of: input) {
            graph.nodes[producer].outputs[slot] = output
            rename(input, to: output)
        } else {
            graph.nodes[position].op = .identity
            return
        }
        removed.insert(node.name)
    }

    /// Makes every node that reads `value` read `replacement` instead.
    mutating func rename(_ value: String, to replacement: String) {
        for position in graph.nodes.indices where graph.nodes[position].inputs.contains(value) {
            graph.nodes[position].inputs = graph.nodes[position].inputs.map { $0 == value ? replacement : $0 }
        }
    }

    /// A Slice with unit steps over the spatial axes only, of known lengths, is a Cropping: over axes
    /// 2... of a channels-first value, or axes 1...r-2 of a channels-last one.
    mutating func foldSlice(_ position: Int) throws {
        let node = graph.nodes[position]
        guard case .onnx(.slice(let a)) = node.op, let input = node.inputs.first, let inputShape = shape(input),
              (3...5).contains(inputShape.rank), a.steps.allSatisfy({ $0 == 1 }) else { return }
        let rank = inputShape.rank
        // A rank-3 value is a sequence only after a spatial op (Conv1D); after a Dense or a MatMul it
        // is tokens by features (a Keras model's keras.ops slicing, exported), whose Slice Keras
        // takes as it is (keras.ops indexing) where a Cropping1D would need a Transpose on each side.
        if rank == 3, let producer = producers[input], graph.nodes[producer].op.spatialLayout == nil { return }
        // Axes sliced over their whole length (tf2onnx lists all four) do not count.
        let cut = a.axes.indices.filter { index in
            let axis = a.axes[index] < 0 ? a.axes[index] + rank : a.axes[index]
            guard a.starts[index] == 0 else { return true }
            if let length = inputShape[axis] { return Self.clamp(a.ends[index], length) < length }
            return a.ends[index] < Int(Int32.max)
        }
        let axes = cut.map { a.axes[$0] < 0 ? a.axes[$0] + rank : a.axes[$0] }
        let layout: Layout
        let spatial: [Int]
        if Set(axes).isSubset(of: Set(2..<rank)) {
            layout = .channelsFirst; spatial = Array(2..<rank)
        } else if Set(axes).isSubset(of: Set(1..<(rank - 1))) {
            layout = .channelsLast; spatial = Array(1..<(rank - 1))
        } else { return }
        var crops: [[Int]] = []
        for axis in spatial {
            guard let length = inputShape[axis] else { return }
            guard let found = axes.firstIndex(of: axis) else { crops.append([0, 0]); continue }
            let index = cut[found]
            let start = Self.clamp(a.starts[index], length), end = Self.clamp(a.ends[index], length)
            guard end > start else { return }
            crops.append([start, length - end])
        }
        graph.nodes[position].op = .cropping(SpatialPaddingAttributes(padding: crops, layout: layout))
    }

    /// A Resize by whole factors over the spatial axes only is an UpSampling when ONNX's sampling is
    /// Keras's: nearest-neighbour copies each element `factor` times exactly for the coordinate
    /// modes where source index `floor(i / factor)` comes out (asymmetric or tf_half_pixel_for_nn
    /// with floor; half_pixel with a rounding mode); bilinear matches half-pixel linear sampling.
    mutating func foldResize(_ position: Int) throws {
        let node = graph.nodes[position]
        guard case .onnx(.resize(let a)) = node.op, let input = node.inputs.first, let inputShape = shape(input),
              (3...5).contains(inputShape.rank) else { return }
        let rank = inputShape.rank
        var factors: [Int] = []
        if let scales = a.scales, scales.count == rank {
            guard scales.allSatisfy({ $0 >= 1 && $0 == $0.rounded() && $0 < 65536 }) else { return }
            factors = scales.map { Int($0) }
        } else if let sizes = a.sizes, sizes.count == rank {
            for (axis, size) in sizes.enumerated() {
                guard let length = inputShape[axis], length > 0, size % length == 0 else { return }
                factors.append(size / length)
            }
        } else { return }
        let layout: Layout
        let spatial: [Int]
        if factors[0] == 1 && factors[1] == 1 {
            layout = .channelsFirst; spatial = Array(factors[2...])
        } else if factors[0] == 1 && factors[rank - 1] == 1 {
            layout = .channelsLast; spatial = Array(factors[1..<(rank - 1)])
        } else { return }
        let interpolation: String
        switch (a.mode, a.coordinateTransformation, a.nearestMode) {
        case ("nearest", "asymmetric", "floor"), ("nearest", "tf_half_pixel_for_nn", "floor"),
             ("nearest", "half_pixel", "round_prefer_floor"), ("nearest", "half_pixel", "round_prefer_ceil"):
            interpolation = "nearest"
        case ("linear", "half_pixel", _) where rank == 4, ("linear", "pytorch_half_pixel", _) where rank == 4:
            interpolation = "bilinear"
        default:
            return
        }
        graph.nodes[position].op = .upSampling(UpSamplingAttributes(size: spatial, interpolation: interpolation, layout: layout))
    }

    /// A Slice bound resolved as ONNX does: negative counts from the end, clamped to the length.
    static func clamp(_ bound: Int, _ length: Int) -> Int {
        min(max(bound < 0 ? bound + length : bound, 0), length)
    }

    /// Whether `node` turns `[N, C, 1, ...]` into `[N, C]`.
    func dropsUnitAxes(_ node: Node, spatialRank: Int) -> Bool {
        guard let output = node.outputs.first, let shape = shape(output), shape.rank == 2 else { return false }
        if case .onnx(.squeeze(let a)) = node.op {
            let rank = spatialRank + 2
            return Set(a.axes.map { $0 < 0 ? $0 + rank : $0 }) == Set(2..<rank)
        }
        if case .flatten(let a) = node.op { return a.axis == 1 }
        if case .reshape = node.op { return true }
        return false
    }

    /// ONNX reshapes name the batch axis; Keras's do not. A Reshape to `[N, features]` is a Flatten; a
    /// Reshape, Squeeze or Unsqueeze that keeps the batch axis and whose result has known lengths
    /// becomes a Keras Reshape to those lengths. An old-opset Softmax of a rank-2 value is a Softmax.
    mutating func foldReshapes(_ position: Int) throws {
        let node = graph.nodes[position]
        guard let input = node.inputs.first, let output = node.outputs.first, node.outputs.count == 1 else { return }
        if case .reshape(let a) = node.op, a.includesBatch {
            guard keepsBatch(a, input: input), let result = shape(output) else { return }
            if result.rank == 2, (shape(input)?.rank ?? 0) >= 3 {
                graph.nodes[position].op = .flatten(FlattenAttributes(layout: .channelsFirst))
            } else if let lengths = knownSampleLengths(result) {
                graph.nodes[position].op = .reshape(ReshapeAttributes(targetShape: lengths))
            }
        } else if let squeeze = squeezeAxes(node.op) {
            guard let result = shape(output), let inputRank = shape(input)?.rank else { return }
            let rank = squeeze.squeezes ? inputRank : result.rank
            guard !squeeze.axes.axes.contains(where: { $0 == 0 || $0 == -rank }), let lengths = knownSampleLengths(result) else { return }
            graph.nodes[position].op = .reshape(ReshapeAttributes(targetShape: lengths))
        } else if case .onnx(.coercedSoftmax(let a)) = node.op {
            guard shape(input)?.rank == 2, a.axis == 1 || a.axis == -1 else { return }
            graph.nodes[position].op = .activation(a.logarithm ? .logSoftmax(axis: -1) : .softmax(axis: -1))
        }
    }

    /// A Squeeze's or Unsqueeze's axes, and whether it squeezes (its axes count in the input's rank
    /// rather than the output's).
    func squeezeAxes(_ op: Op) -> (axes: AxesAttributes, squeezes: Bool)? {
        if case .onnx(.squeeze(let a)) = op { return (a, true) }
        if case .onnx(.unsqueeze(let a)) = op { return (a, false) }
        return nil
    }

    /// An ONNX reshape target whose first entry keeps the batch: 0 (copy), -1 with every other length
    /// given, or the input's own batch length.
    func keepsBatch(_ a: ReshapeAttributes, input: String) -> Bool {
        // A scalar has no batch to keep (shape arithmetic's Reshape of a length to `[-1]`).
        guard let first = a.targetShape.first, (shape(input)?.rank ?? 1) >= 1 else { return false }
        if first == 0 { return !a.allowZero }
        if first == -1 {
            // The -1 is the batch only when the other lengths hold a whole sample: `[-1, 16, 16, 3]`
            // of `(N, 4, 16, 16, 3)` folds the 4 frames into the batch (Keras's TimeDistributed).
            let rest = Array(a.targetShape.dropFirst())
            guard !rest.contains(where: { $0 <= 0 }), let sample = shape(input).flatMap({ Shape.product(Array($0.dimensions.dropFirst())) }) else {
                return false
            }
            return rest.reduce(1, *) == sample
        }
        return shape(input)?.dimensions.first.flatMap { $0 } == first
    }

    /// Lengths of a value's non-batch axes when all are known.
    func knownSampleLengths(_ shape: Shape) -> [Int]? {
        let lengths = shape.dimensions.dropFirst()
        guard lengths.allSatisfy({ $0 != nil }) else { return nil }
        return lengths.compactMap { $0 }
    }
}
