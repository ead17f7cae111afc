import Foundation
import ScionIR

/// Trains the trainable head of a model whose base is frozen: the classic bottleneck-features trick.
///
/// The base (every node before the first node with trainable weights) is deterministic at inference,
/// so it runs once per sample (`Executor`, taps at the head's input) and the head trains on those
/// cached features, epoch after epoch. The head must be a chain of Dense, activation, Dropout,
/// Identity and Flatten layers on flat features (what `scion graft` adds after `gap` or `flatten`);
/// anything else is refused by name. Frozen weights are never touched: only the head's tensors are
/// replaced, so they are bit-identical in every file written afterwards.
///
/// Keras's semantics and defaults: inverted Dropout only while training; cross-entropy on softmax
/// probabilities clipped to [1e-7, 1 - 1e-7]; Adam (1e-3, 0.9, 0.999, 1e-7) and SGD (momentum,
/// Nesterov) with Keras 3's update formulas; shuffled batches each epoch.
public struct HeadTrainer {
    public enum Loss: String, Sendable, CaseIterable {
        case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy"
        case categoricalCrossentropy = "categorical_crossentropy"
        case meanSquaredError = "mse"
    }

    public enum Optimizer: Sendable, Equatable {
        case sgd(momentum: Float, nesterov: Bool)
        case adam(beta1: Float, beta2: Float, epsilon: Float)
        /// Adam with decoupled weight decay (Keras 3's AdamW: `w -= w · decay · rate` before each
        /// Adam step, every variable).
        case adamW(beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float)
    }

    /// Learning rate by update count, as Keras's schedules compute it from `optimizer.iterations`.
    public enum Schedule: Sendable, Equatable {
        case constant
        /// Keras's `CosineDecay(rate, decay_steps, alpha)`.
        case cosine(decaySteps: Int, alpha: Float)
        /// Keras's `ExponentialDecay(rate, decay_steps, decay_rate, staircase=True)`: the rate times
        /// `decayRate` every `decaySteps` updates.
        case step(decaySteps: Int, decayRate: Float)

        /// The rate for the update that follows `iterations` earlier ones.
        public func rate(_ initial: Float, iterations: Int) -> Float {
            switch self {
            case .constant:
                return initial
            case .cosine(let steps, let alpha):
                let progress = Float(min(iterations, steps)) / Float(max(steps, 1))
                return initial * ((1 - alpha) * 0.5 * (1 + cos(Float.pi * progress)) + alpha)
            case .step(let steps, let decay):
                return initial * pow(decay, Float(iterations / max(steps, 1)))
            }
        }
    }

