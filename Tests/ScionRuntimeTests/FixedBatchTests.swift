import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Models whose input fixes the batch (torch's exports without a dynamic batch): `runInBatches`
/// runs any number of samples through them a fixed batch at a time (Executor+FixedBatch.swift).
final class FixedBatchTests: XCTestCase {
    /// conv 3x3 → global average pooling, its input fixed at `batch` samples (nil: open).
    static func model(batch: Int?) -> Graph {
        var b = ConvolutionFusionTests.Builder(seed: 21)
        let conv = b.conv("conv", "x", 3, 8, kernel: 3)
        var graph = b.graph(channels: 3, last: conv)
        graph.inputs[0] = ValueInfo(name: "x", shape: Shape([batch, 3, 6, 6]), dtype: .float32)
        graph.outputs = ["pooled"]
        return graph
    }

    func testSamplesRunAFixedBatchAtATime() throws {
        var random = SplitMix64(seed: 22)
        let x = RuntimeTensor(shape: [5, 3, 6, 6], data: (0..<540).map { _ in random.uniform(-2, 2) })
        let fixed = try Executor(graph: Self.model(batch: 2))
        XCTAssertEqual(fixed.fixedBatch(of: "x"), 2)
        // Five samples at once are refused, saying why.
        XCTAssertThrowsError(try fixed.run(["x": x])) { error in
            XCTAssertTrue("\(error)".contains("fixes its batch at 2"), "\(error)")
        }
        let want = try XCTUnwrap(Executor(graph: Self.model(batch: nil)).run(["x": x])["pooled"])
        let got = try XCTUnwrap(fixed.runInBatches("x", x)["pooled"])
        XCTAssertEqual(got.shape, [5, 8])
        let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-5 * (want.data.map(abs).max() ?? 0))
        // An open batch runs as `run` does.
        XCTAssertNil(try Executor(graph: Self.model(batch: nil)).fixedBatch(of: "x"))
    }
}
