import ScionIR

/// ONNX for the opset-23 transformer ops and ArgMax/ArgMin, CumSum (ONNXImporter+Transformer):
/// each the one node it was read from; RMSNormalization spelled out in opset-13 ops before 23.
extension ONNXGraphBuilder {
    mutating func emitTransformer(_ node: Node, _ operation: ONNXOperation, role: [ParameterRole: String], inputShape: Shape?,
                                  output: String) throws {
        let input = node.inputs.first ?? ""
        switch operation {
        case .scaledDotProductAttention(let a):
            guard hasNative(23) else { throw unsupported(node, "Attention needs opset 23 or later") }
            var attributes: [ONNXAttribute] = []
            if let heads = a.queryHeads { attributes.append(.int("q_num_heads", heads)) }
            if let heads = a.keyValueHeads { attributes.append(.int("kv_num_heads", heads)) }
            if a.isCausal { attributes.append(.int("is_causal", 1)) }
            if let scale = a.scale { attributes.append(.float("scale", scale)) }
            if a.softcap != 0 { attributes.append(.float("softcap", a.softcap)) }
            if a.qkOutputMode != 0 { attributes.append(.int("qk_matmul_output_mode", a.qkOutputMode)) }
            if let precision = a.softmaxPrecision { attributes.append(.int("softmax_precision", precision)) }
            // Inputs by position: an absent mask before the cache is ONNX's empty name.
            var inputs = Array(node.inputs.prefix(3))
            if let position = a.maskPosition { inputs.append(node.inputs[position]) }
            if let past = a.pastPosition {
                if a.mask == nil { inputs.append("") }
                inputs += [node.inputs[past], node.inputs[past + 1]]
            }
            guard a.sequenceFirst else {
                nodes.append(ONNXNode(name: uniqueNodeName(node.name), opType: "Attention", inputs: inputs, outputs: node.outputs,
                                      attributes: attributes))
                return
            }
            // keras.ops.dot_product_attention's [B, S, H, D]: ONNX's Attention reads [B, H, S, D].
            let swap: [ONNXAttribute] = [.ints("perm", [0, 2, 1, 3])]
            // The Attention node keeps the layer's name; the Transposes are named after what they move.
            for (position, operand) in ["query", "key", "value"].enumerated() {
                inputs[position] = intermediate("Transpose", name: "\(node.name)/\(operand)", inputs: [inputs[position]], attributes: swap)
            }
            let attended = add("Attention", name: node.name, inputs: inputs, output: uniqueName("\(node.name)/heads_first"),
                               attributes: attributes)
            add("Transpose", name: "\(node.name)/output", inputs: [attended], output: output, attributes: swap)
        case .rmsNormalization(let a):
            guard let scale = role[.other("scale")] ?? (node.inputs.count > 1 ? node.inputs[1] : nil) else {
                throw unsupported(node, "RMSNormalization has no scale")
            }
            if hasNative(23) {
                add("RMSNormalization", name: node.name, inputs: [input, scale], output: output,
                    attributes: [.int("axis", a.axis), .float("epsilon", a.epsilon)])
                return
            }
            // x / sqrt(mean(x²) over the axes from `axis` on + epsilon) · scale.
            // Negative axes need no rank: ReduceMean reads them from the end as RMSNormalization does.
            let axes: [Int64]
            if a.axis < 0 {
                axes = (a.axis..<0).map { Int64($0) }
            } else {
                guard let rank = inputShape?.rank else {
                    throw unsupported(node, "RMSNormalization from axis \(a.axis) of an input of unknown rank needs opset 23")
                }
                axes = (a.axis..<rank).map { Int64($0) }
            }
            let squared = intermediate("Mul", name: node.name, inputs: [input, input])
            let mean = hasNative(18)
                ? intermediate("ReduceMean", name: node.name, inputs: [squared, constant("\(node.name)/axes", int64s: axes)],
                               attributes: [.int("keepdims", 1)])
                : intermediate("ReduceMean", name: node.name, inputs: [squared], attributes: [.ints("axes", axes.map { Int($0) }), .int("keepdims", 1)])
            let shifted = intermediate("Add", name: node.name, inputs: [mean, scalar("\(node.name)/epsilon", a.epsilon)])
            let root = intermediate("Sqrt", name: node.name, inputs: [shifted])
            let normalized = intermediate("Div", name: node.name, inputs: [input, root])
            add("Mul", name: node.name, inputs: [normalized, scale], output: output)
        case .rotaryEmbedding(let a):
            guard hasNative(23) else { throw unsupported(node, "RotaryEmbedding needs opset 23 or later") }
            var attributes: [ONNXAttribute] = [.int("interleaved", a.interleaved ? 1 : 0)]
            if a.rotaryDimensions != 0 { attributes.append(.int("rotary_embedding_dim", a.rotaryDimensions)) }
            if a.heads != 0 { attributes.append(.int("num_heads", a.heads)) }
            add("RotaryEmbedding", name: node.name, inputs: node.inputs, output: output, attributes: attributes)
        case .argExtreme(let a):
            if a.selectLastIndex, !hasNative(12) { throw unsupported(node, "\(operation.typeName) with select_last_index needs opset 12 or later") }
            var attributes: [ONNXAttribute] = [.int("axis", a.axis), .int("keepdims", a.keepDimensions ? 1 : 0)]
            if a.selectLastIndex { attributes.append(.int("select_last_index", 1)) }
            add(operation.typeName, name: node.name, inputs: [input], output: output, attributes: attributes)
        case .cumulativeSum(let a):
            let axis = a.axis.map { constant("\(node.name)/axis", int64s: [Int64($0)], dimensions: []) } ?? node.inputs[1]
            add("CumSum", name: node.name, inputs: [input, axis], output: output,
                attributes: [.int("exclusive", a.exclusive ? 1 : 0), .int("reverse", a.reverse ? 1 : 0)])
        case .depthSpace(let a):
            var attributes: [ONNXAttribute] = [.int("blocksize", a.blockSize)]
            if !a.toDepth { attributes.append(.string("mode", a.columnRowDepth ? "CRD" : "DCR")) }
            add(operation.typeName, name: node.name, inputs: [input], output: output, attributes: attributes)
        case .constant, .gemm, .matMul, .unary, .comparison, .select, .reduce, .gather, .cast, .squeeze, .unsqueeze, .slice,
             .split, .pad, .clip, .resize, .localResponseNormalization, .coercedSoftmax, .shape, .expand, .tile,
             .mod, .range, .constantOfShape, .trilu, .computedSlice, .computedPad, .scatterND, .gatherND, .gatherElements, .einsum,
             .computedReshape, .computedBatchNormalization, .computedInstanceNormalization:
            throw unsupported(node, "\(operation.typeName) is not a transformer op")
        }
    }
}