    public struct Options: Sendable {
        public var epochs = 10
        public var batchSize = 32
        public var learningRate: Float = 1e-3
        public var optimizer = Optimizer.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7)
        public var schedule = Schedule.constant
        public var loss = Loss.sparseCategoricalCrossentropy
        public var seed: UInt64 = 0
        public init() {}
    }

    public struct Epoch: Encodable, Sendable {
        public var epoch: Int
        public var loss: Double
        public var accuracy: Double?
        public var seconds: Double
    }

    /// One layer of the head, with its weights as they train.
    struct Layer {
        var node: Node
        var kernel: [Float] = []
        var bias: [Float] = []
        var inputs = 0, units = 0
    }

    public private(set) var graph: Graph
    var layers: [Layer] = []
    /// The value the head reads: the base's output.
    public let featureValue: String
    /// Base nodes (run once per sample) and head nodes.
    public let baseLayerCount: Int
    public let headLayerCount: Int

    public init(graph: Graph) throws {
        var graph = graph
        try graph.inferShapes()
        guard graph.outputs.count == 1, let output = graph.outputs.first else {
            throw RuntimeError(graph.name, "training needs a model with one output")
        }
        // The head: the longest chain of trainable kinds of layer ending at the output (a Dropout
        // before the Dense belongs to it, so it is active while training, as in Keras).
        let producers = graph.producers
        var chain: [Int] = []
        var value = output
        while let index = producers[value] {
            let node = graph.nodes[index]
            // A layer with only frozen weights belongs to the base: its output can be cached.
            let frozen = !node.parameters.isEmpty && !node.parameters.contains { graph.parameters[$0]?.trainable == true }
            guard node.inputs.count == 1, node.outputs.count == 1, Self.trainableKind(node.op), !frozen else { break }
            chain.insert(index, at: 0)
            value = node.inputs[0]
        }
        let inChain = Set(chain)
        let trainable = graph.nodes.indices.filter { index in graph.nodes[index].parameters.contains { graph.parameters[$0]?.trainable == true } }
        guard !trainable.isEmpty else {
            throw RuntimeError(graph.name, "has no trainable weights to train (freeze less, or graft a head)")
        }
        if let outside = trainable.first(where: { !inChain.contains($0) }) {
            throw RuntimeError(graph.nodes[outside].name, "is trainable but not part of a head of Dense, activation, Dropout and "
                + "Flatten layers at the output; training layers inside the base is not supported yet (freeze them)")
        }
        for index in chain {
            let node = graph.nodes[index]
            var layer = Layer(node: node)
            if case .dense(let a) = node.op {
                let kernel = graph.parameter(of: node, role: "kernel")
                guard let kernel, kernel.shape.count == 2 else { throw RuntimeError(node.name, "needs a rank-2 kernel") }
                guard Self.supported(a.activation) else {
                    throw RuntimeError(node.name, "fused activation \(a.activation.displayName) cannot be trained yet")
                }
                layer.kernel = try Executor.floats(kernel)
                layer.inputs = kernel.shape[0]
                layer.units = kernel.shape[1]
                if let bias = graph.parameter(of: node, role: "bias") {
                    layer.bias = try Executor.floats(bias)
                }
            }
            if case .activation(let activation) = node.op, !Self.supported(activation) {
                throw RuntimeError(node.name, "activation \(activation.displayName) cannot be trained yet (relu, sigmoid, tanh, softmax, linear can)")
            }
            layers.append(layer)
        }
        self.graph = graph
        featureValue = value
        headLayerCount = chain.count
        baseLayerCount = graph.nodes.count - chain.count
    }

    /// Units of the last Dense of the head: the number of classes it predicts.
    public var outputUnits: Int? { layers.last { !$0.kernel.isEmpty }?.units }

    static func trainableKind(_ op: Op) -> Bool {
        switch op {
        case .dense, .activation, .dropout, .identity, .flatten: true
        default: false
        }
    }

    static func supported(_ activation: Activation) -> Bool {
        switch activation {
        case .linear, .sigmoid, .tanh, .softmax: true
        case .relu(nil, 0, 0): true
        default: false
        }
    }

    /// The base's output for every sample (the cached features), computed in batches.
    public func features(of x: RuntimeTensor, batchSize: Int = 64) throws -> RuntimeTensor {
        var base = graph
        base.outputs = [featureValue]
        let executor = try Executor(graph: base)
        guard let inputName = executor.graph.inputs.first?.name, executor.graph.inputs.count == 1 else {
            throw RuntimeError(graph.name, "training needs a model with one input")
        }
        let perSample = x.count / max(x.shape[0], 1)
        var rows: [Float] = []
        var width = 0
        for start in stride(from: 0, to: x.shape[0], by: batchSize) {
            let end = min(start + batchSize, x.shape[0])
            let batch = RuntimeTensor(shape: [end - start] + x.shape.dropFirst(), data: Array(x.data[(start * perSample)..<(end * perSample)]))
            guard let out = try executor.run([inputName: batch])[featureValue] else { throw RuntimeError(featureValue, "not computed") }
            width = out.count / (end - start)
            rows += out.data
        }
        return RuntimeTensor(shape: [x.shape[0], width], data: rows)
    }

    /// The model with the trained head's weights; every other tensor is the one it was given.
    public func trainedGraph() -> Graph {
        var result = graph
        for layer in layers where !layer.kernel.isEmpty {
            for name in layer.node.parameters {
                guard var parameter = result.parameters[name] else { continue }
                let values = parameter.role == "kernel" ? layer.kernel : parameter.role == "bias" ? layer.bias : nil
                guard let values else { continue }
                parameter.storage = TensorStorage(bytes: values.withUnsafeBytes { Array($0) })
                parameter.dtype = .float32
                result.parameters[name] = parameter
            }
        }
        return result
    }
}
