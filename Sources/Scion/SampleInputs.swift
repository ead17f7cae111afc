import ScionIR
import ScionRuntime

/// Arrays to run a model on when the user gives none (`scion compare` without `--input`): one per
/// model input, of its declared shape with `batch` samples, drawn from a seeded generator so two
/// runs compare the same numbers. An input that feeds an Embedding gets whole ids within its table;
/// any other, values uniform in [-1, 1), and one that feeds a Masking one step per sample set to
/// its mask value (step `s mod steps` of sample `s`; of rank 2, every other sample), so the masked
/// path is compared too.
package enum SampleInputs {
    /// What `make` draws, for reports.
    package static func describe(batch: Int = 2, seed: UInt64 = 0) -> String {
        "\(batch) random samples (seed \(seed): uniform in [-1, 1), whole ids for an Embedding)"
    }

    package static func make(for model: Model, batch: Int = 2, seed: UInt64 = 0) throws -> [RuntimeTensor] {
        var generator = SplitMix64(seed: seed)
        return try model.graph.inputs.map { input in
            guard let shape = input.shape else {
                throw ScionError(file: model.path, "input '\(input.name)' has no declared shape: give arrays with --input")
            }
            let dimensions = try shape.dimensions.enumerated().map { axis, length -> Int in
                if let length { return length }
                guard axis == 0 else {
                    throw ScionError(file: model.path, "input '\(input.name)' has shape \(shape), unknown beyond the batch: give arrays with --input")
                }
                return batch
            }
            let count = dimensions.checkedProduct ?? 0
            if let rows = embeddingRows(model.graph, input: input.name) {
                return RuntimeTensor(shape: dimensions, data: (0..<count).map { _ in Float(generator.next() % UInt64(rows)) })
            }
            var data = (0..<count).map { _ in generator.uniform(-1, 1) }
            if let maskValue = maskValue(model.graph, input: input.name), dimensions.count >= 2, let features = dimensions.last,
               features > 0, count > 0 {
                let steps = count / dimensions[0] / features
                // A rank-2 input is one step per sample: every other sample is masked whole.
                for sample in 0..<dimensions[0] where steps > 1 || sample % 2 == 1 {
                    let start = ((sample * steps) + sample % steps) * features
                    for i in start..<(start + features) { data[i] = maskValue }
                }
            }
            return RuntimeTensor(shape: dimensions, data: data)
        }
    }

    /// The mask value of a Masking that reads `input` directly; nil when none does.
    static func maskValue(_ graph: Graph, input: String) -> Float? {
        graph.nodes.lazy.compactMap { node -> Float? in
            guard node.inputs.first == input, case .masking(let a) = node.op else { return nil }
            return a.maskValue
        }.first
    }

    /// The smallest table of the Embeddings `input` feeds (directly or through a Cast); nil when it
    /// feeds none.
    static func embeddingRows(_ graph: Graph, input: String) -> Int? {
        var values: Set<String> = [input]
        for node in graph.nodes where node.inputs.contains(where: values.contains) {
            if case .onnx(.cast) = node.op { values.formUnion(node.outputs) }
        }
        let rows = graph.nodes.compactMap { node -> Int? in
            guard node.inputs.first.map(values.contains) == true, case .embedding(let a) = node.op else { return nil }
            return a.inputDimension
        }
        return rows.min().map { max($0, 1) }
    }
}
