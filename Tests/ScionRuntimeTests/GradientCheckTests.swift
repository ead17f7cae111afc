import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Every op's backward step against finite differences of its forward step.
///
/// Each case is `x → x + shift → op → output`, channels-first, where `shift` is a trainable tensor of
/// one sample's shape: its gradient is the op's input gradient summed over the batch, so input and
/// weight gradients are both checked element by element. The loss is `Σ w · output` with fixed
/// random `w` (so dL/doutput = w), the derivative is the central difference with step 1e-3 on
/// float32 forward passes, and the seeds are fixed (Dropout draws the same mask every pass).
final class GradientCheckTests: XCTestCase {
    var random = SplitMix64(seed: 7)

    func values(_ count: Int, scale: Float = 1) -> [Float] { (0..<count).map { _ in (random.unit() * 2 - 1) * scale } }

    func parameter(_ name: String, _ role: String, _ shape: [Int], trainable: Bool = true, scale: Float = 1, offset: Float = 0) -> Parameter {
        let data = values(shape.reduce(1, *), scale: scale).map { $0 + offset }
        return Parameter(name: name, role: ParameterRole(rawValue: role), shape: shape, dtype: .float32, trainable: trainable,
                         storage: TensorStorage(bytes: data.withUnsafeBytes { Array($0) }))
    }

    func node(_ name: String, _ op: Op, _ inputs: [String], parameters: [String] = [], trainable: Bool = true) -> Node {
        Node(name: name, op: op, inputs: inputs, outputs: [name], parameters: parameters, trainable: trainable)
    }

    /// Checks every trainable tensor's gradient (up to 12 elements of each) for the op(s) `build`
    /// makes on the shifted input; `build` returns its nodes, their parameters and the output value.
    func check(_ name: String, input: [Int], shift: Bool = true, inputValues: [Float]? = nil, file: StaticString = #filePath,
               line: UInt = #line, _ build: (String) -> ([Node], [Parameter], String)) throws {
        var nodes: [Node] = [], table = ParameterTable()
        var first = "x"
        if shift {
            table.add(parameter("shift", "value", [1] + input.dropFirst()))
            nodes.append(node("shift", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["shift"]))
            nodes.append(node("shifted", .elementwise(.add), ["x", "shift"]))
            first = "shifted"
        }
        let (opNodes, parameters, output) = build(first)
        for parameter in parameters { table.add(parameter) }
        var graph = Graph(name: name, inputs: [ValueInfo(name: "x", shape: Shape([nil] + input.dropFirst().map { $0 }), dtype: .float32)],
                          outputs: [output], nodes: nodes + opNodes, parameters: table)
        graph.layout = .channelsFirst
        var trainer = try Trainer(graph: graph)
        let x = RuntimeTensor(shape: input, data: inputValues ?? values(input.reduce(1, *)))
        let batch = try trainer.frontierBatch(try trainer.features(of: x), rows: Array(0..<input[0]))
        func run(_ trainer: Trainer) throws -> RuntimeTensor {
            var generator = SplitMix64(seed: 1)
            let tape = try trainer.forward(batch, training: true, random: &generator)
            return try XCTUnwrap(tape.values[trainer.output])
        }
        let prediction = try run(trainer)
        let weights = values(prediction.count)
        func loss(_ trainer: Trainer) throws -> Double {
            zip(try run(trainer).data, weights).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        var generator = SplitMix64(seed: 1)
        let tape = try trainer.forward(batch, training: true, random: &generator)
        let gradients = try trainer.backward(tape, outputGradient: RuntimeTensor(shape: prediction.shape, data: weights),
                                             skipOutputActivation: false)
        XCTAssertEqual(Set(gradients.keys), Set(trainer.trainableParameters), "\(name): a gradient for every trainable tensor", file: file, line: line)
        let epsilon: Float = 1e-3
        for tensor in trainer.trainableParameters {
            let analytic = try XCTUnwrap(gradients[tensor], "\(name): \(tensor)", file: file, line: line)
            let original = try XCTUnwrap(trainer.executor.weights[tensor])
            for index in stride(from: 0, to: original.count, by: max(1, original.count / 12)) {
                trainer.executor.weights[tensor]![index] = original[index] + epsilon
                let plus = try loss(trainer)
                trainer.executor.weights[tensor]![index] = original[index] - epsilon
                let minus = try loss(trainer)
                trainer.executor.weights[tensor] = original
                let numeric = (plus - minus) / Double(2 * epsilon), value = Double(analytic[index])
                XCTAssertEqual(value, numeric, accuracy: 5e-3 + 2e-2 * max(abs(numeric), abs(value)),
                               "\(name): d/d\(tensor)[\(index)]", file: file, line: line)
            }
        }
    }

    func testConvolutions() throws {
        let cases: [(String, [Int], ConvAttributes, [Int])] = [
            ("conv 3x3 stride 2 same, swish", [2, 3, 6, 6],
             ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [2, 2], dilations: [1, 1], padding: .same, activation: .swish,
                            layout: .channelsFirst), [4, 3, 3, 3]),
            ("conv 2x3 dilated 2, explicit pads, no bias", [2, 2, 7, 6],
             ConvAttributes(filters: 3, kernelSize: [2, 3], strides: [1, 1], dilations: [2, 2], padding: .explicit([1, 0, 2, 1]),
                            useBias: false, layout: .channelsFirst), [3, 2, 2, 3]),
            ("grouped conv, 2 groups, valid", [2, 4, 5, 5],
             ConvAttributes(filters: 6, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .valid, groups: 2,
                            layout: .channelsFirst), [6, 2, 3, 3]),
            ("depthwise, multiplier 2, stride 2 same, relu6", [2, 3, 7, 7],
             ConvAttributes(filters: 6, kernelSize: [3, 3], strides: [2, 2], dilations: [1, 1], padding: .same, groups: 3,
                            activation: .relu(maxValue: 0.5, negativeSlope: 0, threshold: 0), layout: .channelsFirst), [6, 1, 3, 3]),
            ("depthwise dilated 2, valid", [1, 2, 7, 7],
             ConvAttributes(filters: 2, kernelSize: [3, 3], strides: [1, 1], dilations: [2, 2], padding: .valid, groups: 2,
                            layout: .channelsFirst), [2, 1, 3, 3]),
            ("conv 1-D stride 2 same", [2, 3, 9],
             ConvAttributes(filters: 4, kernelSize: [3], strides: [2], dilations: [1], padding: .same, layout: .channelsFirst), [4, 3, 3]),
        ]
        for (name, input, attributes, kernelShape) in cases {
            try check(name, input: input) { x in
                var parameters = [parameter("c/kernel", "kernel", kernelShape, scale: 0.5)]
                var names = ["c/kernel"]
                if attributes.useBias { parameters.append(parameter("c/bias", "bias", [attributes.filters])); names.append("c/bias") }
                return ([node("c", .conv(attributes), [x], parameters: names)], parameters, "c")
            }
        }
    }

