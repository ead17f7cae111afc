import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// A run that diverges stops where it happens, naming the epoch, the batch and the tensor or the
/// loss: before these checks it trained on to NaN weights and reported success.
final class TrainerDivergenceTests: XCTestCase {
    /// x [N, 2] → Dense 2→2 with `activation`, every weight trainable.
    func model(activation: Activation) -> Graph {
        var parameters = ParameterTable()
        let kernel: [Float] = [0.5, -0.25, 0.125, 0.75], bias: [Float] = [0, 0]
        parameters.add(Parameter(name: "out/kernel", role: .kernel, shape: [2, 2], dtype: .float32, trainable: true,
                                 storage: TensorStorage(bytes: kernel.withUnsafeBytes { Array($0) })))
        parameters.add(Parameter(name: "out/bias", role: .bias, shape: [2], dtype: .float32, trainable: true,
                                 storage: TensorStorage(bytes: bias.withUnsafeBytes { Array($0) })))
        return Graph(name: "tiny", inputs: [ValueInfo(name: "x", shape: Shape([nil, 2]), dtype: .float32)], outputs: ["out"],
                     nodes: [Node(name: "out", op: .dense(DenseAttributes(units: 2, activation: activation)), inputs: ["x"], outputs: ["out"],
                                  parameters: ["out/kernel", "out/bias"])], parameters: parameters)
    }

    func fit(_ graph: Graph, x: [Float], y: [Float], loss: Trainer.Loss, rate: Float, epochs: Int, batchSize: Int) throws {
        var trainer = try Trainer(graph: graph)
        let samples = x.count / 2
        let features = try trainer.features(of: RuntimeTensor(shape: [samples, 2], data: x))
        var options = Trainer.Options()
        options.loss = loss
        options.optimizer = .sgd(momentum: 0, nesterov: false)
        options.learningRate = rate
        options.epochs = epochs
        options.batchSize = batchSize
        _ = try trainer.fit(features, targets: RuntimeTensor(shape: loss == .meanSquaredError ? [samples, 2] : [samples], data: y),
                            options: options)
    }

    /// One full batch, one update: the weights overflow to infinity on it, and there is no later
    /// batch whose loss would show it; only the check after the update can.
    func testAWeightThatOverflowsStopsTraining() throws {
        XCTAssertThrowsError(try fit(model(activation: .softmax(axis: -1)), x: [100, -100, -100, 100], y: [1, 0],
                                     loss: .sparseCategoricalCrossentropy, rate: 3e38, epochs: 1, batchSize: 2)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("out/kernel became infinity") || text.contains("out/kernel became -infinity"), text)
            XCTAssertTrue(text.contains("in the update of epoch 1, batch 1 of 1; training diverged"), text)
        }
    }

    /// A loss that is already infinite on the first batch (values near Float's limit, squared) stops
    /// before any update, naming the batch.
    func testANonFiniteLossStopsTraining() throws {
        XCTAssertThrowsError(try fit(model(activation: .linear), x: [1e30, 1e30, 1, 1, 2, 2], y: [0, 0, 0, 0, 0, 0],
                                     loss: .meanSquaredError, rate: 0.1, epochs: 2, batchSize: 3)) { error in
            XCTAssertTrue("\(error)".contains("the loss is infinity at epoch 1, batch 1 of 1; training diverged"), "\(error)")
        }
    }

    /// The checks do not fire on a healthy run.
    func testAHealthyRunTrains() throws {
        XCTAssertNoThrow(try fit(model(activation: .softmax(axis: -1)), x: [1, 0, 0, 1], y: [0, 1],
                                 loss: .sparseCategoricalCrossentropy, rate: 0.1, epochs: 3, batchSize: 1))
    }
}
