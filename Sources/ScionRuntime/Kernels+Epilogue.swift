import Foundation
import ScionIR

/// What a convolution does to its result after the matrix products, in one pass over the values:
/// the bias per output channel, then a (capped) ReLU. Separate passes cost a full read and write of
/// the activation each, and the ReLU pass used to copy the buffer it could not prove unshared.
extension Kernels {
    /// `values` is `planes` channel planes of `plane` values each, channel `p % bias.count` for plane `p`.
    static func epilogue(_ values: inout [Float], planes: Int, plane: Int, bias: [Float]?, reluCap: Float?) {
        guard bias != nil || reluCap != nil, plane > 0 else { return }
        let channels = bias?.count ?? 1
        values.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            for p in 0..<planes {
                let start = base + p * plane
                let shift = bias?[p % channels] ?? 0
                if let cap = reluCap {
                    for i in 0..<plane { start[i] = min(max(start[i] + shift, 0), cap) }
                } else {
                    for i in 0..<plane { start[i] += shift }
                }
            }
        }
    }

    /// A (capped) ReLU applied in place: for results the caller owns alone (an addition's sum).
    static func reluInPlace(_ tensor: inout RuntimeTensor, cap: Float) {
        ConvolutionEpilogue(bias: nil, activation: .relu(maxValue: cap, negativeSlope: 0, threshold: 0)).applyToAll(&tensor.data)
    }
}

extension Kernels {
    /// Addition, subtraction, multiplication and division of two operands of one shape, or one broadcasting
    /// as `blockBroadcast` handles, with the operator known inside the loop (a closure call per value
    /// cost more than the arithmetic). nil: the caller takes the general way.
    static func fastElementwise(_ operation: ElementwiseOperation, _ a: RuntimeTensor, _ b: RuntimeTensor) -> RuntimeTensor? {
        switch operation {
        case .add: return typed(a, b, Add.self)
        case .subtract: return typed(a, b, Subtract.self)
        case .multiply: return typed(a, b, Multiply.self)
        case .divide: return typed(a, b, Divide.self)
        case .average, .maximum, .minimum, .power: return nil
        }
    }

    protocol BinaryArithmetic: SendableMetatype { static func combine(_ a: Float, _ b: Float) -> Float }
    enum Add: BinaryArithmetic { static func combine(_ a: Float, _ b: Float) -> Float { a + b } }
    enum Subtract: BinaryArithmetic { static func combine(_ a: Float, _ b: Float) -> Float { a - b } }
    enum Multiply: BinaryArithmetic { static func combine(_ a: Float, _ b: Float) -> Float { a * b } }
    enum Divide: BinaryArithmetic { static func combine(_ a: Float, _ b: Float) -> Float { a / b } }

    static func typed<K: BinaryArithmetic>(_ a: RuntimeTensor, _ b: RuntimeTensor, _ kind: K.Type) -> RuntimeTensor? {
        if a.shape == b.shape {
            return RuntimeTensor(shape: a.shape, data: sameShape(a.data, b.data) { K.combine($0, $1) })
        }
        guard let shape = Broadcasting.shape([a.shape, b.shape]) else { return nil }
        return blockBroadcastOverCores(a, b, shape: shape, K.self) ?? blockBroadcast(a, b, shape: shape) { K.combine($0, $1) }
            ?? runBroadcast(a, b, shape: shape, K.self)
    }
}

extension Activation {
    var isSwish: Bool {
        if case .swish = self { return true }
        return false
    }
}
