import ScionIR

extension KerasModelPlan {
    static let floatPolicy: JSON = .object([
        "module": "keras", "class_name": "DTypePolicy", "config": .object(["name": "float32"]), "registered_name": .null])

    /// The model config: Keras 3's schema for `config.json` (`legacy == false`), or, for `.h5`, the
    /// Keras 2 schema that both Keras 3's legacy loader and tf_keras read (`batch_input_shape`, dtype
    /// strings, `inbound_nodes` as `[[layer, node, tensor, {}], ...]` lists, no module fields for
    /// built-in layers): one file for both, where tf_keras has the layers.
    func modelConfig(legacy: Bool = false) -> JSON {
        var layerList: [JSON] = []
        // Keras lists layers in `model.layers` order, which also numbers the weight groups of a
        // `.keras` archive (`layers/conv2d_1`...): readers that number them by config order, as
        // Scion's does, then find each layer's weights.
        let order = kerasLayerOrder()
        let listed = Set(order)
        for layer in (order + layers.indices.filter { !listed.contains($0) }).map({ layers[$0] }) {
            var config = layer.specification.config
            config["name"] = .string(layer.name)
            if legacy, layer.specification.className == "LeakyReLU", let slope = config.removeValue(forKey: "negative_slope") {
                // tf_keras calls it `alpha`; Keras 3 still reads `alpha` (with a deprecation warning).
                config["alpha"] = slope
            }
            var entry: [String: JSON] = ["class_name": .string(layer.specification.className), "name": .string(layer.name)]
            if legacy, let registered = layer.specification.registeredName, registered.contains(">") {
                // The `.h5` schema names a registered class `package>Name` in `class_name` alone.
                entry["class_name"] = .string(registered)
            } else if !legacy || layer.specification.module != "keras.layers" {
                entry["module"] = layer.specification.module.map(JSON.string) ?? .null
                entry["registered_name"] = layer.specification.registeredName.map(JSON.string) ?? .null
            }
            if let arguments = layer.specification.arguments {
                // An operation node: Keras 3's form in both files (module kept, so Keras 3's .h5
                // loader deserializes it as an operation), its config its settings and name only.
                entry["module"] = layer.specification.module.map(JSON.string) ?? .null
                entry["registered_name"] = .string(layer.specification.className)
                entry["inbound_nodes"] = .array(layer.calls.map { operationCall(arguments, inputs: $0) })
                entry["config"] = .object(config)
                layerList.append(.object(entry))
                continue
            }
            if layer.isInput {
                config[legacy ? "batch_input_shape" : "batch_shape"] = .array(layer.batchShape.map { $0.map { .number(Double($0)) } ?? .null })
                config["dtype"] = .string(layer.dtype.rawValue)
                config["sparse"] = .bool(false)
                entry["inbound_nodes"] = .array([])
            } else {
                config["trainable"] = .bool(layer.trainable)
                config["dtype"] = legacy ? "float32" : Self.floatPolicy
                entry["inbound_nodes"] = .array(layer.calls.map { inputs in
                    // Keras 2's form passes several inputs as one list, and other arguments only as
                    // keyword values Keras 3 does not resolve: a layer taking separate tensors
                    // (MultiHeadAttention's query and value) or a call with keyword arguments
                    // (`use_causal_mask`) is written in Keras 3's form, which Keras 3's .h5 reader
                    // reads per layer. Keras 3 also reads the legacy form in `config.json`, which
                    // needs no shapes: the form for a tensor whose shape nobody recorded (after a
                    // user's layer in a Keras 2 file), where Keras 3's form would need a `shape`.
                    let unshaped = inputs.contains { (graph.values[$0] ?? stepValues[$0])?.shape == nil }
                    let hasKeywords = !layer.specification.keywordInputs.isEmpty || !layer.specification.callKeywords.isEmpty
                        || layer.specification.listKeywordInput != nil
                    if (legacy || unshaped) && (layer.specification.takesList || inputs.count == 1) && !hasKeywords {
                        return .array(inputs.map(legacyReference))
                    }
                    var tensors = inputs.map(kerasTensor)
                    // The last inputs go by keyword when the layer says so (MultiHeadAttention's key).
                    let keywordNames = layer.specification.keywordInputs.suffix(tensors.count)
                    var keywords = layer.specification.callKeywords
                    for (name, tensor) in zip(keywordNames, tensors.suffix(keywordNames.count)) { keywords[name] = tensor }
                    tensors.removeLast(keywordNames.count)
                    if let listKeyword = layer.specification.listKeywordInput, tensors.count > 1 {
                        keywords[listKeyword] = .array(Array(tensors.dropFirst()))
                        tensors = [tensors[0]]
                    }
                    let arguments: [JSON] = layer.specification.takesList ? [.array(tensors)] : tensors
                    return .object(["args": .array(arguments), "kwargs": .object(keywords)])
                })
            }
            entry["config"] = .object(config)
            layerList.append(.object(entry))
        }
        func references(_ values: [String]) -> JSON {
            let triples = values.map(reference)
            return triples.count == 1 && !legacy ? triples[0] : .array(triples)
        }
        let inputs = layers.filter(\.isInput).map { JSON.array([.string($0.name), 0, 0]) }
        let body: JSON = .object([
            "name": .string(graph.name.replacingOccurrences(of: "/", with: "_")), "trainable": .bool(true),
            "layers": .array(layerList),
            "input_layers": inputs.count == 1 && !legacy ? inputs[0] : .array(inputs),
            "output_layers": references(graph.outputs)])
        if legacy { return .object(["class_name": "Functional", "config": body]) }
        return .object([
            "module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": body])
    }

