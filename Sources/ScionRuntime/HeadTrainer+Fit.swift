import Foundation
import ScionIR

/// The training loop: forward with the values backward needs, the gradients (one VJP per layer
/// kind), the optimizer step.
extension HeadTrainer {
    /// Optimizer state of one tensor.
    struct Slots {
        var first: [Float]
        var second: [Float]
    }

    /// Trains on cached features `x` `[N, F]` and targets `y` (`[N]` class indices for sparse
    /// cross-entropy, `[N, classes]` otherwise); `progress` gets each epoch as it ends, with the
    /// trainer as it stands then (to evaluate on validation data).
    public mutating func fit(features x: RuntimeTensor, targets y: RuntimeTensor, options: Options,
                             progress: (Epoch, HeadTrainer) -> Void = { _, _ in }) throws -> [Epoch] {
        let samples = x.shape[0]
        guard samples > 0, y.shape.first == samples, options.batchSize > 0, options.epochs >= 0 else {
            throw RuntimeError("data", "has \(samples) samples and \(y.shape.first ?? 0) targets")
        }
        let width = x.count / samples
        var random = SplitMix64(seed: options.seed)
        var slots: [String: Slots] = [:]
        var step = 0
        var history: [Epoch] = []
        for epoch in 1...max(options.epochs, 1) where options.epochs > 0 {
            let start = Date()
            var order = Array(0..<samples)
            order.shuffle(using: &random)
            var lossSum = 0.0, correct = 0
            for batchStart in stride(from: 0, to: samples, by: options.batchSize) {
                let indices = Array(order[batchStart..<min(batchStart + options.batchSize, samples)])
                var batch = [Float](), targets = [Float]()
                batch.reserveCapacity(indices.count * width)
                let targetWidth = y.count / samples
                for index in indices {
                    batch += x.data[(index * width)..<((index + 1) * width)]
                    targets += y.data[(index * targetWidth)..<((index + 1) * targetWidth)]
                }
                let input = RuntimeTensor(shape: [indices.count, width], data: batch)
                let (loss, hits, gradients) = try lossAndGradients(input, targets: targets, loss: options.loss, random: &random)
                lossSum += loss * Double(indices.count)
                correct += hits
                step += 1
                apply(gradients, options: options, step: step, slots: &slots)
            }
            let classification = options.loss != .meanSquaredError
            let record = Epoch(epoch: epoch, loss: lossSum / Double(samples),
                               accuracy: classification ? Double(correct) / Double(samples) : nil,
                               seconds: Date().timeIntervalSince(start))
            history.append(record)
            progress(record, self)
        }
        return history
    }

    /// Loss and accuracy of the head in inference mode (no Dropout).
    public func evaluate(features x: RuntimeTensor, targets y: RuntimeTensor, loss: Loss) throws -> (loss: Double, accuracy: Double?) {
        var random = SplitMix64(seed: 0)
        let (outputs, _) = try forward(x, training: false, random: &random)
        guard let prediction = outputs.last else { return (0, nil) }
        let (value, hits, _) = lossValue(prediction, targets: y.data, loss: loss)
        return (value, loss == .meanSquaredError ? nil : Double(hits) / Double(x.shape[0]))
    }

    /// Forward through the head: each layer's output (index 0 is the input), and Dropout masks.
    func forward(_ x: RuntimeTensor, training: Bool, random: inout SplitMix64) throws -> ([RuntimeTensor], [Int: [Float]]) {
        var outputs = [x]
        var masks: [Int: [Float]] = [:]
        for (position, layer) in layers.enumerated() {
            let input = outputs[outputs.count - 1]
            switch layer.node.op {
            case .dense(let a):
                var z = Kernels.matmul(input, layer.kernel, columns: layer.units)
                if !layer.bias.isEmpty { Kernels.addRows(&z, layer.bias) }
                outputs.append(try Kernels.activate(z, a.activation, node: layer.node.name))
            case .activation(let activation):
                outputs.append(try Kernels.activate(input, activation, node: layer.node.name))
            case .dropout(let a) where training && a.rate > 0:
                let keep = 1 - a.rate
                let mask = (0..<input.count).map { _ in random.unit() < keep ? 1 / keep : 0 }
                masks[position] = mask
                outputs.append(RuntimeTensor(shape: input.shape, data: zip(input.data, mask).map(*)))
            case .flatten:
                outputs.append(RuntimeTensor(shape: [input.shape[0], input.count / max(input.shape[0], 1)], data: input.data))
            default:
                outputs.append(input)
            }
        }
        return (outputs, masks)
    }

    /// Mean loss over the batch, correct predictions, and dLoss/dOutput.
    func lossValue(_ p: RuntimeTensor, targets: [Float], loss: Loss) -> (Double, Int, [Float]) {
        let batch = p.shape[0], classes = p.count / max(batch, 1)
        var total = 0.0, hits = 0
        var gradient = [Float](repeating: 0, count: p.count)
        for row in 0..<batch {
            let values = p.data[(row * classes)..<((row + 1) * classes)]
            let predicted = values.indices.max { p.data[$0] < p.data[$1] }.map { $0 - row * classes } ?? 0
            switch loss {
            case .meanSquaredError:
                for k in 0..<classes {
                    let difference = p.data[row * classes + k] - targets[row * classes + k]
                    total += Double(difference * difference) / Double(classes)
                    gradient[row * classes + k] = 2 * difference / Float(classes * batch)
                }
            case .sparseCategoricalCrossentropy, .categoricalCrossentropy:
                let label = loss == .sparseCategoricalCrossentropy ? Int(targets[row]) : nil
                if predicted == (label ?? (0..<classes).max { targets[row * classes + $0] < targets[row * classes + $1] } ?? 0) { hits += 1 }
                for k in 0..<classes {
                    let target: Float = label.map { $0 == k ? 1 : 0 } ?? targets[row * classes + k]
                    let probability = min(max(p.data[row * classes + k], 1e-7), 1 - 1e-7)
                    total -= Double(target) * log(Double(probability))
                    // dL/dp; replaced by p - y through a softmax (lossAndGradients).
                    gradient[row * classes + k] = -target / probability / Float(batch)
                }
            }
        }
        return (total / Double(batch), hits, gradient)
    }
}
