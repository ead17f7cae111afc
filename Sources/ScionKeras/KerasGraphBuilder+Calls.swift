import ScionIR

/// One tensor as a Keras config names it: the `index`-th output of the `node`-th call of `layer`.
struct KerasTensorReference: Hashable {
    let layer: String
    let node: Int
    let tensor: Int
}

extension KerasGraphBuilder {
    /// Adds one call of a layer (or of a nested model, flattened in place); returns its output values.
    /// Records are keyed by `recordScope` so every call of a shared layer or shared nested model
    /// binds to the same weights.
    mutating func addLayerCall(_ layer: JSON, inputs: [String], scope: String, recordScope: String? = nil,
                               objectPath: String, parentTrainable: Bool, depth: Int, callIndex: Int?) throws
        -> [String]
    {
        let recordScope = recordScope ?? scope
        guard let registeredName = layer["class_name"]?.string else {
            throw configError(Self.scoped(scope, Self.layerName(layer)), "layer has no class_name")
        }
        // Keras 2 writes registered custom classes as `Package>Name` (`Custom>CustomScaleLayer`).
        let className = registeredName.split(separator: ">").last.map(String.init) ?? registeredName
        let config = layer["config"] ?? .object([:])
        let name = Self.layerName(layer)
        let trainable = parentTrainable && (config["trainable"]?.bool ?? true)
        let recordName = Self.scoped(recordScope, name)
        let call = callIndex ?? 0
        let isModel = kerasModelClassNames.contains(className) && config["layers"] != nil
        var recordIndex = recordIndices[recordName]
        if recordIndex == nil {
            records.append(KerasLayerRecord(
                name: name, scopedName: recordName, className: className, config: config, scope: recordScope,
                trainable: trainable, objectPath: objectPath, isModel: isModel))
            recordIndex = records.count - 1
            recordIndices[recordName] = recordIndex
        }
        if isModel {
            let nestedScope = Self.scoped(scope, call > 0 ? "\(name)#\(call)" : name)
            graph.submodels.append(Submodel(path: nestedScope, type: className, trainable: trainable))
            return try buildModel(className: className, config: config, scope: nestedScope,
                                  recordScope: recordName, objectPath: objectPath, trainable: trainable,
                                  boundInputs: inputs, depth: depth + 1)
        }
        if Self.isOperationNode(layer) {
            return try addOperationCall(layer, className: className, inputs: inputs, scope: scope, layer: recordName,
                                        call: call, trainable: trainable, recordIndex: recordIndex)
        }
        var op = layerOp(className: className, config: config, inputCount: inputs.count, callArguments: layer)
        // Keras's initial_state (an encoder's states starting a decoder) follows the sequence: Keras 2
        // lists the states after it, Keras 3 passes them by keyword (collected last by `inboundCalls`).
        var initialStates: [String] = []
        if case .recurrent(var a) = op, inputs.count > 1 {
            initialStates = Array(inputs.dropFirst())
            a.readsInitialStates = true
            op = initialStates.count == a.initialStateCount && a.convolution == nil && !a.timeMajor ? .recurrent(a)
                : .opaque(OpaqueAttributes(domain: "keras", type: className, configuration: config.serialized,
                                           unreadReason: "is called with \(initialStates.count) initial states (Scion reads "
                                               + "\(a.cell == .lstm ? "h and c" : "h") per direction of a dense cell)"))
        }
        let sequenceInputs = initialStates.isEmpty ? inputs : [inputs[0]]
        let readsMask = sequenceInputs.contains(where: maskedValues.contains)
        let maskSource = sequenceInputs.compactMap { maskSources[$0] }.first
        var layerInputs = sequenceInputs
        // Keras 3 writes the mask as the call keyword `mask=`; one Scion did not derive (a mask
        // passed by hand to an unmasked input) is not run.
        let calls = layer["inbound_nodes"]?.array ?? []
        let keywordMask = calls.indices.contains(call) && calls[call]["kwargs"]?["mask"]?["class_name"]?.string == "__keras_tensor__"
        if case .recurrent = op, keywordMask, !readsMask {
            op = .opaque(OpaqueAttributes(domain: "keras", type: className, configuration: config.serialized))
        }
        // Keras 3 records the mask its call had, `mask: null` when none reached it (Keras 3 drops masks
        // more often than tf_keras does; see KerasImpliedMask); tf_keras and Sequential configs record nothing.
        let keywordNoMask = calls.indices.contains(call) && calls[call]["kwargs"]?["mask"] == .null
        if case .recurrent(var a) = op, readsMask, !keywordNoMask {
            // The mask is computed from its source: the step is read where the source differs from the value.
            if let maskSource, sequenceInputs.count == 1, !a.timeMajor {
                a.maskValue = maskSource.value
                op = .recurrent(a)
                layerInputs.append(maskSource.source)
            } else {
                op = .opaque(OpaqueAttributes(domain: "keras", type: className, configuration: config.serialized))
            }
        }
        // GlobalAveragePooling1D averages the kept steps: like the recurrent op, it reads the mask source,
        // when Keras (either version) gives its input that mask.
        if case .globalPool(var a) = op, readsMask, !keywordNoMask, a.kind == .average, a.rank == 1, inputs.count == 1,
           let maskSource, KerasImpliedMask.holds(in: graph, value: inputs[0], source: maskSource.source, maskValue: maskSource.value) {
            a.maskValue = maskSource.value
            op = .globalPool(a)
            layerInputs.append(maskSource.source)
        }
        // MultiHeadAttention builds Keras's query mask [B, T, 1] and value mask [B, 1, S] into its
        // attention mask, when Keras (either version) gives them; a masked key passed apart stays opaque.
        if case .multiHeadAttention(var a) = op, readsMask, inputs.count == a.inputCount {
            func implied(_ input: String) -> KerasMask? {
                guard let mask = maskSources[input],
                      KerasImpliedMask.holds(in: graph, value: input, source: mask.source, maskValue: mask.value) else { return nil }
                return mask
            }
            let (query, value) = (inputs[0], inputs[1])
            let queryMask = maskedValues.contains(query) ? implied(query) : nil
            let valueMask = maskedValues.contains(value) ? implied(value) : nil
            let keyMasked = a.hasKey && maskedValues.contains(inputs[a.keyInput])
            if !keyMasked, maskedValues.contains(query) == (queryMask != nil), maskedValues.contains(value) == (valueMask != nil) {
                a.queryMaskValue = queryMask?.value
                a.valueMaskValue = valueMask?.value
                op = .multiHeadAttention(a)
                layerInputs += [queryMask?.source, valueMask?.source].compactMap { $0 }
            }
        }
        // A mask Scion did not derive (passed by hand, or through layers KerasImpliedMask does not follow).
        if keywordMask, Self.resultDependsOnMask(op) {
            op = .opaque(OpaqueAttributes(domain: "keras", type: className, configuration: config.serialized,
                                          unreadReason: "is called with a Keras mask Scion cannot derive "
                                              + "(\(Self.followedMasks))"))
        }
        // Layers whose result Keras's mask changes (attention ignores masked keys): Scion does not
        // apply the mask to them yet, so they are kept as read, and run and ONNX refuse them by name,
        // instead of computing them without it.
        if readsMask, !keywordNoMask, Self.resultDependsOnMask(op) {
            let reason = if case .globalPool = op {
                "reads a Keras mask through layers Scion does not follow for masks (\(Self.followedMasks))"
            } else {
                "reads a Keras mask (Embedding(mask_zero=True) or Masking), which Scion does not apply to it yet"
            }
            op = .opaque(OpaqueAttributes(domain: "keras", type: className, configuration: config.serialized,
                                          unreadReason: reason))
        }
        // TimeDistributed passes the mask to its inner layer one step at a time: kept as read when the
        // inner layer's result depends on it (the reader expands the others, KerasTimeDistributed).
        if readsMask, className == KerasTimeDistributed.className, let inner = KerasTimeDistributed.innerLayer(config),
           let innerOp = (try? table.op(className: inner.className, config: inner.config)) ?? nil,
           Self.resultDependsOnMask(innerOp) {
            op = .opaque(OpaqueAttributes(domain: "keras", type: className, configuration: config.serialized,
                                          unreadReason: "reads a Keras mask, which Scion does not apply to its inner "
                                              + "\(inner.className) yet"))
        }
        if case .recurrent = op { layerInputs += initialStates } else if !initialStates.isEmpty { layerInputs = inputs }
        var nodeName = Self.scoped(scope, call > 0 ? "\(name)#\(call)" : name)
        while usedNames.contains(nodeName) { nodeName += "'" }
        usedNames.insert(nodeName)
        // A recurrent layer returning its states has one output per tensor Keras returns.
        var outputs = [nodeName]
        if case .recurrent(let a) = op { outputs += (1..<max(a.outputCount, 1)).map { "\(nodeName):\($0)" } }
        // Merging layers (Add, Multiply...): Keras 3 passes a mask on only when every input has one (the
        // masks ORed), tf_keras when any has (ANDed); masks from different sources have no one source.
        let merges = KerasImpliedMask.mergingClasses.contains(className)
        let mergeDropsMask = merges && table.kerasMajorVersion >= 3 && !inputs.allSatisfy(maskedValues.contains)
        // MultiHeadAttention's output carries the query's mask only.
        let attentionDropsMask = className == "MultiHeadAttention" && !(inputs.first.map(maskedValues.contains) ?? false)
        if !mergeDropsMask, !attentionDropsMask, Self.producesMask(className: className, config: config, readsMask: readsMask) {
            maskedValues.formUnion(outputs)
            let masks = inputs.compactMap { maskSources[$0] }
            let source: KerasMask? = switch className {
            case "Embedding": inputs.first.map { KerasMask(source: $0, value: 0) }
            case "Masking": KerasLayerTable.maskValue(config).flatMap { value in inputs.first.map { KerasMask(source: $0, value: value) } }
            default: merges && masks.contains { $0 != masks.first } ? nil : maskSource
            }
            for output in outputs { maskSources[output] = source }
        }
        let node = Node(name: nodeName, op: op, inputs: layerInputs, outputs: outputs, layer: recordName,
                        scope: scope, trainable: trainable)
        if let recordIndex { records[recordIndex].nodeIndices.append(graph.nodes.count) }
        graph.nodes.append(node)
        // The class the file names (`Activation`, not the `ReLU` Scion reads it as), for inspect.
        graph.info.nodeTypes[nodeName] = className
        return outputs
    }

