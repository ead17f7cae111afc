import ScionIR

/// ONNX node to IR op for the opset-23 transformer ops (Attention, RMSNormalization,
/// RotaryEmbedding) and ArgMax/ArgMin, CumSum. nil keeps a form the IR cannot say opaque.
extension ONNXImportSession {
    mutating func mapTransformerOp(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        switch node.opType {
        case "Attention": return attention(node)
        case "RMSNormalization":
            // stash_type names the precision of the statistics; float32 (1) is what the executor computes.
            guard let scale = input(node, 1), intAttribute(node, "stash_type", 1) == 1 else { return nil }
            let op = Op.onnx(.rmsNormalization(RMSNormalizationAttributes(axis: intAttribute(node, "axis", -1),
                                                                          epsilon: floatAttribute(node, "epsilon", 1e-5))))
            if isConstant(scale) { return MappedNode(op: op, inputs: [x], parameters: [(scale, .other("scale"), nil)]) }
            return MappedNode(op: op, inputs: [x, scale])
        case "RotaryEmbedding":
            guard let cosine = input(node, 1), let sine = input(node, 2) else { return nil }
            let positions = input(node, 3)
            let attributes = RotaryEmbeddingAttributes(interleaved: intAttribute(node, "interleaved", 0) == 1,
                                                       rotaryDimensions: intAttribute(node, "rotary_embedding_dim", 0),
                                                       heads: intAttribute(node, "num_heads", 0), hasPositionIDs: positions != nil)
            return MappedNode(op: .onnx(.rotaryEmbedding(attributes)), inputs: [x, cosine, sine] + (positions.map { [$0] } ?? []))
        case "ArgMax", "ArgMin":
            let attributes = ArgExtremeAttributes(largest: node.opType == "ArgMax", axis: intAttribute(node, "axis", 0),
                                                  keepDimensions: intAttribute(node, "keepdims", 1) == 1,
                                                  selectLastIndex: intAttribute(node, "select_last_index", 0) == 1)
            return MappedNode(op: .onnx(.argExtreme(attributes)), inputs: [x])
        case "CumSum":
            // Exporters write a constant axis (an attribute here); one computed at run time is the second input.
            guard let axisInput = input(node, 1) else { return nil }
            let constant = try numbers(axisInput)?.integers
            if let constant, constant.count != 1 { return nil }
            let attributes = CumulativeSumAttributes(axis: constant.map { Int(truncatingIfNeeded: $0[0]) },
                                                     exclusive: intAttribute(node, "exclusive", 0) == 1, reverse: intAttribute(node, "reverse", 0) == 1)
            return MappedNode(op: .onnx(.cumulativeSum(attributes)), inputs: constant == nil ? [x, axisInput] : [x])
        case "DepthToSpace", "SpaceToDepth":
            let mode = stringAttribute(node, "mode", "DCR")
            guard mode == "DCR" || mode == "CRD" else { return nil }
            return MappedNode(op: .onnx(.depthSpace(DepthSpaceAttributes(toDepth: node.opType == "SpaceToDepth",
                                                                         blockSize: intAttribute(node, "blocksize", 0),
                                                                         columnRowDepth: mode == "CRD"))), inputs: [x])
        default:
            return nil
        }
    }

    /// Attention's inputs by position (Q, K, V, attn_mask, past_key, past_value); opset 24's
    /// nonpad_kv_seqlen and the sliding windows of later opsets stay opaque.
    func attention(_ node: ONNXNode) -> MappedNode? {
        guard node.inputs.count <= 6, node.attribute("left_window_size") == nil, node.attribute("right_window_size") == nil,
              let q = input(node, 0), let k = input(node, 1), let v = input(node, 2) else { return nil }
        var mask: AttentionMaskKind? = nil
        if let maskInput = input(node, 3) {
            guard let dtype = known[maskInput]?.dtype ?? constants[maskInput]?.dtype else { return nil }
            mask = dtype == .bool ? .boolean : .additive
        }
        let pastKey = input(node, 4), pastValue = input(node, 5)
        guard (pastKey == nil) == (pastValue == nil) else { return nil }
        let scale: Float? = node.attribute("scale") == nil ? nil : floatAttribute(node, "scale", 1)
        let heads = { (name: String) -> Int? in node.attribute(name) == nil ? nil : intAttribute(node, name, 0) }
        let precision = node.attribute("softmax_precision") == nil ? nil : intAttribute(node, "softmax_precision", 1)
        let attributes = ScaledDotProductAttentionAttributes(
            queryHeads: heads("q_num_heads"), keyValueHeads: heads("kv_num_heads"), mask: mask,
            isCausal: intAttribute(node, "is_causal", 0) == 1, scale: scale, softcap: floatAttribute(node, "softcap", 0),
            hasPast: pastKey != nil, qkOutputMode: intAttribute(node, "qk_matmul_output_mode", 0), softmaxPrecision: precision)
        guard (0...3).contains(attributes.qkOutputMode) else { return nil }
        let inputs = [q, k, v] + [input(node, 3), pastKey, pastValue].compactMap { $0 }
        // Every output up to the last one the file names: the executor makes them all.
        let outputCount = (node.outputs.lastIndex(where: { !$0.isEmpty }) ?? 0) + 1
        return MappedNode(op: .onnx(.scaledDotProductAttention(attributes)), inputs: inputs, outputCount: outputCount)
    }
}
