import ScionIR

extension KerasPatternRewriter {
    /// torch's recurrent stacks stay time-major between layers, which no Keras layer is; rewritten
    /// here into the batch-major form `foldRecurrent` folds into Keras's layers, with the batch axis
    /// at 0 all along:
    ///
    /// ```
    ///  torch:  x [N,T,F] → Transpose [1,0,2] → LSTM ─ Y → Transpose [0,2,1,3] → Reshape [T,N,D*U]  (or Squeeze [1])
    ///                                                  → LSTM → ... → Transpose [1,0,2] → Gather (axis 1, -1)
    ///  here:   Y → Transpose [2,0,1,3] → Reshape [0,0,-1]   (batch-major, what foldRecurrent reads)
    ///            → Transpose [1,0,2]  (time-major again, as torch's next reader expects)
    ///          next recurrent input: → Transpose [1,0,2] → Transpose [1,0,2] → recurrent
    /// ```
    ///
    /// Both are the same numbers (`[T,D,N,U] → [N,T,D*U] → [T,N,D*U]` is torch's `[T,N,D*U]`). Then
    /// each Transpose read by one that undoes it cancels, except the one right before a recurrent node
    /// (`foldRecurrent` needs it), so between two layers and at the end only batch-major values stay;
    /// a Gather of one step (`x[:, -1]`) of such a sequence becomes a Slice and a Squeeze, which the
    /// Keras writer writes as one indexing (`x[:, -1]`); torch's `h_n` of a stack reads each layer's
    /// own states (`splitConcatenatedStates`). A form not matched is left as it was.
    mutating func foldTimeMajorStacks() throws {
        index()
        var sequences: Set<String> = []
        var inserted: [String: (before: [Node], after: [Node])] = [:]
        for position in graph.nodes.indices {
            let node = graph.nodes[position]
            // Initial states (after the sequence) stay as they are read.
            guard case .recurrent(let a) = node.op, a.timeMajor, node.inputs.count == 1 || node.inputs.count == 1 + a.cell.stateCount,
                  let input = node.inputs.first,
                  node.outputs.count == a.outputCount else { continue }
            let y = node.outputs[0]
            var after: [Node] = []
            if consumers[y]?.isEmpty == false || graphOutputs.contains(y) {
                guard let layout = timeMajorSequence(of: position, a) else { continue }
                let name = graph.nodes[layout.first].name
                let batchMajor = "\(layout.sequence)#batch_major"
                var chain = [Node(name: name, op: .transpose(TransposeAttributes(permutation: [2, 0, 1, 3])), inputs: [y],
                                  outputs: ["\(name)#by_batch"])]
                if a.cellPaths.count == 1 && a.goBackwards {
                    // ONNX's reverse direction returns Y in time order; Keras's go_backwards the order computed.
                    chain.append(Node(name: "\(name)#computed_order", op: .onnx(.slice(SliceAttributes(
                        starts: [-1], ends: [Int(Int64.min)], axes: [1], steps: [-1]))), inputs: ["\(name)#by_batch"],
                                      outputs: ["\(name)#computed_order"]))
                    after.append(Node(name: "\(name)#time_order", op: .onnx(.slice(SliceAttributes(
                        starts: [-1], ends: [Int(Int64.min)], axes: [1], steps: [-1]))), inputs: [batchMajor],
                                      outputs: ["\(batchMajor)#time_order"]))
                }
                let merged = chain.last?.outputs[0] ?? y
                chain.append(Node(name: "\(name)#merge_directions", op: .reshape(ReshapeAttributes(targetShape: [0, 0, -1], includesBatch: true)),
                                  inputs: [merged], outputs: [batchMajor]))
                let timeOrdered = after.last?.outputs[0] ?? batchMajor
                after.append(Node(name: "\(name)#time_major", op: .transpose(TransposeAttributes(permutation: [1, 0, 2])),
                                  inputs: [timeOrdered], outputs: [layout.sequence]))
                sequences.insert(timeOrdered)
                removed.formUnion(layout.replaced.map { graph.nodes[$0].name })
                inserted[graph.nodes[layout.last].name, default: ([], [])].before += chain
                inserted[graph.nodes[layout.last].name, default: ([], [])].after += after
            }
            // The input: back to batch-major and forward again, so foldRecurrent finds its Transpose
            // and the first one cancels against whatever made the input time-major.
            let toBatch = Node(name: "\(node.name)#input_by_batch", op: .transpose(TransposeAttributes(permutation: [1, 0, 2])),
                               inputs: [input], outputs: ["\(node.name)#input_by_batch"])
            let toTime = Node(name: "\(node.name)#input_by_time", op: .transpose(TransposeAttributes(permutation: [1, 0, 2])),
                              inputs: [toBatch.outputs[0]], outputs: ["\(node.name)#input_by_time"])
            inserted[node.name, default: ([], [])].before += [toBatch, toTime]
            graph.nodes[position].inputs[0] = toTime.outputs[0]
        }
        guard !inserted.isEmpty else { return }
        splitConcatenatedStates()
        var nodes: [Node] = []
        for node in graph.nodes {
            let extra = inserted[node.name]
            nodes += extra?.before ?? []
            if !removed.contains(node.name) { nodes.append(node) }
            nodes += extra?.after ?? []
        }
        graph.nodes = nodes
        removed = []
        cancelInverseTransposes()
        stepsAsIndexing(sequences)
        try graph.inferShapes()
    }

