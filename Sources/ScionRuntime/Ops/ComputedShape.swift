import ScionIR

/// The ONNX ops of exporters' shape arithmetic, whose lengths arrive as a tensor at run time: Shape,
/// Expand, Tile and Reshape to a computed shape. Shape values are held as float32, exact below 2^24.
/// VJPs: Shape's output does not depend on its input's values (no gradient flows); the others only
/// move values, so `movementBackward` traces where each element came from.
extension Executor {
    func shapeOf(_ x: RuntimeTensor, _ a: ShapeOfAttributes) -> RuntimeTensor {
        let lengths = x.shape[a.range(rank: x.rank)].map(Float.init)
        return RuntimeTensor(shape: [lengths.count], data: lengths)
    }

    /// The integer lengths a shape or repeats operand holds.
    func lengths(_ node: Node, _ inputs: [RuntimeTensor], operand: String) throws -> [Int] {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "\(node.op.typeName) needs its data and its \(operand)") }
        guard inputs[1].rank == 1 else { throw RuntimeError(node.name, "its \(operand) must be a vector, got shape \(inputs[1].shape)") }
        return try inputs[1].data.map { value in
            guard let length = Int(exactly: value), length >= -1 else {
                throw RuntimeError(node.name, "its \(operand) holds \(value), not a length")
            }
            return length
        }
    }

    func expand(_ node: Node, _ inputs: [RuntimeTensor]) throws -> RuntimeTensor {
        try inputs[0].expanded(to: try lengths(node, inputs, operand: "shape"), node: node.name)
    }

    func tile(_ node: Node, _ inputs: [RuntimeTensor]) throws -> RuntimeTensor {
        let repeats = try lengths(node, inputs, operand: "repeats")
        guard repeats.count == inputs[0].rank, repeats.allSatisfy({ $0 >= 0 }) else {
            throw RuntimeError(node.name, "cannot tile \(inputs[0].shape) by \(repeats)")
        }
        return inputs[0].tiled(repeats)
    }

    /// 0 copies the input's length (unless `allowZero`), one -1 takes what is left.
    func computedReshape(_ node: Node, _ inputs: [RuntimeTensor], _ a: ComputedReshapeAttributes) throws -> RuntimeTensor {
        let x = inputs[0], requested = try lengths(node, inputs, operand: "shape")
        var target = requested
        if !a.allowZero {
            for (axis, length) in target.enumerated() where length == 0 && axis < x.rank { target[axis] = x.shape[axis] }
        }
        if let unknown = target.firstIndex(of: -1) {
            let known = target.filter { $0 != -1 }.reduce(1, *)
            guard known > 0, x.count % known == 0 else { throw RuntimeError(node.name, "cannot reshape \(x.shape) to \(requested)") }
            target[unknown] = x.count / known
        }
        guard target.reduce(1, *) == x.count else { throw RuntimeError(node.name, "cannot reshape \(x.shape) to \(requested)") }
        return RuntimeTensor(shape: target, data: x.data)
    }
}
