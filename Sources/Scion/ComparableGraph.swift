import ScionIR
import ScionPasses

/// A model reduced to what it computes, the form `diff` and `compare` match and compare in.
///
/// Formats spell one computation in different ways: Keras fuses an activation into a Dense, ONNX
/// writes a Dense then a Softmax; Keras pads with `same`, an export with explicit pads or a
/// ZeroPadding layer; tf2onnx folds a BatchNormalization into the convolution before it. Comparing
/// node by node would call these changes. So both models are first brought to Keras's layers and
/// layout (an ONNX graph through `KerasLayersPass`), then rewritten by exact equivalences
/// (`ComparableGraph+Rules.swift`) until neither format's spelling is left:
///
/// ```
///  Keras                                      ONNX export, read back
///  predictions  Dense(5, softmax)             predictions    Dense(5)
///                                             predictions_1  Softmax
///        └──────────── one layer: predictions Dense(5, activation softmax) ──┘
/// ```
///
/// Every rule keeps the computation exactly (none approximates), so two models whose normal forms
/// are equal compute the same function; a rule that does not match exactly leaves the graph alone,
/// and what is left unequal is reported. Each layer of the normal form remembers the nodes it stands
/// for and the value it outputs in the executable graph, so `compare` can tap it.
struct ComparableGraph {
    /// One node folded into a layer, and the value it produces (tapped by `compare`).
    struct Step: Equatable {
        var node: String
        var family: String
        var output: String
    }

    struct Layer {
        /// The main node's name (the layer a person knows: `predictions`, not `predictions_1`).
        var name: String
        /// The Keras layer the main node is a call of (a shared layer's later calls are `name#1`...).
        var layer: String
        var op: Op
        /// Values read, each resolved past elided nodes.
        var inputs: [String]
        /// The value holding the layer's result in `graph`.
        var output: String
        /// Further results of a node with several outputs (a recurrent layer's states), in order.
        var otherOutputs: [String] = []
        /// The nodes this layer stands for, in order; the last one produces `output`.
        var steps: [Step]
        /// Weights in Keras's order, each with its role in the layer (`kernel`, `bias`, `gamma`...),
        /// roles unique.
        var parameters: [Parameter]
        var trainable: Bool
        /// Roles of weights whose values the op's settings also hold (a LayerScale's gamma as its
        /// Rescaling's scale): compared there when the other model has no such weight.
        var weightsInSettings: Set<ParameterRole> = []
        /// The output holds the other model's elements in another order (a Flatten of channels-first
        /// data whose Dense rows were permuted to match): `compare` cannot compare it element-wise.
        var reordered = false

        func parameter(_ role: ParameterRole) -> Parameter? { parameters.first { $0.role == role } }
    }

    struct Options {
        /// Folds a BatchNormalization into the convolution or Dense before it (tf2onnx exports do):
        /// for `compare`, which matches layers, not weights.
        var foldBatchNormalization = false
        /// Compares what inference computes and nothing more: when one model is ONNX, which keeps
        /// nothing else. Dropout layers (identities at inference) are dropped, and a
        /// BatchNormalization's beta of zeros or gamma of ones is `center=False` / `scale=False`.
        var inferenceOnly = false
    }

    /// The graph that runs: the model's own, or its Keras-layers view.
    let graph: Graph
    var layers: [Layer] = []
    /// Graph inputs and outputs (outputs resolved past elided nodes).
    var inputs: [ValueInfo]
    var outputs: [String]
    /// Why the model could not be brought to Keras's layers, when it could not; nil when it was (or
    /// already was Keras).
    var unmapped: String?

    init(_ model: Model, options: Options = Options()) {
        let (view, unmapped) = Self.kerasView(model.graph)
        graph = view
        self.unmapped = unmapped
        inputs = view.inputs
        outputs = view.outputs
        for node in view.nodes {
            var parameters: [Parameter] = []
            for parameter in view.parameters(of: node) where !parameters.contains(where: { $0.role == parameter.role }) {
                parameters.append(parameter)
            }
            layers.append(Layer(
                name: node.name, layer: node.layer, op: node.op, inputs: node.inputs, output: node.outputs.first ?? node.name,
                otherOutputs: Array(node.outputs.dropFirst()),
                steps: [Step(node: node.name, family: Self.family(node.op), output: node.outputs.first ?? node.name)],
                parameters: parameters, trainable: node.trainable))
        }
        applyRules(options)
    }

