import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import XCTest

/// Recurrent layers reading Keras's mask (Embedding mask_zero=True). Running them against Keras's
/// numbers is FixtureRunTests' `masked_text`; here, what is refused rather than done wrongly.
final class MaskedRecurrentTests: XCTestCase {
    func testTrainingThroughAMaskIsRefusedNamingTheLayer() throws {
        let model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_text.keras").path)
        let trainer = try Trainer(graph: model.graph)
        let tokens = RuntimeTensor(shape: [1, 7], data: [0, 0, 3, 4, 5, 0, 1])
        var random = SplitMix64(seed: 1)
        let batch = try trainer.frontierBatch(try trainer.features(of: tokens), rows: [0])
        XCTAssertThrowsError(try trainer.forward(batch, training: true, random: &random)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("lstm_seq") && message.contains("does not train through a mask"), message)
        }
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
