import Foundation
import ScionRuntime
import XCTest

/// `scion run` and `scion compare`, end to end. The numbers are checked against the real tools in
/// ScionRuntimeTests (every fixture) and Tests/Interop/check_run.py (ONNX backend cases).
final class RunCommandTests: XCTestCase {
    func testRunWritesTheModelsOutputAndTaps() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.npy").path
        let model = Repository.fixture("keras2/mobilenet_v2.h5"), input = Repository.fixture("keras2/mobilenet_v2.input.npy")
        let result = try runScion(["run", model, "--input", input, "--output", output, "--verbose"])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(result.standardOutput.contains("BLAS: OpenBLAS"), result.standardOutput)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output))
        XCTAssertEqual(try runScion(["run", model, "--input", input, "--output", output]).status, 1, "no overwrite without --force")
        let archive = directory.appendingPathComponent("out.npz").path
        let tapped = try runScion(["run", model, "--input", input, "--output", archive, "--layer", "out_relu", "--verbose"])
        XCTAssertEqual(tapped.status, 0, tapped.standardError)
        XCTAssertTrue(tapped.standardOutput.contains("out_relu: [2, 1, 1, 1280]"), tapped.standardOutput)
        // Several arrays need an .npz; the .npz feeds a run again (by input name, or in order).
        let several = try runScion(["run", model, "--input", input, "--output", output, "--layer", "out_relu", "--force"])
        XCTAssertEqual(several.status, 1)
        XCTAssertTrue(several.standardError.contains("give -o OUT.npz"), several.standardError)
    }

    func testBadInputsFailWithOneLine() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.npy").path
        let model = Repository.fixture("keras2/mobilenet_v2.h5")
        let text = directory.appendingPathComponent("text.npy")
        try Data("not numpy".utf8).write(to: text)
        var values = [Float](repeating: 0.5, count: 2 * 32 * 32 * 3)
        values[7] = .nan
        let nan = directory.appendingPathComponent("nan.npy")
        try Data(NumpyFile.encode(RuntimeTensor(shape: [2, 32, 32, 3], data: values))).write(to: nan)
        let cases: [([String], String)] = [
            (["run", model, "--input", nan.path, "--output", output], "holds nan at flat index 7"),
            (["run", model, "--input", text.path, "--output", output], "not a NumPy .npy file"),
            (["run", model, "--input", Repository.fixture("keras2/conv1d_zoo.input.npy"), "--output", output], "expects shape"),
            (["run", model, "--output", output], "the model takes 1 input(s)"),
            (["run", model, "--input", Repository.fixture("keras2/mobilenet_v2.input.npy"), "--layer", "nope", "--output", output],
             "no layer has this name"),
        ]
        for (arguments, expected) in cases {
            try assertOneLineFailure(arguments, mentions: expected)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
    }

    func testCompareAgreesWithTheONNXExportAndNotWithAGraftedChild() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras2/mobilenet_v2.h5"), input = Repository.fixture("keras2/mobilenet_v2.input.npy")
        let onnx = directory.appendingPathComponent("m.onnx").path
        XCTAssertEqual(try runScion(["convert", model, onnx]).status, 0)
        let same = try runScion(["compare", model, onnx, "--input", input])
        XCTAssertEqual(same.status, 0, same.standardOutput + same.standardError)
        XCTAssertTrue(same.standardOutput.contains("No layer diverges"), same.standardOutput)
        let child = directory.appendingPathComponent("child.keras").path
        XCTAssertEqual(try runScion(["edit", model, "--drop-top", "--head", "gap,dense:5:softmax", "--seed", "1", "-o", child]).status, 0)
        let different = try runScion(["compare", model, child, "--input", input])
        XCTAssertEqual(different.status, 3, "compare exits 3 when the models differ")
        XCTAssertTrue(different.standardOutput.contains("beyond tolerance"), different.standardOutput)
    }
}
