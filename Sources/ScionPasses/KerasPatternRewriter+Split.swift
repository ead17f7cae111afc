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
            guard case .onnx(.split(let a)) = node.op, node.outputs.count == a.parts, node.inputs.count == 1,
                  let sizes = knownSizes(a, of: node.inputs[0]) else {
                result.append(node)
                continue
            }
            var start = 0
            for (index, (output, size)) in zip(node.outputs, sizes).enumerated() {
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

    /// The parts' lengths, also of equal parts once the axis's length is known here.
    private func knownSizes(_ a: SplitAttributes, of input: String) -> [Int]? {
        guard a.sizes.isEmpty else { return a.sizes }
        guard let shape = shape(input), let axis = shape.normalizedAxis(a.axis), let length = shape[axis] else { return nil }
        return a.sizes(alongLength: length)
    }
}
