import Foundation
import ScionIR

/// Channels-last execution: the graph stays channels-first (as ONNX defines the ops), but the
/// convolutions and the per-channel ops around them keep their rank-4 values in memory as
/// `[N, H, W, C]`. There a convolution is one GEMM over every output pixel of the batch (a 1x1
/// convolution multiplies its input as it lies), and depthwise convolutions and pooling run over
/// contiguous channels. Keras models are channels-last to begin with: the Transpose the lowering
/// put at their input costs nothing here (its input already has this order).
///
/// The plan is decided once per graph, in order: a convolution the channels-last kernels support
/// runs channels-last (`anchor`); an op that works on either order (`follower`: activations,
/// BatchNormalization, additions, concatenation along the channels...) runs channels-last when one
/// of its rank-4 inputs is; a global pooling (`sink`) reads channels-last and writes `[N, C, 1, 1]`,
/// the same bytes in both orders. Every other op reads channels-first values: a channels-last input
/// is reordered for it (`Kernels.relayout`), and so are graph outputs.
struct ChannelsLastPlan {
    /// Indices (into `graph.nodes`) of the nodes that run on channels-last values.
    var nodes: Set<Int> = []
    /// Values held channels-last.
    var values: Set<String> = []

    /// How an op takes part; one exhaustive switch (no `default:`), so a new op is placed here.
    enum Role { case anchor, follower, sink, none }

    /// `kernelUses`: how many nodes read each parameter; a convolution's kernel is reordered for
    /// the channels-last kernels where it lies, so a shared one keeps its node channels-first.
    static func role(of node: Node, _ graph: Graph, kernelUses: [String: Int]) -> Role {
        switch node.op {
        case .conv(let a):
            guard a.rank == 2, a.layout == .channelsFirst, !a.activation.hasAxis,
                  let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 4,
                  kernelUses[kernel.name] == 1 else { return .none }
            if a.groups == 1 { return .anchor }
            // Depthwise (each filter reads one channel): the channels-last window kernel.
            return kernel.shape[1] == 1 && kernel.shape[0] % a.groups == 0 ? .anchor : .none
        case .transpose(let a):
            // A Keras model's input reordered channels-first (and ConvNeXt's blocks ending in torch's
            // permute back): channels-last, it is the input as it is. The other way (ConvNeXt's
            // permute to channels-last before its LayerNormalization and dense layers), a
            // channels-last value already is the output, as it lies.
            if a.permutation == [0, 3, 1, 2] { return .anchor }
            return a.permutation == [0, 2, 3, 1] ? .sink : .none
        case .batchNormalization(let a):
            return a.axis == 1 || a.axis == -3 ? .follower : .none
        case .activation(let activation):
            return activation.hasAxis ? .none : .follower
        case .onnx(.clip), .onnx(.unary), .identity, .dropout, .stochasticDepth:
            return .follower
        case .elementwise, .concatenate:
            return .follower
        case .normalization(let a):
            return a.axes.count <= 1 && a.axes.allSatisfy({ $0 == 1 || $0 == -3 }) ? .follower : .none
        case .rescaling(let a):
            return a.axis == 1 || a.axis == -3 || (a.scale.count <= 1 && a.offset.count <= 1) ? .follower : .none
        case .zeroPadding(let a), .cropping(let a):
            return a.padding.count == 2 && a.layout == .channelsFirst ? .follower : .none
        case .onnx(.pad(let a)):
            // Constant padding of the spatial axes only.
            return a.mode == .constant && a.pads.count == 8 && [0, 1, 4, 5].allSatisfy({ a.pads[$0] == 0 }) ? .follower : .none
        case .pool(let a):
            return a.rank == 2 && a.layout == .channelsFirst && Kernels.poolRunsChannelsLast(a) ? .follower : .none
        case .globalPool(let a):
            return a.rank == 2 && a.maskValue == nil && a.layout == .channelsFirst ? .sink : .none
        case .dense, .depthwiseConv, .separableConv, .convTranspose, .layerNormalization, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .groupNormalization, .prelu, .flatten, .reshape, .permute, .upSampling,
             .resizing, .embedding, .masking, .recurrent, .scaledResidual, .layerScale, .augmentation,
             .onnx, .opaque:
            return .none
        }
    }

