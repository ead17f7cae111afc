import ScionIR

/// Folding of the ops that compute on values: Gather, Concat, Slice and broadcasting arithmetic.
extension ONNXImportSession {
    /// Strides of a row-major shape.
    static func strides(_ shape: [Int]) -> [Int] { Broadcasting.strides(shape) }

    /// The flat positions a Gather along `axis` (already resolved, may be out of range) reads from a
    /// tensor of `shape`, in the result's order; nil when the axis or an index is out of range.
    static func gatherPicks(shape: [Int], axis: Int, indices: [Int64]) -> [Int]? {
        guard (0..<shape.count).contains(axis) else { return nil }
        let length = shape[axis]
        let resolved = indices.map { Int($0 < 0 ? $0 + Int64(length) : $0) }
        guard resolved.allSatisfy({ (0..<length).contains($0) }) else { return nil }
        let outer = Array(shape[..<axis]).checkedProduct ?? 0
        let inner = Array(shape[(axis + 1)...]).checkedProduct ?? 0
        var picks: [Int] = []
        for block in 0..<outer {
            for index in resolved {
                let base = (block * length + index) * inner
                picks.append(contentsOf: base..<(base + inner))
            }
        }
        return picks
    }

    mutating func foldGather(_ node: ONNXNode, output: String) throws -> Bool {
        guard node.inputs.count == 2, let data = constants[node.inputs[0]], let indicesConstant = constants[node.inputs[1]],
              let values = try numbers(node.inputs[0]), let indices = try numbers(node.inputs[1])?.integers,
              !data.shape.isEmpty else { return false }
        let rank = data.shape.count
        let axis = intAttribute(node, "axis", 0) < 0 ? intAttribute(node, "axis", 0) + rank : intAttribute(node, "axis", 0)
        guard let picks = Self.gatherPicks(shape: data.shape, axis: axis, indices: indices) else { return false }
        let shape = Array(data.shape[..<axis]) + indicesConstant.shape + Array(data.shape[(axis + 1)...])
        constants[output] = make(values.picking(picks), dtype: data.dtype, shape: shape)
        return true
    }

    mutating func foldConcat(_ node: ONNXNode, output: String) throws -> Bool {
        let parts = node.inputs.filter { !$0.isEmpty }
        guard let first = parts.first.flatMap({ constants[$0] }), !first.shape.isEmpty else { return false }
        let rank = first.shape.count
        let attributeAxis = intAttribute(node, "axis", 0)
        let axis = attributeAxis < 0 ? attributeAxis + rank : attributeAxis
        guard (0..<rank).contains(axis) else { return false }
        var shape = first.shape
        shape[axis] = 0
        var pieces: [(ImportedConstant, ConstantNumbers)] = []
        for part in parts {
            guard let constant = constants[part], constant.shape.count == rank, constant.dtype == first.dtype,
                  let values = try numbers(part) else { return false }
            pieces.append((constant, values))
            shape[axis] += constant.shape[axis]
        }
        let outer = Array(first.shape[..<axis]).checkedProduct ?? 0
        var integers: [Int64] = []
        var reals: [Double] = []
        let integral = !first.dtype.isFloatingPoint
        for block in 0..<outer {
            for (constant, values) in pieces {
                let width = Array(constant.shape[axis...]).checkedProduct ?? 0
                let range = (block * width)..<((block + 1) * width)
                if integral { integers += values.integers[range] } else { reals += values.reals[range] }
            }
        }
        constants[output] = make(integral ? .integers(integers) : .reals(reals), dtype: first.dtype, shape: shape)
        return true
    }

    mutating func foldArithmetic(_ node: ONNXNode, output: String) throws -> Bool {
        guard node.inputs.count == 2, node.attribute("broadcast") == nil, let left = constants[node.inputs[0]],
              let right = constants[node.inputs[1]], left.dtype == right.dtype,
              let a = try numbers(node.inputs[0]), let b = try numbers(node.inputs[1]) else { return false }
        guard let (shape, sources) = Broadcasting.sources([left.shape, right.shape], limit: Self.foldingLimit) else { return false }
        let (leftIndex, rightIndex, count) = (sources[0], sources[1], sources[0].count)
        let result: ConstantNumbers
        if left.dtype.isFloatingPoint {
            // Mod of reals needs fmod=1 (numpy's fmod); left to the runtime.
            guard node.opType != "Mod" else { return false }
            let x = a.reals, y = b.reals
            let values = (0..<count).map { flat -> Double in
                let (p, q) = (x[leftIndex[flat]], y[rightIndex[flat]])
                switch node.opType {
                case "Add": return p + q
                case "Sub": return p - q
                case "Mul": return p * q
                default: return p / q
                }
            }
            result = .reals(values)
        } else {
            let x = a.integers, y = b.integers
            var values: [Int64] = []
            for flat in 0..<count {
                let (p, q) = (x[leftIndex[flat]], y[rightIndex[flat]])
                switch node.opType {
                case "Add": values.append(p &+ q)
                case "Sub": values.append(p &- q)
                case "Mul": values.append(p &* q)
                case "Mod":
                    // torch's exports compute `dim % rank` for Reshape targets; the sign follows the divisor.
                    guard q != 0 else { return false }
                    let r = p % q
                    values.append(r != 0 && (r < 0) != (q < 0) ? r + q : r)
                default:
                    guard q != 0 else { return false }
                    // ONNX integer Div truncates like C.
                    values.append(p / q)
                }
            }
            result = .integers(values)
        }
        constants[output] = make(result, dtype: left.dtype, shape: shape)
        return true
    }

