import Foundation
import Scion
import ScionIR
import ScionRuntime
import XCTest

/// torch's export of a DenseNet block (fixtures/torch/tiny_densenet.onnx, made by make_torch.py)
/// holds a `Concat` of one input (`torch.cat([x], 1)` in the block's first layer). Written as Keras,
/// that became a Concatenate of one input, which Keras 3 refuses to read from a `.h5` ("should be
/// called on a list of at least 1 input"). Now the Concat is dropped: the written files hold only
/// Concatenates of several inputs and still compute torch's numbers (Keras itself checks them in
/// Tests/Interop/check_onnx_keras.py).
final class ONNXConcatToKerasTests: XCTestCase {
    let torch = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/torch")

    func testTorchDenseNetConcatOfOneInputIsNotWrittenAsAConcatenate() throws {
        let source = try Model.load(torch.appendingPathComponent("tiny_densenet.onnx").path)
        XCTAssertEqual(source.graph.nodes.filter { $0.op.typeName == "Concatenate" }.map(\.inputs.count), [1, 2, 3],
                       "the export this test is about")
        let input = try NumpyFile.read(torch.appendingPathComponent("tiny_densenet.input.npy").path)
        let expected = try NumpyFile.read(torch.appendingPathComponent("tiny_densenet.output.npy").path)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in ["densenet.h5", "densenet.keras"] {
            let path = directory.appendingPathComponent(name).path
            try source.write(to: path)
            let written = try Model.load(path)
            XCTAssertEqual(written.graph.nodes.filter { $0.op.typeName == "Concatenate" }.map(\.inputs.count), [2, 3], name)
            XCTAssertEqual(written.graph.totalParameterCount, source.graph.totalParameterCount, name)
            let executor = try written.executor()
            guard let inputName = executor.graph.inputs.first?.name, let outputName = written.graph.outputs.first else {
                return XCTFail("\(name): no input or output")
            }
            let got = try XCTUnwrap(try executor.run([inputName: input])[outputName], name)
            XCTAssertEqual(got.shape, expected.shape, name)
            let scale = expected.data.map(abs).max() ?? 1
            let worst = zip(got.data, expected.data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name): max |a-b| \(worst) vs torch")
        }
    }
}
