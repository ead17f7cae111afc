import ScionIR

/// A TimeDistributed layer the reader expanded (`KerasTimeDistributed`): its nodes, written back as
/// one `TimeDistributed` wrapper around the inner op's layer, with the inner weights under the
/// wrapper's `layer` attribute (`layers/time_distributed/layer/vars/0`, `td/layer/kernel`).
///
/// ```
///  td_fold Reshape [-1, 16, 16, 3] → td_step Conv2D → td Reshape [-1, 4, 14, 14, 8]
///      →  TimeDistributed(Conv2D)   (also a single node: TimeDistributed(Dense) read as a Dense)
/// ```
/// A group surgery broke apart (a member's output read elsewhere, a member removed) is not one:
/// its nodes are written one by one, and the Keras writer refuses the batch-folding Reshapes by name.
struct KerasTimeDistributedGroup {
    /// Node positions, first to last; the last one's output is the wrapper's.
    var members: [Int]
    /// Position of the node computing the inner layer.
    var step: Int

    /// The groups of a graph, by the position of their last member.
    static func groups(in graph: Graph) -> [Int: KerasTimeDistributedGroup] {
        var byLayer: [String: [Int]] = [:]
        for (position, node) in graph.nodes.enumerated() where graph.info.nodeTypes[node.name] == KerasTimeDistributed.className {
            // A wrapper the reader kept as read is written back as read.
            if case .opaque = node.op { continue }
            byLayer[node.layer, default: []].append(position)
        }
        let readers = graph.readerCounts
        let outputs = Set(graph.outputs)
        /// A member's output that only the next member reads.
        func feedsOnlyNext(_ position: Int, next: Int) -> Bool {
            let node = graph.nodes[position]
            return node.outputs.count == 1 && !outputs.contains(node.outputs[0]) && readers[node.outputs[0]] == 1
                && graph.nodes[next].inputs == node.outputs
        }
        var groups: [Int: KerasTimeDistributedGroup] = [:]
        for members in byLayer.values {
            switch members.count {
            case 1:
                if case .reshape = graph.nodes[members[0]].op { continue }
                groups[members[0]] = KerasTimeDistributedGroup(members: members, step: members[0])
            case 3:
                guard case .reshape(let fold) = graph.nodes[members[0]].op, fold.includesBatch,
                      case .reshape(let unfold) = graph.nodes[members[2]].op, unfold.includesBatch,
                      feedsOnlyNext(members[0], next: members[1]), feedsOnlyNext(members[1], next: members[2]) else { continue }
                groups[members[2]] = KerasTimeDistributedGroup(members: members, step: members[1])
            default:
                continue
            }
        }
        return groups
    }

    /// The wrapper's node (the step's op and weights, the group's input and output) and its layer.
    func wrapper(in graph: Graph, writer: KerasConfigWriter) throws -> (node: Node, specification: KerasLayerSpecification) {
        let step = graph.nodes[self.step]
        let first = graph.nodes[members[0]]
        let last = graph.nodes[members[members.count - 1]]
        let inner: [KerasLayerSpecification]
        do {
            inner = try writer.layers(for: step, inputShapes: step.inputs.map { graph.values[$0]?.shape?.dimensions })
        } catch let refusal as KerasConfigWriter.Refusal {
            throw KerasConfigWriter.Refusal(reason: "its inner layer: \(refusal.reason)")
        }
        guard inner.count == 1, let layer = inner.first, !layer.isOperation, layer.inputs == nil else {
            throw KerasConfigWriter.Refusal(reason: "its inner \(step.op.typeName) is more than one Keras layer")
        }
        var innerConfig = layer.config
        innerConfig["name"] = .string(kerasSnakeCase(layer.className))
        let specification = KerasLayerSpecification(className: KerasTimeDistributed.className, config: [
            "layer": .object(["module": layer.module.map(JSON.string) ?? .null, "class_name": .string(layer.className),
                              "config": .object(innerConfig), "registered_name": layer.registeredName.map(JSON.string) ?? .null]),
        ])
        var node = step
        node.name = last.name
        node.inputs = first.inputs
        node.outputs = last.outputs
        node.layer = last.layer
        return (node, specification)
    }
}
