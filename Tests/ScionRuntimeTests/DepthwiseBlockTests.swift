import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Depthwise blocks (Executor+DepthwiseBlocks.swift, Kernels+DepthwiseBlock.swift) against the
/// trainer's unfused executor (channels-first, node by node, no folding): every shape of block the
/// plan takes (with and without the expansion or the projection, residual sums with and without a
/// ReLU after, strides 1 and 2, Keras's one-sided padding, dilation, 5x5 windows, swish), images
/// tall enough for several bands (rows kept from one band to the next), one sample (its rows shared
/// between the cores) and several, and the blocks the plan must refuse.
final class DepthwiseBlockTests: XCTestCase {
    struct Case {
        var batch = 2, channels = 16, height = 9, width = 11
        var expansion: Int? = 96
        var kernel = 3, stride = 1, dilation = 1
        var padding: Padding = .same
        var projection: Int? = 16
        var residual = false, reluAfterSum = false
        var activation: Activation = .relu(maxValue: 6, negativeSlope: 0, threshold: 0)
        /// An activation after the projection (MobileNet's separable pairs).
        var projectionActivation: Activation? = nil
        /// Values the plan must leave to the node-by-node path: taps read from inside the block.
        var tapped: [String] = []
        /// The block repeated (without its residual sum), each reading the one before.
        var repeats = 1
        var blocks = 1
    }

    static let cases: [Case] = [
        // MobileNetV2's inverted residual.
        Case(residual: true),
        // 40x40 at batch 1: several bands per core's share of the rows, rows kept between bands.
        Case(batch: 1, channels: 24, height: 40, width: 40, expansion: 144, projection: 24, residual: true),
        // Stride 2 with Keras's ZeroPadding2D((0, 1), (0, 1)) folded into the depthwise pads.
        Case(batch: 1, channels: 24, height: 33, width: 30, expansion: 144, stride: 2, padding: .explicit([0, 0, 1, 1]), projection: 40),
        Case(batch: 3, channels: 8, height: 17, width: 12, expansion: 48, stride: 2, padding: .explicit([1, 1, 1, 1]), projection: 70),
        // MobileNet's depthwise-separable pair: no expansion, a ReLU6 after the projection.
        Case(batch: 3, channels: 32, height: 7, width: 5, expansion: nil, projection: 70,
             projectionActivation: .relu(maxValue: 6, negativeSlope: 0, threshold: 0)),
        // EfficientNet's expansion and depthwise with swish, dilated 5x5, no projection.
        Case(batch: 2, channels: 16, height: 21, width: 19, expansion: 100, kernel: 5, dilation: 2, projection: nil, activation: .swish),
        // One sample on a small image, no projection: the cores share the expansion's panels and the depthwise
        // channels (Kernels+DepthwiseBlockChannels.swift): four panels, the last of 48 filters; then
        // three, split one and two, at stride 2 with Keras's one-sided padding.
        Case(batch: 1, channels: 40, height: 7, width: 7, expansion: 240, kernel: 5, projection: nil, activation: .swish),
        Case(batch: 1, channels: 24, height: 14, width: 13, expansion: 144, kernel: 5, stride: 2, padding: .explicit([1, 1, 2, 2]),
             projection: nil, activation: .swish),
        // MobileNet's chain depthwise → 1x1 → depthwise → 1x1 → depthwise → 1x1: three pairs, not
        // blocks overlapping on the 1x1 convolutions.
        Case(batch: 2, channels: 16, height: 12, width: 12, expansion: nil, projection: 16,
             projectionActivation: .relu(maxValue: 6, negativeSlope: 0, threshold: 0), repeats: 3, blocks: 3),
        // A ReLU after the residual sum, a narrow expansion.
        Case(batch: 2, channels: 8, height: 6, width: 7, expansion: 20, projection: 8, residual: true, reluAfterSum: true),
        // Refused: the expansion's output is a tap (so the block is the depthwise and projection only), then
        // the depthwise output too (no block: the depthwise convolution alone gains nothing).
        Case(residual: true, tapped: ["expanded"]),
        Case(expansion: nil, tapped: ["depthwise"], blocks: 0),
    ]

    func testBlocksAgreeWithTheNodeByNodeExecutor() throws {
        var random = SplitMix64(seed: 8)
        for c in Self.cases {
            let (graph, taps) = Self.graph(c, &random)
            let x = RuntimeTensor(shape: [c.batch, c.channels, c.height, c.width],
                                  data: (0..<(c.batch * c.channels * c.height * c.width)).map { _ in random.uniform(-2, 2) })
            let blocked = try Executor(graph: graph, taps: taps)
            let expectedBlocks = Kernels.narrowProductsRun && ProcessInfo.processInfo.environment["SCION_BLOCKS"] != "off" ? c.blocks : 0
            XCTAssertEqual(blocked.depthwiseBlocks.blocks.count, expectedBlocks, "\(c)")
            let expected = try Executor(graph: graph, taps: taps, fusing: false).run(["x": x])
            let results = try blocked.run(["x": x])
            for output in graph.outputs {
                let (want, got) = (try XCTUnwrap(expected[output]), try XCTUnwrap(results[output], "\(output) of \(c)"))
                XCTAssertEqual(got.shape, want.shape, "\(output) of \(c)")
                let scale = want.data.map(abs).max() ?? 0
                let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(output) of \(c): off by \(worst) of \(scale)")
            }
        }
    }

