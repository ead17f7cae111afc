import Foundation
import ScionIR

/// The trainable part's forward pass, keeping what the backward pass needs (a tape).
extension Trainer {
    /// What a node's backward step needs beyond its inputs and output.
    enum Saved {
        /// A convolution's or Dense's value before its fused activation.
        case preActivation(RuntimeTensor)
        /// A training-mode BatchNormalization's normalized input and batch statistics.
        case batchStatistics(Kernels.BatchStatistics)
        /// Dropout's kept-and-scaled mask.
        case mask([Float])
    }

    /// Every value of one batch's forward pass, and what each step saved.
    struct Tape {
        var values: [String: RuntimeTensor]
        var saved: [Int: Saved] = [:]
    }

    /// Runs the trainable part on one batch of frontier values. While `training`, Dropout drops
    /// and trainable BatchNormalizations normalize with the batch's statistics.
    func forward(_ frontierValues: [String: RuntimeTensor], training: Bool, random: inout SplitMix64) throws -> Tape {
        var tape = Tape(values: frontierValues)
        for index in steps {
            let node = graph.nodes[index]
            let inputs = try node.inputs.map { name -> RuntimeTensor in
                guard let value = tape.values[name] else { throw RuntimeError(node.name, "reads \(name), which is not computed") }
                return value
            }
            if case .split(let a) = node.op, let x = inputs.first {
                let parts = try Kernels.split(x, axis: a.axis, sizes: a.sizes, node: node.name)
                for (output, part) in zip(node.outputs, parts) { tape.values[output] = part }
                continue
            }
            let (result, saved) = try forwardStep(node, inputs, training: training, random: &random)
            if let output = node.outputs.first { tape.values[output] = result }
            if let saved { tape.saved[index] = saved }
        }
        return tape
    }

    func forwardStep(_ node: Node, _ inputs: [RuntimeTensor], training: Bool,
                     random: inout SplitMix64) throws -> (RuntimeTensor, Saved?) {
        // A fused activation runs apart, so its input (what backward differentiates at) is kept.
        func fused(_ activation: Activation, linear op: Op) throws -> (RuntimeTensor, Saved?) {
            var linear = node
            linear.op = op
            let z = try executor.evaluate(linear, inputs)
            return (try Kernels.activate(z, activation, node: node.name), .preActivation(z))
        }
        switch node.op {
        case .conv(var a) where a.activation != .linear:
            let activation = a.activation
            a.activation = .linear
            return try fused(activation, linear: .conv(a))
        case .dense(var a) where a.activation != .linear:
            let activation = a.activation
            a.activation = .linear
            return try fused(activation, linear: .dense(a))
        case .batchNormalization(let a) where training && trainingBatchNorms.contains(node.name):
            guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
            let axis = a.axis < 0 ? a.axis + x.rank : a.axis
            guard (0..<x.rank).contains(axis) else { throw RuntimeError(node.name, "axis \(a.axis) is outside rank \(x.rank)") }
            let (gamma, beta) = try affine(node, a, channels: x.shape[axis])
            let (y, statistics) = Kernels.batchNormalizationTraining(x, axis: axis, gamma: gamma, beta: beta, epsilon: a.epsilon)
            return (y, .batchStatistics(statistics))
        case .dropout(let a) where training && a.rate > 0:
            // Inverted dropout, as Keras: kept values are scaled by 1 / (1 - rate). Spatial dropout
            // drops whole channels (axis 1 here).
            guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
            let keep = 1 - a.rate
            let unit = a.spatial && x.rank > 2 ? x.shape.dropFirst(2).reduce(1, *) : 1
            var mask = [Float](repeating: 0, count: x.count)
            for start in stride(from: 0, to: x.count, by: unit) {
                let value: Float = random.unit() < keep ? 1 / keep : 0
                for index in start..<(start + unit) { mask[index] = value }
            }
            return (RuntimeTensor(shape: x.shape, data: zip(x.data, mask).map(*)), .mask(mask))
        case .stochasticDepth(let a) where training && a.rate > 0:
            throw RuntimeError(node.name, "StochasticDepth with rate \(a.rate) cannot train yet (freeze up to after it)")
        default:
            return (try executor.evaluate(node, inputs), nil)
        }
    }

    /// A BatchNormalization's gamma and beta (ones and zeros when it has no scale or center).
    func affine(_ node: Node, _ a: BatchNormalizationAttributes, channels: Int) throws -> ([Float], [Float]) {
        let gamma = a.scale ? try executor.require(node, .gamma) : [Float](repeating: 1, count: channels)
        let beta = a.center ? try executor.require(node, .beta) : [Float](repeating: 0, count: channels)
        guard gamma.count == channels, beta.count == channels else {
            throw RuntimeError(node.name, "gamma and beta do not have \(channels) values")
        }
        return (gamma, beta)
    }

    /// Moves each training-mode BatchNormalization's moving averages toward the batch's statistics.
    mutating func updateMovingAverages(_ tape: Tape) {
        for (index, saved) in tape.saved {
            guard case .batchStatistics(let statistics) = saved else { continue }
            let node = graph.nodes[index]
            guard case .batchNormalization(let a) = node.op else { continue }
            for (role, batch) in [(ParameterRole.movingMean, statistics.mean), (.movingVariance, statistics.variance)] {
                guard let name = graph.parameter(of: node, role: role)?.name, var moving = executor.weights[name],
                      moving.count == batch.count else { continue }
                for c in moving.indices { moving[c] = moving[c] * a.momentum + batch[c] * (1 - a.momentum) }
                executor.weights[name] = moving
            }
        }
    }
}