    /// The masks a masked GlobalAveragePooling1D can read (`KerasImpliedMask`), for refusals.
    static let followedMasks = "Scion follows Embedding(mask_zero=True) through Dropout, Dense, LayerNormalization "
        + "and masked recurrent layers returning sequences"

    /// Whether Keras computes this layer differently when its input carries a mask and Scion does
    /// not apply it (the recurrent op and a masked GlobalAveragePooling1D apply it themselves, above).
    static func resultDependsOnMask(_ op: Op) -> Bool {
        switch op {
        case .globalPool(let a): a.kind == .average && a.maskValue == nil
        case .multiHeadAttention(let a): a.queryMaskValue == nil && a.valueMaskValue == nil
        case .attention: true
        default: false
        }
    }

    /// Whether a layer's output carries a Keras mask: `Embedding(mask_zero=True)` and `Masking` make
    /// one; a layer reading a masked value passes it on, except a recurrent layer returning only its
    /// last output and the layers that flatten or pool the time axis away.
    static func producesMask(className: String, config: JSON, readsMask: Bool) -> Bool {
        switch className {
        case "Embedding": return config["mask_zero"]?.bool ?? false
        case "Masking": return true
        case "SimpleRNN", "LSTM", "GRU", "Bidirectional":
            let inner = className == "Bidirectional" ? config["layer"]?["config"] : config
            return readsMask && (inner?["return_sequences"]?.bool ?? false)
        case "Flatten", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalAvgPool1D", "GlobalMaxPool1D":
            return false
        default: return readsMask
        }
    }

