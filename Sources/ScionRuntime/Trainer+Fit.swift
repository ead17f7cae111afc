import Foundation
import ScionIR

/// The training loop (shuffled batches, forward, loss, backward, optimizer step), evaluation, the
/// losses and the optimizers, with Keras 3's formulas.
extension Trainer {
    /// Optimizer state of one tensor (momentum or Adam's two moments).
    struct Slots {
        var first: [Float]
        var second: [Float]
    }

    /// Trains on `features` (from `features(of:)`) and targets `y` (`[N]` class indices for sparse
    /// cross-entropy, `[N, classes]` otherwise). Each call starts a fresh optimizer, as recompiling a
    /// Keras model does. `onBatch` gets the running metrics after every batch; `onEpoch` each epoch
    /// as it ends, with the trainer as it stands then (to evaluate on validation data).
    public mutating func fit(_ features: Features, targets y: RuntimeTensor, options: Options,
                             onBatch: (BatchProgress) -> Void = { _ in },
                             onEpoch: (Epoch, Trainer) throws -> Void = { _, _ in }) throws -> [Epoch] {
        let samples = features.count
        guard samples > 0, y.shape.first == samples, options.batchSize > 0, options.epochs >= 0 else {
            throw RuntimeError("data", "has \(samples) samples and \(y.shape.first ?? 0) targets")
        }
        Self.keepFreedBuffersForReuse()
        var random = SplitMix64(seed: options.seed)
        var slots: [String: Slots] = [:]
        var step = 0
        var history: [Epoch] = []
        let batches = (samples + options.batchSize - 1) / options.batchSize
        for epoch in 1...max(options.epochs, 1) where options.epochs > 0 {
            let start = Date()
            var order = Array(0..<samples)
            order.shuffle(using: &random)
            var lossSum = 0.0, correct = 0.0, seen = 0
            for (batch, batchStart) in stride(from: 0, to: samples, by: options.batchSize).enumerated() {
                let rows = Array(order[batchStart..<min(batchStart + options.batchSize, samples)])
                let tape = try forward(try frontierBatch(features, rows: rows), training: true, random: &random)
                guard let prediction = tape.values[output] else { throw RuntimeError(output, "not computed") }
                let targets = y.rows(rows)
                let result = lossValue(prediction, targets: targets.data, loss: options.loss)
                // A diverged run stops at the batch where it happens: a NaN loss would otherwise train
                // every weight to NaN and the model would still be written.
                guard result.loss.isFinite else {
                    throw RuntimeError("", "the loss is \(Self.spell(result.loss)) at epoch \(epoch), batch \(batch + 1) of \(batches); training diverged "
                        + "(lower the learning rate, or check the data's scale)")
                }
                let gradients = try backward(tape, outputGradient: RuntimeTensor(shape: prediction.shape, data: result.gradient),
                                             skipOutputActivation: result.atLogits)
                updateMovingAverages(tape)
                step += 1
                apply(gradients, options: options, step: step, slots: &slots)
                if let (name, value) = firstNonFiniteWeight() {
                    throw RuntimeError("", "\(name) became \(Self.spell(Double(value))) in the update of epoch \(epoch), "
                        + "batch \(batch + 1) of \(batches); training diverged (lower the learning rate)")
                }
                lossSum += result.loss * Double(rows.count)
                correct += result.correct
                seen += rows.count
                onBatch(BatchProgress(epoch: epoch, batch: batch + 1, batches: batches, loss: lossSum / Double(seen),
                                      accuracy: options.loss.isClassification ? correct / Double(seen) : nil,
                                      seconds: Date().timeIntervalSince(start)))
            }
            let record = Epoch(epoch: epoch, loss: lossSum / Double(samples),
                               accuracy: options.loss.isClassification ? correct / Double(samples) : nil,
                               seconds: Date().timeIntervalSince(start))
            history.append(record)
            try onEpoch(record, self)
        }
        return history
    }

