import Foundation
import ScionIR

/// The ONNX patterns for padding, activations, merges and normalization.
extension ONNXGraphBuilder {
    /// `pads` for a sliding window. Keras's "same" puts the odd pixel at the end, like SAME_UPPER;
    /// explicit pads are written when the input size is known, SAME_UPPER otherwise.
    func padding(_ padding: Padding, node: Node, input: Shape?, kernel: [Int], strides: [Int], dilations: [Int]) throws
        -> [ONNXAttribute]
    {
        let rank = kernel.count
        switch padding {
        case .valid:
            return [.ints("pads", Array(repeating: 0, count: 2 * rank))]
        case .explicit(let pads):
            return [.ints("pads", pads)]
        case .causal:
            guard rank == 1 else { throw unsupported(node, "causal padding is only defined in 1-D") }
            return [.ints("pads", [(kernel[0] - 1) * dilations[0], 0])]
        case .same:
            guard let input, input.rank == rank + 2 else { return [.string("auto_pad", "SAME_UPPER")] }
            var begins: [Int] = []
            var ends: [Int] = []
            for axis in 0..<rank {
                guard let length = input[axis + 2] else { return [.string("auto_pad", "SAME_UPPER")] }
                let outputLength = (length + strides[axis] - 1) / strides[axis]
                let span = (kernel[axis] - 1) * dilations[axis] + 1
                let total = max((outputLength - 1) * strides[axis] + span - length, 0)
                begins.append(total / 2)
                ends.append(total - total / 2)
            }
            return [.ints("pads", begins + ends)]
        }
    }

    /// ConvTranspose crops `pads` from the full output `s*(in-1) + k_eff`; Keras's sizes are met by
    /// cropping the difference (odd pixel at the end) or, when the output is larger, `output_padding`.
    func transposedPadding(_ a: ConvTransposeAttributes, node: Node, input: Shape?, output: Shape?) throws -> [ONNXAttribute] {
        guard let input, let output, input.rank == a.rank + 2, output.rank == a.rank + 2 else {
            throw unsupported(node, "a transposed convolution needs known input and output sizes")
        }
        var begins: [Int] = []
        var ends: [Int] = []
        var outputPadding: [Int] = []
        for axis in 0..<a.rank {
            guard let length = input[axis + 2], let target = output[axis + 2] else {
                throw unsupported(node, "a transposed convolution needs known spatial sizes")
            }
            let span = (a.kernelSize[axis] - 1) * a.dilations[axis] + 1
            let total = a.strides[axis] * (length - 1) + span - target
            if total >= 0 {
                begins.append(total / 2)
                ends.append(total - total / 2)
                outputPadding.append(0)
            } else {
                begins.append(0)
                ends.append(0)
                outputPadding.append(-total)
            }
        }
        var attributes: [ONNXAttribute] = [.ints("kernel_shape", a.kernelSize), .ints("strides", a.strides),
                                           .ints("dilations", a.dilations), .ints("pads", begins + ends)]
        if outputPadding.contains(where: { $0 != 0 }) { attributes.append(.ints("output_padding", outputPadding)) }
        return attributes
    }

    /// A scalar of an op's ONNX spelling (GELU's sqrt(2), a clip's bounds, an epsilon): never a weight, so
    /// listed with the frozen parameters; else the file read back would train it (`finetune` of a model
    /// with GELU moved its constants).
    mutating func scalar(_ name: String, _ value: Float) -> String {
        let constant = constant(name, floats: [value], dimensions: [])
        frozenConstants.append(constant)
        return constant
    }

