import ScionIR

/// ONNX RNN, LSTM and GRU with constant weights into the recurrent op in ONNX's time-major form,
/// its weights converted to Keras's layout once (`ONNXRecurrentMapping`): `W[d]`, `R[d]` transposed
/// and reordered; the biases `Wb + Rb` summed into Keras's one bias except for GRU with
/// `linear_before_reset=1`, which is Keras's `reset_after=True` with the two rows apart. Layout 1
/// (batch first) is the same op between Transposes. The optional inputs are read in
/// ONNXImporter+RecurrentStates.swift (zero states dropped, others read, full lengths). Anything
/// else stays opaque, the reason kept for `run` and the writers (`opaqueReason`).
extension ONNXImportSession {
    mutating func recurrent(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        let cell: RecurrentAttributes.Cell
        switch node.opType {
        case "RNN": cell = .simpleRNN
        case "LSTM": cell = .lstm
        default: cell = .gru
        }
        func refuse(_ reason: String) -> MappedNode? { opaqueReason = reason; return nil }
        let layout = intAttribute(node, "layout", 0)
        guard layout == 0 || layout == 1 else { return refuse("layout \(layout) is not ONNX's 0 or 1") }
        if node.attribute("clip") != nil { return refuse("clip is not supported: Keras's cells do not clip their gates") }
        if intAttribute(node, "input_forget", 0) != 0 { return refuse("input_forget=1 is not supported: Keras's LSTM has no coupled gates") }
        guard let wName = input(node, 1), let rName = input(node, 2), let w = try floats(wName), let r = try floats(rName),
              w.shape.count == 3, r.shape.count == 3 else {
            return refuse("weights W and R computed in the graph are not supported: they must be float32 constants")
        }
        let time = shape(x).flatMap { $0.rank == 3 ? $0.dimensions[layout == 0 ? 0 : 1] : nil }
        let optional = try recurrentOptionalInputs(node, cell: cell, time: time)
        if let reason = optional.refusal { return refuse(reason) }
        let (directions, gateWidth, features) = (w.shape[0], w.shape[1], w.shape[2])
        let units = intAttribute(node, "hidden_size", gateWidth / cell.gateCount)
        let direction = stringAttribute(node, "direction", "forward")
        guard units > 0, gateWidth == cell.gateCount * units, r.shape == [directions, gateWidth, units],
              directions == (direction == "bidirectional" ? 2 : 1), ["forward", "reverse", "bidirectional"].contains(direction)
        else { return refuse("W \(w.shape), R \(r.shape), hidden_size \(units) and direction '\(direction)' do not agree") }
        var bias: [Float]? = nil
        if let bName = input(node, 3) {
            guard let b = try floats(bName), b.shape == [directions, 2 * gateWidth] else {
                return refuse("bias B must be a float32 constant of shape [\(directions), \(2 * gateWidth)]")
            }
            bias = b.values
        }
        let resetAfter = cell == .gru && intAttribute(node, "linear_before_reset", 0) == 1
        var attributes = RecurrentAttributes(cell: cell, units: units, useBias: bias != nil, goBackwards: direction == "reverse",
                                             resetAfter: cell == .gru ? resetAfter : true,
                                             bidirectional: directions == 2 ? .concat : nil)
        attributes.timeMajor = true
        guard try recurrentActivations(node, into: &attributes) else {
            return refuse("activations \(spelledActivations(node)) have no Keras counterpart (LSTM's g and h must agree, both directions alike)")
        }

        var parameters: [(source: String, role: ParameterRole, shape: [Int]?)] = []
        let base = node.name.isEmpty ? "\(node.opType)_\(wName)" : node.name
        for (d, path) in attributes.cellPaths.enumerated() {
            func matrix(_ values: [Float], rows: Int) -> [Float] {
                let size = gateWidth * rows
                return ONNXRecurrentMapping.toKeras(Array(values[(d * size)..<((d + 1) * size)]), rows: rows, units: units, cell: cell)
            }
            parameters.append((addConstant("\(base)/\(path)/kernel", matrix(w.values, rows: features), shape: [features, gateWidth],
                                           from: wName),
                               .sublayer(path, .kernel), nil))
            parameters.append((addConstant("\(base)/\(path)/recurrent_kernel", matrix(r.values, rows: units), shape: [units, gateWidth],
                                           from: rName),
                               .sublayer(path, .recurrentKernel), nil))
            guard let bias, let bName = input(node, 3) else { continue }
            let row = Array(bias[(d * 2 * gateWidth)..<((d + 1) * 2 * gateWidth)])
            let inputBias = ONNXRecurrentMapping.vectorToKeras(Array(row.prefix(gateWidth)), units: units, cell: cell)
            let recurrentBias = ONNXRecurrentMapping.vectorToKeras(Array(row.suffix(gateWidth)), units: units, cell: cell)
            // Keras adds one bias where ONNX adds Wb + Rb outside any gate product (every case but
            // GRU's candidate with linear_before_reset=1, which keeps the two rows).
            let values = resetAfter ? inputBias + recurrentBias : zip(inputBias, recurrentBias).map(+)
            parameters.append((addConstant("\(base)/\(path)/bias", values, shape: attributes.biasShape, from: bName), .sublayer(path, .bias), nil))
        }
        var mapped = MappedNode(op: .recurrent(attributes), inputs: [x] + optional.states, parameters: parameters,
                                outputCount: attributes.outputCount)
        if layout == 1 { try batchFirst(node, &mapped, base: base) }
        return mapped
    }