    func testDenseAndMatMul() throws {
        try check("dense tanh on [N, F]", input: [3, 5]) { x in
            ([node("d", .dense(DenseAttributes(units: 4, activation: .tanh)), [x], parameters: ["d/kernel", "d/bias"])],
             [parameter("d/kernel", "kernel", [5, 4]), parameter("d/bias", "bias", [4])], "d")
        }
        try check("dense on [N, T, F]", input: [2, 3, 4]) { x in
            ([node("d", .dense(DenseAttributes(units: 2)), [x], parameters: ["d/kernel", "d/bias"])],
             [parameter("d/kernel", "kernel", [4, 2]), parameter("d/bias", "bias", [2])], "d")
        }
        try check("matmul with a weight", input: [3, 4]) { x in
            ([node("m", .onnx(.matMul), [x], parameters: ["m/kernel"])], [parameter("m/kernel", "kernel", [4, 3])], "m")
        }
    }

    /// keras.ops.matmul of computed values (attention's q·kᵀ): both operands get gradients, a
    /// broadcast one summed over the batch axes it was repeated along.
    func testMatMulOfComputedOperands() throws {
        try check("matmul of the input and a weight broadcast over the batch", input: [2, 3, 5, 4]) { x in
            ([node("w", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["w"]),
              node("m", .onnx(.matMul), [x, "w"])], [parameter("w", "value", [1, 3, 4, 2])], "m")
        }
        try check("matmul of a value by its own transpose", input: [2, 4, 3]) { x in
            ([node("t", .transpose(TransposeAttributes(permutation: [0, 2, 1])), [x]), node("m", .onnx(.matMul), [x, "t"])], [], "m")
        }
    }

