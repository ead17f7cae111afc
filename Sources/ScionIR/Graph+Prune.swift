/// Cleanup that any pass (or the executor's caller) may need after changing what a graph returns:
/// general graph housekeeping, kept beside the graph as onnx-graphsurgeon keeps `cleanup` and
/// `toposort` on its Graph, so that code which is not a pass does not have to import the passes.
extension Graph {
    /// Keeps only what `outputs` need: nodes they depend on, the parameters those nodes use, the
    /// inputs they read and the nested-model scopes that still hold nodes. Values' shapes are
    /// recomputed.
    ///
    /// ```
    ///  before: outputs [dense]                 after prune(keepingOutputs: ["relu"])
    ///
    ///  image ─ conv ─ bn ─ relu ─ gap ─ dense   image ─ conv ─ bn ─ relu
    ///  mask (read by nothing kept)              (mask dropped; gap and dense, and dense's weights, gone)
    /// ```
    public mutating func prune(keepingOutputs newOutputs: [String]) throws {
        outputs = newOutputs
        let producer = producers
        var needed = Set(newOutputs)
        var keep = Set<Int>()
        var stack = newOutputs.compactMap { producer[$0] }
        while let index = stack.popLast() {
            guard keep.insert(index).inserted else { continue }
            for input in nodes[index].inputs where needed.insert(input).inserted {
                if let next = producer[input] { stack.append(next) }
            }
        }
        nodes = nodes.indices.filter(keep.contains).map { nodes[$0] }
        removeUnusedParameters()
        inputs = inputs.filter { needed.contains($0.name) }
        removeEmptySubmodels()
        values = [:]
        for input in inputs { values[input.name] = input }
        try inferShapes()
    }

    /// Drops every parameter no node uses (weights left behind by removed nodes), keeping the order
    /// of the others.
    public mutating func removeUnusedParameters() {
        let used = Set(nodes.flatMap(\.parameters))
        for name in parameters.names where !used.contains(name) { parameters[name] = nil }
    }

    /// Drops the nested-model scopes that no longer hold a node (directly or in a scope inside them),
    /// so writers do not emit empty nested models.
    public mutating func removeEmptySubmodels() {
        let scopes = Set(nodes.map(\.scope))
        submodels = submodels.filter { submodel in scopes.contains { $0 == submodel.path || $0.hasPrefix(submodel.path + "/") } }
    }
}
