import ScionIR

/// Builds small graphs by hand: nodes appended in order, parameters in memory holding known floats
/// (element `i` of a parameter is `offset + i`, so any permutation can be checked element by element).
struct GraphSketch {
    var inputs: [ValueInfo] = []
    var nodes: [Node] = []
    var parameters = ParameterTable()
    var outputs: [String] = []

    init(inputs: [(String, [Int?])]) {
        self.inputs = inputs.map { ValueInfo(name: $0.0, shape: Shape($0.1), dtype: .float32) }
    }

    /// Adds a node named and outputting `name`, with parameters `(role, shape)` named `name/role`.
    @discardableResult
    mutating func add(_ name: String, _ op: Op, _ inputs: [String], parameters roles: [(String, [Int])] = [],
                      trainable: Bool = true) -> String {
        var names: [String] = []
        for (offset, (role, shape)) in roles.enumerated() {
            let parameterName = "\(name)/\(role)"
            if parameters[parameterName] == nil {
                parameters.add(Parameter(
                    name: parameterName, role: ParameterRole(rawValue: role), shape: shape, dtype: .float32,
                    trainable: trainable && !role.hasPrefix("moving"),
                    storage: TensorStorage(bytes: floatBytes(count: shape.checkedProduct ?? 0, offset: Float(offset * 1000)))))
            }
            names.append(parameterName)
        }
        nodes.append(Node(name: name, op: op, inputs: inputs, outputs: [name], parameters: names, trainable: trainable))
        return name
    }

    /// A node reusing another node's parameters (a shared layer's second call).
    mutating func call(_ name: String, sharing layer: String, _ inputs: [String]) {
        guard let original = nodes.first(where: { $0.name == layer }) else { return }
        nodes.append(Node(name: name, op: original.op, inputs: inputs, outputs: [name],
                          parameters: original.parameters, layer: layer))
    }

    var graph: Graph {
        Graph(name: "sketch", inputs: inputs, outputs: outputs, nodes: nodes, parameters: parameters,
              metadata: ["format": "test"])
    }
}
