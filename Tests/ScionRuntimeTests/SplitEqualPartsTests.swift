import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import XCTest

/// A Split into equal parts of an axis whose length the file leaves to run time (ONNX's `num_outputs`:
/// torch's dynamo exporter writes ShuffleNet's channel split this way when height and width are
/// dynamic). The parts are sized when the input arrives, by ONNX's rule: ceil(length / parts) each,
/// the last what remains.
final class SplitEqualPartsTests: XCTestCase {
    func testPartsAreSizedByTheLengthAtRunTime() throws {
        let split = SplitAttributes(axis: 1, equalParts: 3)
        XCTAssertEqual(split.sizes(alongLength: 6), [2, 2, 2])
        XCTAssertEqual(split.sizes(alongLength: 7), [3, 3, 1])
        XCTAssertEqual(SplitAttributes(axis: 1, sizes: [1, 4]).sizes(alongLength: 5), [1, 4])

        let graph = Graph(name: "split", inputs: [ValueInfo(name: "x", shape: Shape([1, nil]), dtype: .float32)], outputs: ["a", "b", "c"],
                          nodes: [Node(name: "split", op: .onnx(.split(split)), inputs: ["x"], outputs: ["a", "b", "c"])],
                          parameters: ParameterTable())
        // Unknown length: the parts' lengths are unknown too, not a guess.
        let shapes = try ShapeInference.outputs(of: graph.nodes[0], inputs: graph.inputs, parameterShapes: [:])
        XCTAssertEqual(shapes.map(\.shape), Array(repeating: Shape([1, nil]), count: 3))
        let known = try ShapeInference.outputs(of: graph.nodes[0], inputs: [ValueInfo(name: "x", shape: Shape([1, 7]), dtype: .float32)],
                                               parameterShapes: [:])
        XCTAssertEqual(known.map(\.shape), [Shape([1, 3]), Shape([1, 3]), Shape([1, 1])])

        let executor = try Executor(graph: graph)
        for length in [6, 7] {
            let x = RuntimeTensor(shape: [1, length], data: (0..<length).map(Float.init))
            let parts = try executor.run(["x": x])
            let sizes = split.sizes(alongLength: length)
            var start = 0
            for (name, size) in zip(["a", "b", "c"], sizes) {
                let part = try XCTUnwrap(parts[name])
                XCTAssertEqual(part.shape, [1, size], "\(name) of \(length)")
                XCTAssertEqual(part.data, (start..<(start + size)).map(Float.init), "\(name) of \(length)")
                start += size
            }
        }
    }

    /// ShuffleNetV2 exported with height and width dynamic, by both of torch's exporters, trained end
    /// to end the same way: the same losses. The lengths its Reshapes read are computed from the
    /// input's shape (dynamo) or an activation's (TorchScript): every step computes them from its own
    /// rows (the frozen-prefix cache had kept dynamo's per sample, and a step's Reshape read `[]`).
    func testBothTorchExportersOfADynamicSizeModelTrainAlike() throws {
        var random = SplitMix64(seed: 31)
        let samples = 8
        let x = RuntimeTensor(shape: [samples, 3, 48, 80], data: (0..<(samples * 3 * 48 * 80)).map { _ in random.uniform(-1, 1) })
        let y = RuntimeTensor(shape: [samples, 10], data: (0..<(samples * 10)).map { _ in random.uniform(-1, 1) })
        var losses: [[Double]] = []
        for exporter in ["ts", "dynamo"] {
            let path = FixtureRunTests.fixtures.appendingPathComponent("torch/shufflenet_any_size_\(exporter).onnx").path
            var trainer = try Trainer(graph: try Model.load(path).graph)
            var options = Trainer.Options()
            (options.loss, options.epochs, options.batchSize, options.learningRate) = (.meanSquaredError, 3, 4, 0.01)
            let history = try trainer.fit(try trainer.features(of: x), targets: y, options: options)
            losses.append(history.map(\.loss))
        }
        XCTAssertLessThan(try XCTUnwrap(losses[0].last), try XCTUnwrap(losses[0].first), "\(losses[0])")
        for (ts, dynamo) in zip(losses[0], losses[1]) {
            XCTAssertEqual(dynamo, ts, accuracy: 1e-4 * abs(ts), "\(losses)")
        }
    }
}
