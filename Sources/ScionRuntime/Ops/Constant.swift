import ScionIR

/// Values the executor does not compute from its inputs: a Constant's tensor (a parameter). Ops the
/// IR keeps opaque are not run: every op the executor computes is a case of `Op`. A trainable
/// constant (an ONNX initializer used as a value) gets dy as its gradient.
extension Executor {
    /// A constant node's tensor (it has no inputs).
    func constantValue(_ node: Node) -> RuntimeTensor? {
        guard case .onnx(.constant) = node.op, let name = node.parameters.first, let values = weights[name],
              let shape = graph.parameters[name]?.shape else { return nil }
        return RuntimeTensor(shape: shape, data: values)
    }

    func opaque(_ node: Node, _ inputs: [RuntimeTensor], _ a: OpaqueAttributes) throws -> RuntimeTensor {
        throw RuntimeError(node.name, "cannot run it: \(a.uninterpretedReason)")
    }
}

extension Trainer {
    /// A trainable tensor used as a value (an ONNX initializer added or multiplied in).
    func constantBackward(_ node: Node, dy: RuntimeTensor) -> StepGradients {
        StepGradients(inputs: [], parameters: node.parameters.first.map { [($0, dy.data)] } ?? [])
    }
}
