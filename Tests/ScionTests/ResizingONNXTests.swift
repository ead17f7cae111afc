import Foundation
import Scion
import ScionRuntime
import XCTest

/// Keras's Resizing, CenterCrop and RandomCrop exported to ONNX (Pad/Slice, then Resize) and read
/// back: Scion's executor runs the ONNX file and gives Keras's outputs. onnxruntime's numbers on the
/// same files: Tests/Interop/check_onnx.py.
final class ResizingONNXTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func testScionRunsItsOwnONNXExportOfTheResizingLayers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for source in ["keras3/resizing.keras", "keras2/resizing.h5", "keras3/cropping_layers.keras", "keras2/cropping_layers.h5"] {
            let base = Self.fixtures.appendingPathComponent(source).deletingPathExtension()
            let input = try NumpyFile.read(base.path + ".input.npy")
            let expected = try NumpyFile.read(base.path + ".output.npy")
            let path = directory.appendingPathComponent(source.replacingOccurrences(of: "/", with: "_") + ".onnx").path
            try Model.load(Self.fixtures.appendingPathComponent(source).path).write(to: path)
            let exported = try Model.load(path)
            XCTAssertTrue(exported.graph.nodes.contains { $0.op.typeName == "Resize" }, source)
            let executor = try exported.executor()
            guard let inputName = executor.graph.inputs.first?.name, let outputName = exported.graph.outputs.first else {
                return XCTFail("\(source): no input or output")
            }
            let got = try XCTUnwrap(try executor.run([inputName: input])[outputName], source)
            XCTAssertEqual(got.shape, expected.shape, source)
            let scale = expected.data.map(abs).max() ?? 1
            let worst = zip(got.data, expected.data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(source): max |a-b| \(worst) vs Keras")
        }
    }
}