    /// The first tensor training writes (trainable weights, moving statistics) holding a NaN or an
    /// infinity, with that value: one pass over what the step already touched.
    func firstNonFiniteWeight() -> (String, Float)? {
        for name in trainableParameters + writtenParameters.filter({ !trainable.contains($0) }).sorted() {
            if let bad = executor.weights[name]?.first(where: { !$0.isFinite }) { return (name, bad) }
        }
        return nil
    }

    /// A non-finite value as a message names it (Swift prints a negative NaN as `-nan`).
    static func spell(_ value: Double) -> String {
        value.isNaN ? "NaN" : value.isInfinite ? (value < 0 ? "-infinity" : "infinity") : "\(value)"
    }

    /// Loss and accuracy in inference mode (no Dropout, moving statistics), in batches.
    public func evaluate(_ features: Features, targets y: RuntimeTensor, loss: Loss, batchSize: Int = 128) throws -> (loss: Double, accuracy: Double?) {
        var random = SplitMix64(seed: 0)
        var total = 0.0, correct = 0.0
        for start in stride(from: 0, to: features.count, by: batchSize) {
            let rows = Array(start..<min(start + batchSize, features.count))
            let tape = try forward(try frontierBatch(features, rows: rows), training: false, random: &random)
            guard let prediction = tape.values[output] else { throw RuntimeError(output, "not computed") }
            let result = lossValue(prediction, targets: y.rows(rows).data, loss: loss)
            total += result.loss * Double(rows.count)
            correct += result.correct
        }
        let count = Double(max(features.count, 1))
        return (total / count, loss.isClassification ? correct / count : nil)
    }

    /// The model's predictions in inference mode.
    public func predict(_ features: Features, batchSize: Int = 128) throws -> RuntimeTensor {
        var random = SplitMix64(seed: 0)
        var data: [Float] = [], shape: [Int] = []
        for start in stride(from: 0, to: features.count, by: batchSize) {
            let tape = try forward(try frontierBatch(features, rows: Array(start..<min(start + batchSize, features.count))),
                                   training: false, random: &random)
            guard let prediction = tape.values[output] else { throw RuntimeError(output, "not computed") }
            data += prediction.data
            shape = prediction.shape
        }
        return RuntimeTensor(shape: [features.count] + shape.dropFirst(), data: data)
    }

