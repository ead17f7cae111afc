import ScionIR

/// Dropout and StochasticDepth: identity at inference (`Executor.evaluate` passes values through),
/// random while training. Dropout trains (inverted dropout, its mask saved for the VJP);
/// StochasticDepth with a rate cannot train yet. `Trainer.isRandomWhileTraining` keeps both out of
/// the cached frozen prefix.
extension Trainer {
    /// Inverted dropout, as Keras: kept values are scaled by 1 / (1 - rate). Spatial dropout drops
    /// whole channels (axis 1 here).
    func dropoutTraining(_ node: Node, _ a: DropoutAttributes, _ inputs: [RuntimeTensor],
                         random: inout SplitMix64) throws -> (RuntimeTensor, Saved?) {
        guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
        let keep = 1 - a.rate
        let unit = a.spatial && x.rank > 2 ? x.shape.dropFirst(2).reduce(1, *) : 1
        var mask = [Float](repeating: 0, count: x.count)
        for start in stride(from: 0, to: x.count, by: unit) {
            let value: Float = random.unit() < keep ? 1 / keep : 0
            for index in start..<(start + unit) { mask[index] = value }
        }
        return (RuntimeTensor(shape: x.shape, data: zip(x.data, mask).map(*)), .mask(mask))
    }

    /// dy times the saved mask while training; dy itself at inference.
    func dropoutBackward(_ x: RuntimeTensor, dy: RuntimeTensor, saved: Saved?) -> StepGradients {
        if case .mask(let mask) = saved { return StepGradients(like: x, zip(dy.data, mask).map(*)) }
        return StepGradients(like: x, dy.data)
    }

    func stochasticDepthTraining(_ node: Node, _ a: DropoutAttributes) throws -> (RuntimeTensor, Saved?) {
        throw RuntimeError(node.name, "StochasticDepth with rate \(a.rate) cannot train yet (freeze up to after it)")
    }

    /// Identity outside training (`stochasticDepthTraining` refuses a rate while training).
    func stochasticDepthBackward(_ x: RuntimeTensor, dy: RuntimeTensor) -> StepGradients {
        StepGradients(like: x, dy.data)
    }
}
