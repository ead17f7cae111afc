import ScionIR

/// Elementwise combinations and per-channel affine maps: Keras's merge layers (`elementwise`, with
/// numpy broadcasting), Inception-ResNet's scaled residual, ConvNeXt's LayerScale and Rescaling
/// (ONNX's comparisons, Where and Mod are in Logic.swift). The broadcasting kernels are in
/// Kernels+Tensors.swift.
extension Executor {
    /// A merge, with the ReLU fused into an addition (`fuseActivations`) applied as it writes its result.
    func elementwise(_ node: Node, _ inputs: [RuntimeTensor], _ operation: ElementwiseOperation) throws -> RuntimeTensor {
        var y = try Kernels.elementwise(operation, inputs, node: node.name)
        // Integers (held as floats) divide as ONNX and onnxruntime do, truncating toward zero:
        // torch's dynamo exporter writes a dynamic shape's `//` as an int64 Div (a length of 33
        // halved is 16, not 16.5).
        // `cast`'s rounding to an integer type is that truncation.
        if operation == .divide, let output = node.outputs.first, let dtype = graph.values[output]?.dtype,
           !dtype.isFloatingPoint, dtype != .bool {
            y = cast(y, to: dtype)
        }
        guard let fused = fusedActivations[node.name] else { return y }
        // The sum is this call's own buffer: the ReLU rewrites it rather than copy it.
        if case .relu(let cap, 0, 0) = fused {
            Kernels.reluInPlace(&y, cap: cap ?? .infinity)
            return y
        }
        return try Kernels.activate(y, fused, node: node.name)
    }

    func scaledResidual(_ node: Node, _ inputs: [RuntimeTensor], _ a: ScaledResidualAttributes) throws -> RuntimeTensor {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "needs two inputs") }
        let scaled = RuntimeTensor(shape: inputs[1].shape, data: inputs[1].data.map { $0 * a.scale })
        return try Kernels.broadcast(inputs[0], scaled, node: node.name, +)
    }

    func layerScale(_ node: Node, _ x: RuntimeTensor, _ a: LayerScaleAttributes) throws -> RuntimeTensor {
        let gamma = try require(node, .gamma)
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        return Kernels.perAxis(x, axis: axis, scale: gamma, shift: [Float](repeating: 0, count: gamma.count))
    }
}

extension Trainer {
    /// Elementwise ops with numpy broadcasting: each operand's partial derivative, summed back to its shape.
    func elementwiseBackward(_ operation: ElementwiseOperation, _ inputs: [RuntimeTensor], dy: RuntimeTensor,
                             node: String) throws -> [RuntimeTensor?] {
        let scaled = { (factor: Float) in RuntimeTensor(shape: dy.shape, data: dy.data.map { $0 * factor }) }
        func times(_ other: RuntimeTensor, _ f: @escaping (Float, Float) -> Float) throws -> RuntimeTensor {
            try Kernels.broadcast(dy, other, node: node, f)
        }
        switch operation {
        case .add:
            return try inputs.map { try Kernels.sumToShape(dy, $0.shape) }
        case .average:
            return try inputs.map { try Kernels.sumToShape(scaled(1 / Float(inputs.count)), $0.shape) }
        case .subtract where inputs.count == 2:
            return [try Kernels.sumToShape(dy, inputs[0].shape), try Kernels.sumToShape(scaled(-1), inputs[1].shape)]
        case .multiply:
            return try inputs.indices.map { position in
                let others = inputs.enumerated().filter { $0.offset != position }.map(\.element)
                guard !others.isEmpty else { return dy }
                let product = try Kernels.elementwise(.multiply, others, node: node)
                return try Kernels.sumToShape(try times(product, *), inputs[position].shape)
            }
        case .divide where inputs.count == 2:
            let (a, b) = (inputs[0], inputs[1])
            let quotient = try Kernels.broadcast(a, b, node: node) { $0 / ($1 * $1) }
            return [try Kernels.sumToShape(try times(b, /), a.shape), try Kernels.sumToShape(try times(quotient) { -$0 * $1 }, b.shape)]
        case .maximum where inputs.count == 2, .minimum where inputs.count == 2:
            let (a, b) = (inputs[0], inputs[1])
            let first = try Kernels.broadcast(a, b, node: node) { operation == .maximum ? ($0 >= $1 ? 1 : 0) : ($0 <= $1 ? 1 : 0) }
            return [try Kernels.sumToShape(try times(first, *), a.shape), try Kernels.sumToShape(try times(first) { $0 * (1 - $1) }, b.shape)]
        case .subtract, .divide, .maximum, .minimum, .power:
            throw RuntimeError(node, "\(operation.typeName) of \(inputs.count) inputs has no gradient yet")
        }
    }

    /// `inputs[0] + scale · inputs[1]`: dy to the first, dy · scale to the second, each summed back
    /// to its shape.
    func scaledResidualBackward(_ a: ScaledResidualAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        let scaled = RuntimeTensor(shape: dy.shape, data: dy.data.map { $0 * a.scale })
        return StepGradients(inputs: [try Kernels.sumToShape(dy, inputs[0].shape), try Kernels.sumToShape(scaled, inputs[1].shape)])
    }

    /// `x · gamma` per channel: dx = dy · gamma, dgamma = Σ dy · x over the other axes.
    func layerScaleBackward(_ node: Node, _ a: LayerScaleAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients {
        guard let gamma = graph.parameter(of: node, role: .gamma), let values = executor.weights[gamma.name] else {
            throw RuntimeError(node.name, "is missing its gamma")
        }
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        let dx = Kernels.perAxis(dy, axis: axis, scale: values, shift: [Float](repeating: 0, count: values.count))
        var dGamma = [Float](repeating: 0, count: values.count)
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        for index in x.data.indices { dGamma[(index / inner) % values.count] += dy.data[index] * x.data[index] }
        return StepGradients(inputs: [dx], parameters: [(gamma.name, dGamma)])
    }

    /// `x · scale + offset`: the gradient is dy scaled the same way, without the offset.
    func rescalingBackward(_ a: RescalingAttributes, dy: RuntimeTensor) -> StepGradients {
        var unscaled = a
        unscaled.offset = [0]
        return StepGradients(inputs: [Kernels.rescale(dy, unscaled)])
    }
}
