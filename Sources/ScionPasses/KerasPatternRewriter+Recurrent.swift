import ScionIR

extension KerasPatternRewriter {
    /// An ONNX RNN/LSTM/GRU read in its time-major form, with the Transposes and Reshapes that make
    /// it a Keras layer around it (what Scion's ONNX writer emits), is that Keras layer:
    ///
    /// ```
    ///  x [N, T, F] → Transpose [1, 0, 2] → recurrent (time-major) ─ Y   → Transpose [2, 0, 1, 3] (→ Slice reversing T)
    ///                                                                    → Reshape [0, 0, -1]        = the sequence
    ///                                                             ─ Y_h → Transpose [1, 0, 2] → Reshape [0, -1]
    ///                                                                                                = the last output
    ///                                                             ─ Y_h, Y_c → Gather (axis 0, direction d) = states
    ///                                                               (one direction: or Squeeze [0])
    ///    →  recurrent (Keras's form) on x, return_sequences / return_state / merge mode as read
    ///  (the sum, mul, ave and None merges: a Gather per direction instead of the Reshape, then Add,
    ///  Mul, Add and Mul by 0.5, or nothing)
    /// ```
    ///
    /// Every value in between must have no other reader; any other arrangement (a sum of the
    /// directions, ONNX's outputs read directly) is left in ONNX's form, which the Keras writer
    /// refuses by name.
    mutating func foldRecurrent(_ position: Int) throws {
        let node = graph.nodes[position]
        guard case .recurrent(var a) = node.op, a.timeMajor, let input = node.inputs.first,
              let transposer = producers[input], soleReader(of: input) == position,
              case .transpose(let toTimeMajor) = graph.nodes[transposer].op, toTimeMajor.permutation == [1, 0, 2],
              let x = graph.nodes[transposer].inputs.first, node.outputs.count == a.outputCount else { return }
        let directions = a.cellPaths.count
        var folded = [graph.nodes[transposer].name]
        var outputs: [String] = []
        // Initial states (ONNX's initial_h, initial_c) become Keras's initial_state when they stack
        // `[batch, units]` values (what Scion's ONNX writer emits); any other form stays ONNX's.
        var initialStates: [String] = []
        if node.inputs.count > 1 {
            guard node.inputs.count == 1 + a.cell.stateCount else { return }
            var byKind: [[String]] = []
            for value in node.inputs.dropFirst() {
                guard let stacked = stackedDirections(value, directions: directions) else { return }
                byKind.append(stacked.values)
                folded += stacked.folded
            }
            initialStates = (0..<directions).flatMap { direction in byKind.map { $0[direction] } }
            a.readsInitialStates = true
        }
        // Y: the whole sequence.
        let y = node.outputs[0]
        if consumers[y]?.isEmpty == false || graphOutputs.contains(y) {
            guard let step = soleReader(of: y), case .transpose(let t) = graph.nodes[step].op, t.permutation == [2, 0, 1, 3],
                  var last = graph.nodes[step].outputs.first else { return }
            folded.append(graph.nodes[step].name)
            if directions == 1 && a.goBackwards {
                // Keras returns a reversed reader's outputs in the order it computed them.
                guard let flip = soleReader(of: last), case .onnx(.slice(let s)) = graph.nodes[flip].op, s.axes == [1], s.steps == [-1],
                      s.starts == [-1], let flipped = graph.nodes[flip].outputs.first else { return }
                folded.append(graph.nodes[flip].name)
                last = flipped
            }
            guard let merged = try mergedDirections(last, axis: 2, flattened: [0, 0, -1], directions: directions, units: a.units) else { return }
            folded += merged.folded
            outputs = merged.outputs
            a.bidirectional = directions == 2 ? merged.merge : nil
            a.returnSequences = true
        }
        // Y_h and Y_c: the last output (through a Transpose and Reshape) and the states (Gathers).
        var states: [Int: String] = [:]
        for (slot, value) in node.outputs.enumerated().dropFirst() {
            if graphOutputs.contains(value) { return }
            for reader in consumers[value] ?? [] {
                let readerNode = graph.nodes[reader]
                if case .transpose(let t) = readerNode.op, slot == 1, outputs.isEmpty, t.permutation == [1, 0, 2],
                   let transposed = readerNode.outputs.first,
                   let merged = try mergedDirections(transposed, axis: 1, flattened: [0, -1], directions: directions, units: a.units) {
                    folded += [readerNode.name] + merged.folded
                    outputs = merged.outputs
                    a.bidirectional = directions == 2 ? merged.merge : nil
                } else if case .onnx(.gather(let g)) = readerNode.op, g.axis == 0, readerNode.inputs.count == 2,
                          let index = try constantIndex(readerNode.inputs[1]), case let direction = index < 0 ? index + directions : index,
                          (0..<directions).contains(direction),
                          let state = readerNode.outputs.first, states[direction * a.cell.stateCount + slot - 1] == nil {
                    folded.append(readerNode.name)
                    states[direction * a.cell.stateCount + slot - 1] = state
                } else if case .onnx(.squeeze(let s)) = readerNode.op, directions == 1, s.axes == [0],
                          let state = readerNode.outputs.first, states[slot - 1] == nil {
                    // One direction's states squeezed (torch's `h_n.squeeze(0)`): that direction's.
                    folded.append(readerNode.name)
                    states[slot - 1] = state
                } else {
                    return
                }
            }
        }
        a.timeMajor = false
        a.returnState = !states.isEmpty
        // Outputs nobody reads still get a value each, so the states keep their positions.
        if outputs.isEmpty { outputs = ["\(node.name)#output"] }
        if a.returnState {
            outputs += (0..<(a.cell.stateCount * directions)).map { states[$0] ?? "\(node.name)#state\($0)" }
        }
        graph.nodes[position].op = .recurrent(a)
        graph.nodes[position].inputs = [x] + initialStates
        graph.nodes[position].outputs = outputs
        removed.formUnion(folded)
    }

