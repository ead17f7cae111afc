import ScionIR

/// Turns a Keras model config (Sequential or Functional, with nested models and shared layers) into
/// graph nodes, flattening nested models into scoped names and recording every layer so that the
/// format's weights can be bound afterwards.
struct KerasGraphBuilder {
    let file: String
    let table: KerasLayerTable
    var graph: Graph
    var records: [KerasLayerRecord] = []
    /// Position of each record by scoped name.
    var recordIndices: [String: Int] = [:]
    /// Scoped names already used by nodes, to keep them unique.
    var usedNames: Set<String> = []
    /// Values that carry a Keras mask (from `Embedding(mask_zero=True)` or `Masking`, through the
    /// layers that pass it on): a recurrent layer reading one skips masked steps.
    var maskedValues: Set<String> = []
    /// For masked values, where their mask comes from: a step is kept where some value of `source`
    /// at that step differs from `value` (`tokens != 0` after `Embedding(mask_zero=True)`; the input
    /// against `mask_value` after `Masking`). A recurrent layer reading such a value reads `source` as
    /// its mask source (`RecurrentAttributes.maskValue`).
    var maskSources: [String: KerasMask] = [:]
    /// Shapes Keras 3 records for the tensors a call reads (`__keras_tensor__` configs), by value:
    /// the only word on the output shape of a layer Scion does not interpret (a Lambda, a user's class).
    var declaredShapes: [String: Shape] = [:]

    init(file: String, kerasMajorVersion: Int, modelName: String) {
        self.file = file
        self.table = KerasLayerTable(kerasMajorVersion: kerasMajorVersion)
        self.graph = Graph(name: modelName, layout: .channelsLast)
    }

    func configError(_ subject: String, _ reason: String) -> KerasError {
        KerasError(.invalidConfig, file: file, subject: subject, reason)
    }

    /// Builds the whole model from the top-level `{"class_name": ..., "config": ...}` object.
    mutating func buildTopLevel(_ model: JSON) throws {
        guard let className = model["class_name"]?.string, let config = model["config"] else {
            throw configError("model_config", "has no class_name/config")
        }
        guard kerasModelClassNames.contains(className) else {
            throw configError("model_config", "top-level class '\(className)' is not a Sequential or Functional model")
        }
        graph.name = config["name"]?.string ?? graph.name
        graph.metadata["keras.class_name"] = className
        let outputs = try buildModel(className: className, config: config, scope: "", objectPath: "",
                                     trainable: config["trainable"]?.bool ?? true, boundInputs: nil, depth: 0)
        graph.outputs = outputs
        removeUnreadMaskOperations()
        adoptDeclaredShapes()
    }

    /// Drops the `keras.ops` nodes Keras 3 writes to compute a mask (`ops.not_equal(tokens, 0)`,
    /// Masking's `ops.any`, a merging layer's `ops.logical_or` of its inputs' masks) once nothing
    /// reads them: Scion reads their only readers, the `mask=` keywords of recurrent layers and
    /// GlobalAveragePooling1D, from the Embedding instead, and Keras 3 rebuilds them on reload.
    private mutating func removeUnreadMaskOperations() {
        while true {
            let read = Set(graph.nodes.flatMap(\.inputs)).union(graph.outputs)
            let unread = graph.nodes.indices.filter { index in
                let node = graph.nodes[index]
                // Kept opaque (`ops.any`, a comparison with a constant), or read as IR logic (a
                // LogicalOr of two masks) and recorded under the call's class name.
                let maskCalls = ["NotEqual", "Any", "LogicalOr"]
                let isMaskCall: Bool
                if case .opaque(let a) = node.op {
                    isMaskCall = a.domain == "keras.ops" && maskCalls.contains(a.type)
                } else {
                    isMaskCall = maskCalls.map { "ops.\($0)" }.contains(graph.info.nodeTypes[node.name] ?? "")
                }
                // A call's literal made a constant (`not_equal(tokens, 0)`'s 0: KerasGraphBuilder+NumpyOperands)
                // goes with the call.
                var isLiteral = false
                if case .onnx(.constant) = node.op { isLiteral = graph.info.nodeTypes[node.name] == "Constant" }
                return (isMaskCall || isLiteral) && node.outputs.allSatisfy { !read.contains($0) }
            }
            guard !unread.isEmpty else { return }
            let removed = Set(unread)
            for index in unread {
                for output in graph.nodes[index].outputs { graph.info.nodeTypes[output] = nil }
                if case .onnx(.constant) = graph.nodes[index].op {
                    for parameter in graph.nodes[index].parameters { graph.parameters[parameter] = nil }
                    graph.info.nodeTypes[graph.nodes[index].name] = nil
                }
            }
            var newIndex: [Int: Int] = [:]
            for index in graph.nodes.indices where !removed.contains(index) { newIndex[index] = newIndex.count }
            graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
            for record in records.indices { records[record].nodeIndices = records[record].nodeIndices.compactMap { newIndex[$0] } }
        }
    }

