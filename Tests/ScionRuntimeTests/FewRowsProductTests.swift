import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Products of few rows on filter panels (a 7x7 image at batch 1, a squeeze-and-excitation's one
/// pixel, a classifier at batch 1): the rows cut into parts so that every core gets as many units
/// of one panel times one part, each unit's epilogue applied to its own columns.
final class FewRowsProductTests: XCTestCase {
    func testRowsAreCutOnlyAsFarAsEvenSharesNeed() {
        // Three panels on two cores: two parts make six units, three each.
        XCTAssertEqual(Kernels.balancedParts(units: 3, rows: 49, cores: 2), 2)
        // Four panels already share out evenly.
        XCTAssertEqual(Kernels.balancedParts(units: 4, rows: 49, cores: 2), 1)
        // One panel: the rows halved, unless there are too few of them to cut.
        XCTAssertEqual(Kernels.balancedParts(units: 1, rows: 49, cores: 2), 2)
        XCTAssertEqual(Kernels.balancedParts(units: 1, rows: 1, cores: 2), 1)
        XCTAssertEqual(Kernels.balancedParts(units: 5, rows: 12, cores: 1), 1)
    }

    /// x [1, 130, 7, 7] → 1x1 conv, 150 filters (three panels, the last of 22), bias, swish → 3x3
    /// conv stride 2, 40 filters 1350 deep (one panel), ReLU; and the 1x1's output → global average
    /// pool → dense 1000 (packed panels, one row): each against the executor that runs every node
    /// as the graph has it.
    func testFewRowsOnPanelsAgreeWithTheUnfusedGraph() throws {
        var parameters = ParameterTable()
        var random = SplitMix64(seed: 11)
        let shapes: [(String, [Int])] = [("a/kernel", [150, 130, 1, 1]), ("a/bias", [150]), ("b/kernel", [40, 150, 3, 3]), ("b/bias", [40]),
                                         ("d/kernel", [150, 1000]), ("d/bias", [1000])]
        for (name, shape) in shapes {
            let values = (0..<shape.reduce(1, *)).map { _ in random.unit() - 0.5 }
            parameters.add(Parameter(name: name, role: ParameterRole(rawValue: name.hasSuffix("kernel") ? "kernel" : "bias"), shape: shape,
                                     dtype: .float32, trainable: true, storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
        }
        func conv(_ filters: Int, _ size: Int, stride: Int, _ activation: Activation) -> Op {
            .conv(ConvAttributes(filters: filters, kernelSize: [size, size], strides: [stride, stride], dilations: [1, 1],
                                 padding: .same, activation: activation, layout: .channelsFirst))
        }
        let relu = Activation.relu(maxValue: nil, negativeSlope: 0, threshold: 0)
        let nodes = [
            Node(name: "a", op: conv(150, 1, stride: 1, .swish), inputs: ["x"], outputs: ["h"], parameters: ["a/kernel", "a/bias"]),
            Node(name: "b", op: conv(40, 3, stride: 2, relu), inputs: ["h"], outputs: ["g"], parameters: ["b/kernel", "b/bias"]),
            Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsFirst)), inputs: ["h"],
                 outputs: ["p"]),
            Node(name: "d", op: .dense(DenseAttributes(units: 1000, useBias: true, activation: .linear)), inputs: ["p"], outputs: ["y"],
                 parameters: ["d/kernel", "d/bias"]),
        ]
        let graph = Graph(name: "few", inputs: [ValueInfo(name: "x", shape: Shape([nil, 130, 7, 7]), dtype: .float32)], outputs: ["y", "g", "h"],
                          nodes: nodes, parameters: parameters)
        let fused = try Executor(graph: graph)
        let unfused = try Executor(graph: graph, fusing: false)
        if Kernels.narrowProductsRun {
            XCTAssertEqual(fused.convolutionForms["a"], .matrix(.panels))
            XCTAssertEqual(fused.convolutionForms["b"], .matrix(.panels))
        }
        let x = RuntimeTensor(shape: [1, 130, 7, 7], data: (0..<(130 * 49)).map { _ in random.uniform(-1, 1) })
        let result = try fused.run(["x": x]), expected = try unfused.run(["x": x])
        for name in ["h", "g", "y"] {
            let (a, b) = try (XCTUnwrap(result[name]), XCTUnwrap(expected[name]))
            XCTAssertEqual(a.shape, b.shape, name)
            let scale = b.data.map(abs).max() ?? 0
            let worst = zip(a.data, b.data).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertGreaterThan(scale, 0, name)
            XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(name): off by \(worst) of \(scale)")
        }
    }
}
