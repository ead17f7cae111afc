import ScionIR

extension KerasPatternRewriter {
    /// ONNX Split (torch's `chunk`, ShuffleNet's channel split) as one Slice per output: each is
    /// written as a GetItem, which Scion's Keras reader reads back (a keras.ops Split has several
    /// outputs, which it does not), and numbers the same.
    ///
    /// ```
    ///  Split axis 1 sizes [58, 58] → (a, b)   →   Slice axis 1 [0, 58) → a,   Slice axis 1 [58, 116) → b
    /// ```
    mutating func splitIntoSlices() {
        var taken = Set(graph.nodes.map(\.name))
        var result: [Node] = []
        for node in graph.nodes {
            guard case .onnx(.split(let a)) = node.op, node.outputs.count == a.sizes.count, node.inputs.count == 1 else {
                result.append(node)
                continue
            }
            var start = 0
            for (index, (output, size)) in zip(node.outputs, a.sizes).enumerated() {
                var name = index == 0 ? node.name : "\(node.name)/\(index)"
                while index > 0 && taken.contains(name) { name += "'" }
                taken.insert(name)
                result.append(Node(name: name, op: .onnx(.slice(SliceAttributes(starts: [start], ends: [start + size], axes: [a.axis], steps: [1]))),
                                   inputs: node.inputs, outputs: [output], scope: node.scope, trainable: node.trainable))
                start += size
            }
        }
        graph.nodes = result
    }
}