    mutating func activation(_ activation: Activation, node: Node, input: String, output: String, rank: Int?) throws {
        let name = node.name
        func axis(_ value: Int) -> Int { value < 0 ? value + (rank ?? 0) : value }
        switch activation {
        case .linear: add("Identity", name: name, inputs: [input], output: output)
        case .relu(nil, 0, 0): add("Relu", name: name, inputs: [input], output: output)
        case .relu(let maxValue?, 0, 0):
            add("Clip", name: name, inputs: [input, scalar("\(name)/min", 0), scalar("\(name)/max", maxValue)], output: output)
        case .relu(let maxValue, let slope, let threshold):
            // Keras: x >= max -> max; x >= threshold -> x; else slope * (x - threshold).
            let shifted = intermediate("Sub", name: name, inputs: [input, scalar("\(name)/threshold", threshold)])
            let below = intermediate("Mul", name: name, inputs: [shifted, scalar("\(name)/slope", slope)])
            let condition = intermediate("GreaterOrEqual", name: name, inputs: [input, scalar("\(name)/threshold_", threshold)])
            if let maxValue {
                let selected = intermediate("Where", name: name, inputs: [condition, input, below])
                add("Min", name: name, inputs: [selected, scalar("\(name)/max", maxValue)], output: output)
            } else {
                add("Where", name: name, inputs: [condition, input, below], output: output)
            }
        case .leakyRelu(let alpha): add("LeakyRelu", name: name, inputs: [input], output: output, attributes: [.float("alpha", alpha)])
        case .elu(let alpha): add("Elu", name: name, inputs: [input], output: output, attributes: [.float("alpha", alpha)])
        case .selu: add("Selu", name: name, inputs: [input], output: output)
        case .sigmoid: add("Sigmoid", name: name, inputs: [input], output: output)
        case .hardSigmoid(let alpha, let beta):
            add("HardSigmoid", name: name, inputs: [input], output: output, attributes: [.float("alpha", alpha), .float("beta", beta)])
        case .hardSwish:
            if hasNative(14) {
                add("HardSwish", name: name, inputs: [input], output: output)
            } else {
                let gate = intermediate("HardSigmoid", name: name, inputs: [input],
                                        attributes: [.float("alpha", 1.0 / 6.0), .float("beta", 0.5)])
                add("Mul", name: name, inputs: [input, gate], output: output)
            }
        case .swish:
            add("Mul", name: name, inputs: [input, intermediate("Sigmoid", name: name, inputs: [input])], output: output)
        case .tanh: add("Tanh", name: name, inputs: [input], output: output)
        case .gelu(let approximate):
            if hasNative(20) {
                add("Gelu", name: name, inputs: [input], output: output,
                    attributes: approximate ? [.string("approximate", "tanh")] : [])
            } else if approximate {
                // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
                let cube = intermediate("Mul", name: name, inputs: [input, intermediate("Mul", name: name, inputs: [input, input])])
                let inner = intermediate("Add", name: name, inputs: [input, intermediate("Mul", name: name, inputs: [cube, scalar("\(name)/c", 0.044715)])])
                let scaled = intermediate("Mul", name: name, inputs: [inner, scalar("\(name)/k", Float((2.0 / Double.pi).squareRoot()))])
                let onePlus = intermediate("Add", name: name, inputs: [intermediate("Tanh", name: name, inputs: [scaled]), scalar("\(name)/one", 1)])
                let half = intermediate("Mul", name: name, inputs: [input, scalar("\(name)/half", 0.5)])
                add("Mul", name: name, inputs: [half, onePlus], output: output)
            } else {
                // 0.5 x (1 + erf(x / sqrt 2))
                let scaled = intermediate("Div", name: name, inputs: [input, scalar("\(name)/sqrt2", Float(2.0.squareRoot()))])
                let onePlus = intermediate("Add", name: name, inputs: [intermediate("Erf", name: name, inputs: [scaled]), scalar("\(name)/one", 1)])
                let half = intermediate("Mul", name: name, inputs: [input, scalar("\(name)/half", 0.5)])
                add("Mul", name: name, inputs: [half, onePlus], output: output)
            }
        case .softplus: add("Softplus", name: name, inputs: [input], output: output)
        case .softsign: add("Softsign", name: name, inputs: [input], output: output)
        case .exponential: add("Exp", name: name, inputs: [input], output: output)
        case .mish:
            let softplus = intermediate("Softplus", name: name, inputs: [input])
            add("Mul", name: name, inputs: [input, intermediate("Tanh", name: name, inputs: [softplus])], output: output)
        case .softmax(let value): add("Softmax", name: name, inputs: [input], output: output, attributes: [.int("axis", axis(value))])
        case .logSoftmax(let value): add("LogSoftmax", name: name, inputs: [input], output: output, attributes: [.int("axis", axis(value))])
        case .celu(let alpha): add("Celu", name: name, inputs: [input], output: output, attributes: [.float("alpha", alpha)])
        case .logSigmoid:
            let softplus = intermediate("Softplus", name: name, inputs: [intermediate("Neg", name: name, inputs: [input])])
            add("Neg", name: name, inputs: [softplus], output: output)
        case .hardTanh:
            add("Clip", name: name, inputs: [input, scalar("\(name)/min", -1), scalar("\(name)/max", 1)], output: output)
        case .tanhShrink:
            add("Sub", name: name, inputs: [input, intermediate("Tanh", name: name, inputs: [input])], output: output)
        case .softShrink(let threshold):
            add("Shrink", name: name, inputs: [input], output: output, attributes: [.float("lambd", threshold), .float("bias", threshold)])
        case .hardShrink(let threshold):
            add("Shrink", name: name, inputs: [input], output: output, attributes: [.float("lambd", threshold), .float("bias", 0)])
        case .squareplus(let b):
            let square = intermediate("Mul", name: name, inputs: [input, input])
            let root = intermediate("Sqrt", name: name, inputs: [intermediate("Add", name: name, inputs: [square, scalar("\(name)/b", b)])])
            let sum = intermediate("Add", name: name, inputs: [input, root])
            add("Mul", name: name, inputs: [sum, scalar("\(name)/half", 0.5)], output: output)
        case .sparseSigmoid:
            // clip((x + 1) / 2, 0, 1)
            let shifted = intermediate("Add", name: name, inputs: [input, scalar("\(name)/one", 1)])
            let halved = intermediate("Mul", name: name, inputs: [shifted, scalar("\(name)/half", 0.5)])
            add("Clip", name: name, inputs: [halved, scalar("\(name)/min", 0), scalar("\(name)/max", 1)], output: output)
        case .sparsePlus:
            // x <= -1: 0; x >= 1: x; otherwise (x + 1)^2 / 4
            let shifted = intermediate("Add", name: name, inputs: [input, scalar("\(name)/one", 1)])
            let quarter = intermediate("Mul", name: name, inputs: [intermediate("Mul", name: name, inputs: [shifted, shifted]),
                                                                   scalar("\(name)/quarter", 0.25)])
            let upper = intermediate("GreaterOrEqual", name: name, inputs: [input, scalar("\(name)/one_", 1)])
            let inner = intermediate("Where", name: name, inputs: [upper, input, quarter])
            let lower = intermediate("LessOrEqual", name: name, inputs: [input, scalar("\(name)/minus_one", -1)])
            add("Where", name: name, inputs: [lower, scalar("\(name)/zero", 0), inner], output: output)
        case .sparsemax:
            throw unsupported(node, "activation 'sparsemax' has no ONNX pattern in Scion yet")
        }
    }

