import Foundation
import ScionIR

/// Runs a model forward on the CPU, float32, any batch size.
///
/// One internal layout: channels-first, as ONNX defines the ops, with depthwise and separable
/// convolutions lowered to grouped ones. The executor takes a graph already in that form (the
/// `Scion` library's `Model.executor()` runs `ExecutorLowering` first: the same conversion the ONNX
/// writer uses, so Scion runs a Keras model exactly as its ONNX export runs) and refuses any other,
/// naming the node (`requireLowered`), rather than read a channels-last value as channels-first.
/// At inference the convolutions and the ops around them hold their values channels-last in memory
/// (`ChannelsLastPlan`, Executor+ChannelsLast.swift); what the graph means does not change.
/// Weights are read once; each value is dropped after its last reader (a liveness plan), so peak
/// memory is about the weights plus the live activations.
public struct Executor {
    /// The graph it runs: the one given, with its shapes inferred.
    public let graph: Graph
    let order: [Int]
    /// Every parameter as float32, by name, but the `preparedKernels`; the trainer replaces the
    /// ones it trains. A folded convolution's kernel here (one run channels-first) is folded.
    var weights: [String: [Float]]
    /// Kernels of the channels-last plan's convolutions and the packed products, in their
    /// `convolutionForms` (not in `weights`): made here, or mapped from a weights cache.
    let preparedKernels: [String: WeightValues]
    /// What was done with the weights cache, when one was given.
    public let weightsCacheOutcome: WeightsCache.Outcome?
    /// Index in `order` of each value's last reader; graph outputs are never dropped.
    let lastUse: [String: Int]
    /// Tapped layer name → the value holding its output (one of the graph's outputs).
    public let taps: [String: String]
    /// BatchNormalization nodes folded into the convolution before them: they pass values through.
    let folded: Set<String>
    /// Biases a folded BatchNormalization gave to convolutions that had none, by node name.
    let foldedBiases: [String: [Float]]
    /// Activations computed by the node before them (in the same pass over the values, `absorbs`),
    /// by that node's name; the activation nodes themselves pass values through.
    let fusedActivations: [String: Activation]
    let passThrough: Set<String>
    /// Max poolings that took over a zero padding before them (`fuseInferencePatterns`): their
    /// padded cells are zeros.
    let zeroPaddedPools: Set<String>
    /// The trainer's executor (unfused): its convolutions on small images put the batch's samples
    /// side by side in one GEMM (see `Kernels.smallImageConvolution`).
    let training: Bool
    /// Nodes that run on channels-last values, and those values (Executor+ChannelsLast.swift);
    /// empty for the trainer's executor, whose VJPs are channels-first.
    let channelsLast: ChannelsLastPlan
    /// How each channels-last convolution's kernel is held, by node name: a filter matrix in one of
    /// the `Kernels.FilterOrder`s (Kernels+KernelLayout.swift), transformed for Winograd
    /// (Kernels+Winograd.swift), or depthwise.
    let convolutionForms: [String: KernelForm]
    /// Depthwise convolutions run with the 1x1 convolutions around them, band by band
    /// (Executor+DepthwiseBlocks.swift); empty for the trainer's executor.
    let depthwiseBlocks: DepthwiseBlockPlan
    /// Residual sums the convolution before them does, into the other operand's buffer
    /// (Executor+ResidualConvolutions.swift); empty for the trainer's executor.
    let residualConvolutions: ResidualConvolutionPlan
    /// BatchNormalizations their 1x1 convolution applies as it reads its input
    /// (Executor+NormalizedInputs.swift); empty for the trainer's executor.
    let normalizedInputs: NormalizedInputPlan
    /// Squeeze-and-excitation gates their 1x1 convolution applies as it reads its input
    /// (Executor+GatedInputs.swift); empty for the trainer's executor.
    let gatedInputs: GatedInputPlan

