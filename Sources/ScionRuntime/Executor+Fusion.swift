import ScionIR

/// Inference-only rewrites of the executor's own copy of the graph, each exact: they remove a pass
/// over a whole activation (and its buffer) without changing a value. The trainer's executor
/// (`fusing: false`) keeps the graph as given, so its backward pass sees every node.
///
/// ```
///  Sigmoid(x) → Mul(x, ·)                     →  swish activation of x (ONNX exporters' SiLU)
///  x · 0.5 · (1 + erf(x / √2))                →  gelu activation of x (`Graph.geluSpelling`)
///  MatMul(x, W) → Add(·, constant b[N])        →  Dense(x; W, b)
///  ZeroPadding / Pad(constant 0, spatial) → Conv  →  Conv with the pads added to its own
///  ZeroPadding / Pad(constant 0, spatial) → Pool  →  Pool with the pads, padded cells zeros
/// ```
///
/// A value that is a graph output (a tap too), or that another node reads, is never fused away.
extension Executor {
    /// Returns the max poolings whose padding now counts as zeros (`Kernels.pool`'s
    /// `paddingIsZero`): a max over a zero-padded window is at least 0, where a pooling's own
    /// padding never wins. An average pooling says the same with `countIncludePad`.
    @discardableResult
    static func fuseInferencePatterns(_ graph: inout Graph) -> Set<String> {
        var zeroPadded = Set<String>()
        let readers = graph.readerCounts
        let outputs = Set(graph.outputs)
        let producers = graph.producers
        // The producer of `value` when `value` is read once and is not a graph output.
        let privateProducer = { (value: String) -> Int? in
            guard readers[value] == 1, !outputs.contains(value) else { return nil }
            return producers[value]
        }
        // A zero padding of the `rank` spatial axes before `node`, read by it alone: the padding's
        // node, the value it pads and its pads (`spatialZeroPads`).
        func zeroPadding(_ node: Node, _ rank: Int) -> (node: Int, padded: String, pads: [Int])? {
            guard let input = node.inputs.first, let pad = privateProducer(input), let padded = graph.nodes[pad].inputs.first,
                  let pads = spatialZeroPads(graph.nodes[pad].op, rank: rank) else { return nil }
            return (pad, padded, pads)
        }
        var removed = Set<Int>()
        for position in graph.nodes.indices {
            let node = graph.nodes[position]
            switch node.op {
            case .elementwise(.multiply) where node.inputs.count == 2:
                if let gelu = graph.geluSpelling(at: position, privateProducer: privateProducer,
                                                 scalar: { producers[$0].flatMap(graph.scalarConstant(at:)) }) {
                    graph.nodes[position].op = .activation(.gelu(approximate: false))
                    graph.nodes[position].inputs = [gelu.input]
                    graph.nodes[position].parameters = []
                    removed.formUnion(gelu.nodes)
                    continue
                }
                for (x, gate) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
                    guard let sigmoid = privateProducer(gate), case .activation(.sigmoid) = graph.nodes[sigmoid].op,
                          graph.nodes[sigmoid].inputs == [x] else { continue }
                    graph.nodes[position].op = .activation(.swish)
                    graph.nodes[position].inputs = [x]
                    removed.insert(sigmoid)
                    break
                }
            case .elementwise(.add) where node.inputs.count == 2:
                // MatMul by a weight, then a constant vector added per column: a Dense with a bias
                // (the product's epilogue adds it, and can take the activation after it).
                for (product, vector) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
                    guard let matMul = privateProducer(product), case .onnx(.matMul) = graph.nodes[matMul].op,
                          graph.nodes[matMul].inputs.count == 1, let kernel = graph.parameter(of: graph.nodes[matMul], role: .kernel),
                          kernel.shape.count == 2, let constant = privateProducer(vector), case .onnx(.constant) = graph.nodes[constant].op,
                          let biasName = graph.nodes[constant].parameters.first, var bias = graph.parameters[biasName],
                          bias.dtype == .float32, bias.shape == [kernel.shape[1]] else { continue }
                    bias.role = .bias
                    graph.parameters[biasName] = bias
                    graph.nodes[position].op = .dense(DenseAttributes(units: kernel.shape[1], useBias: true, activation: .linear))
                    graph.nodes[position].inputs = graph.nodes[matMul].inputs
                    graph.nodes[position].parameters = [kernel.name, biasName]
                    removed.formUnion([matMul, constant])
                    break
                }
            case .conv(var a) where a.layout == .channelsFirst:
                guard let (pad, padded, added) = zeroPadding(node, a.rank) else { continue }
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
            case .pool(var a) where a.layout == .channelsFirst && a.rank == 2 && a.isDense && !a.ceilMode:
                // Keras's ResNet and DenseNet stems: ZeroPadding2D, then MaxPooling2D: the padded
                // copy of the stem's output was the largest buffer of their runs.
                guard let (pad, padded, added) = zeroPadding(node, 2) else { continue }
                switch a.padding {
                case .valid: break
                case .explicit(let pads) where pads.allSatisfy({ $0 == 0 }): break
                default: continue  // the pooling's own padding never wins a max: not the same as zeros
                }
                if a.kind == .max { zeroPadded.insert(node.name) } else { a.countIncludePad = true }
                a.padding = .explicit(added)
                graph.nodes[position].op = .pool(a)
                graph.nodes[position].inputs[0] = padded
                removed.insert(pad)
            default:
                continue
            }
        }
        guard !removed.isEmpty else { return zeroPadded }
        let names = Set(removed.map { graph.nodes[$0].name })
        graph.nodes.removeAll { names.contains($0.name) }
        return zeroPadded
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
