extension Graph {
    /// Orders `nodes` so every node comes after the producers of its inputs (Kahn's algorithm, stable:
    /// among ready nodes the earlier one in the current order goes first). Throws on a cycle or an
    /// input nobody produces.
    public mutating func sortTopologically() throws {
        nodes = try topologicalOrder().map { nodes[$0] }
    }

    /// Indices of `nodes` in a topological order.
    public func topologicalOrder() throws -> [Int] {
        let producers = try uniqueProducers()
        let graphInputs = Set(inputs.map(\.name))
        var pendingInputs = [Int](repeating: 0, count: nodes.count)
        var consumers = [[Int]](repeating: [], count: nodes.count)
        for (index, node) in nodes.enumerated() {
            for input in Set(node.inputs) {
                if let producer = producers[input] {
                    pendingInputs[index] += 1
                    consumers[producer].append(index)
                } else if !graphInputs.contains(input) {
                    throw IRError(node.name, "reads '\(input)', which no node produces and is not a graph input")
                }
            }
        }
        // A min-heap would be O(n log n); graphs have thousands of nodes at most, so a sorted ready
        // list keeps the order stable and readable.
        var ready = (0..<nodes.count).filter { pendingInputs[$0] == 0 }
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        while !ready.isEmpty {
            let next = ready.removeFirst()
            order.append(next)
            for consumer in consumers[next] {
                pendingInputs[consumer] -= 1
                if pendingInputs[consumer] == 0 {
                    let position = ready.firstIndex { $0 > consumer } ?? ready.endIndex
                    ready.insert(consumer, at: position)
                }
            }
        }
        if order.count != nodes.count {
            let stuck = (0..<nodes.count).first { pendingInputs[$0] > 0 }.map { nodes[$0].name } ?? "?"
            throw IRError(stuck, "is part of a cycle")
        }
        return order
    }

    /// Map from value name to the node producing it; throws when a value is produced twice.
    func uniqueProducers() throws -> [String: Int] {
        var result: [String: Int] = [:]
        let graphInputs = Set(inputs.map(\.name))
        for (index, node) in nodes.enumerated() {
            for output in node.outputs {
                if graphInputs.contains(output) {
                    throw IRError(node.name, "produces '\(output)', which is also a graph input")
                }
                if let other = result[output] {
                    throw IRError(node.name, "produces '\(output)', already produced by '\(nodes[other].name)'")
                }
                result[output] = index
            }
        }
        return result
    }
}
