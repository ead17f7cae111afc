import ScionIR

/// ONNX ScatterND and GatherElements, the index-driven copies torch exports for in-place slice
/// assignment (`mask[:, a:b] = v` becomes ScatterND) and `torch.gather`. Indices arrive as float32
/// (exact below 2^24) and may be negative, counting from the end. VJPs: GatherElements copies
/// values (`movementBackward`); ScatterND's are written out per reduction below. Index inputs get
/// no gradient.
extension Executor {
    /// Where each ScatterND update lands: the offset of its slice in the data and the slice's size.
    static func scatterSlices(_ node: Node, data: [Int], indices: RuntimeTensor, updates: [Int]) throws -> (offsets: [Int], size: Int) {
        guard let depth = indices.shape.last, indices.rank >= 1, depth <= data.count else {
            throw RuntimeError(node.name, "ScatterND indices of shape \(indices.shape) do not index data of shape \(data)")
        }
        let size = data[depth...].reduce(1, *)
        guard updates == Array(indices.shape.dropLast()) + data[depth...] else {
            throw RuntimeError(node.name, "ScatterND updates of shape \(updates) do not fit indices \(indices.shape) into data \(data)")
        }
        return (try indexedOffsets(node, "ScatterND", data: data, indices: indices, batch: 0), size)
    }

    func scatterND(_ node: Node, _ inputs: [RuntimeTensor], _ a: ScatterNDAttributes) throws -> RuntimeTensor {
        guard inputs.count == 3 else { throw RuntimeError(node.name, "ScatterND needs data, indices and updates") }
        let (data, indices, updates) = (inputs[0], inputs[1], inputs[2])
        let (offsets, size) = try Self.scatterSlices(node, data: data.shape, indices: indices, updates: updates.shape)
        var result = data
        for (row, offset) in offsets.enumerated() {
            for element in 0..<size {
                let update = updates.data[row * size + element]
                switch a.reduction {
                case .none: result.data[offset + element] = update
                case .add: result.data[offset + element] += update
                case .mul: result.data[offset + element] *= update
                }
            }
        }
        return result
    }

    /// GatherElements: each output element reads the data at its own position, with the index along
    /// `axis` replaced by the one `indices` holds there.
    func gatherElements(_ node: Node, _ inputs: [RuntimeTensor], _ a: GatherAttributes) throws -> RuntimeTensor {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "GatherElements needs data and indices") }
        let (data, indices) = (inputs[0], inputs[1])
        let axis = a.axis < 0 ? a.axis + data.rank : a.axis
        guard (0..<data.rank).contains(axis), indices.rank == data.rank,
              zip(indices.shape, data.shape).enumerated().allSatisfy({ $0.offset == axis || $0.element.0 <= $0.element.1 }) else {
            throw RuntimeError(node.name, "GatherElements indices of shape \(indices.shape) along axis \(a.axis) do not fit data \(data.shape)")
        }
        let dataStrides = data.strides, indexStrides = indices.strides, length = data.shape[axis]
        var output = [Float](repeating: 0, count: indices.count)
        for position in 0..<indices.count {
            let raw = indices.data[position]
            guard let value = Int(exactly: raw), (-length..<length).contains(value) else {
                throw RuntimeError(node.name, "GatherElements index \(raw) is outside axis \(a.axis) of length \(length)")
            }
            var source = 0, remaining = position
            for dimension in 0..<indices.rank {
                let coordinate = remaining / indexStrides[dimension]
                remaining %= indexStrides[dimension]
                source += (dimension == axis ? (value < 0 ? value + length : value) : coordinate) * dataStrides[dimension]
            }
            output[position] = data.data[source]
        }
        return RuntimeTensor(shape: indices.shape, data: output)
    }
}

extension Trainer {
    /// ScatterND. `none`: the data's gradient is dy where nothing was written; each update gets dy at
    /// its slice if it was the last written there. `add`: dy to the data, dy at its slice to each
    /// update. `mul`: the product rule over every update multiplied into the same place.
    func scatterNDBackward(_ node: Node, _ a: ScatterNDAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        guard inputs.count == 3 else { throw RuntimeError(node.name, "ScatterND needs data, indices and updates") }
        let (data, indices, updates) = (inputs[0], inputs[1], inputs[2])
        let (offsets, size) = try Executor.scatterSlices(node, data: data.shape, indices: indices, updates: updates.shape)
        var dData = dy.data, dUpdates = [Float](repeating: 0, count: updates.count)
        switch a.reduction {
        case .none:
            var lastWriter: [Int: Int] = [:]
            for (row, offset) in offsets.enumerated() { lastWriter[offset] = row }
            for (row, offset) in offsets.enumerated() where lastWriter[offset] == row {
                for element in 0..<size { dUpdates[row * size + element] = dy.data[offset + element] }
            }
            for offset in offsets { for element in 0..<size { dData[offset + element] = 0 } }
        case .add:
            for (row, offset) in offsets.enumerated() {
                for element in 0..<size { dUpdates[row * size + element] = dy.data[offset + element] }
            }
        case .mul:
            var writers: [Int: [Int]] = [:]
            for (row, offset) in offsets.enumerated() { writers[offset, default: []].append(row) }
            for (offset, rows) in writers {
                for element in 0..<size {
                    let place = offset + element
                    let factors = rows.map { updates.data[$0 * size + element] }
                    dData[place] = dy.data[place] * factors.reduce(1, *)
                    for (position, row) in rows.enumerated() {
                        let others = factors.enumerated().filter { $0.offset != position }.reduce(Float(1)) { $0 * $1.element }
                        dUpdates[row * size + element] += dy.data[place] * data.data[place] * others
                    }
                }
            }
        }
        return StepGradients(inputs: [RuntimeTensor(shape: data.shape, data: dData), nil, RuntimeTensor(shape: updates.shape, data: dUpdates)])
    }
}