    mutating func elementwise(_ operation: ElementwiseOperation, node: Node, output: String) throws {
        let inputs = node.inputs
        if inputs.count == 1 { add("Identity", name: node.name, inputs: inputs, output: output); return }
        switch operation {
        case .add: add(inputs.count == 2 ? "Add" : "Sum", name: node.name, inputs: inputs, output: output)
        case .average: add("Mean", name: node.name, inputs: inputs, output: output)
        case .maximum: add("Max", name: node.name, inputs: inputs, output: output)
        case .minimum: add("Min", name: node.name, inputs: inputs, output: output)
        case .divide, .power:
            guard inputs.count == 2 else { throw unsupported(node, "\(operation.typeName) takes exactly 2 inputs") }
            add(operation == .divide ? "Div" : "Pow", name: node.name, inputs: inputs, output: output)
        case .subtract:
            guard inputs.count == 2 else { throw unsupported(node, "Subtract takes exactly 2 inputs") }
            add("Sub", name: node.name, inputs: inputs, output: output)
        case .multiply:
            var product = inputs[0]
            for (index, next) in inputs.dropFirst().enumerated() {
                if index == inputs.count - 2 { add("Mul", name: node.name, inputs: [product, next], output: output) }
                else { product = intermediate("Mul", name: node.name, inputs: [product, next]) }
            }
        }
    }

    /// Keras: `(x - mean) / max(sqrt(variance), 1e-7)`, or its inverse. Statistics come from the config
    /// or from the adapted layer's weights (read here: they are small).
    mutating func normalization(_ a: NormalizationAttributes, node: Node, parameters: [Parameter], input: String,
                                output: String, inputShape: Shape?) throws {
        func floats(_ role: ParameterRole) throws -> [Float] {
            guard let parameter = parameters.first(where: { $0.role == role }), parameter.dtype == .float32 else {
                throw unsupported(node, "has no float32 '\(role)' statistics")
            }
            let bytes = try parameter.storage.bytes(keep: false)
            return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        let mean = try a.mean ?? floats(.mean)
        let variance = try a.variance ?? floats(.variance)
        guard mean.count == variance.count, !mean.isEmpty else { throw unsupported(node, "mean and variance differ in size") }
        let scale = variance.map { max($0.squareRoot(), 1e-7) }
        let rank = inputShape?.rank ?? 1
        let axis = a.axes.count == 1 ? a.axes[0] : -1
        let dimensions = broadcastDimensions(mean.count, axis: axis, rank: rank)
        let meanName = constant("\(node.name)/mean", floats: mean, dimensions: dimensions)
        let scaleName = constant("\(node.name)/scale", floats: scale, dimensions: dimensions)
        if a.invert {
            let scaled = intermediate("Mul", name: node.name, inputs: [input, scaleName])
            add("Add", name: node.name, inputs: [scaled, meanName], output: output)
        } else {
            let centered = intermediate("Sub", name: node.name, inputs: [input, meanName])
            add("Div", name: node.name, inputs: [centered, scaleName], output: output)
        }
    }
}
