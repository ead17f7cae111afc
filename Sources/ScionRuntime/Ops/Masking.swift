import ScionIR

/// Keras's Masking: a step (every axis but the last) whose features all equal the mask value becomes
/// zeros; any other step passes unchanged (`where(any(x != v, axis=-1, keepdims=True), x, 0)`). The
/// layout pass keeps its input in Keras's order, so the features are the last axis here too.
/// VJP: the output is the input at kept steps and a constant at masked ones, so the gradient passes
/// where kept and is zero where masked.
extension Executor {
    func masking(_ node: Node, _ x: RuntimeTensor, _ a: MaskingAttributes) throws -> RuntimeTensor {
        let kept = try Self.stepsDifferingFromMaskValue(node, x, a)
        return Self.zeroingMaskedSteps(x, kept: kept)
    }

    /// For each step, whether any of its features differs from the mask value (a NaN differs, as in
    /// Keras's `not_equal`).
    static func stepsDifferingFromMaskValue(_ node: Node, _ x: RuntimeTensor, _ a: MaskingAttributes) throws -> [Bool] {
        guard x.rank >= 2, let features = x.shape.last else {
            throw RuntimeError(node.name, "Masking needs a batch axis and a feature axis, got shape \(x.shape)")
        }
        guard features > 0 else { return [] }
        return stride(from: 0, to: x.count, by: features).map { start in
            x.data[start..<(start + features)].contains { $0 != a.maskValue }
        }
    }

    /// `x` with the features of every step not kept set to zero.
    static func zeroingMaskedSteps(_ x: RuntimeTensor, kept: [Bool]) -> RuntimeTensor {
        guard let features = x.shape.last, features > 0 else { return x }
        var data = x.data
        for (step, keep) in kept.enumerated() where !keep {
            for i in (step * features)..<((step + 1) * features) { data[i] = 0 }
        }
        return RuntimeTensor(shape: x.shape, data: data)
    }
}

extension Trainer {
    func maskingBackward(_ node: Node, _ a: MaskingAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients {
        let kept = try Executor.stepsDifferingFromMaskValue(node, x, a)
        return StepGradients(inputs: [Executor.zeroingMaskedSteps(dy, kept: kept)])
    }
}