    /// Mean loss over the batch, correct predictions (fractions for binary accuracy), and the
    /// gradient: dL/d(output), or at the output activation's input when `atLogits` (cross-entropy
    /// through softmax or sigmoid gives `(p - y) / n`, exact and stable). Probabilities are clipped
    /// to [1e-7, 1 - 1e-7] as Keras does.
    func lossValue(_ p: RuntimeTensor, targets: [Float], loss: Loss) -> (loss: Double, correct: Double, gradient: [Float], atLogits: Bool) {
        let batch = p.shape[0], width = p.count / max(batch, 1)
        var total = 0.0, correct = 0.0
        var gradient = [Float](repeating: 0, count: p.count)
        var atLogits = false
        if case .softmax = outputActivation, loss == .sparseCategoricalCrossentropy || loss == .categoricalCrossentropy { atLogits = true }
        if case .sigmoid = outputActivation, loss == .binaryCrossentropy { atLogits = true }
        for row in 0..<batch {
            let range = (row * width)..<((row + 1) * width)
            let predicted = range.max { p.data[$0] < p.data[$1] }.map { $0 - row * width } ?? 0
            switch loss {
            case .meanSquaredError:
                for k in range {
                    let difference = p.data[k] - targets[k]
                    total += Double(difference * difference) / Double(width)
                    gradient[k] = 2 * difference / Float(width * batch)
                }
            case .binaryCrossentropy where lossReadsLogits(loss):
                for k in range {
                    let (value, slope) = Self.sigmoidCrossEntropy(p.data[k], target: targets[k])
                    total += value / Double(width)
                    gradient[k] = slope / Float(width * batch)
                    // A logit above 0 is a probability above 0.5.
                    if (p.data[k] > 0) == (targets[k] > 0.5) { correct += 1 / Double(width) }
                }
            case .binaryCrossentropy:
                for k in range {
                    let probability = min(max(p.data[k], 1e-7), 1 - 1e-7), target = targets[k]
                    total -= (Double(target) * log(Double(probability)) + Double(1 - target) * log(Double(1 - probability))) / Double(width)
                    gradient[k] = atLogits ? (p.data[k] - target) / Float(width * batch)
                        : (probability - target) / (probability * (1 - probability)) / Float(width * batch)
                    if (p.data[k] > 0.5) == (target > 0.5) { correct += 1 / Double(width) }
                }
            case .sparseCategoricalCrossentropy, .categoricalCrossentropy:
                let label = loss == .sparseCategoricalCrossentropy ? Int(targets[row]) : nil
                let expected = label ?? range.max { targets[$0] < targets[$1] }.map { $0 - row * width } ?? 0
                if predicted == expected { correct += 1 }
                if !atLogits && lossReadsLogits(loss) {
                    let (value, slopes) = Self.softmaxCrossEntropy(p.data[range], label: label, targets: label == nil ? targets[range] : [])
                    total += value
                    for k in 0..<width { gradient[row * width + k] = slopes[k] / Float(batch) }
                    continue
                }
                for k in 0..<width {
                    let target: Float = label.map { $0 == k ? 1 : 0 } ?? targets[row * width + k]
                    let probability = min(max(p.data[row * width + k], 1e-7), 1 - 1e-7)
                    total -= Double(target) * log(Double(probability))
                    gradient[row * width + k] = atLogits ? (p.data[row * width + k] - target) / Float(batch) : -target / probability / Float(batch)
                }
            }
        }
        return (total / Double(batch), correct, gradient, atLogits)
    }

    /// One optimizer step for every trained tensor, with Keras 3's formulas.
    mutating func apply(_ gradients: [String: [Float]], options: Options, step: Int, slots: inout [String: Slots]) {
        // `step` counts this update from 1; Keras evaluates the schedule at the updates made before it.
        let rate = options.schedule.rate(options.learningRate, iterations: step - 1)
        for name in trainableParameters {
            guard let gradient = gradients[name], let count = executor.weights[name]?.count, count == gradient.count else { continue }
            // The weights and slots are updated in place, over raw buffers (no copy of a tensor per
            // step, no uniqueness check per element); the formulas are the same, value for value.
            var slot = slots.removeValue(forKey: name)
                ?? Slots(first: [Float](repeating: 0, count: count), second: [Float](repeating: 0, count: count))
            executor.weights[name]!.withUnsafeMutableBufferPointer { weights in
                slot.first.withUnsafeMutableBufferPointer { first in
                    slot.second.withUnsafeMutableBufferPointer { second in
                        gradient.withUnsafeBufferPointer { gradient in
                            switch options.optimizer {
                            case .sgd(let momentum, let nesterov):
                                for i in 0..<count {
                                    if momentum == 0 {
                                        weights[i] -= rate * gradient[i]
                                    } else {
                                        first[i] = momentum * first[i] - rate * gradient[i]
                                        weights[i] += nesterov ? momentum * first[i] - rate * gradient[i] : first[i]
                                    }
                                }
                            case .adam(let beta1, let beta2, let epsilon), .adamW(let beta1, let beta2, let epsilon, _):
                                if case .adamW(_, _, _, let decay) = options.optimizer, decay > 0 {
                                    for i in 0..<count { weights[i] -= weights[i] * decay * rate }
                                }
                                let t = Float(step)
                                let corrected = rate * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
                                for i in 0..<count {
                                    first[i] += (gradient[i] - first[i]) * (1 - beta1)
                                    second[i] += (gradient[i] * gradient[i] - second[i]) * (1 - beta2)
                                    weights[i] -= corrected * first[i] / (second[i].squareRoot() + epsilon)
                                }
                            }
                        }
                    }
                }
            }
            slots[name] = slot
        }
    }
}