    /// The nodes turning Y `[T, D, N, U]` into torch's time-major sequence `[T, N, D*U]`: a
    /// Transpose `[0, 2, 1, 3]` and a Reshape to those lengths, or (one direction) a Squeeze of axis 1.
    private func timeMajorSequence(of position: Int, _ a: RecurrentAttributes) -> (first: Int, last: Int, replaced: [Int], sequence: String)? {
        let y = graph.nodes[position].outputs[0]
        guard let reader = soleReader(of: y) else { return nil }
        let directions = a.cellPaths.count
        switch graph.nodes[reader].op {
        case .onnx(.squeeze(let s)) where directions == 1 && s.axes.map({ $0 < 0 ? $0 + 4 : $0 }) == [1]:
            guard let sequence = graph.nodes[reader].outputs.first else { return nil }
            return (reader, reader, [reader], sequence)
        case .transpose(let t) where t.permutation == [0, 2, 1, 3]:
            guard let transposed = graph.nodes[reader].outputs.first, let reshape = soleReader(of: transposed),
                  case .reshape(let r) = graph.nodes[reshape].op, r.includesBatch, !r.allowZero, r.targetShape.count == 3,
                  let sequence = graph.nodes[reshape].outputs.first else { return nil }
            let steps = shape(y)?[0], batch = shape(y)?[2]
            let (t0, t1, t2) = (r.targetShape[0], r.targetShape[1], r.targetShape[2])
            // 0 copies the input's axis ([T, N, D, U]): fine for the first two, never the last.
            guard t0 == 0 || (steps != nil && t0 == steps), t1 == 0 || t1 == -1 || (batch != nil && t1 == batch),
                  t2 == directions * a.units || (t2 == -1 && t1 != -1) else { return nil }
            return (reader, reshape, [reader, reshape], sequence)
        default:
            return nil
        }
    }

    /// torch's `h_n` of a stack: the layers' `Y_h` (or `Y_c`) concatenated along axis 0, read by
    /// Gathers of one entry (`h[-1]`, `h[0]`): each Gather reads the one layer's state instead, the
    /// index made relative to it, so `foldRecurrent` finds Keras's returned states.
    private mutating func splitConcatenatedStates() {
        index()
        for position in graph.nodes.indices {
            let node = graph.nodes[position]
            guard case .concatenate(let c) = node.op, c.axis == 0, let output = node.outputs.first, !graphOutputs.contains(output),
                  let readers = consumers[output], !readers.isEmpty else { continue }
            var blocks: [Int] = []
            for input in node.inputs {
                guard let producer = producers[input], case .recurrent(let a) = graph.nodes[producer].op, a.timeMajor,
                      graph.nodes[producer].outputs.dropFirst().contains(input) else { break }
                blocks.append(a.cellPaths.count)
            }
            let total = blocks.reduce(0, +)
            guard blocks.count == node.inputs.count else { continue }
            var rewired: [(reader: Int, block: Int, index: Int)] = []
            for reader in readers {
                guard case .onnx(.gather(let g)) = graph.nodes[reader].op, g.axis == 0, graph.nodes[reader].inputs.count == 2,
                      graph.nodes[reader].inputs[0] == output, let (_, parameter) = constant(graph.nodes[reader].inputs[1]),
                      parameter.shape.isEmpty, let value = parameter.scalarValue.map({ Int($0) }),
                      case let entry = value < 0 ? value + total : value, (0..<total).contains(entry) else { break }
                var offset = 0, block = 0
                while entry >= offset + blocks[block] { offset += blocks[block]; block += 1 }
                rewired.append((reader, block, entry - offset))
            }
            guard rewired.count == readers.count else { continue }
            for (reader, block, index) in rewired {
                let name = "\(graph.nodes[reader].name)#state_index"
                let bytes = withUnsafeBytes(of: Int64(index).littleEndian) { Array($0) }
                graph.parameters.add(Parameter(name: name, role: .value, shape: [], dtype: .int64, trainable: false,
                                               storage: TensorStorage(bytes: bytes)))
                graph.nodes.append(Node(name: name, op: .onnx(.constant(ConstantAttributes(dtype: .int64))), inputs: [], outputs: [name],
                                        parameters: [name]))
                graph.nodes[reader].inputs = [node.inputs[block], name]
            }
        }
        // The Concats nothing reads any more go; the constants are placed first, read by later nodes.
        let read = Set(graph.nodes.flatMap(\.inputs)).union(graphOutputs)
        graph.nodes.removeAll { node in
            if case .concatenate = node.op { return node.outputs.allSatisfy { !read.contains($0) } }
            return false
        }
        let constants = graph.nodes.filter { if case .onnx(.constant) = $0.op { true } else { false } }
        graph.nodes = constants + graph.nodes.filter { if case .onnx(.constant) = $0.op { false } else { true } }
    }

