import ScionIR

/// One direction's weights in ONNX's layout (`ONNXRecurrentMapping`): `W [G*units, features]`,
/// `R [G*units, units]`, `B [2*G*units]` (input bias, then recurrent bias).
struct ONNXRecurrentWeights {
    var w: [Float], r: [Float], b: [Float]
}

/// The recurrent op as one ONNX RNN, LSTM or GRU node (`bidirectional` for Bidirectional), in
/// layout 0 (onnxruntime refuses layout 1): a Transpose to `[time, batch, features]` before it, and
/// its `Y [time, directions, batch, units]`, `Y_h`, `Y_c [directions, batch, units]` rearranged into
/// Keras's outputs after it. Weights are converted once, here (`ONNXRecurrentMapping`). A layer
/// reading a Keras mask is ONNXGraphBuilder+MaskedRecurrent.swift.
extension ONNXGraphBuilder {
    mutating func recurrent(_ node: Node, _ a: RecurrentAttributes, parameters: [Parameter], inputShapes: [Shape?]) throws {
        if a.bidirectional != nil && a.goBackwards {
            throw unsupported(node, "Bidirectional around a layer with go_backwards=True has no ONNX direction")
        }
        guard let input = node.inputs.first else { throw unsupported(node, "has no input") }
        func floats(_ role: ParameterRole) throws -> (values: [Float], shape: [Int]) {
            guard let parameter = parameters.first(where: { $0.role == role }), parameter.dtype == .float32 else {
                throw unsupported(node, "has no float32 '\(role)' weights")
            }
            let bytes = try parameter.storage.bytes(keep: false)
            return (bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, parameter.shape)
        }
        let units = a.units, cell = a.cell, gateWidth = cell.gateCount * units
        var weights: [ONNXRecurrentWeights] = []
        var features = 0
        for path in a.cellPaths {
            let kernel = try floats(.sublayer(path, .kernel))
            features = kernel.shape.first ?? 0
            var inputBias = [Float](repeating: 0, count: gateWidth), recurrentBias = inputBias
            if a.useBias {
                let bias = try floats(.sublayer(path, .bias)).values
                inputBias = Array(bias.prefix(gateWidth))
                if bias.count == 2 * gateWidth { recurrentBias = Array(bias.suffix(gateWidth)) }
            }
            weights.append(ONNXRecurrentWeights(
                w: ONNXRecurrentMapping.toONNX(kernel.values, rows: features, units: units, cell: cell),
                r: ONNXRecurrentMapping.toONNX(try floats(.sublayer(path, .recurrentKernel)).values, rows: units, units: units, cell: cell),
                b: ONNXRecurrentMapping.vectorToONNX(inputBias, units: units, cell: cell)
                    + ONNXRecurrentMapping.vectorToONNX(recurrentBias, units: units, cell: cell)))
        }
        let frozen = parameters.allSatisfy { !$0.trainable }
        if a.maskValue != nil {
            guard a.initialStateCount == 0 else {
                throw unsupported(node, "a masked \(a.cell.rawValue) with Keras's initial_state is not written to ONNX yet")
            }
            try maskedRecurrent(node, a, weights, features: features, inputShapes: inputShapes, frozen: frozen)
            return
        }
        let directions = weights.count
        let name = node.name
        // ONNX's form reads [time, batch, features] already; Keras's is transposed to it.
        let sequence = a.timeMajor ? input
            : intermediate("Transpose", name: "\(name)/to_time_major", inputs: [input], attributes: [.ints("perm", [1, 0, 2])])
        if a.timeMajor {
            try recurrentNode(node, a, weights, features: features, sequence: sequence, outputs: node.outputs,
                              direction: directions == 2 ? "bidirectional" : a.goBackwards ? "reverse" : "forward", frozen: frozen)
            return
        }
        let (y, yH, yC) = (uniqueName("\(name)/Y"), uniqueName("\(name)/Y_h"), uniqueName("\(name)/Y_c"))
        // Keras's initial_state, h (and c) `[batch, units]` per direction: ONNX's initial_h (and
        // initial_c) stack the directions, `[directions, batch, units]`.
        let states = node.inputs.suffix(a.initialStateCount)
        let initialStates: [String] = (0..<(states.isEmpty ? 0 : cell.stateCount)).map { kind in
            let parts = (0..<directions).map { direction in
                intermediate("Unsqueeze", name: "\(name)/initial_state", inputs: [
                    states[states.startIndex + direction * cell.stateCount + kind], constant("\(name)/initial_state/axes", int64s: [0])])
            }
            return parts.count == 1 ? parts[0] : intermediate("Concat", name: "\(name)/initial_state", inputs: parts, attributes: [.int("axis", 0)])
        }
        try recurrentNode(node, a, weights, features: features, sequence: sequence, outputs: cell == .lstm ? [y, yH, yC] : [y, yH],
                          direction: directions == 2 ? "bidirectional" : a.goBackwards ? "reverse" : "forward", frozen: frozen,
                          initialStates: initialStates)

        // Per direction, `[batch, units]` or `[batch, time, units]` in Keras's order.
        var outputs = node.outputs.makeIterator()
        guard let first = outputs.next() else { throw unsupported(node, "has no output") }
        if a.returnSequences {
            // [time, dir, batch, units] -> [batch, time, dir, units]: concat is then a reshape.
            var byBatch = intermediate("Transpose", name: name, inputs: [y], attributes: [.ints("perm", [2, 0, 1, 3])])
            if directions == 1 && a.goBackwards {
                // ONNX puts a reverse direction's outputs at their time steps; Keras returns them in
                // the order it computed them.
                byBatch = intermediate("Slice", name: name, inputs: [
                    byBatch, constant("\(name)/starts", int64s: [-1]), constant("\(name)/ends", int64s: [Int64.min]),
                    constant("\(name)/axes", int64s: [1]), constant("\(name)/steps", int64s: [-1])])
            }
            try mergeDirections(node, a, byBatch, axis: 2, shape: [0, 0, -1], first: first, second: { outputs.next() })
        } else {
            let byBatch = intermediate("Transpose", name: name, inputs: [yH], attributes: [.ints("perm", [1, 0, 2])])
            try mergeDirections(node, a, byBatch, axis: 1, shape: [0, -1], first: first, second: { outputs.next() })
        }
        guard a.returnState else { return }
        for direction in 0..<directions {
            for state in cell == .lstm ? [yH, yC] : [yH] {
                guard let output = outputs.next() else { throw unsupported(node, "has fewer outputs than its states") }
                add("Gather", name: name, inputs: [state, constant("\(name)/direction", int64s: [Int64(direction)], dimensions: [])],
                    output: output, attributes: [.int("axis", 0)])
            }
        }
    }

