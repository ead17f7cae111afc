import Foundation
import ScionIR

/// Trains a model's trainable weights with backpropagation, as Keras's `fit()` would.
///
/// The model comes lowered, as the executor takes it (channels-first, grouped convolutions: the
/// `Scion` library's `FineTuning` runs `ExecutorLowering` first); `trainedTensors` are in that form,
/// and `ExecutorLowering.writeBack` puts them back into the model as given, in its own layout.
///
/// Bottleneck features, automatically: the nodes that depend only on the input through frozen,
/// deterministic layers (the frozen base) give the same values every epoch, so they run once per
/// sample (`features(of:)`, on the fused inference executor) and training runs only the rest (the
/// "trainable part") on those cached values. The cut between them, `frontier`, moves with what is
/// trainable: the head alone, or the top of the base too in a second phase.
///
/// Keras's semantics: a BatchNormalization whose layer is trainable normalizes with the batch's
/// statistics and updates its moving averages (`moving = moving · momentum + batch · (1 - momentum)`);
/// a frozen one runs in inference mode. Dropout is active only while training.
public struct Trainer {
    /// The lowered graph, unfused, holding the weights as they train.
    var executor: Executor
    /// The trainable part: node indices of `executor.graph`, in topological order.
    let steps: [Int]
    /// Values the trainable part reads that the frozen prefix (or the model's input) provides.
    public let frontier: [String]
    /// Runs the frozen prefix (fused, for speed) up to the frontier; nil when the frontier is the input.
    let prefix: Executor?
    /// The tensors the optimizer updates, by name: every tensor of the model marked trainable.
    public let trainableParameters: [String]
    /// The same names as a set, for the per-batch lookups.
    let trainable: Set<String>
    /// Values that depend on a trainable weight (or a training-mode BatchNormalization): the only
    /// ones a gradient must reach.
    let needsGradient: Set<String>
    /// The activation that produces the output (softmax, sigmoid...), fused or a layer of its own:
    /// it decides whether a loss's gradient can be taken at its input.
    let outputActivation: Activation?
    /// The activation behind the output once layers that only move values are looked through: when
    /// it is no softmax or sigmoid, cross-entropy reads the output as logits (Trainer+Logits.swift).
    let probabilityActivation: Activation?
    /// BatchNormalization nodes (by name) that use batch statistics while training.
    let trainingBatchNorms: Set<String>
    /// The tensors training changes: the trainable ones and the moving statistics of
    /// BatchNormalizations that train.
    public let writtenParameters: [String]
    /// Convolutions trained with the frozen BatchNormalization and ReLU after them, by the
    /// convolution's node index, and the nodes they absorb (Trainer+ConvolutionChains.swift).
    let chains: [Int: ConvolutionChain]
    let absorbed: Set<Int>
    /// The name of the model's one input.
    public let inputName: String
    /// The value holding the model's one output, which the loss compares with the targets.
    public let output: String
    /// Whether the augmentation layers (RandomFlip..., GaussianNoise, RandomCrop) transform their
    /// input while training, as in Keras's `fit`; off, they are the identity (their inference form).
    public let augmenting: Bool

    /// The lowered graph it trains, its shapes inferred, with the weights as given (the trained ones
    /// are in `trainedTensors` and `trainedGraph()`).
    public var graph: Graph { executor.graph }
    /// Nodes in the frozen prefix, which `features(of:)` runs (see the type's comment).
    public var prefixNodeCount: Int { graph.nodes.count - steps.count }
    /// Nodes in the trainable part, which every batch runs.
    public var trainedNodeCount: Int { steps.count }
    /// Whether the frozen prefix holds layers with weights (else it only reshapes the input).
    public var prefixHasWeights: Bool { prefix?.graph.nodes.contains { !$0.parameters.isEmpty } ?? false }