    /// `graph` must be lowered (see the type's comment). `taps` maps layer names to the values that
    /// hold their outputs, which the caller made graph outputs before lowering, so they come back in
    /// the model's own layout. `fusing: false` keeps every node as the graph has it (no
    /// BatchNormalization folding, no ReLU fusion): the trainer evaluates nodes one at a time and
    /// changes their weights between steps. `loading` limits the weights read to those parameters
    /// (the trainer's executor runs only the trainable part; the frozen prefix has its own); nil
    /// reads them all.
    /// `channelsLastPlan: false` runs every node channels-first (also `SCION_LAYOUT=channels-first`
    /// in the environment, to compare the two from the command line).
    public init(graph source: Graph, taps: [String: String] = [:], fusing: Bool = true, loading: Set<String>? = nil,
                channelsLastPlan: Bool = true, weightsCache: WeightsCache? = nil) throws {
        guard source.hasArchitecture else { throw RuntimeError(source.name, "has no architecture (weights only); nothing to run") }
        try Self.requireLowered(source)
        for (name, value) in taps where !source.outputs.contains(value) {
            throw RuntimeError(name, "is tapped as '\(value)', which is not an output of the graph")
        }
        var graph = source
        try graph.inferShapes()
        zeroPaddedPools = fusing ? Self.fuseInferencePatterns(&graph) : []
        order = try graph.topologicalOrder()
        training = !fusing
        // SCION_LAYOUT=channels-first turns the channels-last plan off (to compare the two).
        let planned = fusing && channelsLastPlan && ProcessInfo.processInfo.environment["SCION_LAYOUT"] != "channels-first"
        channelsLast = planned ? ChannelsLastPlan(graph, order: order) : ChannelsLastPlan()
        let blocks = planned ? DepthwiseBlockPlan(graph, plan: channelsLast, order: order) : DepthwiseBlockPlan()
        // Executor+Weights.swift: kernels in the order the plan's kernels read, BatchNormalizations
        // folded into them (Executor+Folding.swift), and an inference executor the only holder of the weights.
        let prepared = try Self.loadWeights(&graph, loading: loading, releasing: fusing, channelsLast: channelsLast,
                                            folds: fusing ? BatchNormalizationFold.candidates(in: graph) : [],
                                            panelled: blocks.pointwiseNodes, packProducts: fusing, cache: weightsCache)
        self.taps = taps
        weights = prepared.values
        preparedKernels = prepared.kernels
        weightsCacheOutcome = prepared.cacheOutcome
        folded = prepared.folded
        foldedBiases = prepared.foldedBiases
        convolutionForms = prepared.convolutionForms
        (fusedActivations, passThrough) = fusing ? Self.fuseActivations(graph, folded: folded) : ([:], [])
        depthwiseBlocks = blocks.confirmed(graph, folded: folded, passThrough: passThrough, fused: fusedActivations)
        // Changes which value its convolutions read: before the residual sums are found and lifetimes planned.
        normalizedInputs = planned ? NormalizedInputPlan(&graph, plan: channelsLast, forms: convolutionForms, folded: folded,
                                                         passThrough: passThrough, blocks: depthwiseBlocks) : NormalizedInputPlan()
        gatedInputs = planned ? GatedInputPlan(&graph, plan: channelsLast, forms: convolutionForms, blocks: depthwiseBlocks,
                                               normalized: normalizedInputs) : GatedInputPlan()
        self.graph = graph
        residualConvolutions = planned ? ResidualConvolutionPlan(graph, order: order, plan: channelsLast, forms: convolutionForms,
                                                                 folded: folded, fusedActivations: fusedActivations,
                                                                 blocks: depthwiseBlocks) : ResidualConvolutionPlan()
        var lastUse: [String: Int] = [:]
        for (step, index) in order.enumerated() {
            for input in graph.nodes[index].inputs { lastUse[input] = step }
        }
        for output in graph.outputs { lastUse[output] = Int.max }
        // A gate lives until the convolution that applies it.
        for (step, index) in order.enumerated() {
            if let gate = gatedInputs.gates[index] { lastUse[gate.value] = max(lastUse[gate.value] ?? 0, step) }
        }
        self.lastUse = lastUse
    }

    /// An activation whose input comes (through folded BatchNormalizations) from a node that nothing
    /// else reads and that `absorbs` it, is applied by that node as it writes its result: one pass
    /// over the values fewer. Graph outputs and taps keep their own values.
    static func fuseActivations(_ graph: Graph, folded: Set<String>) -> ([String: Activation], Set<String>) {
        let readers = graph.readerCounts
        let outputs = Set(graph.outputs)
        let producers = graph.producers
        var fused: [String: Activation] = [:], through = Set<String>()
        for node in graph.nodes {
            guard case .activation(let activation) = node.op, let input = node.inputs.first else { continue }
            // Walk back through folded BatchNormalizations; every value on the way must have no
            // other reader, or fusing would change what that reader sees.
            let privateValue = { (value: String) in readers[value] == 1 && !outputs.contains(value) }
            var value = input, passable = true
            while let index = producers[value], folded.contains(graph.nodes[index].name) {
                passable = passable && privateValue(value)
                value = graph.nodes[index].inputs.first ?? ""
            }
            guard passable, let index = producers[value], privateValue(value) else { continue }
            let producer = graph.nodes[index]
            guard absorbs(activation, into: producer.op) else { continue }
            fused[producer.name] = activation
            through.insert(node.name)
        }
        return (fused, through)
    }

