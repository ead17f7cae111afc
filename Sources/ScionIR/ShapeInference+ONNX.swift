/// Shape rules of the ops ONNX files bring (OpAttributes+ONNX.swift), following the ONNX operator
/// definitions at opset 13+. Unknown dimensions stay unknown rather than failing.
extension Context {
    /// The output type when it is not the first input's.
    var onnxOutputType: DType? {
        switch node.op {
        case .constant(let a): a.dtype
        case .cast(let a): a.to
        case .comparison: .bool
        case .select: inputs.count > 1 ? inputs[1].dtype : nil
        default: nil
        }
    }

    mutating func inferImported() throws -> [Shape?] {
        switch node.op {
        case .constant:
            guard let shape = parameterShapes[.value] else { throw parameterFailure("is missing its 'value' weights") }
            return [Shape(shape.map { $0 })]
        case .gemm(let a):
            return [try gemm(a)]
        case .matMul:
            return [try matrixProduct()]
        case .unary, .cast, .clip, .localResponseNormalization, .coercedSoftmax:
            try requireInputs(1)
            return [try firstShape()]
        case .comparison, .select:
            try requireInputs(node.op == .select ? 3 : 2)
            return [try broadcastInputs()]
        case .reduce(let a):
            try requireInputs(1)
            guard let shape = try firstShape() else { return [nil] }
            let axes = try resolve(a.axes ?? Array(0..<shape.rank), rank: shape.rank)
            if a.keepDimensions {
                var result = shape
                for axis in axes { result[axis] = 1 }
                return [result]
            }
            return [Shape(shape.dimensions.enumerated().filter { !axes.contains($0.offset) }.map(\.element))]
        case .gather(let a):
            try requireInputs(2)
            guard let data = inputs[0].shape, let indices = inputs[1].shape else { return [nil] }
            guard let axis = data.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside \(data)") }
            return [Shape(Array(data.dimensions[..<axis]) + indices.dimensions + Array(data.dimensions[(axis + 1)...]))]
        case .squeeze(let a):
            try requireInputs(1)
            guard let shape = try firstShape() else { return [nil] }
            let axes = try resolve(a.axes, rank: shape.rank)
            for axis in axes where shape[axis].map({ $0 != 1 }) ?? false {
                throw fail("cannot squeeze axis \(axis) of \(shape): it is not 1")
            }
            return [Shape(shape.dimensions.enumerated().filter { !axes.contains($0.offset) }.map(\.element))]
        case .unsqueeze(let a):
            try requireInputs(1)
            guard let shape = try firstShape() else { return [nil] }
            let rank = shape.rank + a.axes.count
            let axes = try resolve(a.axes, rank: rank)
            var remaining = shape.dimensions.makeIterator()
            return [Shape((0..<rank).map { axes.contains($0) ? 1 : (remaining.next() ?? nil) })]
        case .slice(let a):
            return [try slice(a)]
        case .split(let a):
            try requireInputs(1)
            guard let shape = try firstShape() else { return a.sizes.map { _ in nil } }
            guard let axis = shape.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside \(shape)") }
            if let length = shape[axis], a.sizes.reduce(0, +) != length {
                throw fail("split sizes \(a.sizes) do not add up to \(length)")
            }
            return a.sizes.map { size in
                var part = shape
                part[axis] = size
                return part
            }
        case .pad(let a):
            try requireInputs(1)
            guard var shape = try firstShape() else { return [nil] }
            guard a.pads.count == 2 * shape.rank else { throw fail("has \(a.pads.count) pads for rank \(shape.rank)") }
            for axis in 0..<shape.rank {
                guard let length = shape[axis] else { continue }
                let total = try? checkedSum(length, a.pads[axis], a.pads[axis + shape.rank])
                guard let total, total >= 0 else { throw fail("pads \(a.pads) do not fit shape \(shape)") }
                shape[axis] = total
            }
            return [shape]
        case .resize(let a):
            try requireInputs(1)
            guard let shape = try firstShape() else { return [nil] }
            if let sizes = a.sizes {
                guard sizes.count == shape.rank else { throw fail("resize sizes \(sizes) do not fit \(shape)") }
                return [Shape(sizes.map { $0 })]
            }
            guard let scales = a.scales, scales.count == shape.rank else { throw fail("resize scales do not fit \(shape)") }
            return [Shape(zip(shape.dimensions, scales).map { dimension, scale in
                dimension.map { Int((Float($0) * scale).rounded(.down)) }
            })]
        default:
            throw fail("has no shape rule for imported ops")
        }
    }

    func resolve(_ axes: [Int], rank: Int) throws -> [Int] {
        try axes.map { axis in
            let resolved = axis < 0 ? axis + rank : axis
            guard (0..<rank).contains(resolved) else { throw fail("axis \(axis) is outside rank \(rank)") }
            return resolved
        }
    }