    /// The op for a layer, or an opaque op keeping its config when Scion does not interpret it.
    func layerOp(className: String, config: JSON, inputCount: Int, callArguments: JSON) -> Op {
        if className == "MultiHeadAttention", let op = KerasAttention.multiHeadAttention(config: config, layer: callArguments) {
            return op
        }
        if className == "Attention" || className == "AdditiveAttention",
           let op = KerasAttention.attention(className: className, config: config, layer: callArguments, inputCount: inputCount) {
            return op
        }
        do {
            if let op = try table.op(className: className, config: config) { return op }
            if let op = legacyOp(className: className, config: config, inputCount: inputCount, layer: callArguments) {
                return op
            }
        } catch {
            // Known class with values we do not interpret: keep it whole rather than guess.
        }
        return .opaque(OpaqueAttributes(domain: "keras", type: className, configuration: config.serialized,
                                        registration: Self.registration(callArguments),
                                        takesList: Self.passesList(callArguments)))
    }

    /// Whether the layer's first call passes its inputs as one list: Keras 3 writes the list as the
    /// first argument; Keras 2 writes one `[name, node, tensor, kwargs]` entry per list element (a
    /// second tensor given by keyword, as MultiHeadAttention's value, stays inside the one entry).
    static func passesList(_ layer: JSON) -> Bool {
        guard let call = layer["inbound_nodes"]?.array?.first else { return false }
        if let arguments = call["args"]?.array { return arguments.first?.array != nil }
        return (call.array?.count ?? 0) > 1
    }

