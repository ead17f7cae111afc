import Foundation
import Scion
import ScionIR
import XCTest

/// `scion diff` and `scion compare` end to end: what a person reads and what --json gives, exit
/// statuses, and the model an error names. The numbers behind them are checked in ScionTests
/// (ModelDiffTests, ModelComparisonTests).
final class DiffCompareCommandTests: XCTestCase {
    func json(_ result: CommandResult) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any], result.standardOutput)
    }

    /// A Keras model and its ONNX conversion are the same model: nothing removed, added or changed,
    /// every weight equal, exit 0. Before, the fused softmax showed as a changed layer and an added
    /// one, in Swift's own spelling.
    func testDiffOfAModelAndItsConversionIsEmpty() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras2/mobilenet_v2.h5")
        let onnx = directory.appendingPathComponent("m.onnx").path
        XCTAssertEqual(try runScion(["convert", model, onnx]).status, 0)
        let text = try runScion(["diff", model, onnx])
        XCTAssertEqual(text.status, 0, text.standardOutput + text.standardError)
        XCTAssertTrue(text.standardOutput.contains("Removed layers: 0\nAdded layers: 0\nChanged layers: 0"), text.standardOutput)
        XCTAssertTrue(text.standardOutput.contains("Weights in both: 262, unchanged: 262, changed: 0"), text.standardOutput)
        XCTAssertTrue(text.standardOutput.hasSuffix("No differences.\n"), text.standardOutput)
        let report = try json(try runScion(["diff", model, onnx, "--json"]))
        XCTAssertEqual((report["changed"] as? [Any])?.count, 0)
        XCTAssertEqual(report["layersMatched"] as? Int, 152)
    }

    /// A change is one plain field in the JSON and one line in the text; exit 3.
    func testDiffReportsAChangedActivationAsAField() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras2/mobilenet_v2.h5")
        let child = directory.appendingPathComponent("child.keras").path
        // The same head with another activation: Dense(5, linear) where the model has softmax.
        XCTAssertEqual(try runScion(["edit", model, "--drop-top", "--head", "gap,dense:5", "--seed", "1", "-o", child]).status, 0)
        let result = try runScion(["diff", model, child, "--json"])
        XCTAssertEqual(result.status, 3)
        let changed = try XCTUnwrap(try json(result)["changed"] as? [[String: String]])
        XCTAssertTrue(changed.contains(["layer": "predictions", "field": "activation", "before": "softmax", "after": "linear"]), "\(changed)")
        let text = try runScion(["diff", model, child])
        XCTAssertEqual(text.status, 3)
        XCTAssertTrue(text.standardOutput.contains("~ predictions: activation softmax -> linear"), text.standardOutput)
        XCTAssertFalse(text.standardOutput.contains("ScionIR"), text.standardOutput)
        XCTAssertTrue(text.standardOutput.contains("~ predictions/kernel: max |delta| "), text.standardOutput)
    }

    /// compare --json: how many values were compared, no divergence as null, each output's
    /// largest differences and argmax agreement, the matched pairs.
    func testCompareJSONAgainstATf2onnxExport() throws {
        let result = try runScion(["compare", Repository.fixture("keras2/mobilenet_v2.h5"), Repository.fixture("tf2onnx/mobilenet_v2.onnx"),
                                   "--input", Repository.fixture("keras2/mobilenet_v2.input.npy"), "--json"])
        XCTAssertEqual(result.status, 0, result.standardError)
        let report = try json(result)
        XCTAssertEqual(report["layersMatched"] as? Int, 65)
        XCTAssertEqual(report["matchedByStructure"] as? Int, 65)
        XCTAssertGreaterThanOrEqual(report["layersCompared"] as? Int ?? 0, 65)
        XCTAssertTrue(report["firstDivergence"] is NSNull, "\(report["firstDivergence"] ?? "missing")")
        let output = try XCTUnwrap((report["outputs"] as? [[String: Any]])?.first)
        XCTAssertNotNil(output["maxAbs"] as? Double)
        XCTAssertNotNil(output["maxRel"] as? Double)
        XCTAssertEqual(output["argmaxAgreement"] as? Double, 1)
        let pair = try XCTUnwrap((report["layers"] as? [[String: Any]])?.first)
        XCTAssertEqual(pair["layer"] as? String, "Conv1")
        XCTAssertEqual(pair["candidateLayer"] as? String, "mobilenetv2_0.25_32/Conv1/Conv2D")
        XCTAssertEqual(pair["matchedBy"] as? String, "structure")
    }

    /// The failing side end to end: one weight in the middle of the model perturbed and the model
    /// written as ONNX; compare names that layer as the first divergence and exits 3, and diff
    /// names the weight.
    func testAPerturbedWeightIsTheFirstDivergenceAcrossFormats() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras2/mobilenet_v2.h5")
        var perturbed = try Model.load(model)
        let kernelName = try XCTUnwrap(perturbed.graph.node(named: "block_5_project")?.parameters.first)
        var kernel = try XCTUnwrap(perturbed.graph.parameters[kernelName])
        var values = try kernel.storage.bytes().withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        values[0] += 0.5
        kernel.storage = TensorStorage(bytes: values.withUnsafeBytes { Array($0) })
        perturbed.graph.parameters[kernelName] = kernel
        let onnx = directory.appendingPathComponent("perturbed.onnx").path
        try perturbed.write(to: onnx)
        let result = try runScion(["compare", model, onnx, "--input", Repository.fixture("keras2/mobilenet_v2.input.npy"), "--json"])
        XCTAssertEqual(result.status, 3, result.standardError)
        let divergence = try XCTUnwrap(try json(result)["firstDivergence"] as? [String: Any])
        XCTAssertEqual(divergence["layer"] as? String, "block_5_project")
        XCTAssertEqual(divergence["withinTolerance"] as? Bool, false)
        let diff = try runScion(["diff", model, onnx, "--json"])
        XCTAssertEqual(diff.status, 3)
        XCTAssertEqual((try json(diff)["weightsChanged"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, [kernelName])
    }

    /// A weight turned NaN is an infinite change, spelled "inf" in the JSON (JSON has no infinity:
    /// the encoder failed and diff exited 1).
    func testANaNWeightIsAnInfiniteChangeInJSON() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras2/partly_frozen.h5")
        var broken = try Model.load(model)
        let kernelName = try XCTUnwrap(broken.graph.parameters.names.first { $0.hasSuffix("kernel") })
        var kernel = try XCTUnwrap(broken.graph.parameters[kernelName])
        var values = try kernel.storage.bytes().withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        values[0] = .nan
        kernel.storage = TensorStorage(bytes: values.withUnsafeBytes { Array($0) })
        broken.graph.parameters[kernelName] = kernel
        let path = directory.appendingPathComponent("nan.keras").path
        try broken.write(to: path)
        let result = try runScion(["diff", model, path, "--json"])
        XCTAssertEqual(result.status, 3, result.standardError)
        let change = try XCTUnwrap((try json(result)["weightsChanged"] as? [[String: Any]])?.first)
        XCTAssertEqual(change["name"] as? String, kernelName)
        XCTAssertEqual(change["maxAbsDelta"] as? String, "inf")
        let text = try runScion(["diff", model, path])
        XCTAssertTrue(text.standardOutput.contains("~ \(kernelName): max |delta| inf"), text.standardOutput)
    }

    /// Arrays that fit the reference but not the candidate are refused naming the candidate (they
    /// were blamed on the reference).
    func testCompareNamesTheModelThatRefusesTheInput() throws {
        let directory = try temporaryDirectory(self)
        let torch = Repository.fixture("torch/tiny_resnet.onnx")
        let channelsLast = directory.appendingPathComponent("nhwc.keras").path
        XCTAssertEqual(try runScion(["convert", torch, channelsLast, "--channels-last-input"]).status, 0)
        try assertOneLineFailure(["compare", torch, channelsLast, "--input", Repository.fixture("torch/tiny_resnet.input.npy")],
                                 mentions: "\(channelsLast): input 'image' takes shape (None, 16, 16, 3)")
        try assertOneLineFailure(["compare", channelsLast, torch, "--input", Repository.fixture("torch/tiny_resnet.input.npy")],
                                 mentions: "\(channelsLast): input 'image' takes shape (None, 16, 16, 3)")
        let twoInputs = Repository.fixture("keras2/multi_io.h5"), oneInput = Repository.fixture("keras2/mobilenet_v2.h5")
        try assertOneLineFailure(["compare", twoInputs, oneInput],
                                 mentions: "\(oneInput): takes 1 input(s) (input_1), the reference \(twoInputs) 2 (image, vector)")
    }

    /// Outputs of different shapes: said in words, exit 3, JSON without a number for them.
    func testCompareSaysWhenOutputShapesDiffer() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras2/mobilenet_v2.h5")
        let child = directory.appendingPathComponent("child.keras").path
        XCTAssertEqual(try runScion(["edit", model, "--drop-top", "--head", "gap,dense:10:softmax", "--seed", "1", "-o", child]).status, 0)
        let input = Repository.fixture("keras2/mobilenet_v2.input.npy")
        let text = try runScion(["compare", model, child, "--input", input])
        XCTAssertEqual(text.status, 3)
        XCTAssertTrue(text.standardOutput.contains("Output predictions: output shapes differ: [2, 5] vs [2, 10]"), text.standardOutput)
        XCTAssertFalse(text.standardOutput.contains("inf"), text.standardOutput)
        let output = try XCTUnwrap((try json(try runScion(["compare", model, child, "--input", input, "--json"]))["outputs"] as? [[String: Any]])?.first)
        XCTAssertEqual(output["shapesDiffer"] as? Bool, true)
        XCTAssertNil(output["maxAbs"] as? Double)
    }

    /// Numbers as people read them in the text (3 significant digits), whole in the JSON.
    func testCompareTextRoundsAndJSONKeepsFullPrecision() throws {
        // A model whose tf2onnx export computes differently (its kernels sum in another order): a
        // model the two run the same way differs by exactly 0, which has no digits to round.
        let model = Repository.fixture("keras2/misc_zoo.h5"), export = Repository.fixture("tf2onnx/misc_zoo.onnx")
        let input = Repository.fixture("keras2/misc_zoo.input.npy")
        let text = try runScion(["compare", model, export, "--input", input])
        XCTAssertEqual(text.status, 0, text.standardError)
        let line = try XCTUnwrap(text.standardOutput.split(separator: "\n").first { $0.hasPrefix("Output out ") })
        let output = try XCTUnwrap((try json(try runScion(["compare", model, export, "--input", input, "--json"]))["outputs"] as? [[String: Any]])?.first)
        // The difference is float rounding (which depends on the kernels' summation order): the
        // text shows the JSON's number to 3 significant digits, the JSON all of it.
        let maxAbs = try XCTUnwrap(output["maxAbs"] as? Double)
        XCTAssertGreaterThan(maxAbs, 0)
        let rounded = String(format: "%.2e", maxAbs)
        XCTAssertTrue(line.contains("max |a-b| \(rounded), relative "), String(line))
        XCTAssertNotEqual(maxAbs, Double(rounded), "the JSON keeps more digits than the text")
    }

    /// A head whose activation changed (Dense softmax -> Dense linear, renamed by the graft) is
    /// still that head's counterpart: the first divergence, exit 3. Where nothing matched, the
    /// layers left out are named.
    func testCompareFindsAChangedHeadAndNamesWhatItCouldNotMatch() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras2/mobilenet_v2.h5")
        let child = directory.appendingPathComponent("linear.keras").path
        XCTAssertEqual(try runScion(["edit", model, "--drop-top", "--head", "gap,dense:5", "--seed", "1", "-o", child]).status, 0)
        let result = try runScion(["compare", model, child, "--input", Repository.fixture("keras2/mobilenet_v2.input.npy")])
        XCTAssertEqual(result.status, 3)
        XCTAssertTrue(result.standardOutput.contains("First divergence: predictions (= dense)\n"), result.standardOutput)
        let unmatched = try runScion(["compare", Repository.fixture("keras2/conv1d_zoo.h5"), Repository.fixture("tf2onnx/conv1d_zoo.onnx")])
        XCTAssertEqual(unmatched.status, 0, unmatched.standardError)
        XCTAssertTrue(unmatched.standardOutput.contains("Not matched, so not compared: 9 layer(s) of the reference (conv1d_same, "),
                      unmatched.standardOutput)
        XCTAssertTrue(unmatched.standardOutput.contains("0 layers matched: only outputs compared"), unmatched.standardOutput)
    }

    /// The usage lines in docs/surgery.md and docs/runtime.md are the ones --help prints.
    func testDocsShowTheUsageLinesOfHelp() throws {
        for (command, page) in [("diff", "docs/surgery.md"), ("compare", "docs/runtime.md")] {
            let help = try runScion([command, "--help"])
            let usage = try XCTUnwrap(help.standardOutput.split(separator: "\n").first { $0.hasPrefix("USAGE: ") }).dropFirst("USAGE: ".count)
            let text = try String(contentsOf: Repository.root.appendingPathComponent(page), encoding: .utf8)
            XCTAssertTrue(text.contains("`\(usage)`") || text.contains("\n\(usage)\n"), "\(page) lacks the usage line: \(usage)")
        }
    }

    /// Without --input, compare runs on seeded random samples and says so.
    func testCompareWithoutInputsUsesSeededSamples() throws {
        let model = Repository.fixture("keras2/mobilenet_v2.h5")
        let first = try runScion(["compare", model, Repository.fixture("tf2onnx/mobilenet_v2.onnx")])
        XCTAssertEqual(first.status, 0, first.standardError)
        XCTAssertTrue(first.standardOutput.hasPrefix("Inputs: 2 random samples (seed 0: uniform in [-1, 1), whole ids for an Embedding), "
            + "shape [2, 32, 32, 3]\n"), first.standardOutput)
        XCTAssertEqual(try runScion(["compare", model, Repository.fixture("tf2onnx/mobilenet_v2.onnx")]).standardOutput, first.standardOutput)
    }
}