    /// One call of an operation node: its arguments with the call's tensors in place.
    private func operationCall(_ arguments: [KerasCallArgument], inputs: [String]) -> JSON {
        var remaining = inputs[...]
        let values: [JSON] = arguments.map { argument in
            switch argument {
            case .tensor: return remaining.popFirst().map(kerasTensor) ?? .null
            case .tensorList:
                defer { remaining = [] }
                return .array(remaining.map(kerasTensor))
            case .constant(let value): return value
            }
        }
        return .object(["args": .array(values), "kwargs": .object([:])])
    }

    /// Keras 2's inbound reference: `[layer name, call index, tensor index, {}]`.
    private func legacyReference(_ value: String) -> JSON {
        guard case .array(var triple) = reference(value) else { return .null }
        triple.append(.object([:]))
        return .array(triple)
    }

    private func reference(_ value: String) -> JSON {
        guard let producer = producers[value] else { return .null }
        return .array([.string(layers[producer.layer].name), .number(Double(producer.call)),
                       .number(Double(tensorIndices[value] ?? 0))])
    }

    private func kerasTensor(_ value: String) -> JSON {
        let info = graph.values[value] ?? stepValues[value]
        var config: [String: JSON] = [
            "dtype": .string((info?.dtype ?? .float32).rawValue), "keras_history": reference(value)]
        if let shape = info?.shape { config["shape"] = .array(shape.dimensions.map { $0.map { .number(Double($0)) } ?? .null }) }
        return .object(["class_name": "__keras_tensor__", "config": .object(config)])
    }

    /// Indices of `layers` in the order Keras 3 lists the loaded model's layers (`model.layers`),
    /// which names the weight groups: Keras's `map_graph` orders operations by decreasing depth from
    /// the outputs, ties by first visit in a depth-first walk from the outputs.
    func kerasLayerOrder() -> [Int] {
        struct CallKey: Hashable { let layer: Int; let call: Int }
        func parents(_ key: CallKey) -> [CallKey] {
            guard !layers[key.layer].isInput else { return [] }
            return layers[key.layer].calls[key.call].compactMap { producers[$0].map { CallKey(layer: $0.layer, call: $0.call) } }
        }
        var finished = Set<CallKey>()
        var ordered: [CallKey] = []
        var firstVisit: [Int: Int] = [:]
        // Iterative depth-first walk (deep models would overflow a recursive one).
        for output in graph.outputs {
            guard let producer = producers[output] else { continue }
            var stack: [(CallKey, Int)] = [(CallKey(layer: producer.layer, call: producer.call), 0)]
            while let (key, next) = stack.popLast() {
                if next == 0 {
                    if finished.contains(key) { continue }
                    if firstVisit[key.layer] == nil { firstVisit[key.layer] = firstVisit.count }
                }
                let inputs = parents(key)
                if next < inputs.count {
                    stack.append((key, next + 1))
                    if !finished.contains(inputs[next]) { stack.append((inputs[next], 0)) }
                } else if !finished.contains(key) {
                    finished.insert(key)
                    ordered.append(key)
                }
            }
        }
        var nodeDepth: [CallKey: Int] = [:]
        var layerDepth: [Int: Int] = [:]
        for key in ordered.reversed() {
            var depth = nodeDepth[key] ?? 0
            depth = max(depth, layerDepth[key.layer] ?? 0)
            layerDepth[key.layer] = depth
            nodeDepth[key] = depth
            for parent in parents(key) where finished.contains(parent) {
                nodeDepth[parent] = max(depth + 1, nodeDepth[parent] ?? 0)
            }
        }
        // Unused inputs: depth 0 and visit index -1, so they sort first among depth 0, as in Keras.
        for (index, layer) in layers.enumerated() where layer.isInput && layerDepth[index] == nil {
            layerDepth[index] = 0
            firstVisit[index] = -1
        }
        return layerDepth.keys.sorted { left, right in
            let (leftDepth, rightDepth) = (layerDepth[left] ?? 0, layerDepth[right] ?? 0)
            if leftDepth != rightDepth { return leftDepth > rightDepth }
            return (firstVisit[left] ?? 0) < (firstVisit[right] ?? 0)
        }
    }
}