    func testBatchNormalization() throws {
        func bn(_ trainable: Bool) -> (String) -> ([Node], [Parameter], String) {
            { x in
                let roles = ["gamma", "beta", "moving_mean", "moving_variance"]
                let parameters = roles.map { role in
                    self.parameter("bn/\(role)", role, [3], trainable: trainable && (role == "gamma" || role == "beta"),
                                   scale: role == "moving_variance" ? 0.5 : 1, offset: role == "moving_variance" ? 1 : 0)
                }
                return ([self.node("bn", .batchNormalization(BatchNormalizationAttributes(axis: 1, epsilon: 1e-3, momentum: 0.99, center: true, scale: true)),
                                   [x], parameters: roles.map { "bn/\($0)" }, trainable: trainable)], parameters, "bn")
            }
        }
        try check("BatchNormalization training (batch statistics)", input: [4, 3, 3, 3], bn(true))
        try check("BatchNormalization frozen (inference mode)", input: [4, 3, 3, 3], bn(false))
        try check("BatchNormalization training on [N, F]", input: [5, 3], bn(true))
    }

    func testActivations() throws {
        let activations: [Activation] = [
            .plainRelu, .relu(maxValue: 0.6, negativeSlope: 0.1, threshold: 0.05), .leakyRelu(alpha: 0.2), .elu(alpha: 1.2), .selu, .sigmoid,
            .hardSigmoid(alpha: 0.2, beta: 0.5), .hardSwish, .swish, .tanh, .gelu(approximate: false), .gelu(approximate: true), .softplus,
            .softsign, .exponential, .mish, .hardTanh, .logSigmoid, .tanhShrink, .softmax(axis: 1), .logSoftmax(axis: -1), .linear,
            .celu(alpha: 0.8), .squareplus(b: 4), .sparsePlus, .sparseSigmoid, .softShrink(threshold: 0.3), .hardShrink(threshold: 0.3),
        ]
        for activation in activations {
            try check("activation \(activation)", input: [2, 4, 3]) { x in
                ([node("a", .activation(activation), [x])], [], "a")
            }
        }
    }

    func testPooling() throws {
        let pools: [(String, PoolAttributes)] = [
            ("max 3x3 stride 2 same", PoolAttributes(kind: .max, poolSize: [3, 3], strides: [2, 2], padding: .same, layout: .channelsFirst)),
            ("max 2x2 valid", PoolAttributes(kind: .max, poolSize: [2, 2], strides: [2, 2], padding: .valid, layout: .channelsFirst)),
            ("average 3x3 stride 2 same", PoolAttributes(kind: .average, poolSize: [3, 3], strides: [2, 2], padding: .same, layout: .channelsFirst)),
            ("average explicit pads counting them", PoolAttributes(kind: .average, poolSize: [3, 3], strides: [1, 1], padding: .explicit([1, 1, 1, 1]),
                                                                   countIncludePad: true, layout: .channelsFirst)),
        ]
        for (name, attributes) in pools {
            try check("pool \(name)", input: [2, 2, 5, 5]) { x in ([node("p", .pool(attributes), [x])], [], "p") }
        }
        try check("pool 1-D max", input: [2, 3, 7]) { x in
            ([node("p", .pool(PoolAttributes(kind: .max, poolSize: [2], strides: [2], padding: .valid, layout: .channelsFirst)), [x])], [], "p")
        }
        for kind in [PoolKind.average, .max] {
            try check("global \(kind) pool", input: [2, 3, 4, 4]) { x in
                ([node("g", .globalPool(GlobalPoolAttributes(kind: kind, rank: 2, layout: .channelsFirst)), [x])], [], "g")
            }
        }
    }

    func testElementwiseWithBroadcasting() throws {
        for operation in [ElementwiseOperation.add, .subtract, .multiply, .divide, .maximum, .minimum, .average] {
            try check("\(operation) with a broadcast [1, C, 1, 1] weight", input: [2, 3, 2, 2]) { x in
                let offset: Float = operation == .divide ? 2 : 0
                return ([node("w", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["w"]),
                         node("e", .elementwise(operation), [x, "w"])], [parameter("w", "value", [1, 3, 1, 1], offset: offset)], "e")
            }
        }
        try check("multiply of three, one broadcast", input: [2, 3, 2]) { x in
            ([node("w", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["w"]), node("sq", .activation(.sigmoid), [x]),
              node("e", .elementwise(.multiply), [x, "w", "sq"])], [parameter("w", "value", [3, 1])], "e")
        }
    }

