import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import ScionTestSupport
import XCTest

/// The executor against the numbers the real tools produced: every fixture (Keras 2 and 3 models,
/// tf2onnx's and torch's ONNX) run on its stored inputs must give its stored outputs within
/// max|a-b| <= 1e-4 * max|b|. Models with ops the executor does not run yet are listed with the op,
/// so a regression fails and a newly supported op shows up as an unexpected pass.
final class FixtureRunTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    /// Model → the op it stops at.
    /// Layers kept opaque (read, counted, cut and written, not run).
    static let notYet: [String: String] = [
        // A user's class and Lambda layers are Python code: refused by name, never run.
        "keras2/custom_layer": "base_scale: cannot run it: 'ScaleBy' is a custom layer class (scion_fixtures>ScaleBy)",
        "keras3/custom_layer": "base_scale: cannot run it: 'ScaleBy' is a custom layer class (scion_fixtures>ScaleBy)",
        "keras2/lambda_layer": "affine: cannot run it: a Lambda layer", "keras3/lambda_layer": "affine: cannot run it: a Lambda layer",
    ]

    /// make_torch_transformers.py exports each model twice (NAME_ts.onnx: TorchScript, NAME_dynamo.onnx:
    /// dynamo) with one pair of torch's arrays, NAME.input.npy / NAME.output.npy, for both.
    static func referenceStem(_ name: String, folder: String) -> String {
        guard folder == "torch" else { return name }
        for suffix in ["_ts", "_dynamo"] where name.hasSuffix(suffix) { return String(name.dropLast(suffix.count)) }
        return name
    }

    func testEveryFixtureGivesTheRealToolsOutputs() throws {
        var passed: [String] = [], stopped: [String: String] = [:]
        for (folder, suffix, references) in [("keras2", "h5", "keras2"), ("keras3", "keras", "keras3"),
                                             ("tf2onnx", "onnx", "keras2"), ("torch", "onnx", "torch")] {
            let directory = Self.fixtures.appendingPathComponent(folder)
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".\(suffix)") }.sorted()
            for file in files {
                let name = String(file.dropLast(suffix.count + 1)), label = "\(folder)/\(name)"
                let referenceFolder = Self.fixtures.appendingPathComponent(references)
                let stem = Self.referenceStem(name, folder: folder)
                // NAME.input_size / NAME.output_size: another image size, for a model whose height and width are dynamic.
                let cases = try [("input", "output"), ("input_size", "output_size")].map { input, output in
                    (try FixtureArrays.read(referenceFolder, stem, input), try FixtureArrays.read(referenceFolder, stem, output))
                }.filter { !$0.0.isEmpty && !$0.1.isEmpty }
                guard !cases.isEmpty else { continue }
                let model = try Model.load(directory.appendingPathComponent(file).path)
                var results: [(outputs: [RuntimeTensor], expected: [RuntimeTensor])] = []
                do {
                    let executor = try model.executor()
                    for (inputs, expected) in cases {
                        let feeds = Dictionary(uniqueKeysWithValues: zip(executor.graph.inputs.map(\.name), inputs))
                        let values = try executor.run(feeds)
                        results.append((model.graph.outputs.compactMap { values[$0] }, expected))
                    }
                } catch let error as RuntimeError {
                    stopped[label] = error.description
                    continue
                }
                for (outputs, expected) in results {
                    XCTAssertEqual(outputs.count, expected.count, label)
                    for (got, want) in zip(outputs, expected) {
                        XCTAssertEqual(got.shape, want.shape, label)
                        let scale = want.data.map(abs).max() ?? 1
                        let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? 0
                        XCTAssertLessThanOrEqual(worst, 1e-4 * max(scale, 1e-12), "\(label) \(got.shape): max |a-b| \(worst), max |b| \(scale)")
                    }
                }
                passed.append(label)
            }
        }
        for (label, reason) in stopped {
            let expected = try XCTUnwrap(Self.notYet[label], "\(label) stopped: \(reason)")
            XCTAssertTrue(reason.contains(expected), "\(label): \(reason)")
        }
        for label in Self.notYet.keys where stopped[label] == nil {
            XCTFail("\(label) runs now: remove it from notYet")
        }
        XCTAssertGreaterThan(passed.count, 50, "\(passed)")
        print("executor: \(passed.count) fixtures match, \(stopped.count) use ops not run yet")
    }
}
