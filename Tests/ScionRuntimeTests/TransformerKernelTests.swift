import CVectorKernels
import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// The kernels and fusions a transformer's pass runs on (ViT, ConvNeXt): the transpose, the
/// LayerNormalization, softmax and GELU rows of CVectorKernels, a MatMul and its bias as a dense
/// product on packed panels, GELU as torch's TorchScript exporter spells it, and ConvNeXt's permutes
/// around a channels-last value. Kernels are held to double-precision references; the fused
/// executor to the unfused one (`fusing: false`) and to the channels-first plan.
final class TransformerKernelTests: XCTestCase {
    func testTransposeMatchesTheIndexDefinitionForEveryPermutation() {
        var random = SplitMix64(seed: 3)
        let shapes = [[7, 5], [1, 17, 1], [2, 3, 4, 5], [2, 1, 33, 18], [3, 2, 1, 4, 5], [2, 40, 12, 64]]
        for shape in shapes {
            let x = RuntimeTensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in random.uniform(-1, 1) })
            for permutation in permutations(Array(shape.indices)) {
                let y = Kernels.transpose(x, permutation)
                XCTAssertEqual(y.shape, permutation.map { shape[$0] })
                XCTAssertEqual(y.data, naiveTranspose(x, permutation), "\(shape) by \(permutation)")
            }
        }
    }

    func testMergedAxesKeepTogetherWhatMovesTogether() {
        // NCHW to NHWC: a batch of [C, H·W] matrices transposed.
        XCTAssertEqual(Kernels.mergedAxes([2, 96, 56, 56], [0, 2, 3, 1]).lengths, [2, 96, 3136])
        XCTAssertEqual(Kernels.mergedAxes([2, 96, 56, 56], [0, 2, 3, 1]).order, [0, 2, 1])
        // Attention's heads: nothing merges, the last axis stays (runs of D).
        XCTAssertEqual(Kernels.mergedAxes([2, 197, 12, 64], [0, 2, 1, 3]).order, [0, 2, 1, 3])
        // Axes of length 1 do not separate their neighbours.
        XCTAssertEqual(Kernels.mergedAxes([4, 1, 5, 6], [1, 0, 2, 3]).lengths, [120])
    }

    func testLayerNormalizationRowsMatchDoublePrecision() {
        var random = SplitMix64(seed: 11)
        for count in [1, 7, 16, 96, 768, 1001] {
            let rows = 5
            // An offset far from zero: the two-pass variance must not cancel.
            var values = (0..<(rows * count)).map { _ in random.uniform(-2, 2) + 100 }
            let gamma = (0..<count).map { _ in random.uniform(0.5, 1.5) }, beta = (0..<count).map { _ in random.uniform(-1, 1) }
            let source = values
            Kernels.layerNormalizeRows(&values, count: count, gamma: gamma, beta: beta, epsilon: 1e-6)
            for row in 0..<rows {
                let slice = source[(row * count)..<((row + 1) * count)].map(Double.init)
                let mean = slice.reduce(0, +) / Double(count)
                let variance = slice.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(count)
                for i in 0..<count {
                    let expected = (slice[i] - mean) / (variance + 1e-6).squareRoot() * Double(gamma[i]) + Double(beta[i])
                    XCTAssertEqual(Double(values[row * count + i]), expected, accuracy: count == 1 ? 1e-3 : 2e-4, "count \(count)")
                }
            }
        }
    }

    func testSoftmaxRowsMatchDoublePrecision() {
        var random = SplitMix64(seed: 12)
        for (count, logarithm) in [(1, false), (10, false), (197, false), (197, true), (1000, true)] {
            let x = RuntimeTensor(shape: [3, count], data: (0..<(3 * count)).map { _ in random.uniform(-30, 30) })
            let y = Kernels.softmax(x, axis: -1, logarithm: logarithm)
            for row in 0..<3 {
                let slice = x.data[(row * count)..<((row + 1) * count)].map(Double.init)
                let peak = slice.max() ?? 0
                let total = slice.reduce(0) { $0 + exp($1 - peak) }
                for i in 0..<count {
                    let expected = logarithm ? slice[i] - peak - log(total) : exp(slice[i] - peak) / total
                    XCTAssertEqual(Double(y.data[row * count + i]), expected, accuracy: 1e-6 * max(1, abs(expected)), "count \(count)")
                }
            }
        }
    }

    func testErfAndGeluAgainstTheLibrary() {
        let grid = stride(from: -9.0, through: 9.0, by: 0.001).map { Float($0) } + [0, -0, 1e-30, -1e-8, 3e-4, .infinity, -.infinity]
        var erfValues = grid
        Kernels.errorFunctionInPlace(&erfValues)
        var exact = RuntimeTensor(shape: [grid.count], data: grid), tanh = exact
        exact = try! Kernels.activate(exact, .gelu(approximate: false), node: "gelu")
        tanh = try! Kernels.activate(tanh, .gelu(approximate: true), node: "gelu")
        for (i, v) in grid.enumerated() {
            let x = Double(v)
            let reference = erf(x)
            // Absolute within 1.5e-7 (Abramowitz and Stegun), relative near zero (the series).
            XCTAssertEqual(Double(erfValues[i]), reference, accuracy: abs(x) < 0.5 ? 1e-6 * abs(reference) + 1e-30 : 3e-7, "erf(\(v))")
            guard v.isFinite else { continue }
            let gelu = 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
            XCTAssertEqual(Double(exact.data[i]), gelu, accuracy: 2e-7 * max(1, abs(x)), "gelu(\(v))")
            let u = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)
            XCTAssertEqual(Double(tanh.data[i]), 0.5 * x * (1 + Foundation.tanh(u)), accuracy: 1e-6 * max(1, abs(x)), "gelu tanh(\(v))")
        }
        // Far out, GELU is 0 and x, not NaN.
        XCTAssertEqual(exact.data[grid.count - 2], .infinity)
    }

    /// x [2, 5, 160] → MatMul W1 [160, 200] → Add b1 → GELU as torch spells it → MatMul W2 [200, 130]
    /// → Add b2 → Transpose → Gemm-free output; with `sharedBias` b1 is read twice (no fusion there).
    func mlp(sharedBias: Bool = false) -> Graph {
        var builder = GraphBuilder(seed: 21)
        builder.weight("w1", .kernel, [160, 200])
        builder.weight("b1", .value, [200])
        builder.weight("w2", .kernel, [200, 130])
        builder.weight("b2", .value, [130])
        builder.weight("root2", .value, [], value: Float(2.0.squareRoot()))
        builder.weight("one", .value, [], value: 1)
        builder.weight("half", .value, [], value: 0.5)
        let constant = Op.onnx(.constant(ConstantAttributes(dtype: .float32)))
        var nodes = ["b1", "b2", "root2", "one", "half"].map { Node(name: "\($0)/node", op: constant, inputs: [], outputs: [$0], parameters: [$0]) }
        nodes += [
            Node(name: "mm1", op: .onnx(.matMul), inputs: ["x"], outputs: ["mm1"], parameters: ["w1"]),
            Node(name: "add1", op: .elementwise(.add), inputs: ["mm1", "b1"], outputs: ["h"]),
            Node(name: "div", op: .elementwise(.divide), inputs: ["h", "root2"], outputs: ["scaled"]),
            Node(name: "erf", op: .onnx(.unary(.errorFunction)), inputs: ["scaled"], outputs: ["erf"]),
            Node(name: "plus", op: .elementwise(.add), inputs: ["erf", "one"], outputs: ["onePlus"]),
            Node(name: "times", op: .elementwise(.multiply), inputs: ["h", "onePlus"], outputs: ["product"]),
            Node(name: "gelu", op: .elementwise(.multiply), inputs: ["product", "half"], outputs: ["g"]),
            Node(name: "mm2", op: .onnx(.matMul), inputs: ["g"], outputs: ["mm2"], parameters: ["w2"]),
            Node(name: "add2", op: .elementwise(.add), inputs: ["b2", "mm2"], outputs: ["y"]),
        ]
        var outputs = ["y"]
        if sharedBias {
            nodes.append(Node(name: "reuse", op: .elementwise(.add), inputs: ["b1", "b1"], outputs: ["twice"]))
            outputs.append("twice")
        }
        return Graph(name: "mlp", inputs: [ValueInfo(name: "x", shape: Shape([nil, 5, 160]), dtype: .float32)],
                     outputs: outputs, nodes: nodes, parameters: builder.parameters)
    }

    func testMatMulBiasAndTorchGeluRunAsDenseProductsOnPanels() throws {
        let input = ["x": randomTensor([2, 5, 160], seed: 4)]
        let fused = try Executor(graph: mlp())
        // The MatMuls and their bias Adds are Dense nodes, the GELU one activation fused into the first.
        XCTAssertEqual(fused.graph.nodes.filter { if case .dense = $0.op { true } else { false } }.map(\.name), ["add1", "add2"])
        XCTAssertTrue(fused.graph.nodes.contains { $0.name == "gelu" && $0.op == .activation(.gelu(approximate: false)) })
        XCTAssertFalse(fused.graph.nodes.contains { ["mm1", "div", "erf", "plus", "times", "mm2"].contains($0.name) })
        XCTAssertEqual(fused.fusedActivations["add1"], .gelu(approximate: false))
        XCTAssertEqual(fused.convolutionForms["add1"], .productPanels(transposed: false))
        try assertSameOutputs(fused, try Executor(graph: mlp(), fusing: false), input)
        // A bias another node reads stays a constant: that Add is not fused, and the outputs agree.
        let shared = try Executor(graph: mlp(sharedBias: true))
        XCTAssertTrue(shared.graph.nodes.contains { $0.name == "mm1" })
        try assertSameOutputs(shared, try Executor(graph: mlp(sharedBias: true), fusing: false), input)
    }

    /// A Keras Dense on panels with each kind of activation: the epilogue's own (bias, ReLU, GELU),
    /// and the ones it leaves to a pass after the product (a classifier's softmax, tanh).
    func testDenseOnPanelsAppliesEveryActivation() throws {
        for activation: Activation in [.linear, .softmax(axis: -1), .tanh, .relu(maxValue: nil, negativeSlope: 0, threshold: 0), .gelu(approximate: true)] {
            var builder = GraphBuilder(seed: 5)
            builder.weight("kernel", .kernel, [200, 100])
            builder.weight("bias", .bias, [100])
            let graph = Graph(name: "dense", inputs: [ValueInfo(name: "x", shape: Shape([nil, 200]), dtype: .float32)], outputs: ["y"],
                              nodes: [Node(name: "dense", op: .dense(DenseAttributes(units: 100, useBias: true, activation: activation)),
                                           inputs: ["x"], outputs: ["y"], parameters: ["kernel", "bias"])],
                              parameters: builder.parameters)
            let fused = try Executor(graph: graph)
            XCTAssertEqual(fused.convolutionForms["dense"], .productPanels(transposed: false))
            let input = ["x": randomTensor([3, 200], seed: 6)]
            try assertSameOutputs(fused, try Executor(graph: graph, fusing: false), input)
            if case .softmax = activation {
                let y = try XCTUnwrap(try fused.run(input)["y"])
                for row in 0..<3 { XCTAssertEqual(y.data[(row * 100)..<((row + 1) * 100)].reduce(0, +), 1, accuracy: 1e-5) }
            }
        }
    }

    func testGemmWithTransposedWeightAndBiasOnPanels() throws {
        var builder = GraphBuilder(seed: 8)
        builder.weight("w", .kernel, [300, 256])  // transB: [N, K]
        builder.weight("c", .bias, [300])
        let graph = Graph(name: "gemm", inputs: [ValueInfo(name: "x", shape: Shape([nil, 256]), dtype: .float32)], outputs: ["y"],
                          nodes: [Node(name: "gemm", op: .onnx(.gemm(GemmAttributes(transposeB: true))), inputs: ["x"], outputs: ["y"],
                                       parameters: ["w", "c"])],
                          parameters: builder.parameters)
        let fused = try Executor(graph: graph)
        XCTAssertEqual(fused.convolutionForms["gemm"], .productPanels(transposed: true))
        for rows in [1, 3, 200] {
            try assertSameOutputs(fused, try Executor(graph: graph, fusing: false), ["x": randomTensor([rows, 256], seed: UInt64(rows))])
        }
    }

    /// ConvNeXt's block as torch exports it: depthwise conv (channels-last) → permute to NHWC →
    /// LayerNormalization → permute back → residual Add. The permutes cost nothing channels-last.
    func testConvNeXtPermutesAroundAChannelsLastValueMoveNothing() throws {
        var builder = GraphBuilder(seed: 13)
        builder.weight("dw", .kernel, [16, 1, 7, 7])
        builder.weight("dwb", .bias, [16])
        builder.weight("gamma", .gamma, [16])
        builder.weight("beta", .beta, [16])
        let depthwise = Op.conv(ConvAttributes(filters: 16, kernelSize: [7, 7], strides: [1, 1], dilations: [1, 1],
                                               padding: .explicit([3, 3, 3, 3]), groups: 16, layout: .channelsFirst))
        let graph = Graph(name: "block", inputs: [ValueInfo(name: "x", shape: Shape([nil, 16, 9, 9]), dtype: .float32)], outputs: ["y"],
                          nodes: [
                              Node(name: "dw", op: depthwise, inputs: ["x"], outputs: ["d"], parameters: ["dw", "dwb"]),
                              Node(name: "toLast", op: .transpose(TransposeAttributes(permutation: [0, 2, 3, 1])), inputs: ["d"], outputs: ["dl"]),
                              Node(name: "ln", op: .layerNormalization(LayerNormalizationAttributes(axes: [-1], epsilon: 1e-6, center: true, scale: true)),
                                   inputs: ["dl"], outputs: ["n"], parameters: ["gamma", "beta"]),
                              Node(name: "toFirst", op: .transpose(TransposeAttributes(permutation: [0, 3, 1, 2])), inputs: ["n"], outputs: ["nf"]),
                              Node(name: "add", op: .elementwise(.add), inputs: ["x", "nf"], outputs: ["y"]),
                          ], parameters: builder.parameters)
        let fused = try Executor(graph: graph)
        let names = Set(fused.channelsLast.nodes.map { fused.graph.nodes[$0].name })
        XCTAssertEqual(names, ["dw", "toLast", "toFirst", "add"])
        let input = ["x": randomTensor([2, 16, 9, 9], seed: 2)]
        try assertSameOutputs(fused, try Executor(graph: graph, fusing: false), input)
        try assertSameOutputs(try Executor(graph: graph, channelsLastPlan: false), try Executor(graph: graph, fusing: false), input)
    }

    /// Swin's mask and position-bias additions: broadcasts along middle axes, the last axes whole.
    func testRunBroadcastMatchesTheIndexDefinition() throws {
        let cases: [([Int], [Int])] = [([2, 4, 3, 7, 7], [1, 4, 1, 7, 7]), ([1, 4, 1, 7, 7], [2, 4, 3, 7, 7]), ([3, 1, 5, 16], [2, 1, 16]),
                                       ([6, 3, 49, 49], [3, 49, 49]), ([2, 5, 33], [2, 1, 33])]
        for (shapeA, shapeB) in cases {
            let a = randomTensor(shapeA, seed: 1), b = randomTensor(shapeB, seed: 2)
            let shape = try XCTUnwrap(Broadcasting.shape([shapeA, shapeB]))
            XCTAssertNotNil(Kernels.runBroadcast(a, b, shape: shape, Kernels.Subtract.self), "\(shapeA) and \(shapeB)")
            let y = try Kernels.elementwise(.subtract, [a, b], node: "sub")
            XCTAssertEqual(y.shape, shape)
            let strides = Kernels.rowMajorStrides(shape)
            for position in 0..<y.count {
                // The source of each operand: its index along each axis, 0 where it repeats.
                func value(_ t: RuntimeTensor) -> Float {
                    let padded = Array(repeating: 1, count: shape.count - t.rank) + t.shape
                    let own = Kernels.rowMajorStrides(padded)
                    var offset = 0
                    for axis in shape.indices where padded[axis] != 1 { offset += (position / strides[axis] % shape[axis]) * own[axis] }
                    return t.data[offset]
                }
                XCTAssertEqual(y.data[position], value(a) - value(b), "\(shapeA) - \(shapeB) at \(position)")
            }
        }
    }

    // MARK: helpers

    func assertSameOutputs(_ executor: Executor, _ reference: Executor, _ inputs: [String: RuntimeTensor],
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try reference.run(inputs), outputs = try executor.run(inputs)
        for (name, value) in expected {
            let result = try XCTUnwrap(outputs[name], file: file, line: line)
            XCTAssertEqual(result.shape, value.shape, name, file: file, line: line)
            let scale = value.data.map { abs($0) }.max() ?? 0
            let worst = zip(result.data, value.data).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-5 * max(scale, 1e-3), "\(name): differs by \(worst) of \(scale)", file: file, line: line)
        }
    }

    func randomTensor(_ shape: [Int], seed: UInt64) -> RuntimeTensor {
        var random = SplitMix64(seed: seed)
        return RuntimeTensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in random.uniform(-2, 2) })
    }

    func permutations(_ items: [Int]) -> [[Int]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { i -> [[Int]] in
            var rest = items
            let first = rest.remove(at: i)
            return permutations(rest).map { [first] + $0 }
        }
    }

    func naiveTranspose(_ x: RuntimeTensor, _ permutation: [Int]) -> [Float] {
        let shape = permutation.map { x.shape[$0] }, strides = x.strides
        return (0..<x.count).map { position in
            var remaining = position, offset = 0
            for axis in stride(from: shape.count - 1, through: 0, by: -1) {
                offset += (remaining % shape[axis]) * strides[permutation[axis]]
                remaining /= shape[axis]
            }
            return x.data[offset]
        }
    }
}

/// Parameters with random values (or one given value) for the graphs above.
struct GraphBuilder {
    var parameters = ParameterTable()
    var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func weight(_ name: String, _ role: ParameterRole, _ shape: [Int], value: Float? = nil) {
        let values = (0..<shape.reduce(1, *)).map { _ in value ?? random.uniform(-0.2, 0.2) }
        parameters.add(Parameter(name: name, role: role, shape: shape, dtype: .float32, trainable: false,
                                 storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
    }
}
