import ScionIR

/// Whether Keras itself gives a value the mask "steps where `source` differs from `maskValue`",
/// in tf_keras and Keras 3 alike. Their propagation rules differ (Keras 3 drops the mask at every
/// layer without `supports_masking`, Conv1D or Reshape among them, and at an Add with one unmasked
/// input, where tf_keras keeps it), so only what both agree on counts: the value comes from an
/// `Embedding(mask_zero=True)` of the source, directly or through Dropout, Dense and
/// LayerNormalization (which pass the mask on unchanged), merging layers (Add...) whose inputs all
/// carry that mask (Keras 3 ORs the masks, tf_keras ANDs them: the same mask), MultiHeadAttention
/// masked by it (its output carries the query's mask) and masked recurrent layers returning
/// sequences. The reader applies a mask to GlobalAveragePooling1D and MultiHeadAttention only
/// there; the writers leave the mask to Keras only there (tf_keras writes none, and Keras 3
/// rebuilds its `mask=` on reload).
enum KerasImpliedMask {
    /// Keras's merging layers (keras/src/layers/merging/base_merge.py `compute_mask`).
    static let mergingClasses: Set<String> = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]

    static func holds(in graph: Graph, value: String, source: String, maskValue: Float) -> Bool {
        guard let producer = graph.nodes.last(where: { $0.outputs.first == value }) else { return false }
        func all(_ inputs: [String]) -> Bool {
            !inputs.isEmpty && inputs.allSatisfy { holds(in: graph, value: $0, source: source, maskValue: maskValue) }
        }
        switch producer.op {
        case .embedding(let e):
            return e.maskZero && maskValue == 0 && producer.inputs.first == source
        case .recurrent(let r):
            return r.returnSequences && r.maskValue == maskValue && r.bidirectional != .separate
                && producer.inputs.count == 2 && producer.inputs[1] == source
        case .multiHeadAttention(let a):
            return a.queryMaskValue == maskValue && a.queryMaskInput.map { producer.inputs[$0] } == source
        case .dropout, .dense, .layerNormalization:
            return producer.inputs.count == 1 && all(producer.inputs)
        case .elementwise where mergingClasses.contains(graph.info.nodeTypes[producer.name] ?? ""):
            return all(producer.inputs)
        default:
            return false
        }
    }
}