    /// Slices of small constants: the shape vectors exporters cut up, and torch's pads, reversed
    /// as a `[rank, 2]` table (`Slice` with step -1 along the first axis).
    mutating func foldSlice(_ node: ONNXNode, output: String) throws -> Bool {
        // A weight stays a parameter (trainable, named) beyond the vectors shape arithmetic cuts up.
        guard let data = constants[node.inputs[0]], !data.shape.isEmpty, data.shape.count == 1 || !data.fromInitializer,
              let values = try numbers(node.inputs[0]), let bounds = try sliceBounds(node) else {
            return false
        }
        guard let kept = Self.keptIndices(shape: data.shape, bounds) else { return false }
        constants[output] = make(values.picking(ElementSelection.positions(kept: kept, shape: data.shape)), dtype: data.dtype,
                                 shape: kept.map(\.count))
        return true
    }

    /// Transpose of a small constant (torch's pads, turned from `[rank, 2]` pairs to begins then ends).
    mutating func foldTranspose(_ node: ONNXNode, output: String) throws -> Bool {
        // A transposed weight stays a parameter (trainable, named): the op reading it takes it as is.
        guard let data = constants[node.inputs[0]], !data.fromInitializer, let values = try numbers(node.inputs[0]) else { return false }
        let rank = data.shape.count
        let permutation = intsAttribute(node, "perm") ?? Array((0..<rank).reversed())
        guard permutation.sorted() == Array(0..<rank) else { return false }
        let picks = ElementSelection.positions(kept: data.shape.map { Array(0..<$0) }, shape: data.shape, order: permutation)
        constants[output] = make(values.picking(picks), dtype: data.dtype, shape: permutation.map { data.shape[$0] })
        return true
    }

    /// The indices a Slice keeps along each axis of `shape` (every index on axes it does not name);
    /// nil when it names an axis out of range.
    static func keptIndices(shape: [Int], _ bounds: (starts: [Int], ends: [Int], axes: [Int], steps: [Int])) -> [[Int]]? {
        ElementSelection.keptIndices(shape: shape, starts: bounds.starts, ends: bounds.ends, axes: bounds.axes, steps: bounds.steps)
    }

    /// Slice's starts, ends, axes and steps: attributes before opset 10, constant inputs after.
    func sliceBounds(_ node: ONNXNode) throws -> (starts: [Int], ends: [Int], axes: [Int], steps: [Int])? {
        func ints(_ values: [Int64]) -> [Int] { values.map { Int(truncatingIfNeeded: $0) } }
        var starts: [Int], ends: [Int], axes: [Int]? = nil, steps: [Int]? = nil
        if opset < 10 {
            guard case .ints(let s)? = node.attribute("starts"), case .ints(let e)? = node.attribute("ends") else { return nil }
            starts = ints(s); ends = ints(e)
            if case .ints(let a)? = node.attribute("axes") { axes = ints(a) }
        } else {
            func operand(_ position: Int) throws -> [Int]?? {
                guard position < node.inputs.count, !node.inputs[position].isEmpty else { return .some(nil) }
                guard let values = try numbers(node.inputs[position])?.integers else { return nil }
                return .some(ints(values))
            }
            guard let s = try operand(1), let e = try operand(2), let a = try operand(3), let st = try operand(4),
                  let startValues = s, let endValues = e else { return nil }
            starts = startValues; ends = endValues; axes = a; steps = st
        }
        let resolvedAxes = axes ?? Array(0..<starts.count)
        let resolvedSteps = steps ?? Array(repeating: 1, count: starts.count)
        guard ends.count == starts.count, resolvedAxes.count == starts.count, resolvedSteps.count == starts.count else { return nil }
        return (starts, ends, resolvedAxes, resolvedSteps)
    }
}
