import ScionIR

/// Phase one of `KerasLayersPass`: replaces ONNX node patterns by the ops Keras has layers for,
/// while the graph is still channels-first (phase two, `LayoutRewriter` going channels-last, moves the layout).
///
/// Each rewrite is exact (same numbers, not an approximation) and local; a pattern that does not
/// match exactly is left alone, and phase two refuses what is left that Keras cannot express.
///
/// ```
///  Gemm(x, W, b) transB=1             →  Dense, kernel Wᵀ (permuted lazily), bias b
///  MatMul(x, W) → Add(·, b)           →  Dense, kernel W, bias b
///  Mul(x, Sigmoid(x))                 →  swish activation
///  ReduceMean → Sub → Pow 2 → ReduceMean → Add ε → Sqrt → Div → Mul γ → Add β  →  LayerNormalization
///  torch's multi-head self-attention block (TorchAttentionPattern.swift)  →  MultiHeadAttention
///  Reshape [0, G, -1] → InstanceNormalization(1, 0) → Reshape back → Mul γ → Add β  →  GroupNormalization
///  Add / Sub / Mul / Div with a scalar or per-channel constant, Neg  →  Rescaling (scale, offset)
///  Transpose of a constant          →  the constant, transposed
///  Pad(constant 0) on spatial axes    →  ZeroPadding (negative pads: Cropping)
///  Slice with unit steps over spatial axes  →  Cropping
///  Resize by whole factors (nearest, or half-pixel linear)  →  UpSampling
///  GlobalAveragePool → Squeeze / Flatten / Reshape(N, C)   →  GlobalAveragePooling (no kept axes)
///  ReduceMean / ReduceMax over every spatial axis            →  GlobalAverage / GlobalMaxPooling
///  Reshape(N, -1), Squeeze / Unsqueeze / Reshape of a known shape  →  Flatten / Reshape without the batch
///  Softmax of opset < 13 on rank 2    →  Softmax over the last axis
///  Concat of one input (torchvision's DenseNet)  →  nothing: its readers read the input
///  Transpose → RNN/LSTM/GRU → Transpose, Reshape / Gather  →  SimpleRNN/LSTM/GRU/Bidirectional
///  torch's time-major stacks (LSTM → Transpose, Reshape → LSTM)  →  the same, batch-major between layers
///  Cast to int64 read only by Embeddings  →  nothing: Keras's Embedding casts its indices itself
///  Expand / Tile of a weight to [batch, ...], arithmetic with a (1, S, D) weight  →  Dense over ones (+BroadcastWeights)
/// ```
struct KerasPatternRewriter {
    let passName: String
    var graph: Graph
    /// Names of nodes folded into another; dropped at the end.
    var removed: Set<String> = []
    var consumers: [String: [Int]] = [:]
    var producers: [String: Int] = [:]
    var graphOutputs: Set<String>
    /// Weights copied from a shared constant for the layers that fold it (`adopt`), by constant, role and shape.
    var adoptedCopies: [String: String] = [:]
    /// Gemm weights already transposed into Dense kernels (`foldDense`).
    var transposedKernels: Set<String> = []

    enum Sweep: CaseIterable { case recurrent, embeddingCast, singleInputConcat, swish, constantTranspose, constantReshape, dense, denseBias, layerNormalizationChain, torchAttention, groupNormalization, constantArithmetic, padding, slice, resize, globalPooling, reshapes }

    init(passName: String, graph: Graph) {
        self.passName = passName
        self.graph = graph
        self.graphOutputs = Set(graph.outputs)
    }

    mutating func rewrite() throws {
        splitIntoSlices()
        runtimeGemmsAsMatMul()
        try graph.inferShapes()
        if unsqueezePassedStates() { try graph.inferShapes() }
        try foldTimeMajorStacks()
        // One sweep per pattern, in an order where each sees the previous ones' results (a Dense
        // exists before its bias Add is folded into it).
        for sweep in Sweep.allCases {
            index()
            for position in graph.nodes.indices where !removed.contains(graph.nodes[position].name) {
                switch sweep {
                case .recurrent: try foldRecurrent(position)
                case .embeddingCast: foldEmbeddingCast(position)
                case .singleInputConcat: foldSingleInputConcat(position)
                case .swish: try foldSwish(position)
                case .constantTranspose: try foldConstantTranspose(position)
                case .constantReshape: try foldConstantReshape(position)
                case .dense: try foldDense(position)
                case .denseBias: try foldDenseBias(position)
                case .layerNormalizationChain: try foldLayerNormalizationChain(position)
                case .torchAttention: try foldTorchAttention(position)
                case .groupNormalization: try foldGroupNormalization(position)
                case .constantArithmetic: try foldConstantArithmetic(position)
                case .padding: try foldPadding(position)
                case .slice: try foldSlice(position)
                case .resize: try foldResize(position)
                case .globalPooling: try foldGlobalPooling(position)
                case .reshapes: try foldReshapes(position)
                }
            }
            removeUnreadConstants()
            graph.nodes.removeAll { removed.contains($0.name) }
            removed = []
            try graph.inferShapes()
        }
        // Needs every sweep's result: scalar and per-channel weights are Rescalings by then.
        try foldBatchBroadcastWeights()
        shareLayers()
    }

