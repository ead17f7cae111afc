import Foundation
import ScionIR

/// Gradients of the head (one vector-Jacobian product per layer kind) and the optimizer updates.
extension HeadTrainer {
    /// Loss, correct predictions and each trainable tensor's gradient (`"layer index.kernel"`,
    /// `".bias"`) for one batch, in training mode.
    func lossAndGradients(_ input: RuntimeTensor, targets: [Float], loss: Loss,
                          random: inout SplitMix64) throws -> (Double, Int, [String: [Float]]) {
        let (outputs, masks) = try forward(input, training: true, random: &random)
        guard let prediction = outputs.last else { return (0, 0, [:]) }
        let (value, hits, lossGradient) = lossValue(prediction, targets: targets, loss: loss)
        var dy = lossGradient
        let batch = input.shape[0], classes = prediction.count / max(batch, 1)
        // Cross-entropy through a softmax: the gradient at the softmax's input is (p - y) / batch,
        // exact and stable; the softmax's own backward step is then skipped.
        let softmaxLast = loss != .meanSquaredError && layers.last.map(Self.endsInSoftmax) == true
        if softmaxLast {
            dy = (0..<prediction.count).map { index in
                let row = index / classes, k = index % classes
                let target: Float = loss == .sparseCategoricalCrossentropy ? (Int(targets[row]) == k ? 1 : 0) : targets[index]
                return (prediction.data[index] - target) / Float(batch)
            }
        }
        var gradients: [String: [Float]] = [:]
        for position in layers.indices.reversed() {
            let layer = layers[position]
            let layerInput = outputs[position], layerOutput = outputs[position + 1]
            let skipActivation = softmaxLast && position == layers.count - 1
            switch layer.node.op {
            case .dense(let a):
                let dz = skipActivation ? dy : Self.activationBackward(a.activation, output: layerOutput, dy)
                let rows = layerInput.shape[0]
                var kernelGradient = [Float](repeating: 0, count: layer.inputs * layer.units)
                var inputGradient = [Float](repeating: 0, count: rows * layer.inputs)
                layerInput.data.withUnsafeBufferPointer { x in
                    dz.withUnsafeBufferPointer { g in
                        kernelGradient.withUnsafeMutableBufferPointer { w in
                            // dW = xᵀ · dz
                            BLAS.gemm(m: layer.inputs, n: layer.units, k: rows, a: x.baseAddress!, transposeA: true,
                                      b: g.baseAddress!, c: w.baseAddress!)
                        }
                        layer.kernel.withUnsafeBufferPointer { w in
                            inputGradient.withUnsafeMutableBufferPointer { d in
                                // dx = dz · Wᵀ
                                BLAS.gemm(m: rows, n: layer.inputs, k: layer.units, a: g.baseAddress!, b: w.baseAddress!,
                                          transposeB: true, c: d.baseAddress!)
                            }
                        }
                    }
                }
                gradients["\(position).kernel"] = kernelGradient
                if !layer.bias.isEmpty {
                    var biasGradient = [Float](repeating: 0, count: layer.units)
                    for (index, value) in dz.enumerated() { biasGradient[index % layer.units] += value }
                    gradients["\(position).bias"] = biasGradient
                }
                dy = inputGradient
            case .activation(let activation):
                if !skipActivation { dy = Self.activationBackward(activation, output: layerOutput, dy) }
            case .dropout:
                if let mask = masks[position] { dy = zip(dy, mask).map(*) }
            default:
                break
            }
        }
        return (value, hits, gradients)
    }

    static func endsInSoftmax(_ layer: Layer) -> Bool {
        switch layer.node.op {
        case .dense(let a): if case .softmax = a.activation { return true }
        case .activation(let activation): if case .softmax = activation { return true }
        default: break
        }
        return false
    }

    /// dL/dx from dL/dy for `y = f(x)`, written with the output `y`.
    static func activationBackward(_ activation: Activation, output y: RuntimeTensor, _ dy: [Float]) -> [Float] {
        switch activation {
        case .relu: return zip(dy, y.data).map { $1 > 0 ? $0 : 0 }
        case .sigmoid: return zip(dy, y.data).map { $0 * $1 * (1 - $1) }
        case .tanh: return zip(dy, y.data).map { $0 * (1 - $1 * $1) }
        case .softmax:
            let classes = y.shape.last ?? 1
            var dx = [Float](repeating: 0, count: dy.count)
            for row in 0..<(dy.count / max(classes, 1)) {
                let range = (row * classes)..<((row + 1) * classes)
                let dot = range.reduce(Float(0)) { $0 + dy[$1] * y.data[$1] }
                for index in range { dx[index] = y.data[index] * (dy[index] - dot) }
            }
            return dx
        default: return dy
        }
    }

    /// One optimizer step for every trainable tensor of the head, with Keras 3's formulas.
    mutating func apply(_ gradients: [String: [Float]], options: Options, step: Int, slots: inout [String: Slots]) {
        // `step` counts this update from 1; Keras evaluates the schedule at the updates made before it.
        let rate = options.schedule.rate(options.learningRate, iterations: step - 1)
        for position in layers.indices {
            for role in ["kernel", "bias"] {
                let key = "\(position).\(role)"
                guard let gradient = gradients[key] else { continue }
                var weights = role == "kernel" ? layers[position].kernel : layers[position].bias
                var slot = slots[key] ?? Slots(first: [Float](repeating: 0, count: weights.count),
                                               second: [Float](repeating: 0, count: weights.count))
                switch options.optimizer {
                case .sgd(let momentum, let nesterov):
                    for i in weights.indices {
                        if momentum == 0 {
                            weights[i] -= rate * gradient[i]
                        } else {
                            slot.first[i] = momentum * slot.first[i] - rate * gradient[i]
                            weights[i] += nesterov ? momentum * slot.first[i] - rate * gradient[i] : slot.first[i]
                        }
                    }
                case .adam(let beta1, let beta2, let epsilon), .adamW(let beta1, let beta2, let epsilon, _):
                    if case .adamW(_, _, _, let decay) = options.optimizer, decay > 0 {
                        for i in weights.indices { weights[i] -= weights[i] * decay * rate }
                    }
                    let t = Float(step)
                    let corrected = rate * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
                    for i in weights.indices {
                        slot.first[i] += (gradient[i] - slot.first[i]) * (1 - beta1)
                        slot.second[i] += (gradient[i] * gradient[i] - slot.second[i]) * (1 - beta2)
                        weights[i] -= corrected * slot.first[i] / (slot.second[i].squareRoot() + epsilon)
                    }
                }
                slots[key] = slot
                if role == "kernel" { layers[position].kernel = weights } else { layers[position].bias = weights }
            }
        }
    }
}
