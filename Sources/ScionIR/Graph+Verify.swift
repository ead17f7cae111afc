extension Graph {
    /// Checks the graph is well formed: unique node names, each value produced once, every input
    /// produced, no cycle, outputs that exist, parameters that exist, and shapes consistent with
    /// each op (inferring them). Passes end with it in tests.
    public mutating func verify() throws {
        guard hasArchitecture else { return }
        var names = Set<String>()
        for node in nodes where !names.insert(node.name).inserted {
            throw IRError(node.name, "two nodes have this name")
        }
        for node in nodes {
            for parameter in node.parameters where parameters[parameter] == nil {
                throw IRError(node.name, "uses parameter '\(parameter)', which the graph does not have")
            }
        }
        _ = try topologicalOrder()
        let producers = try uniqueProducers()
        let graphInputs = Set(inputs.map(\.name))
        for output in outputs where producers[output] == nil && !graphInputs.contains(output) {
            throw IRError(output, "is a graph output but nothing produces it")
        }
        try inferShapes()
    }

    /// Infers every value's shape and type in topological order, checking each op's parameters
    /// against its inputs. Values after an opaque op get unknown shapes.
    public mutating func inferShapes() throws {
        var known: [String: ValueInfo] = [:]
        for input in inputs { known[input.name] = input }
        for index in try topologicalOrder() {
            let node = nodes[index]
            let inputInfos = try node.inputs.map { name -> ValueInfo in
                guard let info = known[name] else { throw IRError(node.name, "input '\(name)' is unknown") }
                return info
            }
            let parameterShapes = Dictionary(
                parameters(of: node).map { ($0.role, $0.shape) }, uniquingKeysWith: { first, _ in first })
            let results = try ShapeInference.outputs(
                of: node, inputs: inputInfos, parameterShapes: parameterShapes)
            for (output, info) in zip(node.outputs, results) {
                known[output] = ValueInfo(name: output, shape: info.shape, dtype: info.dtype)
            }
        }
        values = known
    }
}
