import CVectorKernels
import ScionIR

/// Moving values without arithmetic: strided slices (ONNX Slice: Swin's cyclic shifts, patch
/// merging's `x[:, 0::2, 1::2]`, a fused projection's parts) as runs of the last axis, and
/// Transpose (ONNX Transpose, Keras Permute, the layout changes around attention and ConvNeXt's
/// blocks). Source axes that stay side by side are merged first, so every transpose is one of two
/// moves repeated over the remaining axes: runs of contiguous values copied whole (the last axis
/// stays last: attention's `[N, T, H, D] → [N, H, T, D]` moves runs of D), or a matrix transposed in
/// tiles (`[N, C, H·W] → [N, H·W, C]`). Large tensors are split over the cores.
extension Kernels {
    /// Output axis `i` is input axis `permutation[i]`.
    static func transpose(_ x: RuntimeTensor, _ permutation: [Int]) -> RuntimeTensor {
        let shape = permutation.map { x.shape[$0] }
        let (lengths, order) = mergedAxes(x.shape, permutation)
        if order == Array(order.indices) { return RuntimeTensor(shape: shape, data: x.data) }
        var output = uninitialized(x.count)
        let rank = lengths.count, last = rank - 1
        let sourceStrides = rowMajorStrides(lengths)
        let outputLengths = order.map { lengths[$0] }
        let outputStrides = rowMajorStrides(outputLengths)
        // Each output axis's stride in the source.
        let strideInSource = order.map { sourceStrides[$0] }
        // The move repeated: a run (the source's last axis stays last) or a tile (the source's last
        // axis and the output's last one are transposed); the other axes are walked by `outer`.
        let runs = order[last] == last
        let across = order.firstIndex(of: last) ?? last  // the output axis the source's last one became
        let outerAxes = (0..<rank).filter { $0 != last && $0 != across }  // output axes
        let outerCount = outerAxes.reduce(1) { $0 * outputLengths[$1] }
        let runLength = outputLengths[last]
        // A tile's rows: the output's last axis (strided in the source); its columns: the source's last axis.
        let block = (outputLengths[last], lengths[last], strideInSource[last], outputStrides[across])
        x.data.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                let addresses = (Int(bitPattern: source.baseAddress), Int(bitPattern: target.baseAddress))
                overCoresWhenLarge(outerCount, valuesEach: x.count / max(outerCount, 1)) { range in
                    guard let from = UnsafePointer<Float>(bitPattern: addresses.0),
                          let to = UnsafeMutablePointer<Float>(bitPattern: addresses.1) else { return }
                    for item in range {
                        // The item's index along each outer axis, and its offsets in source and output.
                        var remaining = item, sourceOffset = 0, outputOffset = 0
                        for axis in outerAxes.reversed() {
                            let index = remaining % outputLengths[axis]
                            remaining /= outputLengths[axis]
                            sourceOffset += index * strideInSource[axis]
                            outputOffset += index * outputStrides[axis]
                        }
                        if runs {
                            (to + outputOffset).update(from: from + sourceOffset, count: runLength)
                        } else {
                            scion_transpose_block(from + sourceOffset, block.0, block.1, block.2, to + outputOffset, block.3)
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: shape, data: output)
    }

    /// `shape` and `permutation` with every group of source axes that stays together and in order
    /// merged into one axis (axes of length 1 dropped), so `[N, T, H, D]` by `[0, 2, 1, 3]` stays
    /// rank 4 but `[N, C, H, W]` by `[0, 2, 3, 1]` is `[N, C, H·W]` by `[0, 2, 1]`.
    static func mergedAxes(_ shape: [Int], _ permutation: [Int]) -> (lengths: [Int], order: [Int]) {
        let kept = permutation.filter { shape[$0] != 1 }
        guard !kept.isEmpty else { return ([1], [0]) }
        // Groups of consecutive source axes, in output order.
        var groups: [[Int]] = []
        for axis in kept {
            // Next in the source, or only axes of length 1 between.
            if let previous = groups.last?.last, previous < axis, (previous + 1..<axis).allSatisfy({ shape[$0] == 1 }) {
                groups[groups.count - 1].append(axis)
            } else {
                groups.append([axis])
            }
        }
        // Number the groups by their position in the source.
        let bySource = groups.indices.sorted { groups[$0][0] < groups[$1][0] }
        let lengths = bySource.map { groups[$0].reduce(1) { $0 * shape[$1] } }
        let order = groups.indices.map { group in bySource.firstIndex(of: group) ?? 0 }
        return (lengths, order)
    }

    /// Each axis's stride in a row-major array of these lengths.
    static func rowMajorStrides(_ lengths: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: lengths.count)
        for axis in stride(from: lengths.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * lengths[axis + 1] }
        return strides
    }

    /// `x[starts[0] :: steps[0], ...]` taking `lengths[axis]` values along each axis (steps may be
    /// negative): every run along the last axis copied at once (a gather when its step is not 1),
    /// the runs shared out between the cores when large.
    static func stridedSlice(_ x: RuntimeTensor, starts: [Int], steps: [Int], lengths: [Int]) -> RuntimeTensor {
        let count = lengths.reduce(1, *)
        guard count > 0, let last = lengths.indices.last else { return RuntimeTensor(shape: lengths, data: []) }
        var output = uninitialized(count)
        let strides = x.strides
        let origin = zip(starts, strides).reduce(0) { $0 + $1.0 * $1.1 }
        let runLength = lengths[last], runStep = steps[last]
        let outer = count / runLength
        x.data.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                let addresses = (Int(bitPattern: source.baseAddress), Int(bitPattern: target.baseAddress))
                overCoresWhenLarge(outer, valuesEach: runLength) { range in
                    guard let from = UnsafePointer<Float>(bitPattern: addresses.0),
                          let to = UnsafeMutablePointer<Float>(bitPattern: addresses.1) else { return }
                    for run in range {
                        var remaining = run, offset = origin
                        for axis in stride(from: last - 1, through: 0, by: -1) {
                            offset += (remaining % lengths[axis]) * steps[axis] * strides[axis]
                            remaining /= lengths[axis]
                        }
                        let destination = to + run * runLength
                        if runStep == 1 {
                            destination.update(from: from + offset, count: runLength)
                        } else {
                            for i in 0..<runLength { destination[i] = from[offset + i * runStep] }
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: lengths, data: output)
    }
}