    /// torch's encoder–decoder (`decoder(y, encoder_states)`): a one-direction layer's initial states
    /// are another's `Y_h` (and `Y_c`) `[1, batch, units]` as they are. Spelled here as Scion's ONNX
    /// writer spells Keras's `initial_state`, the same numbers: the encoder's state squeezed to
    /// `[batch, units]` (its Keras state, `foldRecurrent` folds the Squeeze) and unsqueezed again
    /// for the decoder (`stackedDirections` folds that into the decoder's `initial_state`).
    /// True when it rewrote any.
    mutating func unsqueezePassedStates() -> Bool {
        index()
        var nodes: [Node] = [], changed = false, bypassed: Set<String> = []
        for node in graph.nodes {
            guard case .recurrent(let a) = node.op, a.timeMajor, a.cellPaths.count == 1, node.inputs.count == 1 + a.cell.stateCount else {
                nodes.append(node)
                continue
            }
            var rewritten = node
            for (slot, given) in node.inputs.enumerated().dropFirst() {
                // dynamo takes a one-layer state through a Slice of all of it (`h_n[0:1]`): read past it.
                var state = given, slice: String? = nil
                if let position = producers[given], case .onnx(.slice(let s)) = graph.nodes[position].op, graph.nodes[position].inputs.count == 1,
                   s.axes == [0], s.starts == [0], s.steps == [1], (s.ends.first ?? 0) >= 1, soleReader(of: given) != nil,
                   !graphOutputs.contains(given) {
                    state = graph.nodes[position].inputs[0]
                    slice = graph.nodes[position].name
                }
                guard let producer = producers[state], case .recurrent(let source) = graph.nodes[producer].op, source.timeMajor,
                      source.cellPaths.count == 1, graph.nodes[producer].outputs.dropFirst().contains(state),
                      soleReader(of: state) != nil, !graphOutputs.contains(state) else { continue }
                if let slice { bypassed.insert(slice) }
                let squeezed = "\(state)#keras_state", stacked = "\(state)#initial_state"
                nodes.append(Node(name: squeezed, op: .onnx(.squeeze(AxesAttributes(axes: [0]))), inputs: [state], outputs: [squeezed]))
                nodes.append(Node(name: stacked, op: .onnx(.unsqueeze(AxesAttributes(axes: [0]))), inputs: [squeezed], outputs: [stacked]))
                rewritten.inputs[slot] = stacked
                changed = true
            }
            nodes.append(rewritten)
        }
        graph.nodes = nodes.filter { !bypassed.contains($0.name) }
        return changed
    }

    /// The `[batch, units]` values an initial state `[directions, batch, units]` stacks: each
    /// direction's `Unsqueeze(axes [0])`, the two concatenated on axis 0. Nil for any other form.
    private func stackedDirections(_ value: String, directions: Int) -> (values: [String], folded: [String])? {
        guard !graphOutputs.contains(value), soleReader(of: value) != nil, let producer = producers[value] else { return nil }
        func unsqueezed(_ position: Int) -> String? {
            guard case .onnx(.unsqueeze(let u)) = graph.nodes[position].op, u.axes == [0], graph.nodes[position].inputs.count == 1 else { return nil }
            return graph.nodes[position].inputs[0]
        }
        if directions == 1 {
            return unsqueezed(producer).map { ([$0], [graph.nodes[producer].name]) }
        }
        guard case .concatenate(let c) = graph.nodes[producer].op, c.axis == 0, graph.nodes[producer].inputs.count == directions else { return nil }
        var values: [String] = [], folded = [graph.nodes[producer].name]
        for part in graph.nodes[producer].inputs {
            guard !graphOutputs.contains(part), soleReader(of: part) == producer, let position = producers[part],
                  let state = unsqueezed(position) else { return nil }
            values.append(state)
            folded.append(graph.nodes[position].name)
        }
        return (values, folded)
    }

