import Foundation
import Scion
import ScionIR
import ScionRuntime
import ScionTestSupport
import XCTest

/// Model-local functions are inlined at import (ONNXFunctionInlining.swift): nested calls, attribute
/// references with the call's value or the function's default, inner names kept apart per call; the
/// result runs to onnxruntime's numbers on the original file (Resources/functions, made by
/// make_functions.py). A function that calls itself is refused with a reason, not followed forever.
final class ONNXFunctionInliningTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/functions")

    func testNestedFunctionsRunToOnnxruntimesNumbers() throws {
        let model = try Model.load(Self.folder.appendingPathComponent("nested_functions.onnx").path)
        let opaque = model.graph.nodes.filter { if case .opaque = $0.op { true } else { false } }
        XCTAssertEqual(opaque.map(\.name), [], "every call inlined into ordinary ops")
        // Each call's inner values carry the call's name: block1/h and block2/h, not one `h`.
        let names = Set(model.graph.nodes.map(\.name))
        XCTAssertTrue(names.contains { $0.hasPrefix("block1/") } && names.contains { $0.hasPrefix("block2/") }, "\(names.sorted())")
        let executor = try model.executor()
        for suffix in ["", "3"] {
            let x = try XCTUnwrap(FixtureArrays.read(Self.folder, "nested_functions", "input" + suffix).first)
            let want = try XCTUnwrap(FixtureArrays.read(Self.folder, "nested_functions", "output" + suffix).first)
            let got = try XCTUnwrap(try executor.run(["x": x])["y"])
            XCTAssertEqual(got.shape, want.shape)
            let scale = want.data.map(abs).max() ?? 1
            let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
            // The slopes matter: block1 sets 0.1, block2 leaves Activation's default 0.25.
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "batch \(x.shape[0]): max |a-b| \(worst), max |b| \(scale)")
        }
    }

    func testInlinedModelWritesBackAsPlainONNX() throws {
        let model = try Model.load(Self.folder.appendingPathComponent("nested_functions.onnx").path)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-functions-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("inlined.onnx").path
        try model.write(to: path)
        let back = try Model.load(path)
        let x = try XCTUnwrap(FixtureArrays.read(Self.folder, "nested_functions", "input").first)
        let want = try XCTUnwrap(FixtureArrays.read(Self.folder, "nested_functions", "output").first)
        let got = try XCTUnwrap(try back.executor().run(["x": x])["y"])
        let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-4 * (want.data.map(abs).max() ?? 1))
    }

    func testAFunctionThatCallsItselfIsRefused() throws {
        let path = Self.folder.appendingPathComponent("recursive_function.onnx").path
        XCTAssertThrowsError(try Model.load(path)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("recursive_function.onnx") && message.contains("nest more than 32 levels"), message)
        }
    }

    func testCallsThatDoubleAtEachLevelAreRefusedByTheBudget() throws {
        let path = Self.folder.appendingPathComponent("doubling_functions.onnx").path
        XCTAssertThrowsError(try Model.load(path)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("doubling_functions.onnx") && message.contains("more than 200000 nodes"), message)
        }
    }
}