    /// No node channels-last.
    init() {}

    /// The plan for `graph` (shapes inferred), in topological `order`.
    init(_ graph: Graph, order: [Int]) {
        var kernelUses: [String: Int] = [:]
        for node in graph.nodes { for parameter in node.parameters { kernelUses[parameter, default: 0] += 1 } }
        var ranks: [String: Int] = [:]
        for input in graph.inputs { ranks[input.name] = input.shape?.rank }
        for (name, info) in graph.values { if let rank = info.shape?.rank { ranks[name] = rank } }
        for index in order {
            let node = graph.nodes[index]
            guard let output = node.outputs.first, node.outputs.count == 1 else { continue }
            let dataInputs = node.inputs.filter { ranks[$0] == 4 }
            let anyChannelsLast = dataInputs.contains { values.contains($0) }
            switch Self.role(of: node, graph, kernelUses: kernelUses) {
            case .anchor where ranks[output] == 4:
                if case .transpose = node.op, dataInputs.count != 1 || anyChannelsLast { continue }
                if case .conv = node.op, node.inputs.count != 1 || dataInputs.count != 1 { continue }
                nodes.insert(index)
                values.insert(output)
            case .follower where ranks[output] == 4:
                guard anyChannelsLast else { continue }
                nodes.insert(index)
                values.insert(output)
            case .sink:
                // A global pooling reads its channels-last input in place; its output is channels-first.
                // A Transpose to `[N, H, W, C]` outputs its channels-last input's bytes as they are.
                if node.inputs.count == 1, anyChannelsLast { nodes.insert(index) }
            case .anchor, .follower, .none:
                continue
            }
        }
    }
}

extension Activation {
    /// Softmax-like activations work along an axis, so they depend on where the channels are.
    var hasAxis: Bool {
        switch self {
        case .softmax, .logSoftmax, .sparsemax: true
        case .linear, .relu, .leakyRelu, .elu, .selu, .sigmoid, .hardSigmoid, .hardSwish, .swish, .tanh, .gelu, .softplus,
             .softsign, .exponential, .mish, .celu, .squareplus, .sparsePlus, .sparseSigmoid, .tanhShrink, .softShrink,
             .hardShrink, .hardTanh, .logSigmoid:
            false
        }
    }
}

extension Executor {
    /// A channels-last convolution's geometry, from its `[N, H, W, C]` input, and its bias (the one
    /// a folded BatchNormalization gave it when it had none).
    func channelsLastConvolution(_ node: Node, _ a: ConvAttributes, input x: RuntimeTensor) throws
        -> (geometry: Kernels.ConvGeometry, bias: [Float]?) {
        let logical = [x.shape[0], x.shape[3], x.shape[1], x.shape[2]]
        let g = try Kernels.ConvGeometry(input: logical, kernelShape: parameterShape(node, .kernel) ?? [], a, node: node.name)
        return (g, try foldedBiases[node.name] ?? (a.useBias ? require(node, .bias) : nil))
    }

    /// The node at `index` and its inputs as it reads them: channels-last values reordered for a
    /// node that runs channels-first. A channels-last node gets them as they are (`evaluateChannelsLast`
    /// reorders what it needs).
    func reading(_ value: RuntimeTensor, named name: String, by index: Int) -> RuntimeTensor {
        guard channelsLast.values.contains(name), !channelsLast.nodes.contains(index) else { return value }
        return Kernels.relayout(value, toChannelsLast: false)
    }

    /// A graph output as the caller expects it: channels-first.
    func delivered(_ value: RuntimeTensor, named name: String) -> RuntimeTensor {
        channelsLast.values.contains(name) ? Kernels.relayout(value, toChannelsLast: false) : value
    }

