import ScionIR

/// ONNX GatherND: each index tuple (the last axis of the indices) names one slice of the data; the
/// first `batch_dims` axes of data and indices are walked together. Indices arrive as float32 (exact
/// below 2^24) and may be negative. The VJP adds each output slice's gradient back where it was read.
extension Executor {
    /// Where each output slice starts in the data, in the output's order, and the slices' length.
    static func gatherNDSlices(_ node: Node, data: [Int], indices: RuntimeTensor, batchDimensions batch: Int) throws -> (offsets: [Int], size: Int) {
        guard let depth = indices.shape.last, batch >= 0, indices.rank >= batch + 1, depth >= 1, data.count >= batch + depth,
              Array(indices.shape.prefix(batch)) == Array(data.prefix(batch)) else {
            throw RuntimeError(node.name, "GatherND indices of shape \(indices.shape) with \(batch) batch axes do not index data of shape \(data)")
        }
        let size = data[(batch + depth)...].reduce(1, *)
        return (try indexedOffsets(node, "GatherND", data: data, indices: indices, batch: batch), size)
    }

    /// The flat offset in `data` where each index row's slice starts: the row's tuple read through the
    /// data's strides from axis `batch` on, plus the start of its batch block. Shared by GatherND and
    /// ScatterND (which has no batch axes); `op` names the operator in errors.
    static func indexedOffsets(_ node: Node, _ op: String, data: [Int], indices: RuntimeTensor, batch: Int) throws -> [Int] {
        let depth = indices.shape[indices.rank - 1]
        let strides = Broadcasting.strides(data)
        let block = data[batch...].reduce(1, *)
        let rows = indices.shape.dropLast().reduce(1, *)
        let rowsPerBatch = indices.shape[batch..<(indices.rank - 1)].reduce(1, *)
        return try (0..<rows).map { row in
            try (0..<depth).reduce((row / max(rowsPerBatch, 1)) * block) { offset, step in
                let axis = batch + step
                let raw = indices.data[row * depth + step]
                guard let value = Int(exactly: raw), (-data[axis]..<data[axis]).contains(value) else {
                    throw RuntimeError(node.name, "\(op) index \(raw) is outside axis \(axis) of length \(data[axis])")
                }
                return offset + (value < 0 ? value + data[axis] : value) * strides[axis]
            }
        }
    }

    func gatherND(_ node: Node, _ inputs: [RuntimeTensor], _ a: GatherNDAttributes) throws -> RuntimeTensor {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "GatherND needs data and indices") }
        let (data, indices) = (inputs[0], inputs[1])
        let (offsets, size) = try Self.gatherNDSlices(node, data: data.shape, indices: indices, batchDimensions: a.batchDimensions)
        var output: [Float] = []
        output.reserveCapacity(offsets.count * size)
        for offset in offsets { output.append(contentsOf: data.data[offset..<(offset + size)]) }
        let depth = indices.shape[indices.rank - 1]
        return RuntimeTensor(shape: Array(indices.shape.dropLast()) + Array(data.shape[(a.batchDimensions + depth)...]), data: output)
    }
}

extension Trainer {
    /// GatherND's VJP: dy's slices summed into a zero tensor of the data's shape where they were
    /// read (a slice read twice gets both); the indices get none.
    func gatherNDBackward(_ node: Node, _ a: GatherNDAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "GatherND needs data and indices") }
        let (data, indices) = (inputs[0], inputs[1])
        let (offsets, size) = try Executor.gatherNDSlices(node, data: data.shape, indices: indices, batchDimensions: a.batchDimensions)
        var dData = [Float](repeating: 0, count: data.count)
        for (row, offset) in offsets.enumerated() {
            for element in 0..<size { dData[offset + element] += dy.data[row * size + element] }
        }
        return StepGradients(inputs: [RuntimeTensor(shape: data.shape, data: dData), nil])
    }
}