    /// One ONNX RNN, LSTM or GRU node over `sequence` (`[time, batch, features]`) with `weights`
    /// stacked as its directions; it keeps the layer's name, the nodes around it are named after it.
    mutating func recurrentNode(_ node: Node, _ a: RecurrentAttributes, _ weights: [ONNXRecurrentWeights], features: Int,
                                sequence: String, outputs: [String], direction: String, frozen: Bool,
                                initialStates: [String]? = nil) throws {
        let name = node.name, mainName = uniqueNodeName(name)
        let d = Int64(weights.count), g = Int64(a.cell.gateCount * a.units)
        var attributes: [ONNXAttribute] = [.int("hidden_size", a.units), .string("direction", direction)]
        if a.cell == .gru { attributes.append(.int("linear_before_reset", a.resetAfter ? 1 : 0)) }
        attributes += try recurrentActivations(node, a, directions: weights.count)
        var inputs = [sequence, constant("\(name)/W", floats: weights.flatMap(\.w), dimensions: [d, g, Int64(features)]),
                      constant("\(name)/R", floats: weights.flatMap(\.r), dimensions: [d, g, Int64(a.units)])]
        // B is optional in ONNX (zeros): a layer without bias writes none, and reads back without.
        if a.useBias { inputs.append(constant("\(name)/B", floats: weights.flatMap(\.b), dimensions: [d, 2 * g])) }
        if frozen { frozenConstants += inputs.dropFirst() }
        // ONNX's initial_h (and initial_c), after B (empty when absent) and sequence_lens: in ONNX's
        // form read as given, in Keras's stacked from its initial_state.
        let initial = initialStates ?? (a.timeMajor ? Array(node.inputs.dropFirst()) : [])
        if !initial.isEmpty {
            if !a.useBias { inputs.append("") }
            inputs += [""] + initial
        }
        nodes.append(ONNXNode(name: mainName, opType: ONNXRecurrentMapping.onnxType(a.cell), inputs: inputs,
                              outputs: outputs, attributes: attributes))
    }

