import ScionIR

/// MultiHeadAttention between Keras configs and the IR. Its settings are split between the layer's
/// config (heads, sizes, axes) and the call (a key tensor, an attention mask, `use_causal_mask`),
/// which Keras records in the layer's inbound node:
///
/// ```
///  Keras 3   {"args": [query, value], "kwargs": {"key": k, "attention_mask": m, "use_causal_mask": true}}
///  tf_keras  [[ [query, 0, 0, {"value": v, "key": k, "attention_mask": m, "use_causal_mask": true}] ]]
/// ```
///
/// The graph builder collects the tensors in the order query, value, key, mask
/// (`inboundCalls`), which is the order `MultiHeadAttentionAttributes` reads them in.
enum KerasAttention {
    /// The keyword arguments whose tensors become inputs, in input order.
    static let tensorKeywords = ["key", "attention_mask"]

    /// The op for a MultiHeadAttention layer and its first call; nil for settings Scion does not
    /// compute (gated heads, a sliding window, robust masking, the inputs' Keras masks), which then
    /// stay opaque.
    static func multiHeadAttention(config: JSON, layer: JSON) -> Op? {
        guard let heads = config["num_heads"]?.int, let keyDim = config["key_dim"]?.int else { return nil }
        if config["use_gate"]?.bool == true || !(config["sliding_window"]?.isNull ?? true)
            || config["softmax_robust_masking"]?.bool == true { return nil }
        var outputShape: [Int]?
        if let shape = config["output_shape"], !shape.isNull {
            guard let lengths = shape.int.map({ [$0] }) ?? shape.intArray else { return nil }
            outputShape = lengths
        }
        var axes: [Int]?
        if let value = config["attention_axes"], !value.isNull {
            guard let list = value.int.map({ [$0] }) ?? value.intArray else { return nil }
            axes = list
        }
        guard let call = callArguments(layer) else { return nil }
        // Masks Keras derives from the inputs' own masks are not recorded in the config.
        for keyword in ["query_mask", "value_mask", "key_mask"] where isTensor(call.keywords[keyword]) { return nil }
        if call.keywords["return_attention_scores"]?.bool == true { return nil }
        return .multiHeadAttention(MultiHeadAttentionAttributes(
            numHeads: heads, keyDim: keyDim, valueDim: config["value_dim"]?.int, dropout: config["dropout"]?.float ?? 0,
            useBias: config["use_bias"]?.bool ?? true, outputShape: outputShape, attentionAxes: axes,
            hasKey: call.positionalTensors >= 3 || isTensor(call.keywords["key"]),
            hasAttentionMask: call.positionalTensors >= 4 || isTensor(call.keywords["attention_mask"]),
            useCausalMask: call.keywords["use_causal_mask"]?.bool ?? false))
    }

    /// The first call's tensors passed by position and its keyword arguments, in either schema.
    private static func callArguments(_ layer: JSON) -> (positionalTensors: Int, keywords: [String: JSON])? {
        guard let call = layer["inbound_nodes"]?.array?.first else { return nil }
        if let arguments = call["args"]?.array {
            let tensors = arguments.prefix { $0["class_name"]?.string == "__keras_tensor__" }.count
            return (tensors, call["kwargs"]?.object ?? [:])
        }
        // tf_keras: one reference for the query, the rest as keywords (`value` among them).
        guard let first = call.array?.first?.array else { return nil }
        let keywords = first.count >= 4 ? first[3].object ?? [:] : [:]
        return (1 + (isTensor(keywords["value"]) ? 1 : 0), keywords)
    }

    /// A tensor argument: Keras 3's `__keras_tensor__` object or tf_keras's `[layer, node, tensor]`.
    static func isTensor(_ value: JSON?) -> Bool {
        guard let value else { return false }
        if value["class_name"]?.string == "__keras_tensor__" { return true }
        return value.array?.first?.string != nil
    }

