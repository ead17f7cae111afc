import Foundation
import Scion
import ScionRuntime
import XCTest

/// `scion finetune`, end to end; Keras's own fit() is the reference in Tests/Interop/check_finetune.py.
final class FinetuneCommandTests: XCTestCase {
    /// A grafted MobileNetV2 fixture and a small .npz written by hand (NumPy's format, stored zip).
    func prepare(_ directory: URL) throws -> (model: String, data: String) {
        let model = directory.appendingPathComponent("grafted.keras").path
        let edit = try runScion(["edit", Repository.fixture("keras3/mobilenet_v2.keras"), "--drop-top", "--head",
                                 "gap,dropout:0.1,dense:3:softmax", "--freeze-base", "--seed", "0", "-o", model])
        XCTAssertEqual(edit.status, 0, edit.standardError)
        // The fixture's stored inputs as x, labels 0 and 2 as y.
        let data = directory.appendingPathComponent("data.npz").path
        let x = try NumpyFile.read(Repository.fixture("keras3/mobilenet_v2.input.npy"))
        try NumpyArchive.write([("images", x), ("labels", RuntimeTensor(shape: [2], data: [0, 2]))], to: data)
        return (model, data)
    }

    func testMistakesAreOneLineAndWriteNothing() throws {
        let directory = try temporaryDirectory(self)
        let (model, data) = try prepare(directory)
        let output = directory.appendingPathComponent("out.keras").path
        let outOfRange = directory.appendingPathComponent("range.npz").path
        let x = try NumpyFile.read(Repository.fixture("keras3/mobilenet_v2.input.npy"))
        try NumpyArchive.write([("images", x), ("labels", RuntimeTensor(shape: [2], data: [0, 7]))], to: outOfRange)
        let cases: [([String], String)] = [
            (["finetune", model, "--data", data, "-o", output], "needs arrays 'x' and 'y'"),
            (["finetune", Repository.fixture("keras3/mobilenet_v2.keras"), "--data", data, "--x", "images", "--y", "labels", "-o", output],
             "is trainable but not part of a head"),
            (["finetune", model, "--data", data, "--optimizer", "rmsprop", "--x", "images", "--y", "labels", "-o", output], "adamw or sgd"),
            (["finetune", model, "--data", outOfRange, "--x", "images", "--y", "labels", "-o", output],
             "label 7.0 is not a class of the head's 3 (0 to 2)"),
        ]
        for (arguments, expected) in cases {
            try assertOneLineFailure(arguments, mentions: expected)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
    }

    func testTrainsTheHeadAndVerifiesTheBase() throws {
        let directory = try temporaryDirectory(self)
        let (model, data) = try prepare(directory)
        for suffix in ["keras", "onnx"] {
            let output = directory.appendingPathComponent("trained.\(suffix)").path
            let result = try runScion(["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--epochs", "3",
                                       "--batch-size", "2", "--learning-rate", "0.1", "-o", output])
            XCTAssertEqual(result.status, 0, result.standardError)
            XCTAssertTrue(result.standardOutput.contains("Features cached: the frozen base"), result.standardOutput)
            XCTAssertTrue(result.standardOutput.contains("Epoch 3/3 - loss"), result.standardOutput)
            XCTAssertTrue(result.standardOutput.contains("2 trained: dense/kernel, dense/bias"), result.standardOutput)
        }
        // The report: learning curves and the verification table, checked against the written file.
        let report = directory.appendingPathComponent("report").path
        let output = directory.appendingPathComponent("reported.keras").path
        let result = try runScion(["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--epochs", "2",
                                   "--batch-size", "2", "-o", output, "--report", report])
        XCTAssertEqual(result.status, 0, result.standardError)
        let page = try String(contentsOfFile: (report as NSString).appendingPathComponent("index.html"), encoding: .utf8)
        XCTAssertTrue(page.contains("<svg") && page.contains(": identical") && page.contains("trained: dense/kernel"), page)
    }
}