    /// Keras's merge of the directions found along `axis` of `value`: concat by reshaping (the
    /// directions are adjacent to the units), the others one direction at a time.
    mutating func mergeDirections(_ node: Node, _ a: RecurrentAttributes, _ value: String, axis: Int, shape: [Int64],
                                          first: String, second: () -> String?) throws {
        let name = node.name
        func direction(_ index: Int64, output: String? = nil) -> String {
            let indexName = constant("\(name)/direction", int64s: [index], dimensions: [])
            if let output { return add("Gather", name: name, inputs: [value, indexName], output: output, attributes: [.int("axis", axis)]) }
            return intermediate("Gather", name: name, inputs: [value, indexName], attributes: [.int("axis", axis)])
        }
        switch a.bidirectional {
        case nil, .concat?:
            add("Reshape", name: name, inputs: [value, constant("\(name)/shape", int64s: shape)], output: first)
        case .separate?:
            _ = direction(0, output: first)
            guard let other = second() else { throw unsupported(node, "has one output for two directions") }
            _ = direction(1, output: other)
        case .sum?:
            add("Add", name: name, inputs: [direction(0), direction(1)], output: first)
        case .mul?:
            add("Mul", name: name, inputs: [direction(0), direction(1)], output: first)
        case .ave?:
            let sum = intermediate("Add", name: name, inputs: [direction(0), direction(1)])
            add("Mul", name: name, inputs: [sum, scalar("\(name)/half", 0.5)], output: first)
        }
    }

    /// The `activations` attribute (with alphas and betas) when the cell's are not ONNX's defaults
    /// (Sigmoid gates, Tanh elsewhere), per direction: RNN `f`; LSTM `f g h`; GRU `f g`.
    private func recurrentActivations(_ node: Node, _ a: RecurrentAttributes, directions: Int) throws -> [ONNXAttribute] {
        let perDirection: [Activation] = switch a.cell {
        case .simpleRNN: [a.activation]
        case .lstm: [a.recurrentActivation, a.activation, a.activation]
        case .gru: [a.recurrentActivation, a.activation]
        }
        let defaults: [Activation] = a.cell == .simpleRNN ? [.tanh] : a.cell == .lstm ? [.sigmoid, .tanh, .tanh] : [.sigmoid, .tanh]
        guard perDirection != defaults else { return [] }
        var (names, alphas, betas) = ([String](), [Float](), [Float]())
        for _ in 0..<directions {
            for activation in perDirection {
                guard let spelled = ONNXRecurrentMapping.onnxActivation(activation) else {
                    throw unsupported(node, "\(a.cell.rawValue) activation \(activation.displayName) has no ONNX \(ONNXRecurrentMapping.onnxType(a.cell)) equivalent")
                }
                names.append(spelled.name); alphas += spelled.alpha; betas += spelled.beta
            }
        }
        var attributes = [ONNXAttribute(name: "activations", value: .strings(names.map { Array($0.utf8) }))]
        if !alphas.isEmpty { attributes.append(ONNXAttribute(name: "activation_alpha", value: .floats(alphas))) }
        if !betas.isEmpty { attributes.append(ONNXAttribute(name: "activation_beta", value: .floats(betas))) }
        return attributes
    }
}