    // MARK: - Bookkeeping

    mutating func index() {
        consumers = [:]
        producers = [:]
        for (position, node) in graph.nodes.enumerated() {
            for input in node.inputs { consumers[input, default: []].append(position) }
            for output in node.outputs { producers[output] = position }
        }
    }

    func shape(_ value: String) -> Shape? { graph.values[value]?.shape }

    /// The node reading `value`, when it is the only reader and `value` is not a graph output: only
    /// then may the two be fused.
    func soleReader(of value: String) -> Int? {
        guard !graphOutputs.contains(value), let readers = consumers[value], readers.count == 1 else { return nil }
        return readers[0]
    }

    /// The constant node producing `value`. Constants may feed several nodes (tf2onnx shares one
    /// `3.0` among every hard-swish); a constant nobody reads any more is dropped after each sweep.
    func constant(_ value: String) -> (node: Int, parameter: Parameter)? {
        guard let position = producers[value], case .onnx(.constant) = graph.nodes[position].op,
              let name = graph.nodes[position].parameters.first, let parameter = graph.parameters[name] else { return nil }
        return (position, parameter)
    }

    /// A constant only `value`'s one reader uses: it may be changed in place.
    func privateConstant(_ value: String) -> (node: Int, parameter: Parameter)? {
        guard soleReader(of: value) != nil else { return nil }
        return constant(value)
    }

    /// Drops constant nodes whose outputs no remaining node reads, and their parameters when no node
    /// uses them any more.
    mutating func removeUnreadConstants() {
        let kept = graph.nodes.filter { !removed.contains($0.name) }
        var read = graphOutputs
        var used = Set<String>()
        for node in kept {
            read.formUnion(node.inputs)
            if case .onnx(.constant) = node.op { continue }
            used.formUnion(node.parameters)
        }
        for node in kept {
            guard case .onnx(.constant) = node.op, !node.outputs.contains(where: read.contains) else { continue }
            removed.insert(node.name)
            for parameter in node.parameters where !used.contains(parameter) { graph.parameters[parameter] = nil }
        }
    }

    /// Nodes of one op using the same parameters are calls of one shared layer (tf2onnx writes each
    /// call of a shared Dense as its own MatMul on one weight): the later ones take the first's layer.
    mutating func shareLayers() {
        var first: [[String]: Int] = [:]
        for position in graph.nodes.indices where !graph.nodes[position].parameters.isEmpty {
            let node = graph.nodes[position]
            if case .onnx(.constant) = node.op { continue }
            if let earlier = first[node.parameters], graph.nodes[earlier].op == node.op {
                graph.nodes[position].layer = graph.nodes[earlier].layer
            } else if first[node.parameters] == nil {
                first[node.parameters] = position
            }
        }
    }

    func failure(_ subject: String, _ reason: String) -> PassError {
        PassError(pass: passName, subject: subject, reason)
    }

    /// A small float32 tensor's values (per-channel constants: at most a few thousand elements).
    func floats(_ parameter: Parameter) throws -> [Float]? {
        guard parameter.dtype == .float32, parameter.elementCount <= 1 << 16 else { return nil }
        let bytes = try parameter.storage.bytes()
        guard bytes.count == parameter.elementCount * 4 else {
            throw failure(parameter.name, "holds \(bytes.count) bytes, expected \(parameter.elementCount * 4)")
        }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    // MARK: - Activations

    /// `x * sigmoid(x)` is swish (Keras's `silu`).
    mutating func foldSwish(_ position: Int) throws {
        let node = graph.nodes[position]
        guard case .elementwise(.multiply) = node.op, node.inputs.count == 2 else { return }
        for (x, gate) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
            guard let sigmoid = producers[gate], case .activation(.sigmoid) = graph.nodes[sigmoid].op,
                  graph.nodes[sigmoid].inputs == [x] else { continue }
            graph.nodes[position].op = .activation(.swish)
            graph.nodes[position].inputs = [x]
            if soleReader(of: gate) == position { removed.insert(graph.nodes[sigmoid].name) }
            return
        }
    }

