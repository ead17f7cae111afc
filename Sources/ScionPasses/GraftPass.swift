import ScionIR

/// Appends new layers (a `HeadSpec`) to a model: the head reads the model's output, or the output of
/// layer `at` (the model is then cut there first), and its last layer becomes the model's output.
///
/// ```
///  before (cut base)                        after `--head gap,dropout:0.2,dense:5:softmax`
///
///  ... out_relu (N,7,7,1280)  ◀ output      ... out_relu (N,7,7,1280)
///                                           global_average_pooling2d  GAP2D      (N,1280)
///                                           dropout                   Dropout 0.2
///                                           dense                     Dense 5, softmax  ◀ output
///                                                kernel [1280, 5] glorot_uniform, bias [5] zeros
/// ```
///
/// New weights use Keras's default initialisers: glorot_uniform kernels (uniform in ±sqrt(6 / (fan_in
/// + fan_out))), zero biases, BatchNormalization gamma 1, beta 0, moving mean 0, moving variance 1.
/// The same `seed` gives the same weights. New layers are named as Keras names them (`dense`,
/// `dense_1`...), never colliding with an existing name. On a channels-first graph (read from ONNX)
/// the head is built channels-first, so the model can be written back to ONNX as it is; a sequence
/// there, `(N, steps, features)` by the layers producing it (`AxisRoles`), is pooled over the steps
/// and projected on its features, and a value whose batch is not axis 0 is refused.
public struct GraftPass: GraphPass {
    /// `graft`.
    public let name = "graft"
    /// The layers to append.
    public var head: HeadSpec
    /// The layer the head reads (the model is cut after it first); nil reads the model's output.
    public var at: String?
    /// Seeds the new weights' initialisers.
    public var seed: UInt64

    /// A graft of `head`; a nil `seed` picks a random one.
    public init(head: HeadSpec, at: String? = nil, seed: UInt64? = nil) {
        self.head = head
        self.at = at
        self.seed = seed ?? UInt64.random(in: 0...UInt64.max)
    }

    /// Appends the head to the model's one output, or to layer `at` (cutting the model there first);
    /// the head's last layer becomes the only output.
    public func run(_ graph: inout Graph) throws {
        guard graph.hasArchitecture else {
            throw PassError(pass: name, subject: graph.name, "has no architecture (weights only); nothing to graft onto")
        }
        try graph.inferShapes()
        // Names of layers the cut below removes stay taken: a new layer must not look like an old
        // one to `diff` or to a reader of the summary.
        let taken = graph.nodes.map(\.name) + graph.nodes.map(\.layer) + graph.inputs.map(\.name) + Array(graph.values.keys)
        var value: String
        if let at {
            let index = try NodeLookup(graph: graph, pass: name).index(of: at)
            guard graph.nodes[index].outputs.count == 1 else {
                throw PassError(pass: name, subject: at, "has \(graph.nodes[index].outputs.count) outputs; graft onto a layer with one")
            }
            value = graph.nodes[index].outputs[0]
            try graph.prune(keepingOutputs: [value])
        } else {
            guard graph.outputs.count == 1 else {
                throw PassError(pass: name, subject: graph.name,
                                "has \(graph.outputs.count) outputs (\(graph.outputs.joined(separator: ", "))); say where with --at LAYER")
            }
            value = graph.outputs[0]
        }
        var builder = HeadBuilder(graph: graph, pass: name, seed: seed, taken: taken)
        for (position, layer) in head.layers.enumerated() {
            value = try builder.append(layer, after: value, position: position + 1)
            // The next layer needs this one's output shape (a Dense its input length).
            builder.graph.outputs = [value]
            try builder.graph.inferShapes()
        }
        graph = builder.graph
        graph.outputs = [value]
        try graph.inferShapes()
    }
}

/// Adds head layers one by one, with their weights.
struct HeadBuilder {
    var graph: Graph
    let pass: String
    var random: SplitMix64
    var names: UniqueNames
    let channelsFirst: Bool

    init(graph: Graph, pass: String, seed: UInt64, taken: [String]) {
        self.graph = graph
        self.pass = pass
        self.random = SplitMix64(seed: seed)
        // Parameter names are `layer/role`: their first component is taken too.
        let parameterLayers = graph.parameters.names.map { String($0.split(separator: "/").first ?? "") }
        self.names = UniqueNames(taken: taken + parameterLayers, firstSuffix: 1)
        self.channelsFirst = graph.layout == .channelsFirst
    }

    func failure(_ subject: String, _ reason: String) -> PassError { PassError(pass: pass, subject: subject, reason) }

