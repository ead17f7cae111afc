/// A model: nodes in topological order, the values between them, and the parameters they use.
///
/// Everything meets here: readers produce a `Graph`, passes change it, writers and the executor
/// consume it. Nested Keras models are flattened into scoped nodes (`base/conv1`) and remembered in
/// `submodels`, so names stay human and any unique suffix resolves.
public struct Graph: Sendable {
    /// The model's name (Keras's model name, ONNX's graph name).
    public var name: String
    /// Graph inputs: values no node produces.
    public var inputs: [ValueInfo]
    /// Names of the values the model returns, in order.
    public var outputs: [String]
    /// The nodes, in topological order.
    public var nodes: [Node]
    /// The weights the nodes use, by name.
    public var parameters: ParameterTable
    /// Shapes and types of every value, filled by `inferShapes()`.
    public var values: [String: ValueInfo]
    /// The nested models the graph was flattened from, by scope.
    public var submodels: [Submodel]
    /// False for a weights-only file: parameters but no nodes. Operations that need the architecture
    /// refuse such graphs.
    public var hasArchitecture: Bool
    /// Where the channels of the graph's image-like values are, as a whole: channels-last when read
    /// from Keras, channels-first when read from ONNX or after `ChannelsFirstLayoutPass`. Each spatial
    /// op also records its own layout; this says which convention the graph as a whole follows, so a
    /// writer can refuse a graph in the other one and the executor can check it was lowered. nil for a
    /// graph that says nothing (built by hand). No file stores it: each reader sets it.
    public var layout: Layout?
    /// Free-form facts from the source file (producer, versions), kept for writers and inspect.
    public var metadata: [String: String]
    /// What the source file says about itself, typed (versions, operator sets, producer, notes).
    public var info = ModelInfo()

    /// A graph from its parts; `values` starts with the inputs only (`inferShapes()` fills the rest).
    public init(name: String, inputs: [ValueInfo] = [], outputs: [String] = [], nodes: [Node] = [],
                parameters: ParameterTable = ParameterTable(), submodels: [Submodel] = [],
                hasArchitecture: Bool = true, layout: Layout? = nil, metadata: [String: String] = [:]) {
        self.name = name; self.inputs = inputs; self.outputs = outputs; self.nodes = nodes
        self.parameters = parameters; self.values = [:]; self.submodels = submodels
        self.hasArchitecture = hasArchitecture; self.layout = layout; self.metadata = metadata
        for input in inputs { values[input.name] = input }
    }

    /// The node with exactly this name.
    public func node(named name: String) -> Node? { nodes.first { $0.name == name } }

    /// Parameters a node uses, in its order.
    public func parameters(of node: Node) -> [Parameter] {
        node.parameters.compactMap { parameters[$0] }
    }

    /// The parameter playing `role` (`kernel`, `bias`, `gamma`...) in a node, if it has one.
    public func parameter(of node: Node, role: ParameterRole) -> Parameter? {
        node.parameters.lazy.compactMap { parameters[$0] }.first { $0.role == role }
    }

    /// How many node inputs read each value (a node reading a value twice counts twice).
    public var readerCounts: [String: Int] {
        var result: [String: Int] = [:]
        for node in nodes {
            for input in node.inputs { result[input, default: 0] += 1 }
        }
        return result
    }

    /// The node producing each value.
    public var producers: [String: Int] {
        var result: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for output in node.outputs { result[output] = index }
        }
        return result
    }

    /// Elements in all parameters.
    public var totalParameterCount: Int { parameters.all.reduce(0) { $0 + $1.elementCount } }
    /// Elements in the trainable parameters.
    public var trainableParameterCount: Int {
        parameters.all.reduce(0) { $0 + ($1.trainable ? $1.elementCount : 0) }
    }
}

/// Parameters by name, in insertion order (the order Keras lists its weights).
public struct ParameterTable: Sendable {
    private var ordered: [Parameter] = []
    private var index: [String: Int] = [:]

    /// An empty table.
    public init() {}

    /// Every parameter, in order.
    public var all: [Parameter] { ordered }
    /// Number of parameters.
    public var count: Int { ordered.count }
    /// Every parameter's name, in order.
    public var names: [String] { ordered.map(\.name) }

    /// The parameter with this name; setting nil removes it, setting a new name appends it.
    public subscript(name: String) -> Parameter? {
        get { index[name].map { ordered[$0] } }
        set {
            if let position = index[name] {
                if let newValue { ordered[position] = newValue } else { remove(at: position) }
            } else if let newValue {
                index[name] = ordered.count
                ordered.append(newValue)
            }
        }
    }

    /// Adds a parameter; false (and nothing changes) when its name is taken.
    @discardableResult
    public mutating func add(_ parameter: Parameter) -> Bool {
        guard index[parameter.name] == nil else { return false }
        self[parameter.name] = parameter
        return true
    }

    /// Sets `trainable` on every parameter for which `decide` returns a value.
    public mutating func updateTrainable(_ decide: (Parameter) -> Bool?) {
        for position in ordered.indices {
            if let value = decide(ordered[position]) { ordered[position].trainable = value }
        }
    }

    /// Puts the named parameters first, in the given order, the others after them as they were.
    public mutating func reorder(first names: [String]) {
        var seen = Set<String>()
        var result: [Parameter] = []
        for name in names where !seen.contains(name) {
            if let parameter = self[name] { result.append(parameter); seen.insert(name) }
        }
        result += ordered.filter { !seen.contains($0.name) }
        ordered = result
        index = [:]
        for (offset, parameter) in ordered.enumerated() { index[parameter.name] = offset }
    }

    private mutating func remove(at position: Int) {
        ordered.remove(at: position)
        index = [:]
        for (offset, parameter) in ordered.enumerated() { index[parameter.name] = offset }
    }
}