    /// Runs a node of the channels-last plan. `inputs` are as stored (`node.inputs` names them) and
    /// are taken: a value read for the last time is then this call's alone, and the value-by-value
    /// ops (BatchNormalization, activations, additions) write their result into its buffer.
    /// `gate`: the squeeze-and-excitation gate a 1x1 convolution applies to its input (`GatedInputPlan`).
    func evaluateChannelsLast(_ node: Node, _ inputs: inout [RuntimeTensor], gate: GatedInputPlan.Input? = nil) throws -> RuntimeTensor {
        var arguments: [RuntimeTensor] = []
        for (position, name) in node.inputs.enumerated() where position < inputs.count {
            let value = inputs[position]
            inputs[position] = RuntimeTensor(shape: [0], data: [])
            // Channels-first from channels-last input, or `[N, H, W, C]` from channels-last: the input
            // as it lies (the plan checked the permutation).
            if case .transpose = node.op { return value }
            // Rank-4 channels-first inputs (a constant, a value from a channels-first op) are reordered.
            arguments.append(channelsLast.values.contains(name) || value.rank != 4 ? value : Kernels.relayout(value, toChannelsLast: true))
        }
        guard var x = arguments.first else { throw RuntimeError(node.name, "has no input") }
        // x is held here only (when its value was read for the last time): kernels below may reuse its buffer.
        arguments[0] = RuntimeTensor(shape: [0], data: [])
        switch node.op {
        case .conv(let a):
            let (g, bias) = try channelsLastConvolution(node, a, input: x)
            let epilogue = ConvolutionEpilogue(bias: bias, activation: fusedActivations[node.name] ?? a.activation)
            let kernel = try preparedKernel(node)
            let y: RuntimeTensor
            switch g.isDepthwise ? .depthwise : convolutionForms[node.name] {
            case .depthwise:
                y = Kernels.depthwiseConvolutionChannelsLast(x, kernel: kernel, g, epilogue: epilogue)
            case .winograd(let tile):
                y = try Kernels.winogradConvolution(x, weights: kernel, tile: tile, g, epilogue: epilogue, node: node.name)
            case .matrix(let order):
                let (input, prologue) = try convolutionInput(node, x, gate: gate)
                y = Kernels.convolutionChannelsLast(input, kernel: kernel, order: order, g, prologue: prologue, epilogue: epilogue)
            case .channelsFirst, .productPanels, nil:
                throw RuntimeError(node.name, "has no channels-last kernel (internal: the plan placed it, its weights were not prepared for it)")
            }
            return try Kernels.activate(y, epilogue.remaining, node: node.name)
        case .transpose:
            return x  // returned above, before its input could be reordered
        case .batchNormalization(let a):
            if folded.contains(node.name) { return x }
            let (scale, shift) = try batchNormalizationAffine(node, a, channels: x.shape[3])
            Kernels.perAxisInPlace(&x, axis: 3, scale: scale, shift: shift, reluCap: fusedReLUCap(of: node.name))
            return x
        case .rescaling(let a):
            // In place, 16 channels at a time: a new array for the model's input image (EfficientNet's
            // Rescaling and Normalization, 150,528 values each at batch 1) took 0.13-0.20 ms a node.
            let channels = x.shape[3]
            let scale = a.scale.count == channels ? a.scale : Array(repeating: a.scale.first ?? 1, count: channels)
            let offset = a.offset.count == channels ? a.offset : Array(repeating: a.offset.first ?? 0, count: channels)
            Kernels.perAxisInPlace(&x, axis: 3, scale: scale, shift: offset)
            return x
        case .normalization(let a):
            var (scale, shift) = try normalizationAffine(node, a)
            let channels = x.shape[3]
            if scale.count == 1 { (scale, shift) = (Array(repeating: scale[0], count: channels), Array(repeating: shift[0], count: channels)) }
            guard scale.count == channels else {
                throw RuntimeError(node.name, "Normalization has \(scale.count) statistics for \(channels) channels")
            }
            Kernels.perAxisInPlace(&x, axis: 3, scale: scale, shift: shift)
            return x
        case .elementwise(let operation):
            // Lower-rank operands broadcast from the right: as rank-4 channels-first shapes, reordered.
            arguments[0] = x
            x = RuntimeTensor(shape: [0], data: [])
            var operands = zip(node.inputs, arguments).map { name, value -> RuntimeTensor in
                guard value.rank < 4, !channelsLast.values.contains(name) else { return value }
                let padded = RuntimeTensor(shape: Array(repeating: 1, count: 4 - value.rank) + value.shape, data: value.data)
                return Kernels.relayout(padded, toChannelsLast: true)
            }
            arguments = []
            if operation == .multiply, operands.count == 2, let gated = Kernels.gateChannelsLast(&operands) {
                // A squeeze-and-excitation's gate: each sample's pixels times its channels' weights.
                return gated
            }
            if operation == .add, operands.count == 2, operands[0].shape == operands[1].shape {
                // A residual sum: into the first operand's buffer, the fused ReLU in the same pass.
                var sum = operands[0]
                operands[0] = RuntimeTensor(shape: [0], data: [])
                let reluCap = fusedReLUCap(of: node.name)
                if reluCap != nil || fusedActivations[node.name] == nil {
                    Kernels.addInPlace(&sum, operands[1], reluCap: reluCap)
                    return sum
                }
            }
            return try elementwise(node, operands, operation)
        case .concatenate(let a):
            let parts = [x] + arguments.dropFirst()
            guard a.axis == 1 || a.axis == -3, parts.allSatisfy({ $0.rank == 4 }) else {
                throw RuntimeError(node.name, "concatenates along axis \(a.axis) in the channels-last plan")
            }
            return Kernels.concatenateChannelsLast(parts)
        case .zeroPadding(let a), .cropping(let a):
            let sign = node.op.typeName.hasPrefix("Cropping") ? -1 : 1
            return Kernels.padChannelsLast(x, top: sign * a.padding[0][0], bottom: sign * a.padding[0][1],
                                           left: sign * a.padding[1][0], right: sign * a.padding[1][1], value: 0)
        case .onnx(.pad(let a)):
            return Kernels.padChannelsLast(x, top: a.pads[2], bottom: a.pads[6], left: a.pads[3], right: a.pads[7], value: a.value)
        case .pool(let a):
            let logical = [x.shape[0], x.shape[3], x.shape[1], x.shape[2]]
            let g = try Kernels.PoolGeometry(input: logical, a, node: node.name)
            return RuntimeTensor(shape: [g.batch, g.oh, g.ow, g.channels],
                                 data: try Kernels.poolChannelsLast(x.data, logical: logical, a,
                                                                    paddingIsZero: zeroPaddedPools.contains(node.name), node: node.name))
        case .globalPool(let a):
            let logical = [x.shape[0], x.shape[3], x.shape[1], x.shape[2]]
            let data = Kernels.globalPoolChannelsLast(x.data, logical: logical, kind: a.kind)
            return RuntimeTensor(shape: a.keepDimensions ? [logical[0], logical[1], 1, 1] : [logical[0], logical[1]], data: data)
        case .activation(.relu(let cap, 0, 0)):
            if passThrough.contains(node.name) { return x }
            Kernels.reluInPlace(&x, cap: cap ?? .infinity)
            return x
        case .activation(let activation) where activation == .swish || activation == .sigmoid:
            if passThrough.contains(node.name) { return x }
            // In place: x is held here only when this was its last reader (else the array copies once).
            ConvolutionEpilogue(bias: nil, activation: activation).applyToAll(&x.data)
            return x
        case .activation, .onnx(.clip), .onnx(.unary), .identity, .dropout, .stochasticDepth:
            // Value by value: the order does not matter.
            return try evaluate(node, [x])
        case .dense, .depthwiseConv, .separableConv, .convTranspose, .layerNormalization, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .groupNormalization, .prelu, .flatten, .reshape, .permute, .upSampling,
             .resizing, .embedding, .masking, .recurrent, .scaledResidual, .layerScale, .augmentation,
             .onnx, .opaque:
            throw RuntimeError(node.name, "\(node.op.typeName) has no channels-last kernel (internal: the plan placed it)")
        }
    }
}