    /// Appends `layer` reading `input`; returns the new output value.
    mutating func append(_ layer: HeadSpec.Layer, after input: String, position: Int) throws -> String {
        guard let shape = graph.values[input]?.shape else {
            throw failure(input, "has an unknown shape; the head needs it")
        }
        let rank = shape.rank
        let item = "head item \(position)"
        switch layer {
        case .globalAveragePooling, .globalMaxPooling:
            guard rank >= 3 else {
                throw failure(item, "global pooling needs a spatial input, but '\(input)' is \(shape) already; "
                    + "drop it from the head, or cut earlier (--drop-top)")
            }
            let layout = try layout(of: input, shape: shape, item: item)
            return appendGlobalPooling(average: layer == .globalAveragePooling, input: input, shape: shape, layout: layout)
        case .flatten:
            try requireBatchFirst(input, shape: shape, item: item)
            return add("flatten", .flatten(FlattenAttributes(layout: channelsFirst ? .channelsFirst : .channelsLast)), input)
        case .dropout(let rate):
            return add("dropout", .dropout(DropoutAttributes(rate: rate)), input)
        case .activation(let activation):
            var chosen = activation
            if case .softmax = activation {
                let channelAxis = try layout(of: input, shape: shape, item: item).featureAxis(rank: rank)
                chosen = .softmax(axis: channelAxis == rank - 1 ? -1 : channelAxis)
            }
            return add("activation", .activation(chosen), input)
        case .dense(let units, let activation):
            // A Dense multiplies the last axis: the features of a sequence (Keras's Dense on
            // (N, steps, features), one projection per step), but a spatial axis of channels-first data.
            guard try layout(of: input, shape: shape, item: item) != .channelsFirst else {
                throw failure(item, "a Dense on '\(input)' \(shape) would mix the spatial axes of channels-first data; "
                    + "put gap, gmp or flatten before it")
            }
            guard let inputs = shape.dimensions.last ?? nil else {
                throw failure(item, "'\(input)' has an unknown last axis; a Dense needs its length")
            }
            let layerName = names.claim("dense")
            let limit = (6 / Float(inputs + units)).squareRoot()
            let kernel = (0..<(inputs * units)).map { _ in random.uniform(-limit, limit) }
            let parameters = [addParameter(layerName, .kernel, [inputs, units], kernel),
                              addParameter(layerName, .bias, [units], [Float](repeating: 0, count: units))]
            let op = Op.dense(DenseAttributes(units: units, useBias: true, activation: activation))
            return add(layerName, op, input, parameters: parameters, claimed: true)
        case .batchNormalization:
            let layout = try layout(of: input, shape: shape, item: item)
            guard layout != .featuresLast else {
                throw failure(item, "BatchNormalization over the features of the sequence '\(input)' \(shape) has no ONNX form "
                    + "(ONNX normalises axis 1); put gap, gmp or flatten before it")
            }
            let channelAxis = layout.featureAxis(rank: rank)
            guard let channels = shape.dimensions[channelAxis] else {
                throw failure(item, "'\(input)' has an unknown channel axis; BatchNormalization needs its length")
            }
            let layerName = names.claim("batch_normalization")
            let ones = [Float](repeating: 1, count: channels), zeros = [Float](repeating: 0, count: channels)
            let parameters = [addParameter(layerName, .gamma, [channels], ones), addParameter(layerName, .beta, [channels], zeros),
                              addParameter(layerName, .movingMean, [channels], zeros),
                              addParameter(layerName, .movingVariance, [channels], ones)]
            let op = Op.batchNormalization(BatchNormalizationAttributes(
                axis: channelAxis == rank - 1 ? -1 : channelAxis, epsilon: 1e-3, momentum: 0.99, center: true, scale: true))
            return add(layerName, op, input, parameters: parameters, claimed: true)
        }
    }

    /// Appends a node named `base` (made unique unless `claimed`), writing a value of the same name.
    mutating func add(_ base: String, _ op: Op, _ input: String, parameters: [String] = [], claimed: Bool = false) -> String {
        let nodeName = claimed ? base : names.claim(base)
        graph.nodes.append(Node(name: nodeName, op: op, inputs: [input], outputs: [nodeName], parameters: parameters))
        return nodeName
    }

    /// A new weight named `layer/role`; trainable unless it is a statistic (as Keras makes them).
    mutating func addParameter(_ layer: String, _ role: ParameterRole, _ shape: [Int], _ values: [Float]) -> String {
        let name = "\(layer)/\(role.rawValue)"
        let bytes = values.withUnsafeBytes { Array($0) }
        graph.parameters.add(Parameter(name: name, role: role, shape: shape, dtype: .float32, trainable: !role.isStatistic,
                                       storage: TensorStorage(bytes: bytes)))
        return name
    }
}
