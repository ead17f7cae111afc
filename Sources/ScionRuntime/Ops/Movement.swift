import ScionIR

/// Ops that copy input values to output places: Concatenate and Split, Slice, Gather, the paddings
/// (ONNX Pad, Keras ZeroPadding and Cropping), and nearest-neighbour UpSampling and Resize. Forward
/// kernels and VJPs; most VJPs run the op once more on element indices (`movementBackward`).
extension Executor {
    /// Split is the one op with several outputs: `run` (and the trainer's forward) store its parts.
    func split(_ node: Node, _ x: RuntimeTensor, _ a: SplitAttributes) throws -> [RuntimeTensor] {
        try Kernels.split(x, axis: a.axis, sizes: Self.splitSizes(a, x), node: node.name)
    }

    /// The parts' lengths for this input (equal parts are sized by its axis's length).
    static func splitSizes(_ a: SplitAttributes, _ x: RuntimeTensor) -> [Int] {
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        return (0..<x.rank).contains(axis) ? a.sizes(alongLength: x.shape[axis]) : a.sizes
    }

    func gather(_ node: Node, _ inputs: [RuntimeTensor], _ a: GatherAttributes) throws -> RuntimeTensor {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "Gather needs data and indices") }
        return try Kernels.gather(inputs[0], indices: inputs[1], axis: a.axis, node: node.name)
    }

    func pad(_ node: Node, _ x: RuntimeTensor, _ a: PadAttributes) throws -> RuntimeTensor {
        switch a.mode {
        case .constant:
            let rank = a.pads.count / 2
            return Kernels.pad(x, begins: Array(a.pads.prefix(rank)), ends: Array(a.pads.suffix(rank)), value: a.value)
        case .reflect, .edge:
            return try Kernels.padReflectingOrRepeating(x, pads: a.pads, reflect: a.mode == .reflect, node: node.name)
        case .wrap:
            throw unsupported(node, "Pad in wrap mode")
        }
    }

    /// Keras's ZeroPadding adds zeros around the spatial axes; Cropping (`crop: true`) removes cells.
    func zeroPadding(_ x: RuntimeTensor, _ a: SpatialPaddingAttributes, crop: Bool) -> RuntimeTensor {
        let sign = crop ? -1 : 1
        return Kernels.pad(x, begins: [0, 0] + a.padding.map { sign * $0[0] }, ends: [0, 0] + a.padding.map { sign * $0[1] }, value: 0)
    }

    func upSampling(_ node: Node, _ x: RuntimeTensor, _ a: UpSamplingAttributes) throws -> RuntimeTensor {
        if let resampling = Self.bilinearUpSampling(a, x.shape) { return try resizing(node, x, resampling) }
        guard a.interpolation == "nearest", x.rank == a.size.count + 2 else {
            throw unsupported(node, "UpSampling with \(a.interpolation) interpolation")
        }
        return upsampleNearest(x, a.size)
    }

    /// Keras's UpSampling2D(interpolation="bilinear") is a resize of the image to its size times the
    /// factors (Keras 3's `ops.image.resize`, tf.keras's `tf.image.resize`): half-pixel centres, which
    /// is Keras's Resizing (bilinear) computed the same way. Nil for any other UpSampling.
    static func bilinearUpSampling(_ a: UpSamplingAttributes, _ shape: [Int]) -> ResizingAttributes? {
        guard a.interpolation == "bilinear", a.size.count == 2, shape.count == 4 else { return nil }
        return ResizingAttributes(kind: .resizing, height: shape[2] * a.size[0], width: shape[3] * a.size[1],
                                  interpolation: .bilinear, layout: .channelsFirst)
    }

    func resize(_ node: Node, _ x: RuntimeTensor, _ a: ResizeAttributes) throws -> RuntimeTensor {
        if let result = resizeByCopying(x, a) { return result }
        if let resampling = Self.kerasResampling(of: a, x.shape) { return try resizing(node, x, resampling) }
        throw unsupported(node, "Resize (\(a.mode), \(a.coordinateTransformation)) other than whole-factor nearest or Keras's "
                          + "half-pixel resampling")
    }

    /// Whole factors with a sampling that copies each cell: the nearest-neighbour cases
    /// KerasPatternRewriter maps to UpSampling; nil for any other Resize.
    func resizeByCopying(_ x: RuntimeTensor, _ a: ResizeAttributes) -> RuntimeTensor? {
        let copies = a.mode == "nearest" && [("asymmetric", "floor"), ("tf_half_pixel_for_nn", "floor"),
                                             ("half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil")]
            .contains { $0 == (a.coordinateTransformation, a.nearestMode) }
        let factors = a.scales.map { $0.map { Int($0) } }
            ?? a.sizes.map { sizes in zip(sizes, x.shape).map { $1 > 0 && $0 % $1 == 0 ? $0 / $1 : 0 } }
        guard copies, let factors, factors.count == x.rank, factors.prefix(2) == [1, 1],
              a.scales?.allSatisfy({ $0 == $0.rounded() }) ?? true, factors.allSatisfy({ $0 >= 1 }) else { return nil }
        return upsampleNearest(x, Array(factors.dropFirst(2)))
    }

    /// ONNX Slice with constant bounds: negative bounds count from the end, clamped as ONNX clamps.
    func slice(_ node: Node, _ x: RuntimeTensor, _ a: SliceAttributes) throws -> RuntimeTensor {
        var starts = [Int](repeating: 0, count: x.rank), steps = [Int](repeating: 1, count: x.rank)
        var lengths = x.shape
        for (position, rawAxis) in a.axes.enumerated() {
            let axis = rawAxis < 0 ? rawAxis + x.rank : rawAxis
            guard (0..<x.rank).contains(axis), position < a.starts.count, position < a.ends.count else {
                throw RuntimeError(node.name, "slices axis \(rawAxis) of \(x.shape)")
            }
            let length = x.shape[axis], step = position < a.steps.count ? a.steps[position] : 1
            guard step != 0 else { throw RuntimeError(node.name, "has a step of 0") }
            func resolve(_ bound: Int, low: Int, high: Int) -> Int { min(max(bound < 0 ? bound + length : bound, low), high) }
            let start = step > 0 ? resolve(a.starts[position], low: 0, high: length) : resolve(a.starts[position], low: -1, high: length - 1)
            let end = step > 0 ? resolve(a.ends[position], low: 0, high: length) : resolve(a.ends[position], low: -1, high: length - 1)
            starts[axis] = start
            steps[axis] = step
            lengths[axis] = max(0, step > 0 ? (end - start + step - 1) / step : (start - end - step - 1) / -step)
        }
        return x.rank == 0 ? x : Kernels.stridedSlice(x, starts: starts, steps: steps, lengths: lengths)
    }

    /// Each spatial cell repeated `size` times along its axis.
    func upsampleNearest(_ x: RuntimeTensor, _ size: [Int]) -> RuntimeTensor {
        let shape = [x.shape[0], x.shape[1]] + zip(x.shape.dropFirst(2), size).map { $0 * $1 }
        return Kernels.remap(x, to: shape) { axis, index in axis >= 2 ? index / size[axis - 2] : index }
    }
}