    /// The layer's config and its call's extra inputs, for the writers. Keras 3's defaults fill in
    /// what the IR does not keep (initializers: the weights are loaded afterwards).
    static func layer(_ a: MultiHeadAttentionAttributes) -> KerasLayerSpecification {
        let ints: ([Int]) -> JSON = { .array($0.map { .number(Double($0)) }) }
        var specification = KerasLayerSpecification(className: "MultiHeadAttention", config: [
            "num_heads": .number(Double(a.numHeads)), "key_dim": .number(Double(a.keyDim)),
            "value_dim": .number(Double(a.valueDim)), "dropout": .number(Double(a.dropout)), "use_bias": .bool(a.useBias),
            "output_shape": a.outputShape.map(ints) ?? .null, "attention_axes": a.attentionAxes.map(ints) ?? .null])
        specification.keywordInputs = (a.hasKey ? ["key"] : []) + (a.hasAttentionMask ? ["attention_mask"] : [])
        // The mask sources are not call arguments: Keras derives the masks (KerasModelPlan checks it can).
        if a.kerasInputCount < a.inputCount { specification.inputs = (0..<a.kerasInputCount).map { .nodeInput($0) } }
        if a.useCausalMask { specification.callKeywords["use_causal_mask"] = .bool(true) }
        return specification
    }

    /// EinsumDense's settings; an equation that is not one product stays opaque (`Unsupported`).
    static func einsumDense(_ config: JSON, activation: Activation) throws -> EinsumDenseAttributes {
        guard let equation = config["equation"]?.string else { throw KerasLayerTable.Unsupported(reason: "EinsumDense without an equation") }
        let shape = config["output_shape"]
        let lengths: [Int?] = shape?.int.map { [$0] } ?? (shape?.array ?? []).map { $0.int }
        let biasAxes = config["bias_axes"]?.string
        return EinsumDenseAttributes(equation: equation, outputShape: lengths, biasAxes: biasAxes, activation: activation)
    }

    /// EinsumDense's config for the writers.
    static func einsumDenseConfig(_ a: EinsumDenseAttributes, activation: String) -> [String: JSON] {
        ["equation": .string(a.equation), "output_shape": .array(a.outputShape.map { $0.map { .number(Double($0)) } ?? .null }),
         "bias_axes": a.biasAxes.map(JSON.string) ?? .null, "activation": .string(activation)]
    }

    /// Attention / AdditiveAttention and its first call; nil (opaque) for Keras masks passed to the
    /// call or attention scores returned.
    static func attention(className: String, config: JSON, layer: JSON, inputCount: Int) -> Op? {
        guard inputCount == 2 || inputCount == 3, let call = layer["inbound_nodes"]?.array?.first else { return nil }
        var keywords: [String: JSON] = call["kwargs"]?.object ?? [:]
        // tf_keras puts a call's keywords in each input reference's dictionary.
        for reference in call.array ?? [] {
            for (key, value) in reference.array?.dropFirst(3).first?.object ?? [:] { keywords[key] = value }
        }
        if let mask = keywords["mask"], !mask.isNull { return nil }
        if keywords["return_attention_scores"]?.bool == true { return nil }
        let score: AttentionAttributes.Score
        if className == "AdditiveAttention" {
            score = .additive
        } else {
            guard let mode = AttentionAttributes.Score(rawValue: config["score_mode"]?.string ?? "dot"), mode != .additive else { return nil }
            score = mode
        }
        let useScale = config["use_scale"]?.bool ?? (score == .additive)
        return .attention(AttentionAttributes(
            score: score, useScale: useScale, dropout: config["dropout"]?.float ?? 0, hasKey: inputCount == 3,
            useCausalMask: keywords["use_causal_mask"]?.bool ?? config["causal"]?.bool ?? false))
    }

    /// Attention's or AdditiveAttention's layer for the writers: its inputs as one list.
    static func layer(_ a: AttentionAttributes) -> KerasLayerSpecification {
        var config: [String: JSON] = ["use_scale": .bool(a.useScale), "dropout": .number(Double(a.dropout))]
        // "dot" is Keras's default, left out: Keras 3's .h5 loader reads the string "dot" as the
        // function keras.ops.dot and refuses the layer.
        if a.score == .concat { config["score_mode"] = .string(a.score.rawValue) }
        var specification = KerasLayerSpecification(className: a.kerasClass, config: config, takesList: true)
        if a.useCausalMask { specification.callKeywords["use_causal_mask"] = .bool(true) }
        return specification
    }
}