    func testShapeOps() throws {
        try check("concatenate on channels (a value used twice)", input: [2, 2, 3]) { x in
            ([node("t", .activation(.tanh), [x]), node("c", .concatenate(ConcatenateAttributes(axis: 1)), [x, "t", x])], [], "c")
        }
        try check("split into two, the first part unused", input: [2, 5, 2]) { x in
            ([Node(name: "s", op: .onnx(.split(SplitAttributes(axis: 1, sizes: [2, 3]))), inputs: [x], outputs: ["s0", "s1"]),
              node("t", .activation(.tanh), ["s1"])], [], "t")
        }
        try check("zero padding", input: [2, 2, 3, 3]) { x in
            ([node("z", .zeroPadding(SpatialPaddingAttributes(padding: [[1, 2], [0, 1]], layout: .channelsFirst)), [x])], [], "z")
        }
        try check("cropping", input: [2, 2, 5, 5]) { x in
            ([node("c", .cropping(SpatialPaddingAttributes(padding: [[1, 0], [2, 1]], layout: .channelsFirst)), [x])], [], "c")
        }
        try check("constant pad", input: [2, 2, 3]) { x in
            ([node("p", .onnx(.pad(PadAttributes(pads: [0, 1, 2, 0, 0, 1], mode: .constant, value: 0.5))), [x])], [], "p")
        }
        try check("flatten", input: [2, 3, 2, 2]) { x in ([node("f", .flatten(FlattenAttributes(layout: .channelsFirst, axis: 1)), [x])], [], "f") }
        try check("reshape", input: [2, 3, 4]) { x in ([node("r", .reshape(ReshapeAttributes(targetShape: [4, 3])), [x])], [], "r") }
        try check("transpose", input: [2, 3, 4, 5]) { x in ([node("t", .transpose(TransposeAttributes(permutation: [0, 2, 3, 1])), [x])], [], "t") }
        try check("permute", input: [2, 3, 4]) { x in ([node("p", .permute(PermuteAttributes(dimensions: [2, 1])), [x])], [], "p") }
    }

    func testScalingAndParametricOps() throws {
        try check("rescaling per channel", input: [2, 3, 2, 2]) { x in
            ([node("r", .rescaling(RescalingAttributes(scale: [0.5, 2, -1], offset: [1, 1, 1], axis: 1)), [x])], [], "r")
        }
        try check("clip", input: [2, 6]) { x in ([node("c", .onnx(.clip(ClipAttributes(minimum: -0.4, maximum: 0.3))), [x])], [], "c") }
        try check("PReLU per channel", input: [2, 3, 2, 2]) { x in
            ([node("p", .prelu(PReLUAttributes(sharedAxes: [2, 3])), [x], parameters: ["p/alpha"])], [parameter("p/alpha", "alpha", [3, 1, 1])], "p")
        }
        try check("LayerScale", input: [2, 3, 2, 2]) { x in
            ([node("l", .layerScale(LayerScaleAttributes(axis: 1)), [x], parameters: ["l/gamma"])], [parameter("l/gamma", "gamma", [3])], "l")
        }
        try check("scaled residual", input: [2, 3, 2]) { x in
            ([node("t", .activation(.tanh), [x]), node("r", .scaledResidual(ScaledResidualAttributes(scale: 0.3)), [x, "t"])], [], "r")
        }
        try check("Dropout while training (the mask replayed)", input: [3, 8]) { x in
            ([node("d", .dropout(DropoutAttributes(rate: 0.4)), [x]), node("t", .activation(.tanh), ["d"])], [], "t")
        }
        try check("spatial Dropout while training", input: [3, 4, 2, 2]) { x in
            ([node("d", .dropout(DropoutAttributes(rate: 0.5, spatial: true)), [x])], [], "d")
        }
    }