extension Trainer {
    /// Split's gradient is its parts' gradients side by side (zeros for unused parts); called by
    /// `backward` itself, since Split has several outputs.
    func splitBackward(_ node: Node, _ a: SplitAttributes, _ x: RuntimeTensor, upstream: [RuntimeTensor?]) throws -> StepGradients {
        let parts = try zip(upstream, Kernels.split(x, axis: a.axis, sizes: Executor.splitSizes(a, x), node: node.name)).map { $0 ?? RuntimeTensor(zeros: $1.shape) }
        return StepGradients(inputs: [try Kernels.concatenate(parts, axis: a.axis, node: node.name)])
    }

    /// dy split back into the inputs' lengths along the axis.
    func concatenateBackward(_ node: Node, _ a: ConcatenateAttributes, _ inputs: [RuntimeTensor], _ x: RuntimeTensor,
                             dy: RuntimeTensor) throws -> StepGradients {
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        return StepGradients(inputs: try Kernels.split(dy, axis: axis, sizes: inputs.map { $0.shape[axis] }, node: node.name))
    }

    /// ZeroPadding's gradient crops dy; Cropping's (`crop: true`) pads it with zeros.
    func zeroPaddingBackward(_ a: SpatialPaddingAttributes, crop: Bool, dy: RuntimeTensor) -> StepGradients {
        let sign = crop ? 1 : -1
        return StepGradients(inputs: [Kernels.pad(dy, begins: [0, 0] + a.padding.map { sign * $0[0] }, ends: [0, 0] + a.padding.map { sign * $0[1] }, value: 0)])
    }

    /// Constant padding's gradient crops dy; reflected or repeated padding copies values
    /// (`movementBackward`).
    func padBackward(_ node: Node, _ a: PadAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients? {
        guard a.mode == .constant else { return try movementBackward(node, inputs, dy: dy) }
        let rank = a.pads.count / 2
        return StepGradients(inputs: [Kernels.pad(dy, begins: a.pads.prefix(rank).map { -$0 }, ends: a.pads.suffix(rank).map { -$0 }, value: 0)])
    }

    /// Ops that only copy input values to output places (slices, nearest-neighbour upsampling and
    /// resizing, reflected or repeated padding, Gather): run the op once more on the input's element
    /// indices, then add each output gradient to the element it was copied from.
    func movementBackward(_ node: Node, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients? {
        if case .onnx(.pad(let a)) = node.op, a.mode == .constant { return nil }
        guard let x = inputs.first else { return nil }
        guard x.count < 1 << 24 else {
            throw RuntimeError(node.name, "\(node.op.typeName) on \(x.count) values is too large to differentiate (16M at most)")
        }
        let indices = RuntimeTensor(shape: x.shape, data: (0..<x.count).map(Float.init))
        let sources = try executor.evaluate(node, [indices] + inputs.dropFirst())
        guard sources.count == dy.count else { return nil }
        var dx = [Float](repeating: 0, count: x.count)
        for (position, source) in sources.data.enumerated() { dx[Int(source)] += dy.data[position] }
        return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: dx)] + inputs.dropFirst().map { _ in nil })
    }
}