    /// Scion's ONNX writer casts an Embedding's indices to int64 for Gather; Keras's Embedding takes
    /// integer indices of any type itself, so a Cast to an integer type read only by Embeddings goes.
    mutating func foldEmbeddingCast(_ position: Int) {
        let node = graph.nodes[position]
        guard case .onnx(.cast(let c)) = node.op, [.int64, .int32].contains(c.to), let input = node.inputs.first,
              let output = node.outputs.first, !graphOutputs.contains(output), let readers = consumers[output], !readers.isEmpty,
              readers.allSatisfy({ if case .embedding = graph.nodes[$0].op { true } else { false } }) else { return }
        rename(output, to: input)
        removed.insert(node.name)
    }

    /// How the directions along `axis` of `value` are combined: one Reshape merging them with the
    /// units (`concat`, and the one-direction case); or for two directions a Gather of each, then
    /// an Add (`sum`), a Mul (`mul`), an Add and a Mul by 0.5 (`ave`), or nothing (`None`: two outputs).
    private func mergedDirections(_ value: String, axis: Int, flattened: [Int], directions: Int, units: Int) throws
        -> (merge: RecurrentAttributes.Merge, outputs: [String], folded: [String])?
    {
        if let reshape = soleReader(of: value),
           isReshape(graph.nodes[reshape].op, to: flattened, input: value, lastLength: directions * units),
           let merged = graph.nodes[reshape].outputs.first {
            return (.concat, [merged], [graph.nodes[reshape].name])
        }
        guard directions == 2, !graphOutputs.contains(value), let readers = consumers[value], readers.count == 2 else { return nil }
        var taken: [Int: (node: String, output: String)] = [:]
        for reader in readers {
            let node = graph.nodes[reader]
            guard case .onnx(.gather(let g)) = node.op, g.axis == axis, node.inputs.count == 2, node.inputs[0] == value,
                  let direction = try constantIndex(node.inputs[1]), taken[direction] == nil, let output = node.outputs.first else {
                return nil
            }
            taken[direction] = (node.name, output)
        }
        guard let forward = taken[0], let backward = taken[1] else { return nil }
        let gathers = [forward.node, backward.node]
        // Both read by one Add or Mul: a merged output.
        if let combiner = soleReader(of: forward.output), soleReader(of: backward.output) == combiner,
           case .elementwise(let operation) = graph.nodes[combiner].op, graph.nodes[combiner].inputs.count == 2,
           Set(graph.nodes[combiner].inputs) == [forward.output, backward.output], let combined = graph.nodes[combiner].outputs.first {
            if operation == .multiply { return (.mul, [combined], gathers + [graph.nodes[combiner].name]) }
            guard operation == .add else { return nil }
            if let halver = soleReader(of: combined), case .elementwise(.multiply) = graph.nodes[halver].op,
               graph.nodes[halver].inputs.count == 2, graph.nodes[halver].inputs[0] == combined,
               let (_, half) = constant(graph.nodes[halver].inputs[1]), half.elementCount == 1, half.dtype == .float32,
               try floats(half) == [0.5], let averaged = graph.nodes[halver].outputs.first {
                return (.ave, [averaged], gathers + [graph.nodes[combiner].name, graph.nodes[halver].name])
            }
            return (.sum, [combined], gathers + [graph.nodes[combiner].name])
        }
        return (.separate, [forward.output, backward.output], gathers)
    }

    /// A Reshape to `target` (`[0, 0, -1]`), or to the lengths it stands for once known (`diff`
    /// resolves Scion's `[0, 0, -1]` to `[0, 7, 12]`): the last length `lastLength`, the others copied.
    private func isReshape(_ op: Op, to target: [Int], input: String, lastLength: Int) -> Bool {
        guard case .reshape(let r) = op, r.includesBatch, !r.allowZero, r.targetShape.count == target.count else { return false }
        if r.targetShape == target { return true }
        guard let inputShape = shape(input), inputShape.rank == target.count + 1, r.targetShape.first == 0,
              r.targetShape.last == lastLength else { return false }
        let copied: [Int] = Array(r.targetShape[1..<(r.targetShape.count - 1)])
        let lengths: [Int?] = Array(inputShape.dimensions[1..<(inputShape.rank - 2)])
        return zip(copied, lengths).allSatisfy { $0 == 0 || $0 == $1 }
    }

    /// A scalar or one-element integer constant's value.
    private func constantIndex(_ value: String) throws -> Int? {
        guard let (_, parameter) = constant(value), parameter.dtype == .int64 || parameter.dtype == .int32,
              let index = parameter.scalarValue else { return nil }
        return Int(index)
    }
}