    func testNormalizationsReductionsAndONNXMath() throws {
        for axes in [[-1], [1, 2]] {
            try check("LayerNormalization over \(axes)", input: [2, 3, 4]) { x in
                let shape = axes == [-1] ? [4] : [3, 4]
                return ([node("ln", .layerNormalization(LayerNormalizationAttributes(axes: axes, epsilon: 1e-3, center: true, scale: true)), [x],
                              parameters: ["ln/gamma", "ln/beta"])],
                        [parameter("ln/gamma", "gamma", shape, offset: 1), parameter("ln/beta", "beta", shape)], "ln")
            }
        }
        // Two groups of two channels, one group per channel without beta, and channels last (Keras's
        // axis -1, moved to axis 1 and back inside the kernel).
        for (groups, axis, center, input) in [(2, 1, true, [2, 4, 3, 2]), (-1, 1, false, [2, 3, 4]), (2, -1, true, [2, 3, 4])] {
            try check("GroupNormalization groups \(groups) axis \(axis)", input: input) { x in
                let channels = input[axis < 0 ? input.count + axis : axis]
                let a = GroupNormalizationAttributes(groups: groups, axis: axis, epsilon: 1e-3, center: center)
                let names = center ? ["gn/gamma", "gn/beta"] : ["gn/gamma"]
                let parameters = [parameter("gn/gamma", "gamma", [channels], offset: 1)] + (center ? [parameter("gn/beta", "beta", [channels])] : [])
                return ([node("gn", .groupNormalization(a), [x], parameters: names)], parameters, "gn")
            }
        }
        // Normalizations whose operands are computed (here trainable constants, so each operand's
        // gradient is checked too), and the computed-shape ops (their operands fixed).
        func operand(_ name: String, _ values: [Float]? = nil, trainable: Bool = true, offset: Float = 0) -> (Node, Parameter) {
            var p = values.map { v in
                Parameter(name: "\(name)/value", role: .value, shape: [v.count], dtype: .float32, trainable: false,
                          storage: TensorStorage(bytes: v.withUnsafeBytes { Array($0) }))
            } ?? parameter("\(name)/value", "value", [3], trainable: trainable, offset: offset)
            p.trainable = trainable && values == nil
            return (node(name, .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: [p.name], trainable: p.trainable), p)
        }
        try check("BatchNormalization of computed moments", input: [2, 3, 2, 2]) { x in
            let parts = [operand("scale", offset: 1), operand("bias"), operand("mean"), operand("variance", offset: 2)]
            let bn = node("bn", .onnx(.computedBatchNormalization(ComputedNormalizationAttributes(epsilon: 1e-3))),
                          [x, "scale", "bias", "mean", "variance"])
            return (parts.map(\.0) + [bn], parts.map(\.1), "bn")
        }
        try check("InstanceNormalization with a computed scale", input: [2, 3, 4]) { x in
            let parts = [operand("scale", offset: 1), operand("bias")]
            let instance = node("in", .onnx(.computedInstanceNormalization(ComputedNormalizationAttributes(epsilon: 1e-3))),
                                [x, "scale", "bias"])
            return (parts.map(\.0) + [instance], parts.map(\.1), "in")
        }
        try check("Expand, Tile and Reshape to computed shapes", input: [2, 3, 1]) { x in
            let parts = [operand("target", [2, 3, 4]), operand("repeats", [1, 2, 1]), operand("flat", [2, -1])]
            return (parts.map(\.0) + [node("e", .onnx(.expand), [x, "target"]), node("t", .onnx(.tile), ["e", "repeats"]),
                                       node("r", .onnx(.computedReshape(ComputedReshapeAttributes())), ["t", "flat"])],
                    parts.map(\.1), "r")
        }
        for kind in [ReduceKind.mean, .sum, .maximum, .minimum, .sumSquare, .l2, .logSumExp, .l1] {
            try check("Reduce \(kind) over [2, 3]", input: [2, 3, 3, 2]) { x in
                ([node("r", .onnx(.reduce(ReduceAttributes(kind: kind, axes: [2, 3], keepDimensions: kind == .mean))), [x])], [], "r")
            }
        }
        try check("Gemm with a transposed weight and a bias", input: [3, 4]) { x in
            ([node("g", .onnx(.gemm(GemmAttributes(alpha: 0.7, beta: 1.3, transposeB: true))), [x], parameters: ["g/kernel", "g/bias"])],
             [parameter("g/kernel", "kernel", [5, 4]), parameter("g/bias", "bias", [5])], "g")
        }
        for operation in [UnaryOperation.negate, .absolute, .squareRoot, .reciprocal, .logarithm, .errorFunction, .sine, .cosine] {
            try check("unary \(operation) (of a positive value)", input: [2, 5]) { x in
                ([node("e", .activation(.exponential), [x]), node("u", .onnx(.unary(operation)), ["e"])], [], "u")
            }
        }
        try check("Normalization (fixed statistics)", input: [2, 3]) { x in
            ([node("n", .normalization(NormalizationAttributes(axes: [-1], mean: [0.5, -1, 2], variance: [4, 0.25, 1])), [x])], [], "n")
        }
        try check("Embedding", input: [2, 3], shift: false, inputValues: [0, 2, 3, 1, 1, 0]) { x in
            ([node("e", .embedding(EmbeddingAttributes(inputDimension: 4, outputDimension: 2)), [x], parameters: ["e/embeddings"])],
             [parameter("e/embeddings", "embeddings", [4, 2])], "e")
        }
    }

