import ScionIR
@testable import ScionRuntime
import XCTest

/// Keras's `dropout` / `recurrent_dropout` while training (keras/src/layers/rnn/dropout_rnn_cell.py):
/// masks of 0 and `1 / (1 - rate)` drawn once per batch, so a dropped layer keeps its expected
/// activations; inference never drops. Exact draws cannot match Keras's; their gradients are checked
/// with fixed masks in GradientCheckTests+RecurrentTraining.swift.
final class RecurrentDropoutTests: XCTestCase {
    func testMasksDropAtTheRateAndKeepTheScale() {
        var random = SplitMix64(seed: 3)
        var lstm = RecurrentAttributes(cell: .lstm, units: 50)
        (lstm.dropout, lstm.recurrentDropout) = (0.25, 0.4)
        let masks = RecurrentDropout.draw(lstm, batch: 400, features: 30, random: &random)
        for (masks, rate) in [(masks.input, Float(0.25)), (masks.state, 0.4)] {
            let all = (masks ?? []).flatMap { $0 }
            XCTAssertEqual(masks?.count, 4, "one mask per gate with recurrent_dropout (Keras 3's implementation 1)")
            XCTAssertEqual(Set(all), [0, 1 / (1 - rate)])
            XCTAssertEqual(Float(all.filter { $0 == 0 }.count) / Float(all.count), rate, accuracy: 0.01)
            XCTAssertEqual(all.reduce(0, +) / Float(all.count), 1, accuracy: 0.02, "the expected value is kept")
            XCTAssertNotEqual(masks?[0], masks?[1], "the gates' masks are drawn apart")
        }
        // Without recurrent_dropout one input mask serves every gate; SimpleRNN has one gate.
        lstm.recurrentDropout = 0
        let shared = RecurrentDropout.draw(lstm, batch: 4, features: 3, random: &random)
        XCTAssertNil(shared.state)
        XCTAssertEqual(shared.input?.count, 4)
        XCTAssertEqual(Set(shared.input ?? []).count, 1)
    }

    /// SimpleRNN, linear, identity kernels, no bias, on `[batch, 2, 8]` ones then zeros: the second
    /// step's output is the input dropped once and the state dropped once, whose mean must stay 1
    /// while training and be exactly 1 at inference.
    func testExpectedActivationsAndInferenceWithoutDropout() throws {
        let (batch, units) = (4000, 8)
        var a = RecurrentAttributes(cell: .simpleRNN, units: units, activation: .linear, useBias: false, returnSequences: true)
        (a.dropout, a.recurrentDropout) = (0.3, 0.2)
        let identity = (0..<(units * units)).map { $0 / units == $0 % units ? Float(1) : 0 }
        var table = ParameterTable()
        for role in ["kernel", "recurrent_kernel"] {
            table.add(Parameter(name: "rnn/cell/\(role)", role: ParameterRole(rawValue: "cell/\(role)"), shape: [units, units],
                                dtype: .float32, trainable: true, storage: TensorStorage(bytes: identity.withUnsafeBytes { Array($0) })))
        }
        let graph = Graph(name: "dropped", inputs: [ValueInfo(name: "x", shape: Shape([nil, 2, units]), dtype: .float32)],
                          outputs: ["rnn"], nodes: [Node(name: "rnn", op: .recurrent(a), inputs: ["x"], outputs: ["rnn"],
                                                         parameters: table.names)], parameters: table)
        let trainer = try Trainer(graph: graph)
        var x = [Float](repeating: 0, count: batch * 2 * units)
        for n in 0..<batch { for j in 0..<units { x[n * 2 * units + j] = 1 } }
        let features = try trainer.features(of: RuntimeTensor(shape: [batch, 2, units], data: x))
        func secondStep(_ y: RuntimeTensor) -> [Float] { (0..<batch).flatMap { n in y.data[((n * 2 + 1) * units)..<((n * 2 + 2) * units)] } }
        let inference = secondStep(try trainer.predict(features, batchSize: batch))
        XCTAssertEqual(Set(inference), [1], "inference does not drop")
        var random = SplitMix64(seed: 5)
        let tape = try trainer.forward(try trainer.frontierBatch(features, rows: Array(0..<batch)), training: true, random: &random)
        let training = secondStep(try XCTUnwrap(tape.values["rnn"]))
        let kept = (1 / (1 - a.dropout)) * (1 / (1 - a.recurrentDropout))
        XCTAssertEqual(Set(training), [0, kept], "dropped once on the input, once on the state")
        XCTAssertEqual(training.reduce(0, +) / Float(training.count), 1, accuracy: 0.02)
        XCTAssertEqual(Float(training.filter { $0 == 0 }.count) / Float(training.count), 1 - 0.7 * 0.8, accuracy: 0.01)
    }
}
