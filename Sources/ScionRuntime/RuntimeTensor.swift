import ScionIR

/// A dense float32 array in row-major (C) order: the values the executor passes between nodes.
public struct RuntimeTensor: Equatable, Sendable {
    /// Length of each axis; the first is the batch (sample) axis.
    public var shape: [Int]
    /// The values, row-major: as many as the product of `shape`.
    public var data: [Float]

    /// A tensor of `data` in `shape`; the caller keeps the count right.
    public init(shape: [Int], data: [Float]) {
        self.shape = shape
        self.data = data
    }

    /// A tensor of zeros in `shape`.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// Number of values.
    public var count: Int { data.count }
    /// Number of axes.
    public var rank: Int { shape.count }

    /// The samples (first-axis rows) at `indices`, in that order.
    public func rows(_ indices: [Int]) -> RuntimeTensor {
        let width = count / max(shape.first ?? 1, 1)
        var result = [Float]()
        result.reserveCapacity(indices.count * width)
        for row in indices { result += data[(row * width)..<((row + 1) * width)] }
        return RuntimeTensor(shape: [indices.count] + shape.dropFirst(), data: result)
    }

    /// The samples in `range`.
    public func rows(_ range: Range<Int>) -> RuntimeTensor { rows(Array(range)) }

    /// Row-major strides.
    var strides: [Int] { Kernels.rowMajorStrides(shape) }
}

/// Why the executor could not run a model: the node (or value) and what is wrong.
public struct RuntimeError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The node, value, input or file at fault; empty when the reason says it all.
    public var subject: String
    /// What is wrong.
    public var reason: String

    /// An error about `subject`.
    public init(_ subject: String, _ reason: String) {
        self.subject = subject
        self.reason = reason
    }

    /// `subject: reason`, as the command line prints it.
    public var description: String { subject.isEmpty ? reason : "\(subject): \(reason)" }
}

extension RuntimeTensor {
    /// ONNX Expand: this tensor broadcast (numpy rules) against `shape`, where a 1 keeps its length.
    package func expanded(to shape: [Int], node: String) throws -> RuntimeTensor {
        let zeros = RuntimeTensor(zeros: shape.map { max($0, 1) })
        return try Kernels.broadcast(self, zeros, node: node) { value, _ in value }
    }
}

extension RuntimeTensor {
    /// ONNX MaxPool of rank 2 with dilations (what Keras layers cannot say): windows of `kernel`
    /// cells `dilations` apart, `strides` apart, over explicit `pads` (begins then ends; padding
    /// never wins), `ceilMode` as ONNX rounds.
    package func maxPool2D(kernel: [Int], strides: [Int], pads: [Int], dilations: [Int], ceilMode: Bool) -> RuntimeTensor {
        let (height, width) = rank == 4 ? (shape[2], shape[3]) : (1, shape[2])
        let k = rank == 4 ? kernel : [1] + kernel, s = rank == 4 ? strides : [1] + strides
        let d = rank == 4 ? dilations : [1] + dilations
        let p = rank == 4 ? pads : [0, pads[0], 0, pads[1]]
        let rows = Kernels.window(length: height, kernel: (k[0] - 1) * d[0] + 1, stride: s[0], padding: .explicit(p),
                                  axis: 0, rank: 2, ceilMode: ceilMode)
        let cols = Kernels.window(length: width, kernel: (k[1] - 1) * d[1] + 1, stride: s[1], padding: .explicit(p),
                                  axis: 1, rank: 2, ceilMode: ceilMode)
        let planes = shape[0] * shape[1]
        var output = [Float](repeating: -.infinity, count: planes * rows.output * cols.output)
        for plane in 0..<planes {
            for oy in 0..<rows.output {
                for ox in 0..<cols.output {
                    var best = -Float.infinity
                    for ky in 0..<k[0] {
                        let y = oy * s[0] + ky * d[0] - rows.before
                        if y < 0 || y >= height { continue }
                        for kx in 0..<k[1] {
                            let x = ox * s[1] + kx * d[1] - cols.before
                            if x < 0 || x >= width { continue }
                            best = Swift.max(best, data[(plane * height + y) * width + x])
                        }
                    }
                    output[(plane * rows.output + oy) * cols.output + ox] = best
                }
            }
        }
        return RuntimeTensor(shape: rank == 4 ? [shape[0], shape[1], rows.output, cols.output] : [shape[0], shape[1], cols.output],
                             data: output)
    }
}

extension RuntimeTensor {
    /// ONNX Tile: each axis repeated `repeats[axis]` times.
    package func tiled(_ repeats: [Int]) -> RuntimeTensor {
        let target = zip(shape, repeats).map { $0 * $1 }
        return Kernels.remap(self, to: target) { axis, index in index % shape[axis] }
    }
}

extension RuntimeTensor {
    /// ONNX Gemm of runtime tensors: `alpha · op(A) · op(B) + beta · C`, C broadcast.
    package static func gemm(_ a: RuntimeTensor, _ b: RuntimeTensor, _ c: RuntimeTensor?, alpha: Float, beta: Float,
                            transposeA: Bool, transposeB: Bool, node: String) throws -> RuntimeTensor {
        let left = transposeA ? Kernels.transpose(a, [1, 0]) : a
        let right = transposeB ? Kernels.transpose(b, [1, 0]) : b
        guard left.rank == 2, right.rank == 2, left.shape[1] == right.shape[0] else {
            throw RuntimeError(node, "Gemm of \(a.shape) and \(b.shape) does not fit")
        }
        var product = Kernels.matmul(left, right.data, columns: right.shape[1])
        product.data = product.data.map { $0 * alpha }
        guard let c else { return product }
        return try Kernels.broadcast(product, RuntimeTensor(shape: c.shape, data: c.data.map { $0 * beta }), node: node, +)
    }
}
