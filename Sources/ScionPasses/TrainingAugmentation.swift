import ScionIR

/// `scion finetune --augment`: Keras's augmentation layers put in front of the model for training
/// only, the way a Keras user puts `RandomFlip`, `RandomRotation`... first in the model; the trainer
/// runs them (a random transform per image while training, the identity at inference, so validation
/// and test images are never augmented), and `removed(from:)` takes them out before the model is
/// written.
///
/// Before, a model reading `image`:            After `run`:
///
///     image -> conv -> ...                       image -> augment_flip -> augment_rotate -> conv -> ...
public struct TrainingAugmentation: GraphPass {
    /// One transform: which layer, its Keras config (JSON), and the name the command line gave it.
    public struct Step: Equatable, Sendable {
        /// The augmentation layer.
        public var kind: AugmentationKind
        /// Its Keras config as a JSON object.
        public var configuration: String
        /// The transform's name on the command line (`flip`, `rotate`), for node names and messages.
        public var label: String
        /// A step.
        public init(kind: AugmentationKind, configuration: String, label: String) {
            self.kind = kind; self.configuration = configuration; self.label = label
        }
    }

    /// The transforms, in the order they apply.
    public var steps: [Step]

    public var name: String { "training-augmentation" }

    /// The transforms `steps`, applied in order.
    public init(steps: [Step]) { self.steps = steps }

    /// The nodes `run` added, in order: `augment_flip (RandomFlip)`, ...
    public static func added(in graph: Graph) -> [String] {
        graph.nodes.compactMap { node in
            guard node.layer.hasPrefix(layerPrefix), case .augmentation(let a) = node.op else { return nil }
            return "\(node.name) (\(a.kind.isKerasLayer ? a.kind.rawValue : "Resizing and RandomCrop"))"
        }
    }

    /// Marks the added nodes (their `layer`), so that they can be found again whatever their names.
    static let layerPrefix = "scion-training-augmentation/"

    /// Puts the steps between the model's one image input and the nodes that read it.
    public func run(_ graph: inout Graph) throws {
        guard graph.inputs.count == 1, let input = graph.inputs.first else {
            throw PassError(pass: name, subject: graph.name, "augments a model with one input; this one has \(graph.inputs.count)")
        }
        let layout = try Self.imageLayout(of: input, pass: name)
        var names = UniqueNames(taken: graph.nodes.map(\.name) + Array(graph.values.keys) + graph.inputs.map(\.name))
        var previous = input.name
        var added: [Node] = []
        for step in steps {
            let node = names.claim("augment_\(step.label)")
            added.append(Node(name: node, op: .augmentation(AugmentationAttributes(kind: step.kind, configuration: step.configuration, layout: layout)),
                              inputs: [previous], outputs: [node], layer: Self.layerPrefix + node))
            previous = node
        }
        guard previous != input.name else { return }
        for index in graph.nodes.indices {
            graph.nodes[index].inputs = graph.nodes[index].inputs.map { $0 == input.name ? previous : $0 }
        }
        graph.nodes.insert(contentsOf: added, at: 0)
    }

    /// `graph` without the nodes `run` added: what is written after training.
    public static func removed(from graph: Graph) -> Graph {
        var graph = graph
        while let index = graph.nodes.firstIndex(where: { $0.layer.hasPrefix(layerPrefix) }) {
            let node = graph.nodes.remove(at: index)
            guard let input = node.inputs.first, let output = node.outputs.first else { continue }
            for other in graph.nodes.indices {
                graph.nodes[other].inputs = graph.nodes[other].inputs.map { $0 == output ? input : $0 }
            }
            graph.outputs = graph.outputs.map { $0 == output ? input : $0 }
            graph.values[output] = nil
        }
        return graph
    }

    /// `graph` with the nodes `run` added made the model's own layers (named as their nodes): what
    /// `--augment-into-model` writes.
    public static func kept(in graph: Graph) -> Graph {
        var graph = graph
        for index in graph.nodes.indices where graph.nodes[index].layer.hasPrefix(layerPrefix) {
            graph.nodes[index].layer = graph.nodes[index].name
        }
        return graph
    }

    /// NHWC or NCHW by the axis that holds 1, 3 or 4 channels (as `finetune --data DIR` decides).
    static func imageLayout(of input: ValueInfo, pass: String) throws -> Layout {
        let dimensions = input.shape?.dimensions ?? []
        guard dimensions.count == 4 else {
            throw PassError(pass: pass, subject: input.name, "augmentation transforms images (rank 4); the model's input has shape "
                + (input.shape.map { "[" + $0.dimensions.map { $0.map(String.init) ?? "?" }.joined(separator: ", ") + "]" } ?? "unknown"))
        }
        let channels: Set<Int> = [1, 3, 4]
        if let last = dimensions[3], channels.contains(last) { return .channelsLast }
        if let first = dimensions[1], channels.contains(first) { return .channelsFirst }
        return .channelsLast
    }

    /// The random augmentation nodes (the model's own and added ones) whose transformed images reach
    /// a frozen layer with weights, and those frozen layers: the frozen base then sees different
    /// images every epoch, so its outputs cannot be computed once per image and cached (the trainer
    /// runs it for every batch). Empty when the augmentation comes after the frozen part.
    public static func augmentationBeforeFrozenLayers(_ graph: Graph) throws -> (augmentations: [String], frozen: [String]) {
        // Each value, with the augmentation nodes whose output it depends on.
        var sources: [String: Set<String>] = [:], augmentations = Set<String>(), frozen: [String] = []
        for index in try graph.topologicalOrder() {
            let node = graph.nodes[index]
            var upstream = node.inputs.reduce(into: Set<String>()) { $0.formUnion(sources[$1] ?? []) }
            if isRandomAugmentation(node.op) {
                upstream.insert(node.name)
            } else if !upstream.isEmpty, !node.parameters.isEmpty,
                      !node.parameters.contains(where: { graph.parameters[$0]?.trainable == true }) {
                frozen.append(node.name)
                augmentations.formUnion(upstream)
            }
            guard !upstream.isEmpty else { continue }
            for output in node.outputs { sources[output] = upstream }
        }
        return (graph.nodes.map(\.name).filter(augmentations.contains), frozen)
    }

    /// Layers that transform their input randomly while training (augmenting): the augmentation
    /// layers and Keras's RandomCrop.
    static func isRandomAugmentation(_ op: Op) -> Bool {
        if case .augmentation = op { return true }
        if case .resizing(let a) = op, a.kind == .randomCrop { return true }
        return false
    }

    /// Each augmentation layer the model holds itself (not added by `run`): `name (ClassName)`.
    public static func modelsOwnAugmentation(_ graph: Graph) -> [String] {
        graph.nodes.compactMap { node in
            guard !node.layer.hasPrefix(layerPrefix) else { return nil }
            if case .augmentation(let a) = node.op { return "\(node.name) (\(a.kind.rawValue))" }
            if case .resizing(let a) = node.op, a.kind == .randomCrop { return "\(node.name) (RandomCrop)" }
            return nil
        }
    }
}
