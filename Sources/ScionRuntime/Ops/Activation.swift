import Foundation
import ScionIR

/// Activations and elementwise math of one operand: activation layers (and the activations fused
/// into Conv and Dense, run apart while training), PReLU, Clip, ONNX's unary math, and the
/// pre-opset-13 coerced Softmax (not run yet). Each activation's function and derivative are
/// `Kernels.activate` / `Kernels.activationGradient` (Kernels+Activation.swift).
extension Executor {
    func prelu(_ node: Node, _ x: RuntimeTensor) throws -> RuntimeTensor {
        guard let shape = parameterShape(node, .alpha) else { throw RuntimeError(node.name, "is missing its alpha") }
        let alpha = RuntimeTensor(shape: [1] + shape, data: try require(node, .alpha))
        let negative = try Kernels.broadcast(x, alpha, node: node.name) { $0 * $1 }
        return RuntimeTensor(shape: x.shape, data: zip(x.data, negative.data).map { $0 >= 0 ? $0 : $1 })
    }

    func clip(_ x: RuntimeTensor, _ a: ClipAttributes) -> RuntimeTensor {
        RuntimeTensor(shape: x.shape, data: x.data.map { min(max($0, a.minimum ?? -.infinity), a.maximum ?? .infinity) })
    }

    func unary(_ node: Node, _ x: RuntimeTensor, _ operation: UnaryOperation) throws -> RuntimeTensor {
        if operation == .errorFunction {
            // A GELU's erf where the executor did not see the GELU (`fuseInferencePatterns`): CVectorKernels' loop.
            var y = x
            Kernels.errorFunctionInPlace(&y.data)
            return y
        }
        guard let f = Self.unaryFunction(operation) else { throw unsupported(node, "\(node.op.typeName)") }
        return RuntimeTensor(shape: x.shape, data: x.data.map(f))
    }

    /// Not is logic on bools held as 0 and 1 (any non-zero value is true).
    static func unaryFunction(_ operation: UnaryOperation) -> ((Float) -> Float)? {
        switch operation {
        case .negate: return { (v: Float) -> Float in -v }
        case .absolute: return { (v: Float) -> Float in abs(v) }
        case .squareRoot: return { (v: Float) -> Float in v.squareRoot() }
        case .reciprocal: return { (v: Float) -> Float in 1 / v }
        case .logarithm: return { (v: Float) -> Float in log(v) }
        case .errorFunction: return { (v: Float) -> Float in erf(v) }
        case .floor: return { (v: Float) -> Float in v.rounded(.down) }
        case .ceil: return { (v: Float) -> Float in v.rounded(.up) }
        case .round: return { (v: Float) -> Float in v.rounded(.toNearestOrEven) }
        case .sign: return { (v: Float) -> Float in v > 0 ? 1 : v < 0 ? -1 : 0 }
        case .sine: return { (v: Float) -> Float in sin(v) }
        case .cosine: return { (v: Float) -> Float in cos(v) }
        case .tangent: return { (v: Float) -> Float in tan(v) }
        case .arcsine: return { (v: Float) -> Float in asin(v) }
        case .arccosine: return { (v: Float) -> Float in acos(v) }
        case .arctangent: return { (v: Float) -> Float in atan(v) }
        case .hyperbolicSine: return { (v: Float) -> Float in sinh(v) }
        case .hyperbolicCosine: return { (v: Float) -> Float in cosh(v) }
        case .inverseHyperbolicSine: return { (v: Float) -> Float in asinh(v) }
        case .inverseHyperbolicCosine: return { (v: Float) -> Float in acosh(v) }
        case .inverseHyperbolicTangent: return { (v: Float) -> Float in atanh(v) }
        case .not: return { (v: Float) -> Float in v == 0 ? 1 : 0 }
        }
    }
}

extension Trainer {
    /// A Conv's or Dense's fused activation run apart while training, so that its input (what the
    /// VJP differentiates at) is kept: `linear` is the node's op with a linear activation.
    func forwardKeepingPreActivation(_ node: Node, _ inputs: [RuntimeTensor], _ activation: Activation,
                                     linear op: Op) throws -> (RuntimeTensor, Saved?) {
        var linear = node
        linear.op = op
        let z = try executor.evaluate(linear, inputs)
        return (try Kernels.activate(z, activation, node: node.name), .preActivation(z))
    }

