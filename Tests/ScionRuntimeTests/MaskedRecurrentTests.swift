import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import XCTest

/// Recurrent layers reading Keras's mask (Embedding mask_zero=True). Running them against Keras's
/// numbers is FixtureRunTests' `masked_text`, training them against Keras's fit() is
/// check_finetune.py's masked case, their gradients GradientCheckTests+RecurrentTraining.swift.
final class MaskedRecurrentTests: XCTestCase {
    /// The training forward of every masked layer (LSTM, Bidirectional GRU, GRU backwards with
    /// zeroed outputs, SimpleRNN) gives the run's outputs, and every trainable tensor a finite
    /// gradient. The rows pad at the start, at the end, in the middle, and one is all padding.
    func testTrainingThroughAMaskFollowsTheRun() throws {
        let model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_text.keras").path)
        let trainer = try Trainer(graph: model.graph)
        let tokens = RuntimeTensor(shape: [4, 7], data: [0, 0, 0, 4, 9, 2, 17, 5, 11, 3, 8, 0, 0, 0,
                                                         7, 0, 0, 12, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0])
        let features = try trainer.features(of: tokens)
        let inference = try trainer.predict(features)
        var random = SplitMix64(seed: 1)
        let tape = try trainer.forward(try trainer.frontierBatch(features, rows: [0, 1, 2, 3]), training: true, random: &random)
        let training = try XCTUnwrap(tape.values[trainer.output])
        XCTAssertEqual(training.data, inference.data, "no dropout here: training's forward is the run's")
        let gradients = try trainer.backward(tape, outputGradient: RuntimeTensor(shape: training.shape, data: training.data.map { $0 - 0.3 }),
                                             skipOutputActivation: false)
        XCTAssertEqual(Set(gradients.keys), Set(trainer.trainableParameters))
        XCTAssertTrue(gradients.values.allSatisfy { $0.allSatisfy(\.isFinite) })
    }

    func testTheMaskSourceMustMatchTheSequence() throws {
        let model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_text.keras").path)
        let node = try XCTUnwrap(model.graph.nodes.first { $0.name == "lstm_seq" })
        guard case .recurrent(let a) = node.op else { return XCTFail("lstm_seq is \(node.op.typeName)") }
        XCTAssertEqual(a.maskValue, 0)
        XCTAssertEqual(node.inputs.count, 2, "the sequence and the tokens")
        let x = RuntimeTensor(shape: [1, 7, 6], data: [Float](repeating: 0.1, count: 42))
        XCTAssertThrowsError(try Executor.keptSteps(node, x, source: RuntimeTensor(shape: [1, 5], data: [Float](repeating: 1, count: 5)), a))
        let kept = try Executor.keptSteps(node, x, source: RuntimeTensor(shape: [1, 7], data: [0, 2, 0, 3, 0, 0, 9]), a)
        XCTAssertEqual(kept, [false, true, false, true, false, false, true])
    }
}
