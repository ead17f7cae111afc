import ScionIR

/// Finds the node a user named on the command line. Names resolve inside nested models: the full
/// scoped name (`base/block_16_project`), the Keras layer name of a shared layer (its first call),
/// or any suffix after a `/` that only one node has (`block_16_project`). An unknown name fails with
/// the closest names, so a typo costs one more try, not a trip to a model viewer.
package struct NodeLookup {
    let graph: Graph
    let pass: String

    package init(graph: Graph, pass: String) {
        self.graph = graph
        self.pass = pass
    }

    /// Index in `graph.nodes` of the node `query` names.
    package func index(of query: String) throws -> Int {
        if let exact = graph.nodes.firstIndex(where: { $0.name == query }) { return exact }
        // A shared layer's name stands for its first call.
        if let layer = graph.nodes.firstIndex(where: { $0.layer == query }) { return layer }
        let suffixed = graph.nodes.indices.filter { graph.nodes[$0].name.hasSuffix("/" + query) }
        if suffixed.count == 1 { return suffixed[0] }
        if suffixed.count > 1 {
            let names = suffixed.prefix(5).map { graph.nodes[$0].name }
            throw PassError(pass: pass, subject: query,
                            "matches \(suffixed.count) layers (\(names.joined(separator: ", "))); give the full name")
        }
        let hint = closestNames(to: query)
        throw PassError(pass: pass, subject: query,
                        "no layer has this name" + (hint.isEmpty ? "" : "; closest: \(hint.joined(separator: ", "))"))
    }

    /// Up to five node names nearest to `query` by edit distance (compared with the full name and
    /// with its last component).
    func closestNames(to query: String) -> [String] {
        let target = Array(query.lowercased())
        let scored = graph.nodes.map { node -> (String, Int) in
            let full = Array(node.name.lowercased())
            let last = Array((node.name.split(separator: "/").last.map(String.init) ?? node.name).lowercased())
            return (node.name, min(Self.editDistance(full, target), Self.editDistance(last, target)))
        }
        let limit = max(3, target.count / 2)
        return scored.filter { $0.1 <= limit }.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }.prefix(5).map(\.0)
    }

    /// Levenshtein distance, two rows.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
