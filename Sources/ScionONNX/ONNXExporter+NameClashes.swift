import ScionIR

extension ONNXExporter {
    /// `graph` with every parameter renamed whose name is also a value's (a graph input or a node's
    /// output) that the parameter does not itself hold. In ONNX an initializer and a node output share
    /// one namespace; the IR keeps them apart, and the only overlap it means is a constant node whose
    /// `value` weight carries its output's name (written as that initializer alone). Dynamo shares
    /// one zero tensor among LayerNorm betas and Linear biases: read back, the LayerNorm's `bias`
    /// keeps the name and the Add's constant node outputs a value of the same name from its own
    /// weight `bias#1`, so writing both as they are defines `bias` twice, which onnxruntime refuses.
    static func separatingParameterNames(_ graph: Graph) -> Graph {
        var values = Set(graph.inputs.map(\.name))
        var heldByConstant = Set<String>()
        for node in graph.nodes {
            values.formUnion(node.outputs)
            if case .onnx(.constant) = node.op, let output = node.outputs.first, node.parameters == [output] {
                heldByConstant.insert(output)
            }
        }
        let clashing = graph.parameters.names.filter { values.contains($0) && !heldByConstant.contains($0) }
        guard !clashing.isEmpty else { return graph }
        var taken = values.union(graph.parameters.names)
        var renamed: [String: String] = [:]
        for name in clashing {
            var counter = 1
            var candidate = "\(name)#\(counter)"
            while taken.contains(candidate) { counter += 1; candidate = "\(name)#\(counter)" }
            taken.insert(candidate)
            renamed[name] = candidate
        }
        var result = graph
        var parameters = ParameterTable()
        for var parameter in graph.parameters.all {
            parameter.name = renamed[parameter.name] ?? parameter.name
            parameters.add(parameter)
        }
        result.parameters = parameters
        for index in result.nodes.indices {
            result.nodes[index].parameters = result.nodes[index].parameters.map { renamed[$0] ?? $0 }
        }
        return result
    }
}
