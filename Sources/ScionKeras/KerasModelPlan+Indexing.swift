import ScionIR

/// One numpy index written as one GetItem: the Keras reader makes `x[:, -1, None]` a Slice, a
/// Squeeze of the integer-indexed axes and an Unsqueeze where None sits; written back node by node
/// it would be three operation nodes. A Slice whose only reader is a Squeeze of axes it cut to one
/// element, and/or an Unsqueeze after either, is written as the one GetItem they came from.
///
/// ```
///  Slice axes [1, 2] starts [1, -1] ends [5, max] steps [2, 1] → Squeeze [2] → Unsqueeze [2]
///      →  GetItem  x[:, 1:5:2, -1, None]
/// ```
struct KerasIndexingChain {
    /// Node positions, first to last; the last one's output is the GetItem's.
    var members: [Int]
    /// The GetItem's key.
    var key: JSON

    /// The chains of a graph, by the position of their last member.
    static func chains(in graph: Graph) -> [Int: KerasIndexingChain] {
        var readers: [String: [Int]] = [:]
        for (position, node) in graph.nodes.enumerated() { for input in node.inputs { readers[input, default: []].append(position) } }
        let outputs = Set(graph.outputs)
        /// The sole reader of a node's one output, when that output is nothing else's.
        func soleReader(_ position: Int) -> Int? {
            guard let output = graph.nodes[position].outputs.first, graph.nodes[position].outputs.count == 1,
                  !outputs.contains(output), let found = readers[output], found.count == 1 else { return nil }
            return found[0]
        }
        var chains: [Int: KerasIndexingChain] = [:]
        for (position, node) in graph.nodes.enumerated() {
            guard case .onnx(.slice(let slice)) = node.op, node.inputs.count == 1,
                  let rank = graph.values[node.inputs[0]]?.shape?.rank else { continue }
            var members = [position]
            var squeezed: [Int] = []
            var inserted: [Int] = []
            if let next = soleReader(position), case .onnx(.squeeze(let a)) = graph.nodes[next].op,
               a.axes.allSatisfy({ indexedPosition(slice, axis: $0, rank: rank) != nil }) {
                members.append(next)
                squeezed = a.axes
            }
            if let last = members.last, let next = soleReader(last), case .onnx(.unsqueeze(let a)) = graph.nodes[next].op,
               a.axes.allSatisfy({ $0 >= 0 }) {
                members.append(next)
                inserted = a.axes
            }
            guard members.count > 1, let key = try? key(slice, squeezed: squeezed, inserted: inserted, rank: rank) else { continue }
            chains[members[members.count - 1]] = KerasIndexingChain(members: members, key: key)
        }
        return chains
    }

    /// The integer index an axis was cut to (one element, step 1), or nil.
    static func indexedPosition(_ slice: SliceAttributes, axis: Int, rank: Int) -> Int? {
        guard let index = slice.axes.firstIndex(where: { ($0 < 0 ? $0 + rank : $0) == axis }), slice.steps[index] == 1 else { return nil }
        let (start, end) = (slice.starts[index], slice.ends[index])
        return end == start + 1 || (start == -1 && end >= Int(Int32.max)) ? start : nil
    }

    /// The key: per input axis up to the last one indexed, an integer (squeezed), a slice or `:`;
    /// `null` at each inserted axis's place in the result.
    static func key(_ slice: SliceAttributes, squeezed: [Int], inserted: [Int], rank: Int) throws -> JSON {
        guard case .array(let sliced) = try KerasOperationWriter.sliceKey(slice, rank: rank) else { return .null }
        let lastIndexed = max(sliced.count, (squeezed.max() ?? -1) + 1)
        var perAxis: [JSON] = (0..<lastIndexed).map { axis in
            if squeezed.contains(axis), let index = indexedPosition(slice, axis: axis, rank: rank) { return .number(Double(index)) }
            return axis < sliced.count ? sliced[axis] : KerasOperationWriter.fullSlice
        }
        // Result axes: one per slice item, then the input's remaining axes; None goes where each
        // inserted axis must land, spelling out `:` for input axes before it when needed.
        var items: [JSON] = []
        var resultAxis = 0
        for target in inserted.sorted() {
            while resultAxis < target {
                if perAxis.isEmpty {
                    perAxis = [KerasOperationWriter.fullSlice]
                }
                let item = perAxis.removeFirst()
                items.append(item)
                if item.int == nil { resultAxis += 1 }
            }
            items.append(.null)
            resultAxis += 1
        }
        return .array(items + perAxis)
    }
}