    /// `model` must be lowered (`ExecutorLowering`; a graph that is not is refused naming the node)
    /// and have one input and one output. `augmenting`: see the property.
    public init(graph model: Graph, augmenting: Bool = true) throws {
        self.augmenting = augmenting
        var graph = model
        try graph.inferShapes()
        guard graph.outputs.count == 1, let output = graph.outputs.first else {
            throw RuntimeError(graph.name, "training needs a model with one output")
        }
        guard graph.inputs.count == 1, let input = graph.inputs.first else {
            throw RuntimeError(graph.name, "training needs a model with one input")
        }
        try Executor.requireLowered(graph)
        let trainable = graph.parameters.all.filter(\.trainable).map(\.name)
        guard !trainable.isEmpty else {
            throw RuntimeError(model.name, "has no trainable weights to train (freeze less, or graft a head)")
        }
        let trainableSet = Set(trainable)
        var trainingBatchNorms = Set<String>()
        for node in graph.nodes {
            guard case .batchNormalization = node.op, node.trainable else { continue }
            let affine = node.parameters.filter { !(graph.parameters[$0]?.role.isStatistic ?? false) }
            if affine.allSatisfy(trainableSet.contains) { trainingBatchNorms.insert(node.name) }
        }
        // The frozen, deterministic prefix: nodes whose inputs all come from it (or the input), whose
        // outputs are cached per sample. Values that do not depend on the input at all (a constant
        // shape or operand) are `invariant`: they have no samples to cache by, so every step computes
        // them again (they are cheap), and the prefix computes those it reads. Values computed from a
        // tensor's lengths (Shape, and the arithmetic on it: a dynamic export's Reshape targets) have
        // no samples either, and change with the batch: every step computes them too, from its rows.
        let order = try graph.topologicalOrder()
        var fixed = Set([input.name]), invariant = Set<String>(), lengths = Set<String>()
        var steps: [Int] = []
        for index in order {
            let node = graph.nodes[index]
            let frozen = !node.parameters.contains(where: trainableSet.contains) && !trainingBatchNorms.contains(node.name)
            let deterministic = frozen && !Self.isRandomWhileTraining(node.op, augmenting: augmenting)
                && !Self.movesSamples(node, graph: graph)
            if deterministic && node.inputs.allSatisfy(invariant.contains) {
                invariant.formUnion(node.outputs)
                steps.append(index)
            } else if case .onnx(.shape) = node.op {
                lengths.formUnion(node.outputs)
                steps.append(index)
            } else if deterministic && node.inputs.allSatisfy({ lengths.contains($0) || invariant.contains($0) }) {
                lengths.formUnion(node.outputs)
                steps.append(index)
            } else if deterministic && node.inputs.allSatisfy({ fixed.contains($0) || invariant.contains($0) }) {
                fixed.formUnion(node.outputs)
            } else {
                steps.append(index)
            }
        }
        guard !fixed.contains(output) else {
            throw RuntimeError(model.name, "its trainable weights do not affect its output \(output)")
        }
        var frontier: [String] = []
        for index in steps { for value in graph.nodes[index].inputs where fixed.contains(value) && !frontier.contains(value) { frontier.append(value) } }
        let computed = frontier.filter { $0 != input.name }
        if computed.isEmpty {
            prefix = nil
        } else {
            var base = graph
            try base.prune(keepingOutputs: computed)
            prefix = try Executor(graph: base)
        }
        let stepParameters = Set(steps.flatMap { graph.nodes[$0].parameters })
        executor = try Executor(graph: graph, fusing: false, loading: stepParameters)
        var written = trainable
        for node in graph.nodes where trainingBatchNorms.contains(node.name) {
            written += node.parameters.filter { graph.parameters[$0]?.role.isStatistic ?? false }
        }
        writtenParameters = written
        self.steps = steps
        self.frontier = frontier
        self.trainingBatchNorms = trainingBatchNorms
        trainableParameters = trainable
        self.trainable = trainableSet
        var needsGradient = Set<String>()
        for index in steps {
            let node = graph.nodes[index]
            if node.parameters.contains(where: trainableSet.contains) || node.inputs.contains(where: needsGradient.contains) {
                needsGradient.formUnion(node.outputs)
            }
        }
        self.needsGradient = needsGradient
        (chains, absorbed) = Self.convolutionChains(graph, steps: steps, trainable: trainableSet, trainingBatchNorms: trainingBatchNorms)
        outputActivation = graph.producers[output].flatMap { Self.outputActivation(of: graph.nodes[$0].op) }
        probabilityActivation = Self.probabilityActivation(graph, output: output)
        inputName = input.name
        self.output = output
    }

