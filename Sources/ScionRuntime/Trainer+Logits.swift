import Foundation
import ScionIR

/// Cross-entropy on a model that ends in logits. A classifier exported from torch (or built with
/// Keras's `Dense(n)` and `from_logits=True`) has no softmax or sigmoid at its end; read as
/// probabilities, its raw scores would be clipped to [1e-7, 1 - 1e-7] and the loss would say ~0 for
/// any score above 1, whatever the labels. Such outputs are read as Keras's `from_logits=True` does:
/// log-softmax (sigmoid for binary cross-entropy) inside the loss, gradient `p - y` at the output.
extension Trainer {
    /// The node that makes `output` once layers that only move values are looked through (a Reshape
    /// or Flatten after MobileNet's softmax); nil when that walk reaches a graph input. Its activation
    /// says whether the output holds probabilities, for the loss here and for `predict`'s softmax.
    package static func outputMaker(_ graph: Graph, output: String) -> Node? {
        var value = output
        while let index = graph.producers[value] {
            let node = graph.nodes[index]
            guard movesValuesOnly(node.op), let next = node.inputs.first else { return node }
            value = next
        }
        return nil
    }

    static func movesValuesOnly(_ op: Op) -> Bool {
        if case .reshape = op { return true }
        if case .flatten = op { return true }
        if case .identity = op { return true }
        if case .dropout = op { return true }
        return false
    }

    /// The activation `outputMaker` applies last: a softmax or sigmoid means the output already holds
    /// probabilities.
    static func probabilityActivation(_ graph: Graph, output: String) -> Activation? {
        outputMaker(graph, output: output).flatMap { outputActivation(of: $0.op) }
    }

    /// Whether `loss` reads the model's output as logits: cross-entropy on an output that no softmax
    /// (sigmoid, for binary cross-entropy) makes. Commands say so before training.
    public func lossReadsLogits(_ loss: Loss) -> Bool {
        switch loss {
        case .sparseCategoricalCrossentropy, .categoricalCrossentropy:
            if case .softmax = probabilityActivation { return false }
            return true
        case .binaryCrossentropy:
            if case .sigmoid = probabilityActivation { return false }
            return true
        case .meanSquaredError:
            return false
        }
    }

    /// Cross-entropy of one row of logits `z` against `target` (a class index or a probability row):
    /// the loss and dL/dz for the row (to be divided by the batch).
    static func softmaxCrossEntropy(_ z: ArraySlice<Float>, label: Int?, targets: ArraySlice<Float>) -> (loss: Double, gradient: [Float]) {
        let top = z.max() ?? 0
        let exponentials = z.map { Double($0 - top).exp }
        let sum = exponentials.reduce(0, +)
        var loss = 0.0
        var gradient = [Float](repeating: 0, count: z.count)
        for k in 0..<z.count {
            let target = label.map { $0 == k ? 1.0 : 0.0 } ?? Double(targets[targets.startIndex + k])
            let probability = exponentials[k] / sum
            loss -= target * (Double(z[z.startIndex + k] - top) - log(sum))
            gradient[k] = Float(probability - target)
        }
        return (loss, gradient)
    }

    /// Binary cross-entropy of logit `z` against `target`, in the overflow-free form Keras uses
    /// (`max(z, 0) - z·t + log(1 + e^-|z|)`), and dL/dz.
    static func sigmoidCrossEntropy(_ z: Float, target: Float) -> (loss: Double, gradient: Float) {
        let x = Double(z), t = Double(target)
        let loss = max(x, 0) - x * t + log1p(exp(-abs(x)))
        return (loss, Float(1 / (1 + exp(-x)) - t))
    }
}

private extension Double {
    var exp: Double { Foundation.exp(self) }
}
