import ScionIR

/// Channels-first ops that write their result into their input's buffer when the run loop hands
/// them that input to own (its last reader). A transformer's LayerNormalizations, activations and
/// layer scales each copied their input once before (`var y = x` on a shared array): a tenth of a
/// small ConvNeXt pass in memmove.
extension Executor {
    /// The result of `node` computed in the buffer of `arguments[0]` (taken from the array), or nil
    /// (arguments untouched) when the op is not one of these.
    func evaluateInPlace(_ node: Node, _ arguments: inout [RuntimeTensor]) throws -> RuntimeTensor? {
        guard arguments.count == 1 else { return nil }
        switch node.op {
        case .layerNormalization(let a):
            let axes = a.axes.map { $0 < 0 ? $0 + arguments[0].rank : $0 }.sorted()
            guard let first = axes.first, axes == Array(first..<arguments[0].rank) else { return nil }
            var x = take(&arguments)
            try layerNormalizeTrailing(node, &x, from: first, a)
            return x
        case .activation(let activation) where !passThrough.contains(node.name):
            let epilogue = ConvolutionEpilogue(bias: nil, activation: activation)
            guard epilogue.remaining == .linear else { return nil }
            var x = take(&arguments)
            epilogue.applyToAll(&x.data)
            return x
        case .layerScale(let a):
            // Keras's ConvNeXt: gamma along the channels (the last axis, or 1 once laid out channels-first).
            let gamma = try require(node, .gamma), axis = a.axis < 0 ? a.axis + arguments[0].rank : a.axis
            guard (0..<arguments[0].rank).contains(axis), arguments[0].shape[axis] == gamma.count else { return nil }
            // `Kernels.perAxis`'s arithmetic (`layerScale`), in the input's buffer.
            var x = take(&arguments)
            Kernels.perAxisInPlace(&x, axis: axis, scale: gamma, shift: [Float](repeating: 0, count: gamma.count))
            return x
        default:
            return nil
        }
    }

    /// The first argument, its place in the array emptied so that the caller holds it alone.
    private func take(_ arguments: inout [RuntimeTensor]) -> RuntimeTensor {
        let x = arguments[0]
        arguments[0] = RuntimeTensor(shape: [0], data: [])
        return x
    }
}
