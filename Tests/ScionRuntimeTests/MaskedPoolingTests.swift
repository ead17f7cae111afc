import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import XCTest

/// GlobalAveragePooling1D reading Keras's mask (Embedding mask_zero=True): the mean of the kept
/// steps only. The stored rows are FixtureRunTests' `masked_pooling`; here, what they leave out.
final class MaskedPoolingTests: XCTestCase {
    func testTheReaderGivesThePoolTheTokens() throws {
        for file in ["keras3/masked_pooling.keras", "keras2/masked_pooling.h5"] {
            let model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent(file).path)
            let node = try XCTUnwrap(model.graph.nodes.first { $0.name == "pool" }, file)
            guard case .globalPool(let a) = node.op else { return XCTFail("\(file): pool is \(node.op.typeName)") }
            XCTAssertEqual(a.maskValue, 0, file)
            XCTAssertEqual(node.inputs, ["drop", "tokens"], file)
        }
    }

    /// Keras divides by the number of kept steps, so a row of only padding is 0/0: NaN in every
    /// output, as Keras 3 gives (the other rows are unaffected).
    func testARowOfOnlyPaddingIsNaNAsInKeras() throws {
        let model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_pooling.keras").path)
        let executor = try model.executor()
        let stored = try NumpyFile.read(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_pooling.input.npy").path)
        let expected = try NumpyFile.read(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_pooling.output.npy").path)
        let tokens = RuntimeTensor(shape: [stored.shape[0] + 1, stored.shape[1]], data: stored.data + [Float](repeating: 0, count: stored.shape[1]))
        let output = try XCTUnwrap(try executor.run([executor.graph.inputs[0].name: tokens])[model.graph.outputs[0]])
        let width = expected.shape[1]
        XCTAssertTrue(output.data.suffix(width).allSatisfy(\.isNaN), "\(output.data.suffix(width))")
        let worst = zip(output.data.prefix(expected.count), expected.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-4 * (expected.data.map(abs).max() ?? 1))
    }

    func testPaddingDoesNotChangeTheAverage() throws {
        let a = GlobalPoolAttributes(kind: .average, rank: 1, layout: .channelsFirst, maskValue: 0)
        // x [1, 2 channels, 4 steps]; tokens keep steps 1 and 3.
        let x = RuntimeTensor(shape: [1, 2, 4], data: [100, 1, 100, 3, -100, 10, -100, 20])
        let tokens = RuntimeTensor(shape: [1, 4], data: [0, 5, 0, 7])
        let y = try Kernels.maskedGlobalAverage(x, source: tokens, a, node: "pool")
        XCTAssertEqual(y.shape, [1, 2])
        XCTAssertEqual(y.data, [2, 15])
        let dx = try Kernels.maskedGlobalAverageBackward(x, source: tokens, a, dy: RuntimeTensor(shape: [1, 2], data: [1, 4]), node: "pool")
        XCTAssertEqual(dx.data, [0, 0.5, 0, 0.5, 0, 2, 0, 2])
        XCTAssertThrowsError(try Kernels.maskedGlobalAverage(x, source: RuntimeTensor(shape: [1, 3], data: [1, 1, 1]), a, node: "pool")) {
            XCTAssertTrue("\($0)".contains("pool") && "\($0)".contains("mask source"), "\($0)")
        }
    }

    /// Keras 3 rebuilds the mask on reload only from an Embedding(mask_zero=True) of the same tokens:
    /// a pool whose mask source is anything else is refused by name rather than written unmasked.
    func testAMaskKerasCannotRebuildIsRefusedOnWrite() throws {
        var model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_pooling.keras").path)
        let index = try XCTUnwrap(model.graph.nodes.firstIndex { $0.name == "pool" })
        guard case .globalPool(var a) = model.graph.nodes[index].op else { return XCTFail("pool is not a pooling") }
        a.maskValue = 3
        model.graph.nodes[index].op = .globalPool(a)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("masked_pooling_refused.keras").path
        XCTAssertThrowsError(try model.write(to: output)) { error in
            XCTAssertTrue("\(error)".contains("pool") && "\(error)".contains("Keras cannot rebuild"), "\(error)")
        }
    }
}