    func testOpsThatMoveValues() throws {
        try check("slice with a step", input: [2, 3, 7]) { x in
            ([node("s", .onnx(.slice(SliceAttributes(starts: [1, 6], ends: [3, 0], axes: [1, 2], steps: [1, -2]))), [x])], [], "s")
        }
        try check("UpSampling nearest", input: [2, 2, 2, 3]) { x in
            ([node("u", .upSampling(UpSamplingAttributes(size: [2, 3], interpolation: "nearest", layout: .channelsFirst)), [x])], [], "u")
        }
        try check("UpSampling bilinear", input: [2, 2, 2, 3]) { x in
            ([node("u", .upSampling(UpSamplingAttributes(size: [2, 3], interpolation: "bilinear", layout: .channelsFirst)), [x])], [], "u")
        }
        // Resizing, CenterCrop and RandomCrop at inference: a window (crop or padding) then a separable resampling.
        for (label, attributes) in [
            ("Resizing bicubic up", ResizingAttributes(kind: .resizing, height: 5, width: 7, interpolation: .bicubic, layout: .channelsFirst)),
            ("Resizing bilinear antialiased down, cropped to the aspect ratio",
             ResizingAttributes(kind: .resizing, height: 2, width: 3, cropToAspectRatio: true, antialias: true, layout: .channelsFirst)),
            ("Resizing lanczos3 padded to the aspect ratio",
             ResizingAttributes(kind: .resizing, height: 3, width: 6, interpolation: .lanczos3, padToAspectRatio: true, fillValue: 0.5,
                                layout: .channelsFirst)),
            ("CenterCrop", ResizingAttributes(kind: .centerCrop, height: 2, width: 3, layout: .channelsFirst)),
        ] {
            try check(label, input: [2, 2, 4, 5]) { x in ([node("r", .resizing(attributes), [x])], [], "r") }
        }
        // ONNX Resize in the half-pixel forms Keras's resampling exports to.
        try check("ONNX Resize linear half_pixel", input: [2, 2, 4, 5]) { x in
            ([node("r", .onnx(.resize(ResizeAttributes(mode: "linear", coordinateTransformation: "half_pixel", nearestMode: "floor",
                                                       scales: [1, 1, 1.5, 0.6], sizes: nil))), [x])], [], "r")
        }
        try check("reflect pad", input: [2, 2, 4]) { x in
            ([node("p", .onnx(.pad(PadAttributes(pads: [0, 0, 2, 0, 0, 1], mode: .reflect))), [x])], [], "p")
        }
        try check("Gather with fixed indices", input: [2, 4, 3]) { x in
            ([node("i", .onnx(.constant(ConstantAttributes(dtype: .int64))), [], parameters: ["i"], trainable: false),
              node("g", .onnx(.gather(GatherAttributes(axis: 1))), [x, "i"])],
             [Parameter(name: "i", role: .value, shape: [3], dtype: .float32, trainable: false,
                        storage: TensorStorage(bytes: [Float(3), 0, 3].withUnsafeBytes { Array($0) }))], "g")
        }
    }

    func testAnOpWithoutGradientIsNamed() throws {
        XCTAssertThrowsError(try check("local response normalization", input: [2, 3, 2, 2]) { x in
            ([node("lrn", .onnx(.localResponseNormalization(LocalResponseNormalizationAttributes(size: 3, alpha: 1e-4, beta: 0.75, bias: 1))), [x])], [], "lrn")
        }) { error in
            XCTAssertTrue("\(error)".hasPrefix("lrn: LRN has no gradient yet"), "\(error)")
        }
    }
}
