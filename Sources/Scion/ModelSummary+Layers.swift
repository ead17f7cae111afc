import ScionIR

/// Builds the nested layer rows from the flat, scoped node list.
///
/// Type names follow the file the model was read from: an ONNX node shows the `op_type` it had in
/// the file (`Conv`, `Gemm`, `Relu`; `Initializer` for an initializer the IR holds as a node), a
/// Keras layer its Keras class name (`Op.typeName`). A node made after reading (a grafted head)
/// shows `Op.typeName`. A layer's inputs are the nodes producing what it reads, not value names,
/// so they name rows of the same table.
struct LayerTreeBuilder {
    let graph: Graph
    let vocabulary: ModelSummary.Vocabulary
    /// Parameters left out of the counts (shape and index constants): their rows show 0.
    let uncounted: Set<String>
    /// For each value: the node producing it and which of that node's outputs it is.
    private let producers: [String: (node: String, output: Int)]

    init(graph: Graph, vocabulary: ModelSummary.Vocabulary, uncounted: Set<String> = []) {
        self.graph = graph
        self.vocabulary = vocabulary
        self.uncounted = uncounted
        var producers: [String: (node: String, output: Int)] = [:]
        for node in graph.nodes {
            for (offset, output) in node.outputs.enumerated() { producers[output] = (node.name, offset) }
        }
        self.producers = producers
    }

    func build() -> [ModelSummary.Layer] {
        guard graph.hasArchitecture else { return [] }
        var rows: [ModelSummary.Layer] = graph.inputs.map {
            ModelSummary.Layer(name: $0.name, type: vocabulary == .keras ? "InputLayer" : "Input", inputs: [],
                               outputShape: $0.shape?.dimensions, params: 0, trainable: true, isInput: true)
        }
        var counted = Set<String>()
        var nodeRows: [(scope: String, row: ModelSummary.Layer)] = []
        for node in graph.nodes {
            let fresh = node.parameters.filter { !counted.contains($0) }
            let params = fresh.filter { !uncounted.contains($0) }.compactMap { graph.parameters[$0]?.elementCount }.reduce(0, +)
            let sharedWith = !node.parameters.isEmpty && fresh.isEmpty ? node.layer : nil
            counted.formUnion(node.parameters)
            // The layer's own flag, as Keras reports it (a Normalization layer is trainable even
            // though its statistics are not).
            let trainable = node.trainable
            let row = ModelSummary.Layer(
                name: displayName(node.name, scope: node.scope), type: graph.info.nodeTypes[node.name] ?? node.op.typeName,
                inputs: node.inputs.map(producer), outputShape: graph.values[node.outputs.first ?? ""]?.shape?.dimensions,
                params: params, trainable: trainable, sharedWith: sharedWith)
            nodeRows.append((node.scope, row))
        }
        rows += nest(nodeRows, scope: "")
        return rows
    }

    /// The node producing `value` (`name[k]` for its output k > 0), or the value's own name for a
    /// graph input.
    private func producer(_ value: String) -> String {
        guard let source = producers[value] else { return value }
        return source.output == 0 ? source.node : "\(source.node)[\(source.output)]"
    }

    private func displayName(_ name: String, scope: String) -> String {
        scope.isEmpty ? name : String(name.dropFirst(scope.count + 1))
    }

    /// Groups rows of `scope`'s direct children, turning each nested scope into one row holding its
    /// own rows, in order of first appearance.
    private func nest(_ rows: [(scope: String, row: ModelSummary.Layer)], scope: String) -> [ModelSummary.Layer] {
        var result: [ModelSummary.Layer] = []
        var index = 0
        while index < rows.count {
            let current = rows[index]
            if current.scope == scope {
                result.append(current.row)
                index += 1
                continue
            }
            // The child scope this row sits in, one level below `scope`.
            let remainder = scope.isEmpty ? current.scope : String(current.scope.dropFirst(scope.count + 1))
            let childName = String(remainder.split(separator: "/").first ?? Substring(remainder))
            let childScope = scope.isEmpty ? childName : "\(scope)/\(childName)"
            var members: [(scope: String, row: ModelSummary.Layer)] = []
            while index < rows.count, rows[index].scope == childScope || rows[index].scope.hasPrefix(childScope + "/") {
                members.append(rows[index])
                index += 1
            }
            let children = nest(members, scope: childScope)
            let submodel = graph.submodels.first { $0.path == childScope }
            let nodesInside = graph.nodes.filter { $0.scope == childScope || $0.scope.hasPrefix(childScope + "/") }
            let inside = Set(nodesInside.flatMap(\.outputs))
            let entry = nodesInside.first
            let exit = nodesInside.last
            result.append(ModelSummary.Layer(
                name: childName, type: submodel?.type ?? "Model",
                inputs: entry?.inputs.filter { !inside.contains($0) }.map(producer) ?? [],
                outputShape: exit.flatMap { graph.values[$0.outputs.first ?? ""]?.shape?.dimensions },
                params: Self.total(children), trainable: submodel?.trainable ?? true, layers: children))
        }
        return result
    }

    private static func total(_ rows: [ModelSummary.Layer]) -> Int {
        rows.reduce(0) { $0 + $1.params }
    }
}