    /// Whether the op's kernel applies `activation` (from `fusedActivations`) as it writes its result: a
    /// linear convolution any ReLU, swish or sigmoid (its epilogue, `ConvolutionEpilogue`); an
    /// addition (`elementwise`) and an unfolded BatchNormalization (DenseNet's BatchNormalization →
    /// ReLU before each convolution, nothing to fold it into) a ReLU. An optimisation those kernels
    /// opt into, not a per-op concern: any other pair keeps its activation node, which is exact.
    static func absorbs(_ activation: Activation, into op: Op) -> Bool {
        switch (activation, op) {
        case (.relu(_, 0, 0), .conv(let a)), (.swish, .conv(let a)), (.sigmoid, .conv(let a)), (.gelu, .conv(let a)):
            return a.activation == .linear
        // A dense layer (and a MatMul and its bias, `fuseInferencePatterns`): the transformers' GELU.
        case (.relu(_, 0, 0), .dense(let a)), (.swish, .dense(let a)), (.sigmoid, .dense(let a)), (.gelu, .dense(let a)):
            return a.activation == .linear
        case (.relu(_, 0, 0), .elementwise(.add)), (.relu(_, 0, 0), .batchNormalization): return true
        default: return false
        }
    }

    /// The cap of the ReLU `fuseActivations` gave the node named `node` (`.infinity` uncapped), nil
    /// when it applies none: the form the kernels that fuse only a ReLU take.
    func fusedReLUCap(of node: String) -> Float? {
        guard case .relu(let cap, 0, 0) = fusedActivations[node] else { return nil }
        return cap ?? .infinity
    }

    /// Runs the model: `inputs` by input name; returns every graph output and tap by value name.
    /// `inputs` is consumed: an input no later step reads is freed as soon as the first op has it.
    /// `profile`, when given, gets each node's time (`ExecutorProfile`).
    public func run(_ inputs: consuming [String: RuntimeTensor], profile: ExecutorProfile? = nil) throws -> [String: RuntimeTensor] {
        var values: [String: RuntimeTensor] = [:]
        for input in graph.inputs {
            guard let tensor = inputs[input.name] else {
                throw RuntimeError(input.name, "is a model input but no array was given for it")
            }
            if let shape = input.shape {
                let fits = shape.rank == tensor.rank && zip(shape.dimensions, tensor.shape).allSatisfy { $0 == nil || $0 == $1 }
                guard fits else {
                    let batchOnly = shape.rank == tensor.rank && zip(shape.dimensions, tensor.shape).dropFirst().allSatisfy { $0 == nil || $0 == $1 }
                    if batchOnly, let batch = shape.dimensions.first ?? nil {
                        throw RuntimeError(input.name, "expects shape \(shape), got \(tensor.shape): the model fixes its batch at \(batch) "
                                           + "(an export without a dynamic batch); give \(batch) samples at a time")
                    }
                    throw RuntimeError(input.name, "expects shape \(shape), got \(tensor.shape)")
                }
            }
            // A NaN or infinity in the input spreads through every layer: name it instead.
            if let bad = Kernels.firstNonFinite(tensor.data) {
                throw RuntimeError(input.name, "holds \(tensor.data[bad]) at flat index \(bad); inputs must be finite")
            }
            values[input.name] = tensor
        }
        _ = consume inputs
        // The gate a convolution applies to its input (`GatedInputPlan`), kept in the table until then.
        func gate(of index: Int) throws -> GatedInputPlan.Input? {
            guard let gate = gatedInputs.gates[index] else { return nil }
            guard let value = values[gate.value] else { throw RuntimeError(graph.nodes[index].name, "reads the gate \(gate.value), which is not computed") }
            return (value, gate)
        }
        for (step, index) in order.enumerated() {
            let node = graph.nodes[index]
            // A node whose work a depthwise block or a convolution did: only its inputs' lifetimes end here.
            if depthwiseBlocks.skipped.contains(index) || residualConvolutions.skipped.contains(index)
                || normalizedInputs.skipped.contains(index) || gatedInputs.skipped.contains(index) {
                for input in node.inputs where (lastUse[input] ?? 0) <= step { values[input] = nil }
                continue
            }
            let started = profile == nil ? nil : DispatchTime.now()
            // A value read for the last time is moved out of the table, so the kernel holds the only
            // reference and can write its result into the same buffer (ReLU, BatchNormalization...).
            var arguments = try node.inputs.map { name -> RuntimeTensor in
                let lastRead = (lastUse[name] ?? 0) <= step && node.inputs.filter({ $0 == name }).count == 1
                guard let value = lastRead ? values.removeValue(forKey: name) : values[name] else {
                    throw RuntimeError(node.name, "reads \(name), which is not computed")
                }
                return reading(value, named: name, by: index)
            }
            if case .onnx(.split(let a)) = node.op, let x = arguments.first {
                // The one op with several outputs: slices along the axis (Ops/Movement.swift).
                let parts = try split(node, x, a)
                guard parts.count == node.outputs.count else { throw RuntimeError(node.name, "makes \(parts.count) parts for \(node.outputs.count) outputs") }
                for (output, part) in zip(node.outputs, parts) { values[output] = part }
            } else if case .recurrent(let a) = node.op, a.outputCount > 1 {
                // A recurrent layer returning its states (Ops/Recurrent.swift).
                for (output, value) in zip(node.outputs, try recurrent(node, arguments, a)) { values[output] = value }
            } else if case .onnx(.scaledDotProductAttention(let a)) = node.op, node.outputs.count > 1 {
                // Attention's present key and value, and its scores (Ops/ScaledDotProductAttention.swift).
                for (output, value) in zip(node.outputs, try scaledDotProductAttention(node, arguments, a)) { values[output] = value }
            } else if let fusion = residualConvolutions.fusions[index], arguments.count == 1,
                      let residual = values.removeValue(forKey: fusion.residual) {
                values[fusion.output] = try evaluateResidualConvolution(node, fusion, arguments.removeFirst(), residual: residual,
                                                                        gate: try gate(of: index))
            } else if let block = depthwiseBlocks.blocks[index], arguments.count == 1 {
                values[block.output] = try evaluateDepthwiseBlock(block, arguments.removeFirst())
            } else {
                let result = try channelsLast.nodes.contains(index) ? evaluateChannelsLast(node, &arguments, gate: try gate(of: index))
                    : evaluateInPlace(node, &arguments) ?? evaluate(node, arguments)
                if let output = node.outputs.first { values[output] = result }
            }
            for input in node.inputs where (lastUse[input] ?? 0) <= step { values[input] = nil }
            if let gate = gatedInputs.gates[index], (lastUse[gate.value] ?? 0) <= step { values[gate.value] = nil }
            if let profile, let started {
                let op = depthwiseBlocks.blocks[index] != nil ? "DepthwiseBlock" : residualConvolutions.fusions[index] != nil ? "Conv+Add" : node.op.typeName
                profile.record(node: node.name, op: op, since: started)
            }
        }
        var results: [String: RuntimeTensor] = [:]
        for output in graph.outputs { results[output] = values[output].map { delivered($0, named: output) } }
        return results
    }