    // MARK: - Dense

    /// Gemm with constant weights, and MatMul by a constant rank-2 kernel, are Dense layers.
    mutating func foldDense(_ position: Int) throws {
        let node = graph.nodes[position]
        if case .onnx(.gemm(let a)) = node.op {
            // beta scales C only: without one (tf2onnx writes beta=0 then) any beta is a plain product.
            guard !a.transposeA, a.alpha == 1, a.beta == 1 || graph.parameter(of: node, role: .bias) == nil, node.inputs.count == 1,
                  let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 2 else { return }
            // A weight several Gemms share (dynamo keeps one copy of equal tensors: the deep-copied
            // layers of an nn.TransformerEncoder) is transposed once, by the first of them.
            // One reading it untransposed is left a Gemm (refused by the layout pass, not miscomputed).
            if !a.transposeB, transposedKernels.contains(kernel.name) { return }
            let transposed = a.transposeB && !transposedKernels.contains(kernel.name)
            let units = transposed ? kernel.shape[0] : kernel.shape[1]
            let bias = graph.parameter(of: node, role: .bias)
            if let bias, bias.shape.reduce(1, *) != units || bias.shape.filter({ $0 != 1 }).count > 1 { return }
            if transposed {
                transposedKernels.insert(kernel.name)
                var changes: [String: String] = [:]
                _ = try ParameterPermutation(change: "Gemm weight to a Dense kernel", permutation: [1, 0])
                    .apply(to: kernel, in: &graph.parameters, changes: &changes, pass: passName, node: node.name)
            }
            if let bias { graph.parameters[bias.name]?.shape = [units] }
            graph.nodes[position].op = .dense(DenseAttributes(units: units, useBias: bias != nil))
        } else if case .onnx(.matMul) = node.op {
            guard let input = shape(node.inputs[0]), input.rank >= 2 else { return }
            if node.inputs.count == 2, let (_, weight) = constant(node.inputs[1]), weight.shape.count == 2 {
                // A weight listed as a graph input in old ONNX files reaches MatMul through a node.
                let kernel = adopt(weight, of: node.inputs[1], role: .kernel, shape: weight.shape, layer: node.name)
                graph.nodes[position].inputs = [node.inputs[0]]
                graph.nodes[position].parameters = [kernel]
                graph.nodes[position].op = .dense(DenseAttributes(units: weight.shape[1], useBias: false))
                return
            }
            guard node.inputs.count == 1, let kernel = graph.parameters(of: node).first, kernel.shape.count == 2 else { return }
            graph.nodes[position].op = .dense(DenseAttributes(units: kernel.shape[1], useBias: false))
        }
    }

    /// A Transpose of a constant (torch's `Transpose(W)` before MatMul) is the constant transposed.
    mutating func foldConstantTranspose(_ position: Int) throws {
        let node = graph.nodes[position]
        guard case .transpose(let a) = node.op, let input = node.inputs.first,
              let (constant, parameter) = privateConstant(input), parameter.shape.count == a.permutation.count else { return }
        var changes: [String: String] = [:]
        _ = try ParameterPermutation(change: "constant transposed", permutation: a.permutation)
            .apply(to: parameter, in: &graph.parameters, changes: &changes, pass: passName, node: node.name)
        graph.nodes[constant].outputs = node.outputs
        removed.insert(node.name)
    }

    /// A Dense without bias followed by `Add(·, b)` with `b` of shape `[units]` (or `[1, units]`)
    /// takes `b` as its bias.
    mutating func foldDenseBias(_ position: Int) throws {
        let node = graph.nodes[position]
        guard case .dense(var a) = node.op, !a.useBias, let output = node.outputs.first,
              let adder = soleReader(of: output), case .elementwise(.add) = graph.nodes[adder].op,
              graph.nodes[adder].inputs.count == 2 else { return }
        let add = graph.nodes[adder]
        guard let other = add.inputs.first(where: { $0 != output }), let (_, bias) = constant(other),
              bias.elementCount == a.units, bias.shape.filter({ $0 != 1 }).count <= 1, bias.dtype == .float32 else { return }
        a.useBias = true
        graph.nodes[position].op = .dense(a)
        graph.nodes[position].parameters.append(adopt(bias, of: other, role: .bias, shape: [a.units], layer: node.name))
        graph.nodes[position].outputs = add.outputs
        removed.insert(add.name)
    }