    /// The module and registered name of a class Keras does not ship, as the config gives them:
    /// `.keras` in `module`/`registered_name`, `.h5` as `Package>Name` in `class_name`. Nil for Keras's
    /// own classes (module `keras.layers` or `keras.src...`, no package in the name).
    static func registration(_ layer: JSON) -> KerasRegistration? {
        let module = layer["module"]?.string
        if let registered = layer["registered_name"]?.string, registered.contains(">") || module == nil {
            return KerasRegistration(module: module, registeredName: registered)
        }
        if let className = layer["class_name"]?.string, className.contains(">") {
            return KerasRegistration(module: module, registeredName: className)
        }
        if let module, !module.hasPrefix("keras.") && module != "keras" {
            return KerasRegistration(module: module, registeredName: layer["registered_name"]?.string)
        }
        return nil
    }

    /// Keras 2 layers that hold Python code, recognised in the forms keras.applications writes:
    /// Inception-ResNet's residual scaling (a `Lambda` with a `scale` argument and two inputs), and
    /// `TFOpLambda` arithmetic with a constant (MobileNetV3's hard sigmoid).
    private func legacyOp(className: String, config: JSON, inputCount: Int, layer: JSON) -> Op? {
        switch className {
        case "Lambda":
            if inputCount == 2, let scale = config["arguments"]?["scale"]?.float {
                return .scaledResidual(ScaledResidualAttributes(scale: scale))
            }
        case "TFOpLambda", "SlicingOpLambda":
            if inputCount == 2, let function = config["function"]?.string {
                switch function {
                case "__operators__.add", "math.add": return .elementwise(.add)
                case "math.subtract": return .elementwise(.subtract)
                case "math.multiply": return .elementwise(.multiply)
                case "math.maximum": return .elementwise(.maximum)
                case "math.minimum": return .elementwise(.minimum)
                default: return nil
                }
            }
            // Keras 2 writes such a call flat: `[name, node, tensor, {"y": 3.0, ...}]`.
            guard inputCount == 1, let function = config["function"]?.string,
                  let call = layer["inbound_nodes"]?.array?.first?.array, call.count >= 4,
                  let constant = call[3]["y"]?.float else { return nil }
            switch function {
            case "__operators__.add", "math.add": return .rescaling(RescalingAttributes(scale: [1], offset: [constant]))
            case "math.subtract": return .rescaling(RescalingAttributes(scale: [1], offset: [-constant]))
            case "math.multiply": return .rescaling(RescalingAttributes(scale: [constant], offset: [0]))
            case "math.truediv" where constant != 0, "math.divide" where constant != 0:
                return .rescaling(RescalingAttributes(scale: [1 / constant], offset: [0]))
            default: return nil
            }
        default:
            return nil
        }
        return nil
    }