    /// Gives opaque layers the output shapes their readers' calls declare, so values after a Lambda or
    /// a user's layer keep their shapes for inspect, surgery and the writers.
    private mutating func adoptDeclaredShapes() {
        for index in graph.nodes.indices {
            guard case .opaque(var a) = graph.nodes[index].op, a.outputShapes == nil else { continue }
            let shapes = graph.nodes[index].outputs.map { declaredShapes[$0] }
            guard shapes.allSatisfy({ $0 != nil }) else { continue }
            a.outputShapes = shapes
            graph.nodes[index].op = .opaque(a)
        }
    }

    /// Builds one (possibly nested) model; returns the names of its output values.
    /// `boundInputs` are the outer values feeding a nested model; nil at top level, where the
    /// model's input layers become graph inputs.
    mutating func buildModel(className: String, config: JSON, scope: String, recordScope: String? = nil,
                             objectPath: String, trainable: Bool, boundInputs: [String]?, depth: Int) throws
        -> [String]
    {
        let recordScope = recordScope ?? scope
        guard depth < 32 else { throw configError(scope, "models nested more than 32 deep") }
        guard let layers = config["layers"]?.array else {
            throw configError(scope.isEmpty ? "model_config" : scope, "model config has no 'layers' list")
        }
        if className == "Sequential" {
            return try buildSequential(layers: layers, config: config, scope: scope, recordScope: recordScope,
                                       objectPath: objectPath,
                                       trainable: trainable, boundInputs: boundInputs, depth: depth)
        }
        return try buildFunctional(layers: layers, config: config, scope: scope, recordScope: recordScope,
                                   objectPath: objectPath,
                                   trainable: trainable, boundInputs: boundInputs, depth: depth)
    }

    /// Names each layer's weight group the way Keras 3 does: snake-case class name, `_1`, `_2`...
    /// for repeats within one model.
    static func objectPaths(for layers: [JSON], under parent: String) -> [String] {
        var used: [String: Int] = [:]
        return layers.map { layer in
            var name = kerasSnakeCase(layer["class_name"]?.string ?? "layer")
            if let count = used[name] {
                used[name] = count + 1
                name += "_\(count + 1)"
            } else {
                used[name] = 0
            }
            return parent.isEmpty ? "layers/\(name)" : "\(parent)/layers/\(name)"
        }
    }

    // MARK: Sequential

    private mutating func buildSequential(layers: [JSON], config: JSON, scope: String, recordScope: String,
                                          objectPath: String,
                                          trainable: Bool, boundInputs: [String]?, depth: Int) throws -> [String] {
        let paths = Self.objectPaths(for: layers, under: objectPath)
        var current: String
        var remaining = Array(zip(layers, paths))
        if let boundInputs {
            guard boundInputs.count == 1 else {
                throw configError(scope, "a Sequential model takes one input, got \(boundInputs.count)")
            }
            current = boundInputs[0]
            if remaining.first?.0["class_name"]?.string == "InputLayer" { remaining.removeFirst() }
        } else if let first = remaining.first, first.0["class_name"]?.string == "InputLayer" {
            current = try addGraphInput(layerConfig: first.0["config"] ?? .null, scope: scope, fallbackName: "input")
            remaining.removeFirst()
        } else {
            // Keras 2 puts the input shape on the first layer; Keras 3 in `build_input_shape`.
            let firstConfig = remaining.first?.0["config"] ?? .null
            let firstName = firstConfig["name"]?.string ?? "input"
            var inputConfig: [String: JSON] = ["name": .string("\(firstName)_input")]
            inputConfig["batch_input_shape"] = firstConfig["batch_input_shape"] ?? firstConfig["batch_shape"]
                ?? config["build_input_shape"]
            inputConfig["dtype"] = firstConfig["dtype"]
            current = try addGraphInput(layerConfig: .object(inputConfig), scope: scope, fallbackName: "input")
        }
        for (layer, path) in remaining {
            let outputs = try addLayerCall(layer, inputs: [current], scope: scope, recordScope: recordScope,
                                           objectPath: path,
                                           parentTrainable: trainable, depth: depth, callIndex: nil)
            guard outputs.count == 1 else {
                throw configError(layer["config"]?["name"]?.string ?? "?", "a layer in a Sequential model must have one output")
            }
            current = outputs[0]
        }
        return [current]
    }

    // MARK: Functional

