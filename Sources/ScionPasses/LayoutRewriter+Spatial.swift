import ScionIR

/// Spatial ops move to the target layout, their kernels permuted lazily. Going channels-last, ONNX's
/// explicit padding also becomes what Keras can say (`LayoutRewriter+KerasPadding`).
///
/// ```
///  toChannelsFirst                              toChannelsLast
///  Conv2D channelsLast, kernel HWIO             Conv pads [0,0,1,1], OIHW
///    → Conv2D channelsFirst, kernel OIHW          → ZeroPadding2D ((0,1),(0,1)) + Conv2D valid, HWIO
/// ```
extension LayoutRewriter {
    mutating func rewriteSpatial(_ node: Node) throws {
        guard node.inputs.count == 1, let sourceInput = node.inputs.first, node.outputs.count == 1,
              let spatialRank = node.op.spatialRank else {
            throw failure(node.name, "a \(node.op.typeName) needs exactly one input and one output")
        }
        let rank = spatialRank + 2
        var input = try materialize(sourceInput, in: .converted, rank: rank)
        let target = direction.targetLayout
        let keras = direction.writesKerasLayers
        let op: Op
        /// A layer after the main one, writing the node's output: `(op, name suffix)`.
        var after: (op: Op, suffix: String)?
        switch node.op {
        case .conv(var a):
            if keras {
                op = try kerasConvolution(node, a, input: &input, after: &after)
            } else {
                // Kernel [k..., in/groups, out] (HWIO) to [out, in/groups, k...] (OIHW).
                try permuteParameter(of: node, role: .kernel, change: direction.convolutionKernelChange,
                                     permutation: direction.kernelPermutation(spatialRank: spatialRank))
                a.layout = target
                a.activation = try remapped(a.activation, rank: rank, node: node)
                op = .conv(a)
            }
        case .convTranspose(var a):
            if keras, a.groups != 1 { throw failure(node.name, "a grouped ConvTranspose has no Keras layer") }
            // Keras kernel [k..., out, in] to ONNX ConvTranspose's [in, out, k...], or back.
            try permuteParameter(of: node, role: .kernel, change: direction.transposedKernelChange,
                                 permutation: direction.kernelPermutation(spatialRank: spatialRank))
            if keras { after = try kerasTransposedPadding(node, &a) }
            a.layout = target
            a.activation = try remapped(a.activation, rank: rank, node: node)
            op = .convTranspose(a)
        case .pool(var a):
            if keras { try kerasPoolPadding(node, &a, input: sourceInput, converted: &input) }
            a.layout = target
            op = .pool(a)
        case .globalPool(var a):
            a.layout = target
            op = .globalPool(a)
        case .zeroPadding(var a):
            a.layout = target
            op = .zeroPadding(a)
        case .cropping(var a):
            a.layout = target
            op = .cropping(a)
        case .upSampling(var a):
            a.layout = target
            op = .upSampling(a)
        case .resizing(var a):
            a.layout = target
            op = .resizing(a)
        case .depthwiseConv, .separableConv:
            // `ChannelsFirstLayoutPass` runs `GroupedConvolutionPass` first, and ONNX has neither.
            throw failure(node.name, "a \(node.op.typeName) must be lowered to grouped convolutions first (GroupedConvolutionPass)")
        case .dense, .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense, .unitNormalization,
             .attention, .groupNormalization, .activation,
             .prelu, .dropout, .flatten, .reshape, .permute, .elementwise, .concatenate, .rescaling, .normalization,
             .embedding, .masking, .recurrent,
             .scaledResidual, .layerScale, .transpose, .stochasticDepth, .identity, .augmentation, .opaque, .onnx:
            throw failure(node.name, "\(node.op.typeName) is not a spatial op")
        }
        guard let after else {
            try emit(node, form: .converted, op: op, inputs: [input])
            return
        }
        let intermediate = uniqueValueName("\(node.outputs[0])/\(after.suffix)_input")
        var layer = node
        layer.op = op
        layer.inputs = [input]
        layer.outputs = [intermediate]
        nodes.append(layer)
        let follower = Node(name: uniqueNodeName("\(node.name)/\(after.suffix)"), op: after.op,
                            inputs: [intermediate], outputs: node.outputs, scope: node.scope, trainable: node.trainable)
        try emit(follower, form: .converted, op: after.op, inputs: [intermediate])
    }
}
