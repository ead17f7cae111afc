import ScionIR

/// The ONNX ops exporters compute indices and masks with at run time: Range, ConstantOfShape,
/// Trilu, and a Slice or Pad whose bounds are computed. Index values are held as float32 (exact below
/// 2^24); ONNX's "to the end" bounds (INT64_MAX, INT64_MIN) are far outside that and are clamped
/// before any conversion to Int. VJPs: Range and ConstantOfShape make values from lengths (no
/// gradient); Trilu's gradient is dy with the same triangle kept; the Slice copies values
/// (`movementBackward`); the Pad takes the constant form's VJP.
extension Executor {
    /// The most elements Range or ConstantOfShape will make (1 GiB of float32): a larger request
    /// is a mistake in the graph or its input, refused before allocating.
    static let generatedElementLimit = 1 << 28

    /// A computed bound or length as an Int, saturated far outside any real axis.
    static func integer(_ value: Float) -> Int {
        let limit = Float(1 << 62)
        guard value.isFinite else { return value > 0 ? 1 << 62 : -(1 << 62) }
        return Int(min(max(value.rounded(.towardZero), -limit), limit))
    }

    func range(_ node: Node, _ inputs: [RuntimeTensor]) throws -> RuntimeTensor {
        guard inputs.count == 3, inputs.allSatisfy({ $0.count == 1 }) else {
            throw RuntimeError(node.name, "Range needs three scalars (start, limit, delta), got shapes \(inputs.map(\.shape))")
        }
        let start = Double(inputs[0].data[0]), limit = Double(inputs[1].data[0]), delta = Double(inputs[2].data[0])
        guard delta != 0, start.isFinite, limit.isFinite, delta.isFinite else {
            throw RuntimeError(node.name, "Range from \(start) to \(limit) by \(delta) is not a finite sequence")
        }
        let count = max(Int(((limit - start) / delta).rounded(.up)), 0)
        guard count <= Self.generatedElementLimit else { throw RuntimeError(node.name, "Range would make \(count) values") }
        return RuntimeTensor(shape: [count], data: (0..<count).map { Float(start + Double($0) * delta) })
    }

    func constantOfShape(_ node: Node, _ inputs: [RuntimeTensor], _ a: ConstantOfShapeAttributes) throws -> RuntimeTensor {
        guard let shapeOperand = inputs.first, shapeOperand.rank == 1 else {
            throw RuntimeError(node.name, "ConstantOfShape needs a vector of lengths, got shape \(inputs.first?.shape ?? [])")
        }
        let lengths = try shapeOperand.data.map { value in
            guard let length = Int(exactly: value), length >= 0 else { throw RuntimeError(node.name, "its shape holds \(value), not a length") }
            return length
        }
        guard let count = lengths.checkedProduct, count <= Self.generatedElementLimit else {
            throw RuntimeError(node.name, "ConstantOfShape of \(lengths) would make too many values")
        }
        return RuntimeTensor(shape: lengths, data: [Float](repeating: Float(a.value), count: count))
    }

    func trilu(_ node: Node, _ inputs: [RuntimeTensor], _ a: TriluAttributes) throws -> RuntimeTensor {
        guard let x = inputs.first, x.rank >= 2 else { throw RuntimeError(node.name, "Trilu needs a value of rank 2 or more") }
        let k: Int
        if let constant = a.k {
            k = constant
        } else {
            guard inputs.count == 2, inputs[1].count == 1 else { throw RuntimeError(node.name, "Trilu's k must be one number") }
            k = Self.integer(inputs[1].data[0])
        }
        return Self.triangle(x, k: k, upper: a.upper)
    }

    /// `x` with the elements outside the triangle of its last two axes set to zero.
    static func triangle(_ x: RuntimeTensor, k: Int, upper: Bool) -> RuntimeTensor {
        let rows = x.shape[x.rank - 2], columns = x.shape[x.rank - 1]
        var result = x
        for index in result.data.indices {
            let column = index % columns, row = (index / columns) % rows
            if !TriluAttributes.keeps(row: row, column: column, k: k, upper: upper) { result.data[index] = 0 }
        }
        return result
    }