    /// A kernel that skipped the residual sum, or read the wrong rows, must not pass the test above:
    /// the same comparison on a deliberately different graph (the sum dropped) fails.
    func testTheComparisonSeesAMissingResidualSum() throws {
        var random = SplitMix64(seed: 9)
        let (graph, _) = Self.graph(Case(residual: true), &random)
        random = SplitMix64(seed: 9)
        let (withoutSum, _) = Self.graph(Case(residual: false), &random)
        let x = RuntimeTensor(shape: [2, 16, 9, 11], data: (0..<(2 * 16 * 99)).map { _ in random.uniform(-2, 2) })
        let a = try XCTUnwrap(Executor(graph: graph).run(["x": x])["pooled"])
        let b = try XCTUnwrap(Executor(graph: withoutSum, fusing: false).run(["x": x])["pooled"])
        let scale = b.data.map(abs).max() ?? 0
        let worst = zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(worst, 1e-2 * scale)
    }

    /// A stem convolution, then the block as Keras lays it out after lowering: Conv → BatchNormalization → ReLU6 → depthwise
    /// Conv → BatchNormalization → ReLU6 → Conv → BatchNormalization → [Add(x) → ReLU].
    static func graph(_ c: Case, _ random: inout SplitMix64) -> (Graph, [String: String]) {
        var parameters = ParameterTable()
        var nodes: [Node] = []
        func add(_ name: String, _ role: ParameterRole, _ shape: [Int], _ low: Float, _ high: Float) -> String {
            let values = (0..<shape.reduce(1, *)).map { _ in random.uniform(low, high) }
            parameters.add(Parameter(name: "\(name)/\(role.rawValue)", role: role, shape: shape, dtype: .float32, trainable: true,
                                     storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
            return "\(name)/\(role.rawValue)"
        }
        func convolution(_ name: String, _ input: String, filters: Int, kernel: [Int], groups: Int = 1, stride: Int = 1, dilation: Int = 1,
                         padding: Padding = .valid) -> String {
            let a = ConvAttributes(filters: filters, kernelSize: [kernel[2], kernel[3]], strides: [stride, stride],
                                   dilations: [dilation, dilation], padding: padding, groups: groups, useBias: true, layout: .channelsFirst)
            let scale = 1 / Float(kernel[1] * kernel[2] * kernel[3]).squareRoot()
            nodes.append(Node(name: name, op: .conv(a), inputs: [input], outputs: [name],
                              parameters: [add(name, .kernel, kernel, -scale, scale), add(name, .bias, [filters], -0.2, 0.2)]))
            let normalized = "\(name)_bn"
            let b = BatchNormalizationAttributes(axis: 1, epsilon: 1e-3, momentum: 0.99, center: true, scale: true)
            nodes.append(Node(name: normalized, op: .batchNormalization(b), inputs: [name], outputs: [normalized],
                              parameters: [add(normalized, .gamma, [filters], 0.5, 1.5), add(normalized, .beta, [filters], -0.3, 0.3),
                                           add(normalized, .movingMean, [filters], -0.2, 0.2), add(normalized, .movingVariance, [filters], 0.5, 2)]))
            return normalized
        }
        func activate(_ name: String, _ input: String, _ activation: Activation) -> String {
            nodes.append(Node(name: name, op: .activation(activation), inputs: [input], outputs: [name], parameters: []))
            return name
        }
        // A stem convolution first: blocks start from channels-last values, as inside a model.
        let stem = convolution("stem", "x", filters: c.channels, kernel: [c.channels, c.channels, 3, 3], padding: .same)
        var value = stem
        var channels = c.channels
        for repeated in 0..<c.repeats {
            let suffix = repeated == 0 ? "" : "_\(repeated)"
            if let expansion = c.expansion {
                value = activate("expanded" + suffix, convolution("expand" + suffix, value, filters: expansion, kernel: [expansion, channels, 1, 1]),
                                 c.activation)
                channels = expansion
            }
            value = activate("depthwise" + suffix, convolution("dw" + suffix, value, filters: channels, kernel: [channels, 1, c.kernel, c.kernel],
                                                               groups: channels, stride: c.stride, dilation: c.dilation, padding: c.padding),
                             c.activation)
            if let projection = c.projection {
                value = convolution("project" + suffix, value, filters: projection, kernel: [projection, channels, 1, 1])
                if let activation = c.projectionActivation { value = activate("projected" + suffix, value, activation) }
                channels = projection
            }
        }
        if c.residual {
            nodes.append(Node(name: "sum", op: .elementwise(.add), inputs: [stem, value], outputs: ["sum"], parameters: []))
            value = c.reluAfterSum ? activate("sum_relu", "sum", .relu(maxValue: nil, negativeSlope: 0, threshold: 0)) : "sum"
        }
        // A global average pooling after the block, as the models end.
        let pooled = GlobalPoolAttributes(kind: .average, rank: 2, keepDimensions: false, layout: .channelsFirst)
        nodes.append(Node(name: "pool", op: .globalPool(pooled), inputs: [value], outputs: ["pooled"], parameters: []))
        let graph = Graph(name: "block", inputs: [ValueInfo(name: "x", shape: Shape([nil, c.channels, c.height, c.width]), dtype: .float32)],
                          outputs: [value, "pooled"] + c.tapped, nodes: nodes, parameters: parameters)
        return (graph, Dictionary(uniqueKeysWithValues: c.tapped.map { ($0, $0) }))
    }
}
