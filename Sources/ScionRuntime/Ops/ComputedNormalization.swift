import ScionIR

/// ONNX normalizations whose per-channel operands arrive as inputs computed at run time, channels at
/// axis 1: BatchNormalization of given moments (how tf2onnx spells Keras's LayerNormalization) and
/// InstanceNormalization with a computed scale. Their VJPs give every input a gradient, because the
/// operands are computed from values that may train.
extension Executor {
    /// The operand at `position` as one value per channel.
    func channelOperand(_ node: Node, _ inputs: [RuntimeTensor], _ position: Int, channels: Int) throws -> [Float] {
        guard position < inputs.count, inputs[position].count == channels else {
            throw RuntimeError(node.name, "operand \(position + 1) must hold one value for each of \(channels) channels")
        }
        return inputs[position].data
    }

    func computedBatchNormalization(_ node: Node, _ inputs: [RuntimeTensor], _ a: ComputedNormalizationAttributes) throws -> RuntimeTensor {
        let x = inputs[0], channels = x.rank > 1 ? x.shape[1] : 1
        let operands = try (1...4).map { try channelOperand(node, inputs, $0, channels: channels) }
        let (scale, bias, mean, variance) = (operands[0], operands[1], operands[2], operands[3])
        let factor = (0..<channels).map { scale[$0] / (variance[$0] + a.epsilon).squareRoot() }
        let shift = (0..<channels).map { bias[$0] - mean[$0] * factor[$0] }
        return Kernels.perAxis(x, axis: 1, scale: factor, shift: shift)
    }

    func computedInstanceNormalization(_ node: Node, _ inputs: [RuntimeTensor], _ a: ComputedNormalizationAttributes) throws -> RuntimeTensor {
        let x = inputs[0], channels = x.rank > 1 ? x.shape[1] : 1
        return try Kernels.groupNormalization(x, GroupNormalizationAttributes(groups: -1, axis: 1, epsilon: a.epsilon),
                                              gamma: try channelOperand(node, inputs, 1, channels: channels),
                                              beta: try channelOperand(node, inputs, 2, channels: channels), node: node.name)
    }
}

extension Trainer {
    /// y = (x - mean) · s + bias with s = scale / sqrt(variance + ε), per channel: gradients for x and
    /// for each of the four operands.
    func computedBatchNormalizationBackward(_ node: Node, _ a: ComputedNormalizationAttributes, _ inputs: [RuntimeTensor],
                                            dy: RuntimeTensor) throws -> StepGradients {
        let x = inputs[0], channels = x.rank > 1 ? x.shape[1] : 1
        let operands = try (1...4).map { try executor.channelOperand(node, inputs, $0, channels: channels) }
        let (scale, mean, variance) = (operands[0], operands[2], operands[3])
        let inner = x.count / max(x.shape[0] * channels, 1)
        var dx = [Float](repeating: 0, count: x.count)
        var dScale = [Float](repeating: 0, count: channels), dBias = dScale, dMean = dScale, dVariance = dScale
        for c in 0..<channels {
            let deviation = (variance[c] + a.epsilon).squareRoot(), factor = scale[c] / deviation
            var sum: Float = 0, centred: Float = 0
            for n in 0..<x.shape[0] {
                let start = (n * channels + c) * inner
                for i in start..<(start + inner) {
                    dx[i] = dy.data[i] * factor
                    sum += dy.data[i]
                    centred += dy.data[i] * (x.data[i] - mean[c])
                }
            }
            dBias[c] = sum
            dScale[c] = centred / deviation
            dMean[c] = -sum * factor
            dVariance[c] = -0.5 * centred * scale[c] / (deviation * deviation * deviation)
        }
        let vector = { (values: [Float]) in RuntimeTensor(shape: inputs[1].shape, data: values) }
        return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: dx), vector(dScale), vector(dBias), vector(dMean),
                                      vector(dVariance)])
    }

    /// InstanceNormalization's kernel gradients, the scale's and bias's going to those inputs.
    func computedInstanceNormalizationBackward(_ node: Node, _ a: ComputedNormalizationAttributes, _ inputs: [RuntimeTensor],
                                               dy: RuntimeTensor) throws -> StepGradients {
        let x = inputs[0], channels = x.rank > 1 ? x.shape[1] : 1
        let gradients = try Kernels.groupNormalizationBackward(
            x, GroupNormalizationAttributes(groups: -1, axis: 1, epsilon: a.epsilon),
            gamma: try executor.channelOperand(node, inputs, 1, channels: channels), dy: dy, node: node.name)
        return StepGradients(inputs: [gradients.input, RuntimeTensor(shape: inputs[1].shape, data: gradients.gamma),
                                      RuntimeTensor(shape: inputs[2].shape, data: gradients.beta)])
    }
}