    private mutating func buildFunctional(layers: [JSON], config: JSON, scope: String, recordScope: String,
                                          objectPath: String,
                                          trainable: Bool, boundInputs: [String]?, depth: Int) throws -> [String] {
        let paths = Self.objectPaths(for: layers, under: objectPath)
        var tensors: [KerasTensorReference: String] = [:]
        let inputReferences = try Self.tensorReferences(config["input_layers"], subject: scope.isEmpty ? "input_layers" : scope, builder: self)
        let outputReferences = try Self.tensorReferences(config["output_layers"], subject: scope.isEmpty ? "output_layers" : scope, builder: self)
        if let boundInputs, boundInputs.count != inputReferences.count {
            throw configError(scope, "model takes \(inputReferences.count) inputs but is called with \(boundInputs.count)")
        }
        // Input layers first: graph inputs at top level, the caller's values when nested.
        for (position, reference) in inputReferences.enumerated() {
            if let boundInputs {
                tensors[reference] = boundInputs[position]
            } else {
                let layer = layers.first { ($0["config"]?["name"]?.string ?? $0["name"]?.string) == reference.layer }
                let layerConfig = layer?["config"] ?? .object(["name": .string(reference.layer)])
                tensors[reference] = try addGraphInput(layerConfig: layerConfig, scope: scope, fallbackName: reference.layer)
            }
        }
        // Every call of every layer, emitted once all the tensors it reads exist: configs list layers
        // roughly in order, but shared layers and nested models can make a call wait for later ones.
        // A call waiting on a tensor is parked under it and retried when it appears, so hostile
        // orderings cost linear time, not quadratic.
        var calls: [(layer: Int, call: Int, inputs: [KerasTensorReference])] = []
        var declared: [KerasTensorReference: Shape] = [:]
        for (index, layer) in layers.enumerated() where layer["class_name"]?.string != "InputLayer" {
            for (call, references) in try Self.inboundCalls(layer, builder: self).enumerated() {
                calls.append((index, call, references))
            }
            Self.declaredShapes(layer, into: &declared)
        }
        let nodeOffsets = Self.nodeIndexOffsets(layers: layers, calls: calls.map { ($0.layer, $0.inputs) },
                                                outputs: outputReferences)
        var parked: [KerasTensorReference: [Int]] = [:]
        var emitted = 0
        var queue = Array(calls.indices)
        var position = 0
        while position < queue.count {
            let item = calls[queue[position]]
            position += 1
            if let missing = item.inputs.first(where: { tensors[$0] == nil }) {
                parked[missing, default: []].append(queue[position - 1])
                continue
            }
            let layer = layers[item.layer]
            let name = Self.layerName(layer)
            let outputs = try addLayerCall(layer, inputs: item.inputs.compactMap { tensors[$0] }, scope: scope,
                                           recordScope: recordScope, objectPath: paths[item.layer],
                                           parentTrainable: trainable, depth: depth, callIndex: item.call)
            emitted += 1
            let node = item.call + (nodeOffsets[name] ?? 0)
            for (tensorIndex, value) in outputs.enumerated() {
                let reference = KerasTensorReference(layer: name, node: node, tensor: tensorIndex)
                tensors[reference] = value
                if let waiting = parked.removeValue(forKey: reference) {
                    queue.insert(contentsOf: waiting, at: position)
                }
            }
        }
        for (reference, shape) in declared {
            if let value = tensors[reference] { declaredShapes[value] = shape }
        }
        if emitted < calls.count, let (reference, waiting) = parked.first, let first = waiting.first {
            throw configError(Self.scoped(scope, Self.layerName(layers[calls[first].layer])),
                              "reads \(reference.layer)[\(reference.node)][\(reference.tensor)], which no layer in the model produces")
        }
        return try outputReferences.map { reference in
            guard let value = tensors[reference] else {
                throw configError(Self.scoped(scope, reference.layer), "is a model output but no such layer output exists")
            }
            return value
        }
    }

    /// Keras 2 counts a nested Functional model's own construction as its node 0, so configs refer to
    /// its first call as node 1. Detected per layer: references past its number of calls.
    static func nodeIndexOffsets(layers: [JSON], calls: [(layer: Int, inputs: [KerasTensorReference])],
                                 outputs: [KerasTensorReference]) -> [String: Int] {
        var callCounts: [String: Int] = [:]
        for call in calls { callCounts[layerName(layers[call.layer]), default: 0] += 1 }
        var offsets: [String: Int] = [:]
        for reference in calls.flatMap(\.inputs) + outputs {
            if let count = callCounts[reference.layer], reference.node == count {
                offsets[reference.layer] = 1
            }
        }
        return offsets
    }

    static func scoped(_ scope: String, _ name: String) -> String { scope.isEmpty ? name : "\(scope)/\(name)" }

    static func layerName(_ layer: JSON) -> String {
        layer["name"]?.string ?? layer["config"]?["name"]?.string ?? "?"
    }
}

/// A Keras mask Scion can compute: the steps of `source` (`[batch, time, ...]`) where some value
/// differs from `value`.
struct KerasMask: Equatable {
    var source: String
    var value: Float
}
