import XCTest
@testable import Scion

/// `Evaluation.loss` against Keras 3's own losses (keras.losses.sparse_categorical_crossentropy and
/// binary_crossentropy, JAX backend) on the same rows; the numbers below are what Keras printed.
final class EvaluationTests: XCTestCase {
    func testCrossEntropyFromProbabilitiesIsKeras() {
        // A row not summing to 1 is normalised first; a zero probability is clipped to 1e-7.
        let rows: [([Double], Int, Double)] = [([0.5, 0.3, 0.1], 0, 0.5877867341041565), ([0.1, 0.3, 0.6], 1, 1.2039728164672852),
                                               ([0, 1, 0], 0, 16.11809539794922)]
        for (row, label, keras) in rows {
            XCTAssertEqual(Evaluation.loss(raw: row.map { Double(Float($0)) }, label: label, kind: .softmax, binary: false), keras,
                           accuracy: 1e-4 * keras)
        }
    }

    func testCrossEntropyFromLogitsIsKeras() {
        XCTAssertEqual(Evaluation.loss(raw: [2, -1, 0.5], label: 0, kind: .logits, binary: false), 0.24131132662296295, accuracy: 1e-6)
        XCTAssertEqual(Evaluation.loss(raw: [0, 3, -2], label: 2, kind: .logits, binary: false), 5.054985046386719, accuracy: 1e-5)
    }

    func testBinaryCrossEntropyIsKeras() {
        XCTAssertEqual(Evaluation.loss(raw: [Double(Float(0.3))], label: 1, kind: .logits, binary: true), 0.554355263710022, accuracy: 1e-6)
        XCTAssertEqual(Evaluation.loss(raw: [Double(Float(-1.2))], label: 0, kind: .logits, binary: true), 0.26328244805336, accuracy: 1e-6)
        XCTAssertEqual(Evaluation.loss(raw: [Double(Float(0.9))], label: 1, kind: .sigmoid, binary: true), 0.10536054521799088, accuracy: 1e-6)
        XCTAssertEqual(Evaluation.loss(raw: [0], label: 1, kind: .sigmoid, binary: true), 16.11809539794922, accuracy: 1e-4 * 16.1)
    }

    func testArgmaxTakesTheFirstOfEqualScores() {
        XCTAssertEqual(Evaluation.firstLargest([0.2, 0.4, 0.4]), 1)
        XCTAssertEqual(Evaluation.firstLargest([1, 0]), 0)
    }
}
