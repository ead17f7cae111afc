import ScionIR

/// Folds back the multi-node spellings ONNX needs for activations it has no op for (the ones Scion's
/// own ONNX writer emits, and torch's GELU), and a few import leftovers, so that `KerasLayersPass`
/// can map a graph Scion wrote back to Keras layers. Used by `diff` and `compare` before mapping an
/// ONNX graph; each rewrite is exact (the same function, matched on structure and constant values)
/// and a pattern that does not match exactly is left alone.
///
/// ```
///  Div(x, √2) → Erf → Add 1 ─┐
///  Mul(x, 0.5) ──────────────┴ Mul          →  gelu
///  Softplus(x) → Tanh → Mul(x, ·)           →  mish
///  Where(x ≥ t, x, (x - t)·slope) [→ Min m]  →  relu(max_value m, negative_slope, threshold t)
///  Cast → Embedding                          →  Embedding (Keras casts the ids itself)
///  Reshape [0, 8, -1] of (N, 6, 8)           →  Reshape [0, 8, 6] (the -1 known once 0 copies N)
/// ```
package enum ONNXSpellings {
    package static func rewrite(_ graph: inout Graph) {
        try? graph.inferShapes()
        var folding = Folding(graph: graph)
        folding.run()
        graph = folding.graph
        try? graph.inferShapes()
    }

    struct Folding {
        var graph: Graph
        var producers: [String: Int] = [:]
        var readers: [String: [Int]] = [:]
        var removed = Set<Int>()

        mutating func index() {
            producers = [:]
            readers = [:]
            for (position, node) in graph.nodes.enumerated() where !removed.contains(position) {
                for output in node.outputs { producers[output] = position }
                for input in node.inputs { readers[input, default: []].append(position) }
            }
        }

        mutating func run() {
            index()
            for position in graph.nodes.indices where !removed.contains(position) {
                if foldGelu(position) || foldMish(position) || foldRelu(position) { index() }
            }
            for position in graph.nodes.indices where !removed.contains(position) {
                elideCastBeforeEmbedding(position)
                resolveCopiedReshape(position)
            }
            index()
            // Constants nothing reads any more go with the nodes they fed.
            for position in graph.nodes.indices where !removed.contains(position) {
                if case .onnx(.constant) = graph.nodes[position].op, graph.nodes[position].outputs.allSatisfy({ readers[$0] == nil }),
                   !graph.nodes[position].outputs.contains(where: graph.outputs.contains) {
                    removed.insert(position)
                }
            }
            let kept = graph.nodes.indices.filter { !removed.contains($0) }.map { graph.nodes[$0] }
            let used = Set(kept.flatMap(\.parameters))
            for name in graph.parameters.names where !used.contains(name) { graph.parameters[name] = nil }
            graph.nodes = kept
        }

        /// The node producing `value`, when `value` has no other reader and is not a model output.
        func privateProducer(_ value: String) -> Int? {
            guard let position = producers[value], readers[value]?.count == 1, !graph.outputs.contains(value) else { return nil }
            return position
        }

        /// The scalar a constant input holds.
        func scalar(_ value: String) -> Float? {
            producers[value].flatMap(graph.scalarConstant(at:))
        }

        mutating func replace(_ position: Int, with activation: Activation, input: String, removing nodes: [Int]) {
            graph.nodes[position].op = .activation(activation)
            graph.nodes[position].inputs = [input]
            graph.nodes[position].parameters = []
            removed.formUnion(nodes)
        }

        /// `x · 0.5 · (1 + erf(x / √2))`, the two products in either order (`Graph.geluSpelling`).
        mutating func foldGelu(_ position: Int) -> Bool {
            guard let spelling = graph.geluSpelling(at: position, privateProducer: privateProducer, scalar: scalar) else { return false }
            replace(position, with: .gelu(approximate: false), input: spelling.input, removing: spelling.nodes)
            return true
        }

        /// `x · tanh(softplus(x))`.
        mutating func foldMish(_ position: Int) -> Bool {
            let node = graph.nodes[position]
            guard case .elementwise(.multiply) = node.op, node.inputs.count == 2 else { return false }
            for (x, gate) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
                guard let tanh = privateProducer(gate), case .activation(.tanh) = graph.nodes[tanh].op,
                      let softplusValue = graph.nodes[tanh].inputs.first, let softplus = privateProducer(softplusValue),
                      case .activation(.softplus) = graph.nodes[softplus].op, graph.nodes[softplus].inputs == [x] else { continue }
                replace(position, with: .mish, input: x, removing: [tanh, softplus])
                return true
            }
            return false
        }

        /// Keras's ReLU with a threshold and a slope: `Where(x ≥ t, x, (x - t) · slope)`, capped by a
        /// `Min` when it has a max_value.
        mutating func foldRelu(_ position: Int) -> Bool {
            let node = graph.nodes[position]
            var maxValue: Float?
            var select = position
            if case .elementwise(.minimum) = node.op, node.inputs.count == 2 {
                for (value, cap) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
                    if let limit = scalar(cap), let inner = privateProducer(value), case .onnx(.select) = graph.nodes[inner].op {
                        maxValue = limit
                        select = inner
                    }
                }
                guard maxValue != nil else { return false }
            }
            let where_ = graph.nodes[select]
            // A Where capped by a Min is folded from the Min, with its max_value.
            if select == position, let output = node.outputs.first, let reader = readers[output], reader.count == 1,
               case .elementwise(.minimum) = graph.nodes[reader[0]].op,
               graph.nodes[reader[0]].inputs.contains(where: { scalar($0) != nil }) { return false }
            guard case .onnx(.select) = where_.op, where_.inputs.count == 3,
                  let test = privateProducer(where_.inputs[0]), case .onnx(.comparison(.greaterOrEqual)) = graph.nodes[test].op,
                  graph.nodes[test].inputs.count == 2, let threshold = scalar(graph.nodes[test].inputs[1]) else { return false }
            let x = graph.nodes[test].inputs[0]
            guard where_.inputs[1] == x, let below = privateProducer(where_.inputs[2]),
                  case .elementwise(.multiply) = graph.nodes[below].op, graph.nodes[below].inputs.count == 2,
                  let slope = scalar(graph.nodes[below].inputs[1]), let shifted = privateProducer(graph.nodes[below].inputs[0]),
                  case .elementwise(.subtract) = graph.nodes[shifted].op, graph.nodes[shifted].inputs.count == 2,
                  graph.nodes[shifted].inputs[0] == x, scalar(graph.nodes[shifted].inputs[1]) == threshold else { return false }
            let removing = [test, below, shifted] + (select == position ? [] : [select])
            replace(position, with: .relu(maxValue: maxValue, negativeSlope: slope, threshold: threshold), input: x, removing: removing)
            return true
        }

        /// Keras's Embedding takes float ids and casts them itself: ONNX's Cast before the Gather
        /// is part of the layer.
        mutating func elideCastBeforeEmbedding(_ position: Int) {
            let node = graph.nodes[position]
            guard case .onnx(.cast) = node.op, let input = node.inputs.first, let output = node.outputs.first,
                  !graph.outputs.contains(output), let users = readers[output], !users.isEmpty,
                  users.allSatisfy({ if case .embedding = graph.nodes[$0].op { true } else { false } }) else { return }
            for user in users {
                graph.nodes[user].inputs = graph.nodes[user].inputs.map { $0 == output ? input : $0 }
            }
            removed.insert(position)
        }

        /// `Reshape [0, 8, -1]`: the 0 copies the batch, so the -1 is the sample's size over the
        /// others even though the batch is unknown.
        mutating func resolveCopiedReshape(_ position: Int) {
            let node = graph.nodes[position]
            guard case .reshape(var a) = node.op, a.includesBatch, !a.allowZero, let minus = a.targetShape.firstIndex(of: -1),
                  let input = node.inputs.first, let shape = graph.values[input]?.shape else { return }
            var inputRest: [Int?] = []
            var targetRest: [Int] = []
            for (index, dimension) in shape.dimensions.enumerated() where !(index < a.targetShape.count && a.targetShape[index] == 0) {
                inputRest.append(dimension)
            }
            for (index, value) in a.targetShape.enumerated() where value != 0 && index != minus { targetRest.append(value) }
            guard let total = Shape.product(inputRest), let known = targetRest.checkedProduct, known > 0, total % known == 0 else { return }
            a.targetShape[minus] = total / known
            graph.nodes[position].op = .reshape(a)
        }
    }
}
