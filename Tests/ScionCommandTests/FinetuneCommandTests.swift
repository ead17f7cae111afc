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
        let miscounted = directory.appendingPathComponent("count.npz").path
        try NumpyArchive.write([("x", x), ("y", RuntimeTensor(shape: [3], data: [0, 1, 2]))], to: miscounted)
        let withNaN = directory.appendingPathComponent("nan.npz").path
        var poisoned = x
        poisoned.data[17] = .nan
        try NumpyArchive.write([("x", poisoned), ("y", RuntimeTensor(shape: [2], data: [0, 1]))], to: withNaN)
        let cases: [([String], String, Bool)] = [
            (["finetune", model, "--data", data, "-o", output], "needs arrays 'x' and 'y'", false),
            (["finetune", model, "--data", miscounted, "-o", output], "has 2 input samples and 3 targets", false),
            (["finetune", model, "--data", withNaN, "-o", output], "holds a NaN or infinity (flat index 17", false),
            (["finetune", model, "--data", Repository.fixture("digits/fewshot.npz"), "-o", output],
             "samples have shape [8, 8, 1]; the model's input", false),
            (["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--fine-tune-epochs", "3", "-o", output],
             "need --unfreeze-top N or --unfreeze REGEX", true),
            (["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--unfreeze", "no_such_layer", "-o", output],
             "--unfreeze matches no layer", false),
            (["finetune", model, "--data", data, "--optimizer", "rmsprop", "--x", "images", "--y", "labels", "-o", output], "adamw or sgd", true),
            (["finetune", model, "--data", outOfRange, "--x", "images", "--y", "labels", "-o", output],
             "label 7.0 is not a class of the model's 3 (0 to 2)", false),
        ]
        for (arguments, expected, usage) in cases {
            try assertOneLineFailure(arguments, mentions: expected, usage: usage)
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
            XCTAssertTrue(result.standardOutput.contains("features cached: the frozen prefix"), result.standardOutput)
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

    /// The recipe's second phase on the digits CNN: the top 4 layers of the base (conv3, bn3, relu3,
    /// gap) thaw, bn3 stays frozen as Keras's guide advises, so conv3 and the head train; every other
    /// tensor keeps its bytes in the written file.
    func testTwoPhasesThawTheTopOfTheBase() throws {
        let directory = try temporaryDirectory(self)
        let grafted = directory.appendingPathComponent("grafted.keras").path
        let edit = try runScion(["edit", Repository.fixture("digits/digits_cnn.keras"), "--after", "gap", "--head", "dense:5:softmax",
                                 "--freeze-base", "-o", grafted])
        XCTAssertEqual(edit.status, 0, edit.standardError)
        let output = directory.appendingPathComponent("tuned.h5").path
        let result = try runScion(["finetune", grafted, "--data", Repository.fixture("digits/fewshot.npz"), "--epochs", "2",
                                   "--batch-size", "25", "--unfreeze-top", "4", "--fine-tune-epochs", "2", "-o", output, "--json"])
        XCTAssertEqual(result.status, 0, result.standardError)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        let phases = try XCTUnwrap(report["phases"] as? [[String: Any]])
        XCTAssertEqual(phases.count, 2)
        XCTAssertEqual(phases[1]["unfrozen"] as? [String], ["conv3"])
        XCTAssertEqual(phases[1]["batchNormKeptFrozen"] as? [String], ["bn3"])
        XCTAssertEqual(phases[1]["cached"] as? Bool, true)
        XCTAssertEqual((report["history"] as? [Any])?.count, 4)
        XCTAssertEqual(Set(report["weightsChanged"] as? [String] ?? []), ["conv3/kernel", "conv3/bias", "dense/kernel", "dense/bias"])
        XCTAssertEqual(report["unexpectedlyChanged"] as? [String], [])
    }
}

/// `scion demo`: the recipe on the digits fixture, its files verified, nothing overwritten silently.
final class DemoCommandTests: XCTestCase {
    func testTheDemoTransfersAndVerifies() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("demo").path
        let arguments = ["demo", "--fixtures", Repository.fixture("digits"), "--output-dir", output, "--json"]
        let result = try runScion(arguments)
        XCTAssertEqual(result.status, 0, result.standardError)
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        let outcomes = try XCTUnwrap(summary["outcomes"] as? [[String: Any]])
        let accuracies = outcomes.compactMap { $0["testAccuracy"] as? Double }
        XCTAssertEqual(accuracies.count, 3)
        // Transfer beats the head alone, which beats training from scratch on the same 25 images.
        XCTAssertGreaterThan(accuracies[1], accuracies[0])
        XCTAssertGreaterThan(accuracies[0], accuracies[2] + 0.2, "\(accuracies)")
        XCTAssertEqual((summary["checks"] as? [String])?.count, 2)
        for name in ["digits_5_9.keras", "digits_5_9.onnx", "report.html"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: (output as NSString).appendingPathComponent(name)), name)
        }
        try assertOneLineFailure(arguments, mentions: "already exists; pass --force")
    }
}
