import Foundation
import ScionIR
import ScionRuntime

/// A model read as a classifier: one input, one output of per-class scores, and what those scores
/// are, decided from the graph's last layer. `scion predict` and `scion evaluate` run it batch by batch.
public struct Classifier {
    /// What the model's output holds, from the activation its last layer applies.
    public enum OutputKind: String, Encodable, Sendable {
        /// Softmax probabilities: used as they are.
        case softmax
        /// Sigmoid probabilities: one unit is a binary classifier (the unit is class 1's probability);
        /// several are independent scores.
        case sigmoid
        /// Log-probabilities (a log-softmax layer): exponentiated.
        case logSoftmax = "log_softmax"
        /// No softmax or sigmoid at the end: logits. Scion applies softmax (sigmoid for one unit).
        case logits

        /// How the output reads, for the line predict and evaluate print.
        public func describe(layer: String, units: Int) -> String {
            switch self {
            case .softmax: "probabilities (the last layer '\(layer)' applies softmax)"
            case .sigmoid: "probabilities (the last layer '\(layer)' applies sigmoid)"
            case .logSoftmax: "log-probabilities (the last layer '\(layer)' applies log-softmax); exponentiated"
            case .logits: "logits (the last layer '\(layer)' applies no softmax or sigmoid); \(units == 1 ? "sigmoid" : "softmax") applied"
            }
        }
    }

    public let model: Model
    public let executor: Executor
    /// The input's name and the output's value name.
    public let inputName: String, outputName: String
    /// The input's shape without the batch axis (nil for an unknown dimension); nil when unknown.
    public let sampleShape: [Int?]?
    /// The layer that computes the output.
    public let lastLayer: String
    public let kind: OutputKind
    /// Output units per sample.
    public let units: Int
    /// Classes: the units, or 2 for a one-unit sigmoid (or logit) output.
    public var classCount: Int { isBinary ? 2 : units }
    /// A one-unit output: class 1's probability (after sigmoid for logits).
    public var isBinary: Bool { units == 1 }

    /// Reads `model` as a classifier; refuses, naming the model, one with several inputs or outputs or
    /// whose output is not `[batch, classes]`.
    public init(_ model: Model) throws {
        try model.requireArchitecture(for: "predicting")
        var graph = model.graph
        guard graph.inputs.count == 1, let input = graph.inputs.first else {
            throw ScionError(file: model.path, "has \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))); "
                + "predict and evaluate read classifiers with one input")
        }
        guard graph.outputs.count == 1, let output = graph.outputs.first else {
            throw ScionError(file: model.path, "has \(graph.outputs.count) outputs (\(graph.outputs.joined(separator: ", "))); "
                + "predict and evaluate read classifiers with one output")
        }
        do { try graph.inferShapes() } catch { throw ScionError(file: model.path, String(describing: error)) }
        guard let dimensions = graph.values[output]?.shape?.dimensions, dimensions.count == 2, let units = dimensions[1], units >= 1 else {
            let shape = graph.values[output]?.shape.map { "\($0)" } ?? "unknown"
            throw ScionError(file: model.path, "output '\(output)' has shape \(shape); predict and evaluate read [batch, classes] scores")
        }
        let (layer, kind) = Self.outputKind(graph, output: output)
        self.model = model
        self.inputName = input.name
        self.outputName = output
        self.sampleShape = input.shape.map { Array($0.dimensions.dropFirst()) }
        self.lastLayer = layer
        self.kind = kind
        self.units = units
        do {
            executor = try model.executor()
        } catch let error as RuntimeError {
            throw ScionError(file: model.path, error.description)
        }
    }

    /// The last layer and its activation, looking through layers that only move values (a Reshape
    /// or Flatten after the softmax, as MobileNet has).
    static func outputKind(_ graph: Graph, output: String) -> (String, OutputKind) {
        guard let node = Trainer.outputMaker(graph, output: output) else {
            return (graph.producers[output].map { graph.nodes[$0].name } ?? output, .logits)
        }
        switch Trainer.outputActivation(of: node.op) {
        case .softmax: return (node.name, .softmax)
        case .sigmoid: return (node.name, .sigmoid)
        case .logSoftmax: return (node.name, .logSoftmax)
        default: return (node.name, .logits)
        }
    }

    /// Checks that samples of `shape` fit the model's input, naming `file` and the input otherwise.
    public func checkSamples(shape: [Int], file: String) throws {
        guard let expected = sampleShape else { return }
        let fits = shape.count == expected.count && zip(shape, expected).allSatisfy { $1 == nil || $0 == $1 }
        guard fits else {
            let wanted = expected.map { $0.map(String.init) ?? "?" }.joined(separator: ", ")
            throw ScionError(file: file, "samples have shape \(shape); the model's input '\(inputName)' takes [\(wanted)]")
        }
    }

    /// The model's raw output for `inputs` (`[N, units]`).
    public func scores(_ inputs: RuntimeTensor) throws -> RuntimeTensor {
        do {
            guard let result = try executor.runInBatches(inputName, inputs)[outputName] else {
                throw ScionError(file: model.path, "output '\(outputName)' was not computed")
            }
            return result
        } catch let error as RuntimeError {
            throw ScionError(file: model.path, error.description)
        }
    }

    /// Per-class probabilities, `classCount` per sample, from raw scores: softmax over logits, exp
    /// over log-probabilities, and for a one-unit output `[1 - p, p]`.
    public func probabilities(fromScores scores: RuntimeTensor) -> [[Double]] {
        let rows = scores.shape[0]
        return (0..<rows).map { row in
            let values = scores.data[(row * units)..<((row + 1) * units)].map(Double.init)
            if isBinary {
                let p = kind == .logits ? 1 / (1 + exp(-values[0])) : values[0]
                return [1 - p, p]
            }
            switch kind {
            case .softmax, .sigmoid: return values
            case .logSoftmax: return values.map(exp)
            case .logits:
                let top = values.max() ?? 0
                let exponentials = values.map { exp($0 - top) }
                let total = exponentials.reduce(0, +)
                return exponentials.map { $0 / total }
            }
        }
    }
}