    /// The tensors training changed (`writtenParameters`), float32 in the lowered graph's layout:
    /// what `ExecutorLowering.writeBack` puts back into the model as given.
    public var trainedTensors: [String: [Float]] {
        var result: [String: [Float]] = [:]
        for name in writtenParameters { result[name] = executor.weights[name] }
        return result
    }

    /// The lowered graph with the trained tensors; every other tensor keeps its storage, byte for byte.
    public func trainedGraph() -> Graph {
        var result = executor.graph
        for (name, values) in trainedTensors {
            guard var parameter = result.parameters[name] else { continue }
            parameter.storage = TensorStorage(bytes: values.withUnsafeBytes { Array($0) })
            parameter.dtype = .float32
            result.parameters[name] = parameter
        }
        return result
    }

    /// The frontier values for every sample, or the inputs to recompute them from per batch when
    /// caching them would take more than `memoryLimit` bytes.
    public struct Features: Sendable {
        var cached: [String: RuntimeTensor]
        var inputs: RuntimeTensor?
        /// Streamed samples to read each step's rows from again (`features(streaming:)`).
        var source: (any StreamedSamples)? = nil
        /// Number of samples.
        public let count: Int
        /// True when the frozen prefix ran once per sample and training reads its stored outputs.
        public var isCached: Bool { inputs == nil && source == nil }
    }

    /// Whether a node's output rows are not its input's samples (TimeDistributed's Reshape folding the
    /// steps into the batch): the prefix cache keeps one row per sample, so such a node is computed
    /// in every step instead of cached.
    static func movesSamples(_ node: Node, graph: Graph) -> Bool {
        if case .transpose(let a) = node.op { return a.permutation.first != 0 }
        guard case .reshape(let a) = node.op, a.includesBatch else { return false }
        if a.targetShape.first == 0 && !a.allowZero { return false }
        guard let input = node.inputs.first.flatMap({ graph.values[$0]?.shape }),
              let output = node.outputs.first.flatMap({ graph.values[$0]?.shape }),
              let inputSample = Shape.product(Array(input.dimensions.dropFirst())),
              let outputSample = Shape.product(Array(output.dimensions.dropFirst())) else { return true }
        return inputSample != outputSample
    }

    /// Runs the frozen prefix once over `x` (in batches) and keeps its outputs at the frontier.
    public func features(of x: RuntimeTensor, batchSize: Int = 64, memoryLimit: Int = 2 << 30) throws -> Features {
        let samples = x.shape.first ?? 0
        guard let prefix else { return Features(cached: [inputName: x], inputs: nil, count: samples) }
        let perSample = frontier.reduce(0) { total, name in
            total + (graph.values[name]?.shape?.dimensions.dropFirst().reduce(1) { $0 * ($1 ?? 1) } ?? 1)
        }
        if perSample * samples * 4 > memoryLimit { return Features(cached: [:], inputs: x, count: samples) }
        var parts: [String: [RuntimeTensor]] = [:]
        for start in stride(from: 0, to: samples, by: batchSize) {
            let batch = try prefixValues(prefix, x.rows(Array(start..<min(start + batchSize, samples))))
            for (name, value) in batch { parts[name, default: []].append(value) }
        }
        var cached: [String: RuntimeTensor] = [:]
        for (name, values) in parts {
            cached[name] = RuntimeTensor(shape: [samples] + (values.first?.shape.dropFirst() ?? []), data: values.flatMap(\.data))
        }
        return Features(cached: cached, inputs: nil, count: samples)
    }

    /// The frontier values of the samples `rows`.
    func frontierBatch(_ features: Features, rows: [Int]) throws -> [String: RuntimeTensor] {
        if let inputs = features.inputs, let prefix { return try prefixValues(prefix, inputs.rows(rows)) }
        if let source = features.source {
            let x = try source.rows(rows)
            return try prefix.map { try prefixValues($0, x) } ?? [inputName: x]
        }
        return features.cached.mapValues { $0.rows(rows) }
    }

    func prefixValues(_ prefix: Executor, _ x: RuntimeTensor) throws -> [String: RuntimeTensor] {
        var values = try prefix.runInBatches(inputName, x)
        if frontier.contains(inputName) { values[inputName] = x }
        return values
    }
}
