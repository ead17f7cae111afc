import Foundation
import Scion
import ScionIR
import ScionRuntime
import XCTest

/// `ModelComparison` finds the layer where two models part.
final class ModelComparisonTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func testAChangedKernelIsTheFirstDivergence() throws {
        let path = fixtures.appendingPathComponent("keras2/mobilenet_v2.h5").path
        let input = try NumpyFile.read(fixtures.appendingPathComponent("keras2/mobilenet_v2.input.npy").path)
        let original = try Model.load(path)
        XCTAssertTrue(try ModelComparison(original, original, inputs: [input]).agrees)

        var changed = try Model.load(path)
        let target = "block_3_project"
        let kernelName = try XCTUnwrap(changed.graph.node(named: target)?.parameters.first)
        var kernel = try XCTUnwrap(changed.graph.parameters[kernelName])
        var values = try kernel.storage.bytes().withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        values[0] += 0.5
        kernel.storage = TensorStorage(bytes: values.withUnsafeBytes { Array($0) })
        changed.graph.parameters[kernelName] = kernel

        let comparison = try ModelComparison(original, changed, inputs: [input])
        XCTAssertFalse(comparison.agrees)
        XCTAssertEqual(comparison.firstDivergence, target)
        let before = try XCTUnwrap(comparison.layers.first { $0.name == "block_3_depthwise_relu" })
        XCTAssertEqual(before.maxAbsDifference, 0, "layers before the change agree")
        XCTAssertTrue(comparison.text().contains("First divergence: \(target)"))
    }
}