    /// Adds a graph input from an InputLayer config (`batch_input_shape` in Keras 2, `batch_shape`
    /// in Keras 3); returns its name.
    mutating func addGraphInput(layerConfig: JSON, scope: String, fallbackName: String) throws -> String {
        let name = Self.scoped(scope, layerConfig["name"]?.string ?? fallbackName)
        let shapeJSON = layerConfig["batch_input_shape"] ?? layerConfig["batch_shape"]
        var shape: Shape?
        if let dimensions = shapeJSON?.array {
            shape = Shape(try dimensions.map { dimension -> Int? in
                if dimension.isNull { return nil }
                guard let value = dimension.int, value >= 0 else {
                    throw configError(name, "input shape \(shapeJSON?.serialized ?? "") has an invalid dimension")
                }
                return value
            })
        }
        let dtype = Self.dtype(layerConfig["dtype"]) ?? .float32
        guard !graph.inputs.contains(where: { $0.name == name }) else {
            throw configError(name, "two inputs have this name")
        }
        let info = ValueInfo(name: name, shape: shape, dtype: dtype)
        graph.inputs.append(info)
        graph.values[name] = info
        usedNames.insert(name)
        return name
    }

    /// A dtype as Keras 2 (a string) or Keras 3 (a DTypePolicy dictionary) writes it.
    static func dtype(_ value: JSON?) -> DType? {
        guard let value else { return nil }
        if let name = value.string { return DType(kerasName: name) }
        if let name = value["config"]?["name"]?.string {
            // Mixed-precision policies (`mixed_float16`) compute in their second type.
            return DType(kerasName: name.hasPrefix("mixed_") ? String(name.dropFirst(6)) : name)
        }
        return nil
    }

    /// `input_layers` / `output_layers`: a list of `[name, node, tensor]`, or one such triple.
    static func tensorReferences(_ value: JSON?, subject: String, builder: KerasGraphBuilder) throws
        -> [KerasTensorReference]
    {
        guard let array = value?.array else { throw builder.configError(subject, "is missing or not a list") }
        if array.first?.string != nil { return [try reference(array, subject: subject, builder: builder)] }
        return try array.map { element in
            guard let triple = element.array else { throw builder.configError(subject, "entry \(element.serialized) is not [name, node, tensor]") }
            return try reference(triple, subject: subject, builder: builder)
        }
    }

    static func reference(_ triple: [JSON], subject: String, builder: KerasGraphBuilder) throws -> KerasTensorReference {
        guard triple.count >= 3, let layer = triple[0].string, let node = triple[1].int, let tensor = triple[2].int,
              node >= 0, tensor >= 0 else {
            throw builder.configError(subject, "tensor reference \(JSON.array(triple).serialized) is not [name, node, tensor]")
        }
        return KerasTensorReference(layer: layer, node: node, tensor: tensor)
    }