    /// B and C come from parameters (`kernel`, `bias`) or, when not constant, from inputs 1 and 2.
    func gemm(_ a: GemmAttributes) throws -> Shape? {
        guard let first = inputs.first else { throw fail("has no input") }
        let b: Shape? = parameterShapes[.kernel].map { Shape($0.map { $0 }) } ?? (inputs.count > 1 ? inputs[1].shape : nil)
        guard let shape = first.shape, let b else { return nil }
        guard shape.rank == 2, b.rank == 2 else { throw fail("Gemm needs 2-D operands, got \(shape) and \(b)") }
        let rows = a.transposeA ? shape[1] : shape[0]
        let inner = a.transposeA ? shape[0] : shape[1]
        let innerB = a.transposeB ? b[1] : b[0]
        if let inner, let innerB, inner != innerB { throw fail("Gemm operands \(shape) and \(b) do not fit") }
        return Shape([rows, a.transposeB ? b[0] : b[1]])
    }

    func matrixProduct() throws -> Shape? {
        let right: Shape? = parameterShapes[.kernel].map { Shape($0.map { $0 }) } ?? (inputs.count > 1 ? inputs[1].shape : nil)
        guard let left = try firstShape(), let right else { return nil }
        guard left.rank >= 1, right.rank >= 1 else { throw fail("MatMul needs operands of rank 1 or more") }
        let leftMatrix = left.rank == 1 ? Shape([1] + left.dimensions) : left
        let rightMatrix = right.rank == 1 ? Shape(right.dimensions + [1]) : right
        let leftBatch = Context(node: node, inputs: [ValueInfo(name: "", shape: Shape(Array(leftMatrix.dimensions.dropLast(2))), dtype: .float32),
                                                     ValueInfo(name: "", shape: Shape(Array(rightMatrix.dimensions.dropLast(2))), dtype: .float32)],
                                parameterShapes: [:])
        guard let batch = try leftBatch.broadcastInputs() else { return nil }
        var dimensions = batch.dimensions
        if left.rank > 1 { dimensions.append(leftMatrix[leftMatrix.rank - 2]) }
        if right.rank > 1 { dimensions.append(rightMatrix[rightMatrix.rank - 1]) }
        return Shape(dimensions)
    }

    func slice(_ a: SliceAttributes) throws -> Shape? {
        try requireInputs(1)
        guard var shape = try firstShape() else { return nil }
        for (index, axis) in try resolve(a.axes, rank: shape.rank).enumerated() {
            guard let length = shape[axis] else { continue }
            let step = a.steps[index]
            guard step != 0 else { throw fail("slice step is 0") }
            func clamp(_ value: Int, _ low: Int, _ high: Int) -> Int { Swift.min(Swift.max(value, low), high) }
            var start = a.starts[index] < 0 ? a.starts[index] + length : a.starts[index]
            var end = a.ends[index] < 0 ? a.ends[index] + length : a.ends[index]
            if step > 0 {
                start = clamp(start, 0, length); end = clamp(end, 0, length)
                shape[axis] = Swift.max(0, (end - start + step - 1) / step)
            } else {
                start = clamp(start, 0, length - 1); end = clamp(end, -1, length - 1)
                shape[axis] = Swift.max(0, (start - end - step - 1) / -step)
            }
        }
        return shape
    }

    /// ONNX Reshape: 0 copies the input's dimension (unless `allowZero`), one -1 is inferred.
    func fullReshape(_ a: ReshapeAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape() else { return nil }
        guard a.targetShape.filter({ $0 == -1 }).count <= 1, a.targetShape.allSatisfy({ $0 >= -1 }) else {
            throw fail("target shape \(a.targetShape) is not valid")
        }
        var dimensions: [Int?] = try a.targetShape.enumerated().map { index, value in
            if value == 0 && !a.allowZero {
                guard index < shape.rank else { throw fail("target shape \(a.targetShape) copies a dimension \(shape) lacks") }
                return shape[index]
            }
            return value == -1 ? nil : value
        }
        if let inferred = a.targetShape.firstIndex(of: -1) {
            var others = dimensions
            others.remove(at: inferred)
            if let total = shape.elementCount, let known = Shape.product(others), known > 0 {
                guard total % known == 0 else { throw fail("cannot reshape \(shape) to \(a.targetShape)") }
                dimensions[inferred] = total / known
            } else if a.targetShape.first == 0, !a.allowZero, let perSample = Shape.product(Array(shape.dimensions.dropFirst())),
                      let known = Shape.product(Array(others.dropFirst())), known > 0 {
                // The batch is copied (0), so the inferred length is what is left of one sample, whatever
                // the batch (torch's GroupNorm reshapes to [0, groups, -1] under a dynamic batch).
                guard perSample % known == 0 else { throw fail("cannot reshape \(shape) to \(a.targetShape)") }
                dimensions[inferred] = perSample / known
            }
        } else if let total = shape.elementCount, let known = Shape.product(dimensions), total != known {
            throw fail("cannot reshape \(shape) to \(a.targetShape)")
        }
        return Shape(dimensions)
    }
}
