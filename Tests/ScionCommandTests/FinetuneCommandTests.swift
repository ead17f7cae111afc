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

    /// The digits CNN cut after `gap` with a new 5-class head and its base frozen, as the demo makes it.
    func graftedDigits(_ directory: URL) throws -> String {
        let grafted = directory.appendingPathComponent("grafted.keras").path
        let edit = try runScion(["edit", Repository.digits("digits_cnn.keras"), "--after", "gap", "--head", "dense:5:softmax",
                                 "--freeze-base", "-o", grafted])
        XCTAssertEqual(edit.status, 0, edit.standardError)
        return grafted
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
        let oneHotAsSparse = directory.appendingPathComponent("onehot.npz").path
        try NumpyArchive.write([("x", x), ("y", RuntimeTensor(shape: [2, 3], data: [1, 0, 0, 0, 0, 1]))], to: oneHotAsSparse)
        // One label per sample for a tagger's output, a class per step: not trained on the first step's columns.
        let perSample = directory.appendingPathComponent("tags.npz").path
        try NumpyArchive.write([("x", RuntimeTensor(shape: [2, 7], data: (0..<14).map { Float($0 % 20) })),
                                ("y", RuntimeTensor(shape: [2], data: [0, 3]))], to: perSample)
        let cases: [([String], String, Bool)] = [
            (["finetune", model, "--data", data, "-o", output], "needs arrays 'x' and 'y'", false),
            (["finetune", model, "--data", miscounted, "-o", output], "has 2 input samples and 3 targets", false),
            (["finetune", model, "--data", withNaN, "-o", output], "holds a NaN or infinity (flat index 17", false),
            (["finetune", model, "--data", Repository.digits("fewshot.npz"), "-o", output],
             "samples have shape [8, 8, 1]; the model's input", false),
            (["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--fine-tune-epochs", "3", "-o", output],
             "--fine-tune-epochs applies to the second phase: give --unfreeze-top N or --unfreeze REGEX too", true),
            (["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--unfreeze", "no_such_layer", "-o", output],
             "--unfreeze matches no layer", false),
            (["finetune", model, "--data", data, "--optimizer", "rmsprop", "--x", "images", "--y", "labels", "-o", output],
             "'adam', 'adamw' or 'sgd'", true),
            (["finetune", model, "--data", outOfRange, "--x", "images", "--y", "labels", "-o", output],
             "label 7.0 is not a class of the model's 3 (0 to 2)", false),
            (["finetune", model, "--data", oneHotAsSparse, "--loss", "sparse_categorical_crossentropy", "-o", output],
             "sparse_categorical_crossentropy takes one class index per sample", false),
            (["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--validation-split", "0.1", "-o", output],
             "--validation-split 0.1 would hold out 0 and keep 2", false),
            (["finetune", Repository.fixture("keras3/rnn_seq2seq.keras"), "--data", data, "-o", output],
             "finetune trains a model with one input; this one has 2 (encoder_input, decoder_input)", false),
            (["finetune", Repository.fixture("keras3/time_distributed_tagger.keras"), "--data", perSample, "-o", output],
             "the model outputs [7, 4] per sample (a value per step or position)", false),
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
            XCTAssertTrue(result.standardOutput.contains("Verified trained.\(suffix): 260 frozen tensors byte-identical to grafted.keras"),
                          result.standardOutput)
            XCTAssertTrue(result.standardOutput.contains("2 trained, 2 changed: dense/kernel, dense/bias"), result.standardOutput)
            XCTAssertTrue(result.standardOutput.contains("\nwrote \(output) ("), result.standardOutput)
            XCTAssertEqual(result.standardError, "")
        }
    }

    /// Keras's transfer-learning guide model (augmentation layers, a nested frozen base): the head trains
    /// with the augmentation on and off, and the base, written flattened (`base_conv1`), verifies.
    func testTheGuidesModelTrainsWithAndWithoutAugmentation() throws {
        let directory = try temporaryDirectory(self)
        let data = directory.appendingPathComponent("data.npz").path
        let x = try NumpyFile.read(Repository.fixture("keras3/transfer_guide.input.npy"))
        try NumpyArchive.write([("x", x), ("y", RuntimeTensor(shape: [2], data: [0, 1]))], to: data)
        var losses: [String] = []
        for extra in [[], ["--no-augment"]] {
            let output = directory.appendingPathComponent("tuned.keras").path
            let result = try runScion(["finetune", Repository.fixture("keras3/transfer_guide.keras"), "--data", data, "--epochs", "2",
                                       "--batch-size", "2", "--loss", "mse", "--seed", "3", "-o", output, "--force"] + extra)
            XCTAssertEqual(result.status, 0, result.standardError)
            XCTAssertTrue(result.standardOutput.contains("8 frozen tensors byte-identical to transfer_guide.keras"), result.standardOutput)
            losses.append(result.standardOutput.components(separatedBy: "\n").filter { $0.hasPrefix("Epoch 2/2") }.joined())
        }
        XCTAssertNotEqual(losses[0].prefix(22), losses[1].prefix(22), "augmentation changed nothing: \(losses)")
    }

    /// --json: one object on stdout, nothing else anywhere (stderr is not a terminal here); the report
    /// shows the very checksums the JSON has, one row per frozen tensor, and the same verdict.
    func testJSONAndTheReportShowTheSameVerification() throws {
        let directory = try temporaryDirectory(self)
        let (model, data) = try prepare(directory)
        let output = directory.appendingPathComponent("reported.keras").path
        let report = directory.appendingPathComponent("run.html").path
        let result = try runScion(["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--epochs", "2",
                                   "--batch-size", "2", "-o", output, "--report", report, "--json"])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertEqual(result.standardError, "")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        XCTAssertEqual(object["command"] as? String, "finetune")
        XCTAssertEqual(object["output"] as? String, output)
        XCTAssertEqual(object["report"] as? String, report)
        XCTAssertEqual((object["history"] as? [Any])?.count, 2)
        let verification = try XCTUnwrap(object["verification"] as? [String: Any])
        XCTAssertEqual(verification["passed"] as? Bool, true)
        let frozen = try XCTUnwrap(verification["frozen"] as? [[String: Any]])
        XCTAssertEqual(frozen.count, 260)
        let page = try String(contentsOfFile: report, encoding: .utf8)
        for tensor in frozen {
            let name = try XCTUnwrap(tensor["name"] as? String), crc = try XCTUnwrap(tensor["crc32Before"] as? String)
            XCTAssertEqual(tensor["crc32After"] as? String, crc, name)
            XCTAssertTrue(page.contains("<tr><td><code>\(name)</code></td><td>frozen</td><td class=\"crc\">\(crc)</td><td class=\"crc\">\(crc)</td>"
                                        + "<td class=\"ok\">identical</td></tr>"), name)
        }
        XCTAssertTrue(page.contains("✔ verified: reported.keras: 260 frozen tensors byte-identical"), page)
        XCTAssertFalse(page.contains("FAILED") || page.contains("DIFFERENT"))
        XCTAssertTrue(page.contains("<svg") && page.contains(">epoch</text>") && page.contains(">loss</text>"))
        XCTAssertTrue(page.contains("<th>learning rate</th><td>0.001</td>"), "as typed, not 0.0010000000474974513")

        // --quiet: nothing anywhere, the file written, exit 0.
        let quiet = try runScion(["finetune", model, "--data", data, "--x", "images", "--y", "labels", "--epochs", "1",
                                  "-o", directory.appendingPathComponent("quiet.onnx").path, "-q"])
        XCTAssertEqual(quiet.status, 0, quiet.standardError)
        XCTAssertEqual(quiet.standardOutput + quiet.standardError, "")
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("quiet.onnx").path))
    }

    /// The recipe's second phase on the digits CNN: the top 4 layers of the base (conv3, bn3, relu3,
    /// gap) thaw, bn3 stays frozen as Keras's guide advises, so conv3 and the head train; every other
    /// tensor keeps its bytes in the written file. The report marks where fine-tuning starts.
    func testTwoPhasesThawTheTopOfTheBase() throws {
        let directory = try temporaryDirectory(self)
        let grafted = try graftedDigits(directory)
        let output = directory.appendingPathComponent("tuned.h5").path
        let page = directory.appendingPathComponent("tuned.html").path
        let result = try runScion(["finetune", grafted, "--data", Repository.digits("fewshot.npz"), "--epochs", "2",
                                   "--batch-size", "25", "--unfreeze-top", "4", "--fine-tune-epochs", "2", "-o", output, "--json",
                                   "--report", page])
        XCTAssertEqual(result.status, 0, result.standardError)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        let phases = try XCTUnwrap(report["phases"] as? [[String: Any]])
        XCTAssertEqual(phases.count, 2)
        XCTAssertEqual(phases[1]["unfrozen"] as? [String], ["conv3"])
        XCTAssertEqual(phases[1]["batchNormKeptFrozen"] as? [String], ["bn3"])
        XCTAssertEqual(phases[1]["cached"] as? Bool, true)
        XCTAssertEqual((report["history"] as? [Any])?.count, 4)
        let verification = try XCTUnwrap(report["verification"] as? [String: Any])
        XCTAssertEqual(verification["passed"] as? Bool, true)
        let trained = try XCTUnwrap(verification["trained"] as? [[String: Any]])
        XCTAssertEqual(Set(trained.compactMap { $0["name"] as? String }), ["conv3/kernel", "conv3/bias", "dense/kernel", "dense/bias"])
        XCTAssertEqual((verification["frozen"] as? [Any])?.count, 16)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        XCTAssertTrue(html.contains("← head</text>") && html.contains("fine-tune →</text>"), "the phase boundary is marked")
        XCTAssertTrue(html.contains("epochs at 0.0001"), "a tenth of 0.001, not 9.9999997e-05")
    }

    /// A learning rate that passes the range check but still diverges: training stops at the batch,
    /// exit 1, one line, and no model is written (before: "loss nan", a NaN model, "Verified", exit 0).
    func testDivergingTrainingStopsAndWritesNothing() throws {
        let directory = try temporaryDirectory(self)
        let grafted = try graftedDigits(directory)
        let output = directory.appendingPathComponent("nan.keras").path
        try assertOneLineFailure(["finetune", grafted, "--data", Repository.digits("fewshot.npz"), "--learning-rate", "1e38",
                                  "--epochs", "3", "-o", output, "--report", directory.appendingPathComponent("nan.html").path],
                                 mentions: "head phase: the loss is NaN at epoch 1, batch 2 of 4; training diverged")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("nan.html").path))
    }

    /// What a newcomer runs into first: flat CSV rows for an image model, an .npy pair that does not
    /// match. The message says which file holds what, and how to fix it.
    func testDataForAnotherShapeIsExplained() throws {
        let directory = try temporaryDirectory(self)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        let rows = (0..<3).map { row in ((0..<64).map { _ in "0.5" } + ["\(row)"]).joined(separator: ",") }
        try rows.joined(separator: "\n").write(toFile: path("flat.csv"), atomically: true, encoding: .utf8)
        let x = RuntimeTensor(shape: [4, 8, 8, 1], data: [Float](repeating: 0.5, count: 256))
        try Data(NumpyFile.encode(x)).write(to: URL(fileURLWithPath: path("x.npy")))
        try Data(NumpyFile.encode(RuntimeTensor(shape: [3], data: [0, 1, 2]))).write(to: URL(fileURLWithPath: path("y.npy")))
        let model = Repository.digits("digits_cnn.keras")
        try assertOneLineFailure(["finetune", model, "--data", path("flat.csv"), "-o", path("o.keras")],
                                 mentions: "samples have shape [64]; the model's input 'image' takes [8, 8, 1] (the same 64 values per sample: reshape")
        try assertOneLineFailure(["finetune", model, "--data", path("x.npy"), "--labels", path("y.npy"), "-o", path("o.keras")],
                                 mentions: "x.npy: has 4 input samples and y.npy has 3 targets")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("o.keras")))
    }
}
