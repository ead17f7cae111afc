import ScionIR

/// Whether Keras itself gives a value the mask "steps where `source` differs from `maskValue`",
/// in tf_keras and Keras 3 alike. Their propagation rules differ (Keras 3 drops the mask at every
/// layer without `supports_masking`, Conv1D or Reshape among them, and at an Add with one unmasked
/// input, where tf_keras keeps it), so only a chain both agree on counts: the value comes from an
/// `Embedding(mask_zero=True)` of the source, directly or through Dropout, Dense and
/// LayerNormalization (which pass the mask on unchanged) and masked recurrent layers returning
/// sequences (which pass it on). The reader applies a mask only there; the writer leaves the mask
/// to Keras only there (Keras writes none for tf_keras, and rebuilds Keras 3's `mask=` on reload).
enum KerasImpliedMask {
    static func holds(in graph: Graph, value: String, source: String, maskValue: Float) -> Bool {
        var current: String? = value
        while let name = current, let producer = graph.nodes.last(where: { $0.outputs.first == name }) {
            switch producer.op {
            case .embedding(let e) where e.maskZero && maskValue == 0 && producer.inputs.first == source:
                return true
            case .recurrent(let r) where r.returnSequences && r.maskValue == maskValue && r.bidirectional != .separate
                && producer.inputs.count == 2 && producer.inputs[1] == source:
                return true
            case .dropout, .dense, .layerNormalization:
                current = producer.inputs.count == 1 ? producer.inputs[0] : nil
            default:
                current = nil
            }
        }
        return false
    }
}