    /// Layout 1 (`X [batch, time, features]`, `Y [batch, time, dirs, hidden]`, states `[batch, dirs,
    /// hidden]`): the time-major op between Transposes, which ONNX → Keras cancels against Keras's
    /// batch-major layer like any other (and the ONNX writer writes as layout 0, which onnxruntime runs).
    private mutating func batchFirst(_ node: ONNXNode, _ mapped: inout MappedNode, base: String) throws {
        mapped.inputs = try mapped.inputs.enumerated().map { position, name in
            let input = try value(name)
            let timeMajor = uniqueNodeName("\(base)/time_major\(position == 0 ? "" : "_state\(position)")")
            add(Node(name: timeMajor, op: .transpose(TransposeAttributes(permutation: [1, 0, 2])), inputs: [input], outputs: [timeMajor]))
            graph.info.nodeTypes[timeMajor] = "Transpose"
            return timeMajor
        }
        var outputs: [String] = []
        for slot in 0..<mapped.outputCount {
            let timeMajorOutput = "\(base)/time_major_output\(slot)"
            outputs.append(timeMajorOutput)
            // Only outputs something reads: an unread Transpose would keep ONNX → Keras from folding the layer.
            guard slot < node.outputs.count, !node.outputs[slot].isEmpty, consumed.contains(node.outputs[slot]) else { continue }
            let name = uniqueNodeName("\(base)/batch_first_output\(slot)")
            mapped.epilogue.append(Node(name: name, op: .transpose(TransposeAttributes(permutation: slot == 0 ? [2, 0, 1, 3] : [1, 0, 2])),
                                        inputs: [timeMajorOutput], outputs: [node.outputs[slot]]))
        }
        mapped.outputNames = outputs
    }

    /// The `activations` attribute as spelled, for a refusal.
    private func spelledActivations(_ node: ONNXNode) -> [String] {
        guard case .strings(let spelled)? = node.attribute("activations") else { return [] }
        return spelled.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Removes the nodes that only computed the zero initial states a recurrent node dropped (torch's
    /// Shape → Gather → Concat → ConstantOfShape), walking back while nothing else reads a value.
    mutating func removeDroppedInitialStates() {
        var pending = Array(droppedInitialStates)
        let outputs = Set(graph.outputs)
        while let value = pending.popLast() {
            guard !outputs.contains(value), !graph.nodes.contains(where: { $0.inputs.contains(value) }),
                  let position = graph.nodes.firstIndex(where: { $0.outputs.contains(value) }),
                  graph.nodes[position].outputs.allSatisfy({ output in !graph.nodes.contains { $0.inputs.contains(output) } })
            else { continue }
            let removed = graph.nodes.remove(at: position)
            pending += removed.inputs
        }
        graph.removeUnusedParameters()
    }

    /// A constant float tensor's values and shape; nil when not a float32 constant.
    private func floats(_ name: String) throws -> (values: [Float], shape: [Int])? {
        guard let constant = constants[name], constant.dtype == .float32 else { return nil }
        let bytes = try constant.storage.bytes(keep: true)
        guard bytes.count == constant.elementCount * 4 else { return nil }
        return (bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, constant.shape)
    }

    /// A converted weight as a new initializer-like constant, trainable as the ONNX one was.
    private mutating func addConstant(_ base: String, _ values: [Float], shape: [Int], from source: String) -> String {
        var name = base, counter = 1
        while constants[name] != nil || known[name] != nil { name = "\(base)#\(counter)"; counter += 1 }
        constants[name] = ImportedConstant(dtype: .float32, shape: shape, storage: TensorStorage(bytes: values.withUnsafeBytes { [UInt8]($0) }),
                                           fromInitializer: true)
        convertedFrom[name] = source
        return name
    }

    /// The `activations` attribute: per direction, RNN `f`; LSTM `f g h` (g and h must agree, as
    /// Keras has one `activation`); GRU `f g`; both directions alike. False when Scion cannot hold it.
    private func recurrentActivations(_ node: ONNXNode, into a: inout RecurrentAttributes) throws -> Bool {
        guard case .strings(let spelled)? = node.attribute("activations") else { return true }
        var alpha: ArraySlice<Float> = [], beta: ArraySlice<Float> = []
        if case .floats(let values)? = node.attribute("activation_alpha") { alpha = values[...] }
        if case .floats(let values)? = node.attribute("activation_beta") { beta = values[...] }
        var activations: [Activation] = []
        for name in spelled {
            guard let activation = ONNXRecurrentMapping.activation(String(decoding: name, as: UTF8.self), alpha: &alpha, beta: &beta) else {
                return false
            }
            activations.append(activation)
        }
        let perDirection = a.cell == .simpleRNN ? 1 : a.cell == .lstm ? 3 : 2
        guard activations.count == perDirection * a.cellPaths.count,
              activations.count == perDirection || Array(activations.prefix(perDirection)) == Array(activations.suffix(perDirection))
        else { return false }
        switch a.cell {
        case .simpleRNN:
            a.activation = activations[0]
        case .lstm:
            guard activations[1] == activations[2] else { return false }
            (a.recurrentActivation, a.activation) = (activations[0], activations[1])
        case .gru:
            (a.recurrentActivation, a.activation) = (activations[0], activations[1])
        }
        return true
    }
}
