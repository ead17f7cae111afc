import ScionIR

extension KerasGraphBuilder {
    /// An operation node (a `keras.ops` call), not a layer. `.keras` configs say so in `module`
    /// (`keras.src.ops.numpy`, `.nn`, `.math`, `.core`). Keras 3's legacy `.h5` configs drop the
    /// module, but still write the call in Keras 3's form (`{"args": [...], "kwargs": {...}}`), and
    /// an operation's config holds only its name and settings where every layer's records
    /// `trainable`. A call whose first argument is a list is read as the merge layer of that name
    /// either way: `keras.ops.concatenate([x, y])` computes what the Concatenate layer does.
    static func isOperationNode(_ layer: JSON) -> Bool {
        if let module = layer["module"]?.string {
            return module.hasPrefix("keras.src.ops") || module.hasPrefix("keras.ops")
        }
        guard let call = layer["inbound_nodes"]?.array?.first, let arguments = call["args"]?.array,
              arguments.first?.array == nil else { return false }
        return layer["config"]?["trainable"] == nil
    }

    /// Adds one operation node as the IR ops `KerasOperationReader` reads it into; returns its output.
    /// A node read as several ops (an indexing as Slice, Squeeze, Unsqueeze) names the last one after
    /// the Keras node, so later references find it, and the others `<name>_slice`, `<name>_squeeze`.
    mutating func addOperationCall(_ layer: JSON, className: String, inputs: [String], scope: String, layer recordName: String,
                                   call: Int, trainable: Bool, recordIndex: Int?) throws -> [String] {
        let name = Self.scoped(scope, call > 0 ? "\(Self.layerName(layer))#\(call)" : Self.layerName(layer))
        let callData = layer["inbound_nodes"]?.array?[call]
        let module = layer["module"]?.string ?? "keras.src.ops"
        // An operation Scion does not read is kept as read, like a layer it does not interpret:
        // inspect lists it and surgery can cut it away (Keras 3 computes Embedding(mask_zero=True)'s
        // mask as `ops.not_equal(tokens, 0)`); `run`, ONNX and the Keras writers refuse it by name.
        func unread(_ reason: String) -> [String] {
            var nodeName = name
            while usedNames.contains(nodeName) { nodeName += "'" }
            usedNames.insert(nodeName)
            let config = layer["config"] ?? .object([:])
            let op = Op.opaque(OpaqueAttributes(domain: "keras.ops", type: className, configuration: config.serialized,
                                                unreadReason: "(\(module)) \(reason)"))
            if let recordIndex { records[recordIndex].nodeIndices.append(graph.nodes.count) }
            graph.nodes.append(Node(name: nodeName, op: op, inputs: inputs, outputs: [nodeName], layer: recordName,
                                    scope: scope, trainable: trainable))
            graph.info.nodeTypes[nodeName] = "ops.\(className)"
            return [nodeName]
        }
        var arguments = callData?["args"]?.array ?? []
        if let keywords = callData?["kwargs"]?.object, !keywords.isEmpty {
            // keras.ops.dot_product_attention records bias, mask and scale by keyword: its positional 4th to 6th.
            guard let positional = KerasOperationReader.positionalArguments(className: className, arguments, keywords) else {
                return unread("is called with keyword arguments \(keywords.keys.sorted()), which Scion does not read")
            }
            arguments = positional
        }
        var inputs = inputs
        let literal: NumpyLiteral?
        let plan: KerasOperationReader.Plan
        do {
            literal = try numpyOperand(arguments, className: className)
            if let literal { arguments[literal.position] = literal.placeholder }
            plan = try KerasOperationReader(className: className, config: layer["config"] ?? .object([:]), arguments: arguments).plan()
        } catch let error as KerasOperationReader.Refusal {
            return unread(error.reason)
        }
        // The literal is named after the node that reads it, the plan's first (NotEqual is read as
        // Equal then Not: `<name>_equal`, which the writer writes with the array).
        if let literal, let first = plan.ops.first {
            inputs = addLiteral(literal, readBy: Self.stepName(name, first, isLast: plan.ops.count == 1), inputs: inputs, scope: scope)
        }
        guard plan.firstInputs.allSatisfy(inputs.indices.contains) else {
            return unread("reads \(plan.firstInputs.count) tensors, the config names \(inputs.count)")
        }
        var current = plan.firstInputs.map { inputs[$0] }
        for (step, op) in plan.ops.enumerated() {
            let isLast = step == plan.ops.count - 1
            var nodeName = Self.stepName(name, op, isLast: isLast)
            while usedNames.contains(nodeName) { nodeName += "'" }
            usedNames.insert(nodeName)
            let node = Node(name: nodeName, op: op, inputs: current, outputs: [nodeName],
                            layer: isLast ? recordName : nodeName, scope: scope, trainable: trainable)
            if isLast, let recordIndex { records[recordIndex].nodeIndices.append(graph.nodes.count) }
            graph.nodes.append(node)
            // `ops.Maximum`, not the `Maximum` merge layer the class name also names (inspect shows it).
            graph.info.nodeTypes[nodeName] = "ops.\(className)"
            current = [nodeName]
        }
        return current
    }

    /// The IR node of one op of a call's plan: the last named after the Keras node, so later
    /// references find it, the others `<name>_<op>`.
    static func stepName(_ name: String, _ op: Op, isLast: Bool) -> String {
        isLast ? name : "\(name)_\(kerasSnakeCase(op.typeName))"
    }
}