    /// The tensors each call of a Functional model's layer reads. Keras 2 writes
    /// `[[[name, node, tensor, kwargs], ...], ...]`; Keras 3 `[{"args": [...], "kwargs": {...}}, ...]`
    /// with `__keras_tensor__` objects anywhere inside the arguments.
    static func inboundCalls(_ layer: JSON, builder: KerasGraphBuilder) throws -> [[KerasTensorReference]] {
        let subject = layerName(layer)
        guard let calls = layer["inbound_nodes"]?.array else { return [] }
        return try calls.map { call in
            // Keras 2 writes a TFOpLambda call flat, as one `[name, node, tensor, kwargs]`.
            // Its second operand may be another tensor, as `{"y": [name, node, tensor]}`.
            if let flat = call.array, flat.first?.string != nil {
                var references = [try reference(flat, subject: subject, builder: builder)]
                if flat.count >= 4, let operand = flat[3]["y"]?.array, operand.first?.string != nil {
                    references.append(try reference(operand, subject: subject, builder: builder))
                }
                return references
            }
            if let tensors = call.array {
                var references: [KerasTensorReference] = []
                for tensor in tensors {
                    guard let triple = tensor.array else {
                        throw builder.configError(subject, "inbound tensor \(tensor.serialized) is not a list")
                    }
                    references.append(try reference(triple, subject: subject, builder: builder))
                    // tf_keras writes MultiHeadAttention(query, value, key) as the query with
                    // `{"value": [name, node, tensor], "key": ...}`: the later operands, in order.
                    for keyword in ["value"] + KerasAttention.tensorKeywords {
                        guard triple.count >= 4, let operand = triple[3][keyword]?.array, operand.first?.string != nil else { continue }
                        references.append(try reference(operand, subject: subject, builder: builder))
                    }
                }
                return references
            }
            var found: [KerasTensorReference] = []
            try collectTensors(call["args"] ?? .null, into: &found, subject: subject, builder: builder, depth: 0)
            // Tensors passed by keyword (MultiHeadAttention's key and attention mask), in input order.
            for keyword in KerasAttention.tensorKeywords + KerasOperationReader.tensorKeywords(className: layer["class_name"]?.string)
                + ["initial_state"] {
                // A recurrent layer's initial_state is a list of tensors.
                guard let tensor = call["kwargs"]?[keyword],
                      tensor["class_name"]?.string == "__keras_tensor__" || (keyword == "initial_state" && tensor.array != nil) else { continue }
                try collectTensors(tensor, into: &found, subject: subject, builder: builder, depth: 0)
            }
            return found
        }
    }

    /// The shapes Keras 3 records on the `__keras_tensor__` arguments of a layer's calls.
    static func declaredShapes(_ layer: JSON, into shapes: inout [KerasTensorReference: Shape]) {
        func visit(_ value: JSON, depth: Int) {
            guard depth < 16 else { return }
            if value["class_name"]?.string == "__keras_tensor__", let config = value["config"],
               let history = config["keras_history"]?.array, history.count >= 3,
               let layer = history[0].string, let node = history[1].int, let tensor = history[2].int,
               let lengths = config["shape"]?.array {
                let dimensions = lengths.map { $0.int.flatMap { $0 >= 0 ? $0 : nil } }
                shapes[KerasTensorReference(layer: layer, node: node, tensor: tensor)] = Shape(dimensions)
            } else if let array = value.array {
                for element in array { visit(element, depth: depth + 1) }
            } else if let object = value.object {
                for element in object.values { visit(element, depth: depth + 1) }
            }
        }
        for call in layer["inbound_nodes"]?.array ?? [] where call.object != nil {
            visit(call["args"] ?? .null, depth: 0)
            visit(call["kwargs"] ?? .null, depth: 0)
        }
    }

    private static func collectTensors(_ value: JSON, into found: inout [KerasTensorReference], subject: String,
                                       builder: KerasGraphBuilder, depth: Int) throws {
        guard depth < 16 else { return }
        if value["class_name"]?.string == "__keras_tensor__" {
            guard let history = value["config"]?["keras_history"]?.array else {
                throw builder.configError(subject, "a keras tensor has no keras_history")
            }
            found.append(try reference(history, subject: subject, builder: builder))
        } else if let array = value.array {
            for element in array { try collectTensors(element, into: &found, subject: subject, builder: builder, depth: depth + 1) }
        }
    }
}
