import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Convolutions trained as one step with the frozen BatchNormalization and ReLU after them
/// (Trainer+ConvolutionChains.swift): each kernel path (1x1 side by side, depthwise channels
/// innermost, the generic one) against finite differences, with and without bias, cap and padding.
extension GradientCheckTests {
    /// `conv → BatchNormalization (frozen) → ReLU`, the ReLU left out when `cap` is nil.
    func chain(_ attributes: ConvAttributes, kernelShape: [Int], cap: Float??) -> (String) -> ([Node], [Parameter], String) {
        { x in
            var parameters = [self.parameter("c/kernel", "kernel", kernelShape, scale: 0.5)]
            var names = ["c/kernel"]
            if attributes.useBias { parameters.append(self.parameter("c/bias", "bias", [attributes.filters])); names.append("c/bias") }
            let roles = ["gamma", "beta", "moving_mean", "moving_variance"]
            parameters += roles.map { role in
                self.parameter("bn/\(role)", role, [attributes.filters], trainable: false, scale: role == "moving_variance" ? 0.5 : 1,
                               offset: role == "moving_variance" ? 1 : 0)
            }
            var nodes = [self.node("c", .conv(attributes), [x], parameters: names),
                         self.node("bn", .batchNormalization(BatchNormalizationAttributes(axis: 1, epsilon: 1e-3, momentum: 0.99,
                                                                                          center: true, scale: true)),
                                   ["c"], parameters: roles.map { "bn/\($0)" }, trainable: false)]
            var output = "bn"
            if let cap {
                nodes.append(self.node("relu", .activation(.relu(maxValue: cap, negativeSlope: 0, threshold: 0)), ["bn"]))
                output = "relu"
            }
            // A reader after the chain, so its output is not the model's.
            nodes.append(self.node("out", .elementwise(.multiply), [output, output]))
            return (nodes, parameters, "out")
        }
    }

    func testConvolutionChains() throws {
        let cases: [(String, [Int], ConvAttributes, [Int], Float??)] = [
            ("1x1 conv, no bias, BN, ReLU6", [3, 5, 3, 4],
             ConvAttributes(filters: 6, kernelSize: [1, 1], strides: [1, 1], dilations: [1, 1], padding: .valid, useBias: false,
                            layout: .channelsFirst), [6, 5, 1, 1], .some(0.5)),
            ("1x1 conv with bias, BN, ReLU", [2, 4, 3, 3],
             ConvAttributes(filters: 3, kernelSize: [1, 1], strides: [1, 1], dilations: [1, 1], padding: .same, layout: .channelsFirst),
             [3, 4, 1, 1], .some(nil)),
            ("depthwise 3x3 same, BN, ReLU6", [2, 5, 4, 4],
             ConvAttributes(filters: 5, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same, groups: 5, useBias: false,
                            layout: .channelsFirst), [5, 1, 3, 3], .some(0.5)),
            ("depthwise stride 2 dilated, bias, BN", [2, 3, 7, 6],
             ConvAttributes(filters: 3, kernelSize: [3, 2], strides: [2, 1], dilations: [1, 2], padding: .same, groups: 3,
                            layout: .channelsFirst), [3, 1, 3, 2], nil),
            ("3x3 conv stride 2, bias, BN, ReLU6", [2, 3, 6, 6],
             ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [2, 2], dilations: [1, 1], padding: .same, layout: .channelsFirst),
             [4, 3, 3, 3], .some(0.5)),
        ]
        // (Finite differences are only as good as the values are far from the ReLUs' kinks: these
        // draws are; the forward checks come after them so as not to change them.)
        for (name, input, attributes, kernelShape, cap) in cases {
            try check(name, input: input, chain(attributes, kernelShape: kernelShape, cap: cap))
        }
        for (name, input, attributes, kernelShape, cap) in cases {
            try checkForwardAgainstExecutor(name, input: input, chain(attributes, kernelShape: kernelShape, cap: cap))
        }
    }

    /// The chain's forward pass against the inference executor's (which folds the BatchNormalization
    /// into the kernel instead): finite differences would agree with a wrong forward pass too.
    func checkForwardAgainstExecutor(_ name: String, input: [Int], _ build: (String) -> ([Node], [Parameter], String)) throws {
        let (nodes, parameters, output) = build("x")
        var table = ParameterTable()
        for parameter in parameters { table.add(parameter) }
        var graph = Graph(name: name, inputs: [ValueInfo(name: "x", shape: Shape([nil] + input.dropFirst().map { $0 }), dtype: .float32)],
                          outputs: [output], nodes: nodes, parameters: table)
        graph.layout = .channelsFirst
        let trainer = try Trainer(graph: graph)
        XCTAssertEqual(trainer.chains.count, 1, name)
        let x = RuntimeTensor(shape: input, data: values(input.reduce(1, *)))
        var generator = SplitMix64(seed: 1)
        let tape = try trainer.forward(try trainer.frontierBatch(try trainer.features(of: x), rows: Array(0..<input[0])),
                                       training: true, random: &generator)
        let trained = try XCTUnwrap(tape.values[output]).data
        let expected = try XCTUnwrap(try Executor(graph: graph).run(["x": x])[output]).data
        let largest = expected.map(abs).max() ?? 0
        XCTAssertEqual(trained.count, expected.count, name)
        for (a, b) in zip(trained, expected) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(largest, 1), name) }
    }

    /// The chain is formed (one step where there were three), and not where another op reads the
    /// convolution's output.
    func testConvolutionChainsAreFormedOnlyWhereNothingElseReads() throws {
        let attributes = ConvAttributes(filters: 2, kernelSize: [1, 1], strides: [1, 1], dilations: [1, 1], padding: .valid,
                                        useBias: false, layout: .channelsFirst)
        let (nodes, parameters, output) = chain(attributes, kernelShape: [2, 3, 1, 1], cap: .some(6))("x")
        var table = ParameterTable()
        for parameter in parameters { table.add(parameter) }
        let input = ValueInfo(name: "x", shape: Shape([nil, 3, 2, 2]), dtype: .float32)
        var graph = Graph(name: "chain", inputs: [input], outputs: [output], nodes: nodes, parameters: table)
        graph.layout = .channelsFirst
        let trainer = try Trainer(graph: graph)
        XCTAssertEqual(trainer.chains.count, 1)
        XCTAssertEqual(trainer.chains.values.first?.output, "relu")
        XCTAssertEqual(trainer.absorbed.count, 2)
        // A second reader of the convolution's output keeps the three steps apart.
        graph.nodes.append(node("side", .elementwise(.add), ["c", "c"]))
        graph.nodes.append(node("sum", .elementwise(.add), ["out", "side"]))
        graph.outputs = ["sum"]
        let apart = try Trainer(graph: graph)
        XCTAssertEqual(apart.chains.values.first?.output, "c")
        XCTAssertTrue(apart.absorbed.isEmpty)
    }
}
