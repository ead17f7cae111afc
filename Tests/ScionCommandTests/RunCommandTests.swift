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

    /// `--verbose` says what the executor chose; `--profile` where the pass went: MobileNetV2's
    /// inverted residuals run as depthwise blocks, and the nodes they stand for take no time.
    func testVerboseAndProfileShowThePlanAndTheNodesTimes() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.npy").path
        let model = Repository.fixture("keras2/mobilenet_v2.h5"), input = Repository.fixture("keras2/mobilenet_v2.input.npy")
        let text = try runScion(["run", model, "--input", input, "--output", output, "--verbose", "--profile"])
        XCTAssertEqual(text.status, 0, text.standardError)
        XCTAssertTrue(text.standardOutput.contains("plan: "), text.standardOutput)
        XCTAssertTrue(text.standardOutput.contains("time per pass by op (1 pass):"), text.standardOutput)
        let json = try runScion(["run", model, "--input", input, "--output", output, "--force", "--profile", "--repeat", "2", "--json"])
        XCTAssertEqual(json.status, 0, json.standardError)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
        let nodes = try XCTUnwrap(report["profile"] as? [[String: Any]])
        let ops = Set(nodes.compactMap { $0["op"] as? String })
        XCTAssertTrue(ops.contains("Conv2D"), "\(ops)")
        // The plan's block count (0 only on a CPU without AVX2) is what the profile shows.
        let blocks = text.standardOutput.split(separator: "\n").first { $0.hasPrefix("plan: ") }?
            .split(separator: ";").first { $0.hasSuffix(" depthwise blocks") }?.split(separator: " ").first.flatMap { Int($0) }
        XCTAssertEqual(ops.contains("DepthwiseBlock"), (blocks ?? 0) > 0, "\(ops) against \(text.standardOutput)")
        XCTAssertEqual(nodes.filter { $0["op"] as? String == "DepthwiseBlock" }.count, blocks)
        let total = nodes.compactMap { $0["milliseconds"] as? Double }.reduce(0, +)
        let pass = try XCTUnwrap(report["runSeconds"] as? Double) * 1000
        // Per pass: the nodes' sum is about one pass (the fastest of two), never several.
        XCTAssertGreaterThan(total, 0)
        XCTAssertLessThan(total, 3 * pass + 5, "\(total) ms of nodes against a \(pass) ms pass")
    }

    /// `--weights-cache`: the first run writes the prepared weights, the next maps them, with the
    /// same output bytes; the report says which happened (`SCION_WEIGHTS_CACHE` does the same).
    func testWeightsCacheIsWrittenThenUsedWithTheSameOutput() throws {
        let directory = try temporaryDirectory(self)
        let cache = directory.appendingPathComponent("cache").path
        let model = Repository.fixture("keras2/mobilenet_v2.h5"), input = Repository.fixture("keras2/mobilenet_v2.input.npy")
        var outputs: [Data] = []
        for (index, expected) in ["weights cache: written ", "weights cache: used "].enumerated() {
            let output = directory.appendingPathComponent("out\(index).npy").path
            let result = try runScion(["run", model, "--input", input, "--output", output, "--verbose", "--weights-cache", cache])
            XCTAssertEqual(result.status, 0, result.standardError)
            XCTAssertTrue(result.standardOutput.contains(expected + cache + "/mobilenet_v2.h5."), result.standardOutput)
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: output)))
        }
        let plain = directory.appendingPathComponent("plain.npy").path
        let result = try runScion(["run", model, "--input", input, "--output", plain, "--verbose"])
        XCTAssertFalse(result.standardOutput.contains("weights cache"), result.standardOutput)
        XCTAssertEqual(outputs, [Data](repeating: try Data(contentsOf: URL(fileURLWithPath: plain)), count: 2))
        let json = try runScion(["run", model, "--input", input, "--output", plain, "--force", "--json"], environment: ["SCION_WEIGHTS_CACHE": cache])
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
        XCTAssertTrue((report["weightsCache"] as? String)?.hasPrefix("used ") == true, json.standardOutput)
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