    /// A Transpose read by a Transpose that undoes it: the second one's readers read the first one's
    /// input. Not when the second feeds a time-major recurrent node (`foldRecurrent` folds that one).
    private mutating func cancelInverseTransposes() {
        var changed = true
        while changed {
            changed = false
            index()
            for position in graph.nodes.indices {
                guard case .transpose(let second) = graph.nodes[position].op, let input = graph.nodes[position].inputs.first,
                      let output = graph.nodes[position].outputs.first, !graphOutputs.contains(output),
                      let producer = producers[input], case .transpose(let first) = graph.nodes[producer].op,
                      first.permutation.count == second.permutation.count,
                      second.permutation.map({ first.permutation[$0] }) == Array(first.permutation.indices),
                      let source = graph.nodes[producer].inputs.first else { continue }
                let readsRecurrent = (consumers[output] ?? []).contains { reader in
                    if case .recurrent(let a) = graph.nodes[reader].op { a.timeMajor } else { false }
                }
                guard !readsRecurrent else { continue }
                rename(output, to: source)
                graph.nodes.remove(at: position)
                changed = true
                break
            }
        }
        removeUnreadTransposes()
    }

    /// Transposes nothing reads any more.
    private mutating func removeUnreadTransposes() {
        var changed = true
        while changed {
            let read = Set(graph.nodes.flatMap(\.inputs)).union(graphOutputs)
            let before = graph.nodes.count
            graph.nodes.removeAll { node in
                if case .transpose = node.op { return node.outputs.allSatisfy { !read.contains($0) } }
                return false
            }
            changed = graph.nodes.count != before
        }
    }

    /// `Gather(sequence, i)` on the time axis of a batch-major sequence made above (torch's
    /// `x[:, -1]`): the same as Slice `[i, i+1)` and Squeeze of that axis, which Keras writes as one
    /// indexing.
    private mutating func stepsAsIndexing(_ sequences: Set<String>) {
        index()
        var nodes: [Node] = []
        for node in graph.nodes {
            guard case .onnx(.gather(let g)) = node.op, g.axis == 1, node.inputs.count == 2, sequences.contains(node.inputs[0]),
                  let (_, parameter) = constant(node.inputs[1]), parameter.shape.isEmpty,
                  parameter.dtype == .int64 || parameter.dtype == .int32, let index = parameter.scalarValue.map({ Int($0) }),
                  let output = node.outputs.first else {
                nodes.append(node)
                continue
            }
            let slice = SliceAttributes(starts: [index], ends: [index == -1 ? Int(Int32.max) : index + 1], axes: [1], steps: [1])
            nodes.append(Node(name: "\(node.name)#step", op: .onnx(.slice(slice)), inputs: [node.inputs[0]], outputs: ["\(output)#step"]))
            nodes.append(Node(name: node.name, op: .onnx(.squeeze(AxesAttributes(axes: [1]))), inputs: ["\(output)#step"], outputs: [output]))
        }
        graph.nodes = nodes
    }
}
