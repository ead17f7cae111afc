import ScionIR

/// A dense float32 array in row-major (C) order: the values the executor passes between nodes.
public struct RuntimeTensor: Equatable, Sendable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// Row-major strides.
    var strides: [Int] {
        var result = [Int](repeating: 1, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            result[axis] = stride
            stride *= shape[axis]
        }
        return result
    }
}

/// Why the executor could not run a model: the node (or value) and what is wrong.
public struct RuntimeError: Error, CustomStringConvertible, Equatable, Sendable {
    public var subject: String
    public var reason: String

    public init(_ subject: String, _ reason: String) {
        self.subject = subject
        self.reason = reason
    }

    public var description: String { subject.isEmpty ? reason : "\(subject): \(reason)" }
}

extension RuntimeTensor {
    /// ONNX Expand: this tensor broadcast (numpy rules) against `shape`, where a 1 keeps its length.
    public func expanded(to shape: [Int], node: String) throws -> RuntimeTensor {
        let zeros = RuntimeTensor(zeros: shape.map { max($0, 1) })
        return try Kernels.broadcast(self, zeros, node: node) { value, _ in value }
    }
}
