import ScionIR

/// ONNX's comparisons and logic (Equal, Less, Greater, LessOrEqual, GreaterOrEqual, And, Or, Xor),
/// Where and Mod, with numpy broadcasting. The executor holds every value as float32, so a bool is
/// 0 or 1 and any non-zero value is true (what Cast to bool gives). VJPs: comparisons and the
/// condition of Where get no gradient (they are piecewise constant); Where sends dy to the branch
/// each element came from; Mod is `a - b · q` with `q` the quotient rounded (toward zero for
/// fmod=1, down otherwise), constant almost everywhere.
extension Executor {
    func comparison(_ node: Node, _ inputs: [RuntimeTensor], _ operation: ComparisonOperation) throws -> RuntimeTensor {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "\(operation.typeName) needs two inputs, got \(inputs.count)") }
        let test: (Float, Float) -> Bool = switch operation {
        case .equal: { $0 == $1 }
        case .greater: { $0 > $1 }
        case .greaterOrEqual: { $0 >= $1 }
        case .less: { $0 < $1 }
        case .lessOrEqual: { $0 <= $1 }
        case .and: { $0 != 0 && $1 != 0 }
        case .or: { $0 != 0 || $1 != 0 }
        case .xor: { ($0 != 0) != ($1 != 0) }
        }
        return try Kernels.broadcast(inputs[0], inputs[1], node: node.name) { test($0, $1) ? 1 : 0 }
    }

    /// Where: `condition ? inputs[1] : inputs[2]`, the three broadcast together.
    func select(_ node: Node, _ inputs: [RuntimeTensor]) throws -> RuntimeTensor {
        guard inputs.count == 3 else { throw RuntimeError(node.name, "Where needs a condition and two values, got \(inputs.count) inputs") }
        let shape = try Kernels.broadcastShape([inputs[0].shape, inputs[1].shape, inputs[2].shape], node: node.name)
        let condition = try inputs[0].expanded(to: shape, node: node.name)
        let chosen = try inputs[1].expanded(to: shape, node: node.name), other = try inputs[2].expanded(to: shape, node: node.name)
        return RuntimeTensor(shape: shape, data: condition.data.indices.map { condition.data[$0] != 0 ? chosen.data[$0] : other.data[$0] })
    }

    func mod(_ node: Node, _ inputs: [RuntimeTensor], _ a: ModAttributes) throws -> RuntimeTensor {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "Mod needs two inputs, got \(inputs.count)") }
        return try Kernels.broadcast(inputs[0], inputs[1], node: node.name, a.remainder)
    }
}

extension Kernels {
    /// The numpy broadcast of several shapes.
    static func broadcastShape(_ shapes: [[Int]], node: String) throws -> [Int] {
        guard let shape = Broadcasting.shape(shapes) else { throw RuntimeError(node, "shapes \(shapes) do not broadcast together") }
        return shape
    }
}

extension Trainer {
    /// Where: dy to the chosen branch, zeros to the other, each summed back to its shape.
    func selectBackward(_ node: Node, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        guard inputs.count == 3 else { throw RuntimeError(node.name, "Where needs a condition and two values") }
        let condition = try inputs[0].expanded(to: dy.shape, node: node.name)
        let chosen = RuntimeTensor(shape: dy.shape, data: dy.data.indices.map { condition.data[$0] != 0 ? dy.data[$0] : 0 })
        let other = RuntimeTensor(shape: dy.shape, data: dy.data.indices.map { condition.data[$0] != 0 ? 0 : dy.data[$0] })
        return StepGradients(inputs: [nil, try Kernels.sumToShape(chosen, inputs[1].shape), try Kernels.sumToShape(other, inputs[2].shape)])
    }

    /// Mod: `a - b · q` with the rounded quotient `q` held fixed: da = dy, db = -q · dy.
    func modBackward(_ node: Node, _ a: ModAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "Mod needs two inputs") }
        let quotient = try Kernels.broadcast(inputs[0], inputs[1], node: node.name) { x, y in
            let r = a.remainder(x, y)
            return y == 0 ? 0 : ((x - r) / y).rounded()
        }
        let db = RuntimeTensor(shape: dy.shape, data: zip(dy.data, quotient.data).map { -$0 * $1 })
        return StepGradients(inputs: [try Kernels.sumToShape(dy, inputs[0].shape), try Kernels.sumToShape(db, inputs[1].shape)])
    }
}
