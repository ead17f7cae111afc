import ScionIR

/// Inference-only rewrites of the executor's own copy of the graph, each exact: they remove a pass
/// over a whole activation (and its buffer) without changing a value. The trainer's executor
/// (`fusing: false`) keeps the graph as given, so its backward pass sees every node.
///
/// ```
///  Sigmoid(x) → Mul(x, ·)                     →  swish activation of x (ONNX exporters' SiLU)
///  ZeroPadding / Pad(constant 0, spatial) → Conv  →  Conv with the pads added to its own
/// ```
///
/// A value that is a graph output (a tap too), or that another node reads, is never fused away.
extension Executor {
    static func fuseInferencePatterns(_ graph: inout Graph) {
        var readers: [String: Int] = [:]
        for node in graph.nodes { for input in node.inputs { readers[input, default: 0] += 1 } }
        let outputs = Set(graph.outputs)
        let producers = graph.producers
        // The producer of `value` when `value` is read once and is not a graph output.
        let privateProducer = { (value: String) -> Int? in
            guard readers[value] == 1, !outputs.contains(value) else { return nil }
            return producers[value]
        }
        var removed = Set<Int>()
        for position in graph.nodes.indices {
            let node = graph.nodes[position]
            switch node.op {
            case .elementwise(.multiply) where node.inputs.count == 2:
                for (x, gate) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
                    guard let sigmoid = privateProducer(gate), case .activation(.sigmoid) = graph.nodes[sigmoid].op,
                          graph.nodes[sigmoid].inputs == [x] else { continue }
                    graph.nodes[position].op = .activation(.swish)
                    graph.nodes[position].inputs = [x]
                    removed.insert(sigmoid)
                    break
                }
            case .conv(var a) where a.layout == .channelsFirst:
                guard let input = node.inputs.first, let pad = privateProducer(input),
                      let padded = graph.nodes[pad].inputs.first,
                      let added = spatialZeroPads(graph.nodes[pad].op, rank: a.rank) else { continue }
                let own: [Int]
                switch a.padding {
                case .valid: own = Array(repeating: 0, count: 2 * a.rank)
                case .explicit(let pads) where pads.count == 2 * a.rank: own = pads
                default: continue  // `same` and `causal` depend on the input size: left as they are
                }
                a.padding = .explicit(zip(own, added).map { $0 + $1 })
                graph.nodes[position].op = .conv(a)
                graph.nodes[position].inputs[0] = padded
                removed.insert(pad)
            default:
                continue
            }
        }
        guard !removed.isEmpty else { return }
        let names = Set(removed.map { graph.nodes[$0].name })
        graph.nodes.removeAll { names.contains($0.name) }
    }

    /// The pads `[begins..., ends...]` over the `rank` spatial axes of a channels-first padding with
    /// zeros that touches no other axis and crops nothing; nil for any other op.
    static func spatialZeroPads(_ op: Op, rank: Int) -> [Int]? {
        switch op {
        case .zeroPadding(let p) where p.layout == .channelsFirst && p.padding.count == rank:
            let pads = p.padding.map { $0[0] } + p.padding.map { $0[1] }
            return pads.allSatisfy({ $0 >= 0 }) && p.padding.allSatisfy({ $0.count == 2 }) ? pads : nil
        case .onnx(.pad(let p)) where p.mode == .constant && p.value == 0 && p.pads.count == 2 * (rank + 2):
            let axes = rank + 2
            // Batch and channel axes untouched; no negative (cropping) pad anywhere.
            guard p.pads[0] == 0, p.pads[1] == 0, p.pads[axes] == 0, p.pads[axes + 1] == 0,
                  p.pads.allSatisfy({ $0 >= 0 }) else { return nil }
            return Array(p.pads[2..<axes]) + Array(p.pads[(axes + 2)...])
        default:
            return nil
        }
    }
}
