import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Head training: gradients against finite differences, learning on separable data, a frozen base
/// left alone. Keras's own updates are compared in Tests/Interop/check_finetune.py.
final class HeadTrainerTests: XCTestCase {
    /// x [N, 4] → frozen Dense 4→4 (the base) → Dense 4→5 relu → Dropout → Dense 5→3 softmax.
    func model(dropout: Float = 0) -> Graph {
        var random = SplitMix64(seed: 3)
        func parameter(_ name: String, _ role: String, _ shape: [Int], trainable: Bool) -> Parameter {
            let values = (0..<shape.reduce(1, *)).map { _ in random.unit() - 0.5 }
            return Parameter(name: name, role: role, shape: shape, dtype: .float32, trainable: trainable,
                             storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) }))
        }
        var parameters = ParameterTable()
        for (layer, inputs, units, trainable) in [("base", 4, 4, false), ("hidden", 4, 5, true), ("out", 5, 3, true)] {
            parameters.add(parameter("\(layer)/kernel", "kernel", [inputs, units], trainable: trainable))
            parameters.add(parameter("\(layer)/bias", "bias", [units], trainable: trainable))
        }
        let nodes = [
            Node(name: "base", op: .dense(DenseAttributes(units: 4)), inputs: ["x"], outputs: ["base"],
                 parameters: ["base/kernel", "base/bias"], trainable: false),
            Node(name: "hidden", op: .dense(DenseAttributes(units: 5, activation: .plainRelu)), inputs: ["base"], outputs: ["hidden"],
                 parameters: ["hidden/kernel", "hidden/bias"]),
            Node(name: "drop", op: .dropout(DropoutAttributes(rate: dropout)), inputs: ["hidden"], outputs: ["drop"]),
            Node(name: "out", op: .dense(DenseAttributes(units: 3, activation: .softmax(axis: -1))), inputs: ["drop"], outputs: ["out"],
                 parameters: ["out/kernel", "out/bias"]),
        ]
        return Graph(name: "head", inputs: [ValueInfo(name: "x", shape: Shape([nil, 4]), dtype: .float32)], outputs: ["out"],
                     nodes: nodes, parameters: parameters)
    }

    /// Three Gaussian blobs in 4-D.
    func blobs(_ count: Int) -> (RuntimeTensor, RuntimeTensor) {
        var random = SplitMix64(seed: 9)
        var x: [Float] = [], y: [Float] = []
        for index in 0..<count {
            let label = index % 3
            for axis in 0..<4 { x.append((axis == label ? 2 : 0) + (random.unit() - 0.5)) }
            y.append(Float(label))
        }
        return (RuntimeTensor(shape: [count, 4], data: x), RuntimeTensor(shape: [count], data: y))
    }

    func testGradientsMatchFiniteDifferences() throws {
        for loss in [HeadTrainer.Loss.sparseCategoricalCrossentropy, .meanSquaredError] {
            let trainer = try HeadTrainer(graph: model())
            XCTAssertEqual(trainer.layers.map(\.node.name), ["hidden", "drop", "out"], "the frozen Dense is the base")
            let (x, labels) = blobs(6)
            let features = try trainer.features(of: x)
            let targets = loss == .meanSquaredError
                ? (0..<18).map { Float($0 % 3 == Int(labels.data[$0 / 3]) ? 1 : 0) } : labels.data
            var random = SplitMix64(seed: 0)
            let (_, _, gradients) = try trainer.lossAndGradients(features, targets: targets, loss: loss, random: &random)
            func lossAt(_ change: (inout HeadTrainer) -> Void) throws -> Double {
                var copy = trainer
                change(&copy)
                var generator = SplitMix64(seed: 0)
                let (outputs, _) = try copy.forward(features, training: true, random: &generator)
                return copy.lossValue(outputs.last!, targets: targets, loss: loss).0
            }
            let epsilon: Float = 1e-3
            for (position, role, element) in [(0, "kernel", 3), (0, "bias", 1), (2, "kernel", 7), (2, "bias", 2)] {
                let plus = try lossAt { if role == "kernel" { $0.layers[position].kernel[element] += epsilon } else { $0.layers[position].bias[element] += epsilon } }
                let minus = try lossAt { if role == "kernel" { $0.layers[position].kernel[element] -= epsilon } else { $0.layers[position].bias[element] -= epsilon } }
                let numeric = (plus - minus) / Double(2 * epsilon)
                let analytic = Double(try XCTUnwrap(gradients["\(position).\(role)"])[element])
                XCTAssertEqual(analytic, numeric, accuracy: 2e-3 * max(1, abs(numeric)), "\(loss) \(position).\(role)[\(element)]")
            }
        }
    }

    func testTheHeadLearnsAndTheBaseStaysBitIdentical() throws {
        let graph = model(dropout: 0.1)
        var trainer = try HeadTrainer(graph: graph)
        let (x, y) = blobs(90)
        let features = try trainer.features(of: x)
        var options = HeadTrainer.Options()
        options.epochs = 40
        options.batchSize = 16
        options.learningRate = 0.05
        let before = try trainer.evaluate(features: features, targets: y, loss: options.loss)
        let history = try trainer.fit(features: features, targets: y, options: options)
        let after = try trainer.evaluate(features: features, targets: y, loss: options.loss)
        XCTAssertLessThan(after.loss, before.loss / 4, "\(history.map(\.loss))")
        XCTAssertGreaterThan(after.accuracy ?? 0, 0.95)
        let trained = trainer.trainedGraph()
        for name in ["base/kernel", "base/bias"] {
            XCTAssertEqual(try trained.parameters[name]?.storage.bytes(), try graph.parameters[name]?.storage.bytes(), name)
        }
        XCTAssertNotEqual(try trained.parameters["out/kernel"]?.storage.bytes(), try graph.parameters["out/kernel"]?.storage.bytes())
    }

    func testTrainableLayersInsideTheBaseAreRefusedByName() throws {
        // A trainable layer the head trainer cannot differentiate yet (a PReLU) inside the base.
        var graph = model()
        graph.parameters["base/bias"]?.trainable = true
        graph.parameters["base/bias"]?.role = "alpha"
        graph.nodes[0].op = .prelu(PReLUAttributes(sharedAxes: []))
        graph.nodes[0].parameters = ["base/bias"]
        XCTAssertThrowsError(try HeadTrainer(graph: graph)) { error in
            XCTAssertTrue("\(error)".hasPrefix("base: is trainable but not part of a head"), "\(error)")
        }
    }
}