    func parameter(_ node: Node, _ role: ParameterRole) -> [Float]? {
        graph.parameter(of: node, role: role).flatMap { weights[$0.name] }
    }

    /// The bytes of the two largest values a pass on `batch` samples makes, from the inferred shapes
    /// (a leading unknown axis is the batch); nil when another axis is unknown.
    public func twoLargestValueBytes(batch: Int) -> Int? {
        var largest = (0, 0)
        for info in graph.values.values {
            guard let dimensions = info.shape?.dimensions else { continue }
            var count = 1
            for (axis, dimension) in dimensions.enumerated() {
                guard let size = dimension ?? (axis == 0 ? batch : nil) else { return nil }
                count = count.multipliedReportingOverflow(by: max(size, 0)).partialValue
            }
            let bytes = count * 4
            if bytes > largest.0 { largest = (bytes, largest.0) } else if bytes > largest.1 { largest.1 = bytes }
        }
        return largest.0 + largest.1
    }

    /// A parameter's values as the executor holds them, prepared kernels included (a copy of those).
    func values(of name: String) -> [Float]? { preparedKernels[name]?.array ?? weights[name] }

    /// The kernel of a node of the channels-last plan or a packed product, in its `convolutionForms`.
    func preparedKernel(_ node: Node) throws -> WeightValues {
        guard let kernel = graph.parameter(of: node, role: .kernel), let values = preparedKernels[kernel.name] else {
            throw RuntimeError(node.name, "has no prepared kernel (internal: the plan placed it, its weights were not prepared for it)")
        }
        return values
    }

    func parameterShape(_ node: Node, _ role: ParameterRole) -> [Int]? { graph.parameter(of: node, role: role)?.shape }

    func require(_ node: Node, _ role: ParameterRole) throws -> [Float] {
        guard let values = parameter(node, role) else { throw RuntimeError(node.name, "is missing its '\(role)' weights") }
        return values
    }
}

