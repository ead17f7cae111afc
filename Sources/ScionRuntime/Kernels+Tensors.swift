import CVectorKernels
import Foundation
import ScionIR

/// Matrix products, broadcasting arithmetic and shape ops.
extension Kernels {
    /// `x[..., k] · w[k, columns]` over the last axis, through BLAS, split over the cores by Scion
    /// (`splitGemm`): a product handed to OpenBLAS's own threads leaves them spinning in
    /// `sched_yield` long after it (half the CPU time of a batch-2 MobileNetV2 pass went there,
    /// woken once per pass by its classifier).
    static func matmul(_ x: RuntimeTensor, _ w: [Float], columns: Int) -> RuntimeTensor {
        let inner = x.shape.last ?? 1
        let rows = x.count / max(inner, 1)
        var output = uninitialized(rows * columns)
        x.data.withUnsafeBufferPointer { a in
            w.withUnsafeBufferPointer { b in
                output.withUnsafeMutableBufferPointer { c in
                    BLAS.splitGemm(m: rows, n: columns, k: inner, a: a.baseAddress!, b: b.baseAddress!, c: c.baseAddress!)
                }
            }
        }
        return RuntimeTensor(shape: Array(x.shape.dropLast()) + [columns], data: output)
    }

    /// Adds `bias` to every row (the last axis).
    static func addRows(_ x: inout RuntimeTensor, _ bias: [Float]) {
        let width = bias.count
        guard width > 0 else { return }
        x.data.withUnsafeMutableBufferPointer { values in
            bias.withUnsafeBufferPointer { b in
                scion_clamp_rows(values.baseAddress, values.count / width, width, width, b.baseAddress, 0, .infinity)
            }
        }
    }

    /// `x[..., K] · W` with W packed in panels (`Executor.KernelForm.productPanels`), the epilogue
    /// (bias, activation) applied to each block of rows while it is cached; rows over the cores.
    static func panelProduct(_ x: RuntimeTensor, panels: WeightValues, columns: Int, epilogue: ConvolutionEpilogue,
                             node: String) throws -> RuntimeTensor {
        let depth = x.shape.last ?? 1, rows = x.count / max(depth, 1)
        guard panels.count == panelCount(filters: columns, depth: depth) else {
            throw RuntimeError(node, "input \(x.shape) does not fit its weight of \(columns) columns")
        }
        let geometry = ConvGeometry(pointwiseRows: rows, depth: depth, columns: columns)
        let y = convolutionChannelsLast(x, kernel: panels, order: .panels, geometry, epilogue: epilogue)
        return RuntimeTensor(shape: Array(x.shape.dropLast()) + [columns], data: y.data)
    }