    /// ONNX Slice with its bounds read from the inputs, then sliced as the constant form is.
    func computedSlice(_ node: Node, _ inputs: [RuntimeTensor], _ a: ComputedSliceAttributes) throws -> RuntimeTensor {
        let expected = 3 + (a.hasAxes ? 1 : 0) + (a.hasSteps ? 1 : 0)
        guard inputs.count == expected else { throw RuntimeError(node.name, "Slice needs \(expected) inputs, got \(inputs.count)") }
        let x = inputs[0]
        let starts = inputs[1].data.map(Self.integer), ends = inputs[2].data.map(Self.integer)
        let axes = a.hasAxes ? inputs[3].data.map(Self.integer) : Array(0..<starts.count)
        let steps = a.hasSteps ? inputs[expected - 1].data.map(Self.integer) : [Int](repeating: 1, count: starts.count)
        guard ends.count == starts.count, axes.count == starts.count, steps.count == starts.count,
              Set(axes.map { $0 < 0 ? $0 + x.rank : $0 }).count == axes.count else {
            throw RuntimeError(node.name, "Slice bounds do not match: starts \(starts), ends \(ends), axes \(axes), steps \(steps)")
        }
        return try slice(node, x, SliceAttributes(starts: starts, ends: ends, axes: axes, steps: steps))
    }

    /// The full pads (begins of every axis, then ends) a computed Pad reads, its fill value, and
    /// the attributes the constant form's kernel takes.
    func computedPadding(_ node: Node, _ inputs: [RuntimeTensor], _ a: ComputedPadAttributes) throws -> PadAttributes {
        let expected = a.value == nil ? 3 : 2
        guard inputs.count == expected, inputs[1].rank == 1 else {
            throw RuntimeError(node.name, "Pad needs its data, a vector of pads\(a.value == nil ? " and a fill value" : "")")
        }
        let x = inputs[0], given = inputs[1].data.map(Self.integer)
        let axes = (a.axes ?? Array(0..<x.rank)).map { $0 < 0 ? $0 + x.rank : $0 }
        guard given.count == 2 * axes.count, axes.allSatisfy({ (0..<x.rank).contains($0) }), Set(axes).count == axes.count,
              given.allSatisfy({ abs($0) <= 1 << 24 }) else {
            throw RuntimeError(node.name, "Pad's pads \(given) do not fit a value of shape \(x.shape)")
        }
        var pads = [Int](repeating: 0, count: 2 * x.rank)
        for (position, axis) in axes.enumerated() {
            pads[axis] = given[position]
            pads[axis + x.rank] = given[position + axes.count]
        }
        for axis in 0..<x.rank where x.shape[axis] + pads[axis] + pads[axis + x.rank] < 0 {
            throw RuntimeError(node.name, "Pad's pads \(given) crop axis \(axis) of \(x.shape) below nothing")
        }
        let value = try a.value ?? { guard inputs[2].count == 1 else { throw RuntimeError(node.name, "Pad's value must be one number") }
                                     return inputs[2].data[0] }()
        return PadAttributes(pads: pads, mode: a.mode, value: value)
    }

    func computedPad(_ node: Node, _ inputs: [RuntimeTensor], _ a: ComputedPadAttributes) throws -> RuntimeTensor {
        try pad(node, inputs[0], try computedPadding(node, inputs, a))
    }
}

extension Trainer {
    /// Pad with computed pads: the constant form's VJP (a crop of dy, or where each copied value came
    /// from); pads and fill value get none.
    func computedPadBackward(_ node: Node, _ a: ComputedPadAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients? {
        let padding = try executor.computedPadding(node, inputs, a)
        var constantForm = node
        constantForm.op = .onnx(.pad(padding))
        guard let step = try padBackward(constantForm, padding, [inputs[0]], dy: dy) else { return nil }
        return StepGradients(inputs: [step.inputs.first ?? nil] + inputs.dropFirst().map { _ in nil })
    }

    /// Trilu keeps or zeroes each element: the gradient keeps the same ones.
    func triluBackward(_ node: Node, _ a: TriluAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        let k = try a.k ?? (inputs.count == 2 && inputs[1].count == 1 ? Executor.integer(inputs[1].data[0])
                                                                          : { throw RuntimeError(node.name, "Trilu's k must be one number") }())
        return StepGradients(inputs: [Executor.triangle(dy, k: k, upper: a.upper)] + inputs.dropFirst().map { _ in nil })
    }
}