    /// The name of `parameter` (a constant node's value, read as `value`) made a layer's weight in
    /// `role`: the parameter itself when that layer is the constant's only reader, otherwise a copy
    /// of its own (dynamo shares one zero tensor among every LayerNorm beta and Linear bias, so
    /// the constant node must keep its `value` weight for its other readers). Layers adopting the same
    /// constant in the same role share one copy, as they shared the constant.
    mutating func adopt(_ parameter: Parameter, of value: String, role: ParameterRole, shape: [Int], layer: String) -> String {
        if soleReader(of: value) != nil {
            graph.parameters[parameter.name]?.role = role
            graph.parameters[parameter.name]?.shape = shape
            return parameter.name
        }
        let key = "\(parameter.name)|\(role)|\(shape)"
        if let made = adoptedCopies[key] { return made }
        var copy = parameter
        copy.name = "\(layer)/\(role)"
        var counter = 1
        while graph.parameters[copy.name] != nil { copy.name = "\(layer)/\(role)#\(counter)"; counter += 1 }
        copy.role = role
        copy.shape = shape
        graph.parameters.add(copy)
        adoptedCopies[key] = copy.name
        return copy.name
    }

    // MARK: - Constant arithmetic

    /// `x + c`, `x - c`, `c - x`, `x * c`, `x / c` with `c` a scalar or one value per channel (axis 1,
    /// or the features of a rank-2 value) are a Rescaling: `x * scale + offset`.
    mutating func foldConstantArithmetic(_ position: Int) throws {
        let node = graph.nodes[position]
        if case .onnx(.unary(.negate)) = node.op {
            graph.nodes[position].op = .rescaling(RescalingAttributes(scale: [-1], offset: [0]))
            return
        }
        guard case .elementwise(let operation) = node.op, node.inputs.count == 2,
              [.add, .subtract, .multiply, .divide].contains(operation) else { return }
        for (variablePosition, constantPosition) in [(0, 1), (1, 0)] {
            let x = node.inputs[variablePosition]
            guard let (_, parameter) = constant(node.inputs[constantPosition]),
                  let inputShape = shape(x), inputShape.rank >= 2,
                  let (channels, axis) = Self.channelVector(parameter.shape, rank: inputShape.rank),
                  channels == 1 || inputShape[axis] == channels, let values = try floats(parameter) else { continue }
            let constantFirst = constantPosition == 0
            let count = values.count
            var scale = [Float](repeating: 1, count: count), offset = [Float](repeating: 0, count: count)
            switch operation {
            case .add: offset = values
            case .subtract:
                if constantFirst { scale = scale.map { -$0 }; offset = values } else { offset = values.map { -$0 } }
            case .multiply: scale = values
            case .divide:
                guard !constantFirst else { continue }
                scale = values.map { 1 / $0 }
            case .average, .maximum, .minimum, .power: continue
            }
            let (scales, offsets) = (Self.collapsed(scale), Self.collapsed(offset))
            // Per-channel values run along axis 1 (channels-first, moved by the layout pass) or the
            // last axis (-1, Keras's own); scalars have no axis.
            let perChannel = scales.count > 1 || offsets.count > 1
            let runsAlong = perChannel && axis == 1 && inputShape.rank > 2 ? 1 : -1
            let attributes = RescalingAttributes(scale: scales, offset: offsets, axis: runsAlong)
            graph.nodes[position].op = .rescaling(attributes)
            graph.nodes[position].inputs = [x]
            return
        }
    }

    /// Length of a constant that broadcasts along one axis of a value of `rank`, and that axis:
    /// axis 1 (channels-first: `[C, 1, ..., 1]`, numpy aligning it to the right, or `[1, C, 1, ...]`)
    /// or the last (`[C]`, `[1, ..., 1, C]`: a channels-last value); length 1 for a scalar. Nil for
    /// any other broadcast.
    static func channelVector(_ shape: [Int], rank: Int) -> (length: Int, axis: Int)? {
        guard shape.count <= rank else { return nil }
        if shape.allSatisfy({ $0 == 1 }) { return (1, rank - 1) }
        let aligned = Array(repeating: 1, count: rank - shape.count) + shape
        let longer = aligned.enumerated().filter { $0.element != 1 }
        guard longer.count == 1, longer[0].offset == 1 || longer[0].offset == rank - 1 else { return nil }
        return (longer[0].element, longer[0].offset)
    }

    /// One value when all are equal (a scalar Rescaling), else the list.
    static func collapsed(_ values: [Float]) -> [Float] {
        guard let first = values.first, values.allSatisfy({ $0 == first }) else { return values }
        return [first]
    }
}