    /// The graph in Keras's layers and layout, shapes inferred. An ONNX graph first has the spellings
    /// of Scion's own ONNX writer that `KerasLayersPass` does not read folded back
    /// (`ONNXSpellings`); when the pass still refuses a node the graph is kept as read, and the
    /// refusal is said.
    static func kerasView(_ source: Graph) -> (Graph, String?) {
        var graph = source
        guard graph.hasArchitecture else { return (graph, nil) }
        if graph.layout == .channelsFirst {
            var spelled = graph
            ONNXSpellings.rewrite(&spelled)
            do {
                try KerasLayersPass().run(&spelled)
                graph = spelled
            } catch {
                try? graph.inferShapes()
                let reason = (error as? PassError).map { "\($0.subject): \($0.reason)" } ?? "\(error)"
                return (graph, reason)
            }
        }
        try? graph.inferShapes()
        return (graph, nil)
    }

    // MARK: - Queries the rules and the matcher use

    /// Shapes of values the rules made up (a layer moved before a transpose outputs the untransposed
    /// form of a graph value).
    var synthesizedShapes: [String: Shape] = [:]

    func shape(_ value: String) -> Shape? { synthesizedShapes[value] ?? graph.values[value]?.shape }

    func rank(_ value: String) -> Int? { shape(value)?.rank }

    /// Index of the layer producing `value`.
    func producer(of value: String) -> Int? {
        layers.firstIndex { $0.output == value }
    }

    /// Layers reading `value`, by index.
    func readers(of value: String) -> [Int] {
        layers.indices.filter { layers[$0].inputs.contains(value) }
    }

    /// The layer reading `value` when it is the only reader and `value` is not a model output: only
    /// then may the two be merged without changing what the model computes or returns.
    func soleReader(of value: String) -> Int? {
        guard !outputs.contains(value) else { return nil }
        let readers = readers(of: value)
        guard readers.count == 1, layers[readers[0]].inputs.filter({ $0 == value }).count == 1 else { return nil }
        return readers[0]
    }

    // MARK: - Editing

    /// Removes layer `index`, which reads one value and passes it on unchanged: its readers (and the
    /// model outputs) read that value instead.
    mutating func elide(_ index: Int) {
        let layer = layers[index]
        guard let input = layer.inputs.first else { return }
        for position in layers.indices {
            layers[position].inputs = layers[position].inputs.map { $0 == layer.output ? input : $0 }
        }
        outputs = outputs.map { $0 == layer.output ? input : $0 }
        layers.remove(at: index)
    }

    /// The family an op belongs to for matching: convolutions of any kind are one family (a
    /// SeparableConv may be exported as two), activations another.
    static func family(_ op: Op) -> String {
        switch op {
        case .conv, .depthwiseConv, .separableConv: "convolution"
        case .dense, .onnx(.gemm), .onnx(.matMul): "dense"
        case .activation, .prelu, .onnx(.clip): "activation"
        case .pool: "pooling"
        case .globalPool: "global pooling"
        case .flatten, .reshape, .onnx(.computedReshape), .onnx(.squeeze), .onnx(.unsqueeze): "reshape"
        case .transpose, .permute: "transpose"
        case .rescaling: "rescaling"
        case .resizing: "resizing"
        // Families of one op, named by its type.
        case .convTranspose, .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .groupNormalization, .normalization, .layerScale,
             .onnx(.localResponseNormalization), .onnx(.coercedSoftmax), .onnx(.unary), .embedding, .masking, .recurrent, .dropout,
             .stochasticDepth, .identity, .augmentation, .zeroPadding, .cropping, .upSampling, .onnx(.slice),
             .onnx(.split), .onnx(.pad), .onnx(.resize), .onnx(.gather), .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization), .elementwise, .concatenate,
             .scaledResidual, .onnx(.comparison), .onnx(.select), .onnx(.reduce), .onnx(.constant), .onnx(.cast),
             .opaque:
            op.typeName
        }
    }
}
