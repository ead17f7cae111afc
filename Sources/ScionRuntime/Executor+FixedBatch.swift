import ScionIR

/// Models whose input fixes the batch size: torch's exporters write the batch of the example they
/// traced unless told `dynamic_axes` (TorchScript) or `dynamic_shapes` (dynamo), so a ResNet
/// exported with an example of 2 images takes exactly 2. The feature passes (`predict`,
/// `evaluate`, a frozen prefix's cache) choose their own batch sizes; they run such a model a
/// fixed batch at a time instead.
extension Executor {
    /// The batch size `input` fixes (its first dimension, when the graph states it), nil when open.
    public func fixedBatch(of input: String) -> Int? {
        guard let shape = graph.inputs.first(where: { $0.name == input })?.shape, shape.rank >= 1 else { return nil }
        return shape.dimensions[0]
    }

    /// `run` with `x` as `input` (the only input), any number of samples: when the graph fixes the
    /// batch at B and `x` holds another number, in chunks of B, the last filled up with copies of
    /// its last sample, and each output's rows put back together (the copies' dropped). Inference
    /// only: every sample's outputs must depend on that sample alone, and every output must have
    /// the batch as its first axis.
    public func runInBatches(_ input: String, _ x: RuntimeTensor) throws -> [String: RuntimeTensor] {
        let samples = x.shape.first ?? 0
        guard let batch = fixedBatch(of: input), batch > 0, samples != batch, samples > 0, graph.inputs.count == 1 else {
            return try run([input: x])
        }
        var parts: [String: [RuntimeTensor]] = [:]
        for start in stride(from: 0, to: samples, by: batch) {
            let count = min(batch, samples - start)
            let rows = Array(start..<(start + count)) + Array(repeating: start + count - 1, count: batch - count)
            for (name, value) in try run([input: x.rows(rows)]) {
                guard value.shape.first == batch else {
                    throw RuntimeError(name, "has shape \(value.shape), not a batch of \(batch) first: the input's fixed batch of \(batch) "
                                       + "cannot be run \(samples) samples at a time")
                }
                parts[name, default: []].append(value.rows(0..<count))
            }
        }
        return parts.mapValues { values in
            RuntimeTensor(shape: [samples] + (values.first?.shape.dropFirst() ?? []), data: values.flatMap(\.data))
        }
    }
}