    /// dL/dz for a fused activation y = f(z), from the pre-activation values the forward kept; dy
    /// itself when linear, or when the loss's gradient is already taken at z (`skip`).
    func throughActivation(_ activation: Activation, _ node: Node, y: RuntimeTensor, dy: RuntimeTensor, saved: Saved?,
                           skip: Bool) throws -> RuntimeTensor {
        if skip || activation == .linear { return dy }
        guard case .preActivation(let z) = saved else { throw RuntimeError(node.name, "lost its pre-activation values") }
        return RuntimeTensor(shape: dy.shape, data: try Kernels.activationGradient(activation, x: z, y: y, dy: dy.data, node: node.name))
    }

    /// An activation layer's VJP; with `skip`, the loss's gradient is already at its input.
    func activationBackward(_ node: Node, _ activation: Activation, _ x: RuntimeTensor, y: RuntimeTensor, dy: RuntimeTensor,
                            skip: Bool) throws -> StepGradients {
        if skip { return StepGradients(like: x, dy.data) }
        return StepGradients(like: x, try Kernels.activationGradient(activation, x: x, y: y, dy: dy.data, node: node.name))
    }

    /// PReLU: slope 1 where x ≥ 0, alpha elsewhere; alpha's gradient summed over its shared axes.
    func preluBackward(_ node: Node, _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients {
        guard let alpha = graph.parameter(of: node, role: .alpha), let values = executor.weights[alpha.name] else {
            throw RuntimeError(node.name, "is missing its alpha")
        }
        let slopes = try Kernels.broadcast(x, RuntimeTensor(shape: [1] + alpha.shape, data: values), node: node.name) { $0 >= 0 ? 1 : $1 }
        let dAlpha = try Kernels.sumToShape(RuntimeTensor(shape: x.shape, data: zip(dy.data, x.data).map { $1 < 0 ? $0 * $1 : 0 }), [1] + alpha.shape)
        return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: zip(dy.data, slopes.data).map(*))],
                             parameters: [(alpha.name, dAlpha.data)])
    }

    /// Clip passes the gradient strictly inside its bounds.
    func clipBackward(_ a: ClipAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) -> StepGradients {
        let low = a.minimum ?? -.infinity, high = a.maximum ?? .infinity
        return StepGradients(like: x, zip(dy.data, x.data).map { $1 > low && $1 < high ? $0 : 0 })
    }

    /// Nil (no gradient yet) where `unaryDerivative` has none.
    func unaryBackward(_ operation: UnaryOperation, _ x: RuntimeTensor, y: RuntimeTensor, dy: RuntimeTensor) -> StepGradients? {
        // Not is logic on a mask: nothing flows back through it, as through a comparison.
        if operation == .not { return StepGradients(inputs: [nil]) }
        guard let derivative = Self.unaryDerivative(operation) else { return nil }
        return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: (0..<x.count).map { dy.data[$0] * derivative(x.data[$0], y.data[$0]) })])
    }

    /// f'(x) for ONNX's elementwise math, written with the input x and output y; nil where the
    /// derivative is zero almost everywhere and useless (floor, round...) or undefined.
    static func unaryDerivative(_ operation: UnaryOperation) -> ((Float, Float) -> Float)? {
        switch operation {
        case .negate: return { _, _ in -1 }
        case .absolute: return { x, _ in x > 0 ? 1 : x < 0 ? -1 : 0 }
        case .squareRoot: return { _, y in y > 0 ? 0.5 / y : 0 }
        case .reciprocal: return { _, y in -y * y }
        case .logarithm: return { x, _ in 1 / x }
        case .errorFunction: return { x, _ in 1.1283791670955126 * exp(-x * x) }
        case .sine: return { x, _ in cos(x) }
        case .cosine: return { x, _ in -sin(x) }
        case .tangent: return { _, y in 1 + y * y }
        case .arcsine: return { x, _ in 1 / (1 - x * x).squareRoot() }
        case .arccosine: return { x, _ in -1 / (1 - x * x).squareRoot() }
        case .arctangent: return { x, _ in 1 / (1 + x * x) }
        case .hyperbolicSine: return { x, _ in cosh(x) }
        case .hyperbolicCosine: return { x, _ in sinh(x) }
        case .inverseHyperbolicSine: return { x, _ in 1 / (x * x + 1).squareRoot() }
        case .inverseHyperbolicCosine: return { x, _ in 1 / (x * x - 1).squareRoot() }
        case .inverseHyperbolicTangent: return { x, _ in 1 / (1 - x * x) }
        case .floor, .ceil, .round, .sign, .not: return nil
        }
    }
}