    /// numpy matmul of two runtime tensors of rank 2 or more, their leading (batch) axes broadcast
    /// against each other as numpy does (keras.ops.matmul of `[N, H, T, D]` by `[1, H, D, T]`).
    static func batchedMatmul(_ a: RuntimeTensor, _ b: RuntimeTensor, node: String) throws -> RuntimeTensor {
        guard a.rank >= 2, b.rank >= 2, a.shape.last == b.shape[b.rank - 2] else {
            throw RuntimeError(node, "MatMul of \(a.shape) and \(b.shape) is not supported")
        }
        if b.rank == 2 { return matmul(a, b.data, columns: b.shape[1]) }
        let (m, k, n) = (a.shape[a.rank - 2], a.shape[a.rank - 1], b.shape[b.rank - 1])
        let rank = max(a.rank, b.rank) - 2
        let leadingA = Array(repeating: 1, count: rank - (a.rank - 2)) + a.shape.dropLast(2)
        let leadingB = Array(repeating: 1, count: rank - (b.rank - 2)) + b.shape.dropLast(2)
        var leading: [Int] = []
        for (x, y) in zip(leadingA, leadingB) {
            guard x == y || x == 1 || y == 1 else { throw RuntimeError(node, "MatMul of \(a.shape) and \(b.shape) does not broadcast") }
            leading.append(max(x, y))
        }
        // Each output matrix's source matrices: its batch index taken modulo each operand's lengths.
        func matrixIndex(_ batch: Int, in lengths: [Int]) -> Int {
            var remaining = batch, index = 0, size = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let position = remaining % leading[axis]
                remaining /= leading[axis]
                index += (lengths[axis] == 1 ? 0 : position) * size
                size *= lengths[axis]
            }
            return index
        }
        let batches = leading.reduce(1, *)
        if batches == 1, k > 0 {
            return RuntimeTensor(shape: leading + [m, n], data: matmul(RuntimeTensor(shape: [m, k], data: a.data), b.data, columns: n).data)
        }
        var output = k > 0 ? uninitialized(batches * m * n) : [Float](repeating: 0, count: batches * m * n)
        let sources = (0..<batches).map { (matrixIndex($0, in: leadingA) * m * k, matrixIndex($0, in: leadingB) * k * n) }
        a.data.withUnsafeBufferPointer { x in
            b.data.withUnsafeBufferPointer { y in
                output.withUnsafeMutableBufferPointer { z in
                    let addresses = (Int(bitPattern: x.baseAddress), Int(bitPattern: y.baseAddress), Int(bitPattern: z.baseAddress))
                    // Attention's products (`[N·H, T, D] · [N·H, D, T]`): the matrices shared out between
                    // the cores, each product on one thread (OpenBLAS's own threads would spin after each).
                    BLAS.singleThreaded {
                        overCoresWhenLarge(batches, valuesEach: m * n * k / 8) { range in
                            guard let x = UnsafePointer<Float>(bitPattern: addresses.0), let y = UnsafePointer<Float>(bitPattern: addresses.1),
                                  let z = UnsafeMutablePointer<Float>(bitPattern: addresses.2) else { return }
                            for i in range {
                                BLAS.gemm(m: m, n: n, k: k, a: x + sources[i].0, b: y + sources[i].1, c: z + i * m * n)
                            }
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: leading + [m, n], data: output)
    }

    /// n-ary elementwise arithmetic with numpy broadcasting.
    static func elementwise(_ operation: ElementwiseOperation, _ inputs: [RuntimeTensor], node: String) throws -> RuntimeTensor {
        guard var result = inputs.first else { throw RuntimeError(node, "has no inputs") }
        let combine: (Float, Float) -> Float
        switch operation {
        case .add, .average: combine = (+)
        case .subtract: combine = (-)
        case .multiply: combine = (*)
        case .divide: combine = (/)
        case .maximum: combine = { max($0, $1) }
        case .minimum: combine = { min($0, $1) }
        case .power: combine = { Float(pow(Double($0), Double($1))) }
        }
        for other in inputs.dropFirst() {
            result = try fastElementwise(operation, result, other) ?? broadcast(result, other, node: node, combine)
        }
        if operation == .average, inputs.count > 1 {
            let count = Float(inputs.count)
            result.data = result.data.map { $0 / count }
        }
        return result
    }

    static func broadcast(_ a: RuntimeTensor, _ b: RuntimeTensor, node: String, _ combine: (Float, Float) -> Float) throws -> RuntimeTensor {
        if a.shape == b.shape { return RuntimeTensor(shape: a.shape, data: sameShape(a.data, b.data, combine)) }
        guard let shape = Broadcasting.shape([a.shape, b.shape]) else {
            throw RuntimeError(node, "cannot broadcast \(a.shape) with \(b.shape)")
        }
        if let blocked = blockBroadcast(a, b, shape: shape, combine) { return blocked }
        let rank = shape.count
        let shapeA = Array(repeating: 1, count: rank - a.rank) + a.shape
        let shapeB = Array(repeating: 1, count: rank - b.rank) + b.shape
        let stridesA = broadcastStrides(shapeA), stridesB = broadcastStrides(shapeB)
        let total = shape.reduce(1, *)
        var output = [Float](repeating: 0, count: total)
        var index = [Int](repeating: 0, count: rank)
        for position in 0..<total {
            var offsetA = 0, offsetB = 0
            for axis in 0..<rank {
                offsetA += index[axis] * stridesA[axis]
                offsetB += index[axis] * stridesB[axis]
            }
            output[position] = combine(a.data[offsetA], b.data[offsetB])
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return RuntimeTensor(shape: shape, data: output)
    }

    /// Row-major strides with 0 along broadcast (length-1) axes.
    static func broadcastStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 0, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            strides[axis] = shape[axis] == 1 ? 0 : stride
            stride *= shape[axis]
        }
        return strides
    }

    static func concatenate(_ inputs: [RuntimeTensor], axis: Int, node: String) throws -> RuntimeTensor {
        guard let first = inputs.first else { throw RuntimeError(node, "has no inputs") }
        let resolved = axis < 0 ? axis + first.rank : axis
        guard inputs.allSatisfy({ $0.rank == first.rank }), (0..<first.rank).contains(resolved) else {
            throw RuntimeError(node, "cannot concatenate \(inputs.map(\.shape)) along axis \(axis)")
        }
        let outer = first.shape.prefix(resolved).reduce(1, *)
        var shape = first.shape
        shape[resolved] = inputs.reduce(0) { $0 + $1.shape[resolved] }
        var output: [Float] = []
        output.reserveCapacity(shape.reduce(1, *))
        for o in 0..<outer {
            for input in inputs {
                let block = input.count / max(outer, 1)
                output.append(contentsOf: input.data[(o * block)..<((o + 1) * block)])
            }
        }
        return RuntimeTensor(shape: shape, data: output)
    }

    /// Keras reshapes name the sample's shape; ONNX reshapes the whole (0 copies the input's length).
    static func reshape(_ x: RuntimeTensor, _ a: ReshapeAttributes, node: String) throws -> RuntimeTensor {
        var target = a.includesBatch ? a.targetShape : [x.shape.first ?? 1] + a.targetShape
        if a.includesBatch && !a.allowZero {
            for (axis, length) in target.enumerated() where length == 0 && axis < x.rank { target[axis] = x.shape[axis] }
        }
        let known = target.filter { $0 != -1 }.reduce(1, *)
        if let unknown = target.firstIndex(of: -1) {
            guard known > 0, x.count % known == 0 else { throw RuntimeError(node, "cannot reshape \(x.shape) to \(a.targetShape)") }
            target[unknown] = x.count / known
        }
        guard target.reduce(1, *) == x.count else { throw RuntimeError(node, "cannot reshape \(x.shape) to \(a.targetShape)") }
        return RuntimeTensor(shape: target, data: x.data)
    }

    /// A tensor of `shape` whose element at index `(i0, i1, ...)` is `x` at `(source(0, i0), source(1, i1), ...)`:
    /// slicing, upsampling and padding by reflection are all this, with another `source`.
    static func remap(_ x: RuntimeTensor, to shape: [Int], _ source: (_ axis: Int, _ index: Int) -> Int) -> RuntimeTensor {
        var output = RuntimeTensor(zeros: shape)
        let sourceStrides = x.strides, targetStrides = output.strides
        for position in 0..<output.count {
            var remainder = position, offset = 0
            for axis in 0..<shape.count {
                let index = remainder / targetStrides[axis]
                remainder %= targetStrides[axis]
                offset += source(axis, index) * sourceStrides[axis]
            }
            output.data[position] = x.data[offset]
        }
        return output
    }

    /// ONNX Pad in `reflect` mode (mirror without repeating the edge) or `edge` mode (repeat it).
    static func padReflectingOrRepeating(_ x: RuntimeTensor, pads: [Int], reflect: Bool, node: String) throws -> RuntimeTensor {
        let rank = x.rank
        guard pads.count == 2 * rank, pads.allSatisfy({ $0 >= 0 }),
              !reflect || (0..<rank).allSatisfy({ pads[$0] < x.shape[$0] && pads[rank + $0] < x.shape[$0] }) else {
            throw RuntimeError(node, "pads \(pads) do not fit \(x.shape) for \(reflect ? "reflect" : "edge") padding")
        }
        let shape = (0..<rank).map { x.shape[$0] + pads[$0] + pads[rank + $0] }
        return remap(x, to: shape) { axis, target in
            let index = target - pads[axis], length = x.shape[axis]
            if index < 0 { return reflect ? -index : 0 }
            if index >= length { return reflect ? 2 * length - 2 - index : length - 1 }
            return index
        }
    }

    /// ONNX Gather: `data` indexed along `axis` by `indices` (negative counting from the end).
    static func gather(_ data: RuntimeTensor, indices: RuntimeTensor, axis: Int, node: String) throws -> RuntimeTensor {
        let resolved = axis < 0 ? axis + data.rank : axis
        guard (0..<data.rank).contains(resolved) else { throw RuntimeError(node, "gathers axis \(axis) of \(data.shape)") }
        let length = data.shape[resolved], outer = data.shape.prefix(resolved).reduce(1, *), inner = data.shape[(resolved + 1)...].reduce(1, *)
        var output: [Float] = []
        output.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for raw in indices.data {
                var index = Int(raw)
                if index < 0 { index += length }
                guard (0..<length).contains(index) else { throw RuntimeError(node, "index \(raw) is outside length \(length)") }
                let base = (o * length + index) * inner
                output.append(contentsOf: data.data[base..<(base + inner)])
            }
        }
        return RuntimeTensor(shape: Array(data.shape.prefix(resolved)) + indices.shape + Array(data.shape[(resolved + 1)...]), data: output)
    }

    /// Consecutive slices of `sizes` along `axis`.
    static func split(_ x: RuntimeTensor, axis: Int, sizes: [Int], node: String) throws -> [RuntimeTensor] {
        let resolved = axis < 0 ? axis + x.rank : axis
        guard (0..<x.rank).contains(resolved), sizes.reduce(0, +) == x.shape[resolved], sizes.allSatisfy({ $0 >= 0 }) else {
            throw RuntimeError(node, "cannot split \(x.shape) into \(sizes) along axis \(axis)")
        }
        let outer = x.shape.prefix(resolved).reduce(1, *), inner = x.shape[(resolved + 1)...].reduce(1, *)
        var start = 0
        return sizes.map { size in
            var shape = x.shape
            shape[resolved] = size
            var data: [Float] = []
            data.reserveCapacity(outer * size * inner)
            for o in 0..<outer {
                let base = (o * x.shape[resolved] + start) * inner
                data.append(contentsOf: x.data[base..<(base + size * inner)])
            }
            start += size
            return RuntimeTensor(shape: shape, data: data)
        }
    }

    /// ONNX's reductions over `axes` (all axes when nil).
    static func reduce(_ x: RuntimeTensor, _ a: ReduceAttributes, node: String) throws -> RuntimeTensor {
        let axes = Set((a.axes ?? Array(0..<x.rank)).map { $0 < 0 ? $0 + x.rank : $0 })
        guard axes.allSatisfy({ (0..<x.rank).contains($0) }) else { throw RuntimeError(node, "reduces axes \(a.axes ?? []) of \(x.shape)") }
        let kept = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let keptStrides = RuntimeTensor(shape: kept, data: []).strides
        let count = kept.reduce(1, *), group = Float(x.count / max(count, 1))
        let start: Float = [.maximum].contains(a.kind) ? -.infinity : a.kind == .minimum ? .infinity : a.kind == .product ? 1 : 0
        var accumulated = [Float](repeating: start, count: count)
        let strides = x.strides
        for position in 0..<x.count {
            var target = 0
            for axis in 0..<x.rank where !axes.contains(axis) { target += (position / strides[axis] % x.shape[axis]) * keptStrides[axis] }
            let v = x.data[position]
            switch a.kind {
            case .mean, .sum: accumulated[target] += v
            case .maximum: accumulated[target] = max(accumulated[target], v)
            case .minimum: accumulated[target] = min(accumulated[target], v)
            case .product: accumulated[target] *= v
            case .l1: accumulated[target] += abs(v)
            case .l2, .sumSquare: accumulated[target] += v * v
            case .logSumExp: accumulated[target] += exp(v)
            }
        }
        switch a.kind {
        case .mean: accumulated = accumulated.map { $0 / group }
        case .l2: accumulated = accumulated.map { $0.squareRoot() }
        case .logSumExp: accumulated = accumulated.map { log($0) }
        default: break
        }
        let shape = a.keepDimensions ? kept : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        return RuntimeTensor(shape: shape, data: accumulated)
    }

    /// Pads (positive) or crops (negative) each axis: `begins[axis]` before, `ends[axis]` after.
    static func pad(_ x: RuntimeTensor, begins: [Int], ends: [Int], value: Float) -> RuntimeTensor {
        let shape = x.shape.indices.map { x.shape[$0] + begins[$0] + ends[$0] }
        if x.rank == 4, begins.prefix(2) == [0, 0], ends.prefix(2) == [0, 0], (begins + ends).allSatisfy({ $0 >= 0 }) {
            // Spatial zero padding of NCHW images: whole rows at a time.
            let (height, width, outHeight, outWidth) = (x.shape[2], x.shape[3], shape[2], shape[3])
            var output = [Float](repeating: value, count: shape.reduce(1, *))
            x.data.withUnsafeBufferPointer { source in
                output.withUnsafeMutableBufferPointer { target in
                    for plane in 0..<(x.shape[0] * x.shape[1]) {
                        for y in 0..<height {
                            let from = source.baseAddress! + (plane * height + y) * width
                            let to = target.baseAddress! + (plane * outHeight + y + begins[2]) * outWidth + begins[3]
                            to.update(from: from, count: width)
                        }
                    }
                }
            }
            return RuntimeTensor(shape: shape, data: output)
        }
        var output = [Float](repeating: value, count: shape.reduce(1, *))
        let target = RuntimeTensor(shape: shape, data: []).strides
        var index = [Int](repeating: 0, count: x.rank)
        for position in 0..<x.count {
            var offset = 0, inside = true
            for axis in 0..<x.rank {
                let moved = index[axis] + begins[axis]
                if moved < 0 || moved >= shape[axis] { inside = false; break }
                offset += moved * target[axis]
            }
            if inside { output[offset] = x.data[position] }
            var axis = x.rank - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < x.shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return RuntimeTensor(shape: shape, data: output)
    }
}

extension RuntimeTensor {
    /// The tensor with its axes in `permutation`'s order (`Kernels.transpose`), for the library's
    /// comparisons across layouts.
    package func transposed(_ permutation: [Int]) -> RuntimeTensor { Kernels.transpose(self, permutation) }
}
