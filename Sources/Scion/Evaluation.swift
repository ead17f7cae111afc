import Foundation
import ScionRuntime

/// A classifier scored on labelled samples as Keras's `model.evaluate` scores it: the loss the model
/// would be compiled with (sparse categorical cross-entropy, or binary for a one-unit output, from
/// logits when the model ends in them), accuracy, top-5 accuracy, and per-class precision, recall,
/// F1 and support from the confusion matrix (rows: true class, columns: predicted).
public struct Evaluation: Encodable, Sendable {
    /// One class's scores. Precision (recall) is 0 when nothing was predicted as (labelled) the class,
    /// as scikit-learn reports it.
    public struct ClassScores: Encodable, Sendable {
        public var `class`: String
        public var index: Int
        public var precision: Double
        public var recall: Double
        public var f1: Double
        /// Samples labelled with this class.
        public var support: Int
    }

    /// The most classes an evaluation takes: its confusion matrix holds classes² counts.
    public static let largestClassCount = 4096

    public var accuracy: Double
    /// Mean loss over the samples.
    public var loss: Double
    /// The loss's Keras name and whether it reads logits.
    public var lossFunction: String
    /// Whether the label is among the five highest scores (ties count, as Keras's `in_top_k`); nil
    /// for a binary (one-unit) model.
    public var top5Accuracy: Double?
    /// Class names (or indices as text when the model has none).
    public var classes: [String]
    public var perClass: [ClassScores]
    public var confusionMatrix: [[Int]]
    public var samples: Int
    /// Samples the source could not read.
    public var skipped: Int

    enum CodingKeys: String, CodingKey {
        case accuracy, loss, lossFunction, top5Accuracy, classes, perClass, confusionMatrix, samples, skipped
    }

    /// Every key always present: `top5Accuracy` is null for a binary model.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(accuracy, forKey: .accuracy)
        try container.encode(loss, forKey: .loss)
        try container.encode(lossFunction, forKey: .lossFunction)
        try container.encode(top5Accuracy, forKey: .top5Accuracy)
        try container.encode(classes, forKey: .classes)
        try container.encode(perClass, forKey: .perClass)
        try container.encode(confusionMatrix, forKey: .confusionMatrix)
        try container.encode(samples, forKey: .samples)
        try container.encode(skipped, forKey: .skipped)
    }

    /// Running sums while batches are added; `finish` turns them into an `Evaluation`.
    public struct Accumulator {
        let classifier: Classifier
        let classes: [String]
        var lossSum = 0.0, correct = 0, inTopFive = 0, samples = 0
        var matrix: [[Int]]

        public init(classifier: Classifier, classes: [String]) {
            self.classifier = classifier
            self.classes = classes
            matrix = Array(repeating: Array(repeating: 0, count: classifier.classCount), count: classifier.classCount)
        }

        /// Adds a batch: the raw scores and the labels, checked against the class count (`names`
        /// name the samples in the error).
        public mutating func add(scores: RuntimeTensor, labels: [Float], names: [String], file: String) throws {
            let probabilities = classifier.probabilities(fromScores: scores)
            let units = classifier.units
            for (row, label) in labels.enumerated() {
                guard label >= 0, Int(label) < classifier.classCount else {
                    throw ScionError(file: file, "\(names[row]) has label \(Int(label)); the model has \(classifier.classCount) classes "
                        + "(labels 0 to \(classifier.classCount - 1))")
                }
                let truth = Int(label)
                let raw = Array(scores.data[(row * units)..<((row + 1) * units)].map(Double.init))
                lossSum += Evaluation.loss(raw: raw, label: truth, kind: classifier.kind, binary: classifier.isBinary)
                let p = probabilities[row]
                let predicted = classifier.isBinary ? (p[1] > 0.5 ? 1 : 0) : Evaluation.firstLargest(p)
                if predicted == truth { correct += 1 }
                if !classifier.isBinary && p.filter({ $0 > p[truth] }).count < 5 { inTopFive += 1 }
                matrix[truth][predicted] += 1
                samples += 1
            }
        }

        public func finish(skipped: Int) -> Evaluation {
            let count = Double(max(samples, 1))
            let perClass = classes.indices.map { k -> ClassScores in
                let truePositives = Double(matrix[k][k])
                let predicted = Double(matrix.reduce(0) { $0 + $1[k] }), actual = Double(matrix[k].reduce(0, +))
                let precision = predicted > 0 ? truePositives / predicted : 0
                let recall = actual > 0 ? truePositives / actual : 0
                let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
                return ClassScores(class: classes[k], index: k, precision: precision, recall: recall, f1: f1, support: Int(actual))
            }
            let lossName = (classifier.isBinary ? "binary_crossentropy" : "sparse_categorical_crossentropy")
                + (classifier.kind == .logits || classifier.kind == .logSoftmax ? " (from logits)" : "")
            return Evaluation(accuracy: Double(correct) / count, loss: lossSum / count, lossFunction: lossName,
                              top5Accuracy: classifier.isBinary ? nil : Double(inTopFive) / count, classes: classes,
                              perClass: perClass, confusionMatrix: matrix, samples: samples, skipped: skipped)
        }
    }

    /// Keras 3's cross-entropy for one sample, as its backends compute it: from probabilities, the
    /// row normalised to sum 1 and clipped to [1e-7, 1 - 1e-7]; from logits, log-softmax (log-sigmoid
    /// for one unit). Log-softmax outputs are logits whose log-softmax is themselves.
    static func loss(raw: [Double], label: Int, kind: Classifier.OutputKind, binary: Bool) -> Double {
        let epsilon = 1e-7
        let fromLogits = kind == .logits || kind == .logSoftmax
        if binary {
            let y = Double(label), x = raw[0]
            if fromLogits { return -(y * logSigmoid(x) + (1 - y) * logSigmoid(-x)) }
            let p = min(max(x, epsilon), 1 - epsilon)
            return -(y * log(p) + (1 - y) * log(1 - p))
        }
        if fromLogits {
            let top = raw.max() ?? 0
            let logTotal = log(raw.reduce(0) { $0 + exp($1 - top) }) + top
            return logTotal - raw[label]
        }
        let total = raw.reduce(0, +)
        return -log(min(max(raw[label] / total, epsilon), 1 - epsilon))
    }

    /// The index of the largest value, the first one on a tie (NumPy's and Keras's argmax).
    public static func firstLargest(_ values: [Double]) -> Int {
        var best = 0
        for index in values.indices where values[index] > values[best] { best = index }
        return best
    }

    /// `log(sigmoid(x))` without overflow.
    static func logSigmoid(_ x: Double) -> Double { x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)) }
}
