import Foundation
import ScionIR
import ScionTestSupport
import XCTest
@testable import Scion
@testable import ScionRuntime

/// The executor's channels-last plan (Executor+ChannelsLast.swift) against its channels-first path,
/// on every fixture the real exporters made (Keras 3, tf_keras, tf2onnx, both torch exporters): the
/// same outputs, and the plan really taken where the models have convolutions.
final class ChannelsLastPlanTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fixtures").standardized

    /// (model file, folder of its NAME.input*.npy, NAME).
    static func cases() -> [(URL, URL, String)] {
        var result: [(URL, URL, String)] = []
        let manager = FileManager.default
        func add(_ folder: String, _ suffix: String, inputs: String, trim: [String] = []) {
            let directory = fixtures.appendingPathComponent(folder)
            for file in ((try? manager.contentsOfDirectory(atPath: directory.path)) ?? []).sorted() where file.hasSuffix(suffix) {
                var name = String(file.dropLast(suffix.count))
                for ending in trim where name.hasSuffix(ending) { name = String(name.dropLast(ending.count)) }
                result.append((directory.appendingPathComponent(file), fixtures.appendingPathComponent(inputs), name))
            }
        }
        add("keras3", ".keras", inputs: "keras3")
        add("keras2", ".h5", inputs: "keras2")
        add("tf2onnx", ".onnx", inputs: "keras2")
        add("torch", ".onnx", inputs: "torch", trim: ["_dynamo", "_ts"])
        return result
    }

    func testEveryFixtureGivesTheSameOutputsInBothLayouts() throws {
        var planned: [String: Int] = [:], compared = 0
        for (file, inputFolder, name) in Self.cases() {
            let inputs = try FixtureArrays.read(inputFolder, name, "input")
            guard let model = try? Model.load(file.path), model.graph.hasArchitecture, !inputs.isEmpty,
                  inputs.count == model.graph.inputs.count, let (lowered, _) = try? Model.lowered(model.graph) else { continue }
            let channelsFirst = try Executor(graph: lowered, channelsLastPlan: false)
            let feed = Dictionary(uniqueKeysWithValues: zip(channelsFirst.graph.inputs.map(\.name), inputs))
            // Models the executor cannot run at all are other tests' business.
            guard let expected = try? channelsFirst.run(feed) else { continue }
            let channelsLast = try Executor(graph: lowered)
            let actual = try channelsLast.run(feed)
            compared += 1
            planned[file.lastPathComponent] = channelsLast.channelsLast.nodes.count
            for (output, reference) in expected {
                let value = try XCTUnwrap(actual[output], "\(file.lastPathComponent): \(output) missing")
                XCTAssertEqual(value.shape, reference.shape, "\(file.lastPathComponent): \(output)")
                let scale = reference.data.map(abs).max() ?? 0
                let difference = zip(value.data, reference.data).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(difference, 1e-5 * scale + 1e-7, "\(file.lastPathComponent): \(output)")
            }
        }
        XCTAssertGreaterThan(compared, 100, "fixtures compared")
        // The plan must be taken where the models are convolutional, or this test shows nothing.
        for file in ["conv2d_zoo.keras", "mobilenet_v2.h5", "efficientnet_blocks.keras", "mobilenet_v2.onnx", "googlenet_ts.onnx",
                     "squeezenet_dynamo.onnx", "convnext_blocks.keras"] {
            XCTAssertGreaterThan(planned[file] ?? 0, 3, "\(file): nodes run channels-last")
        }
    }

    func testRelayoutRoundTripsAndSkipsSingleCells() {
        let x = RuntimeTensor(shape: [2, 3, 4, 5], data: (0..<120).map(Float.init))
        let last = Kernels.relayout(x, toChannelsLast: true)
        XCTAssertEqual(last.shape, [2, 4, 5, 3])
        XCTAssertEqual(last.data, Kernels.transpose(x, [0, 2, 3, 1]).data)
        XCTAssertEqual(Kernels.relayout(last, toChannelsLast: false), x)
        let cell = RuntimeTensor(shape: [2, 7, 1, 1], data: (0..<14).map(Float.init))
        XCTAssertEqual(Kernels.relayout(cell, toChannelsLast: true).shape, [2, 1, 1, 7])
        XCTAssertEqual(Kernels.relayout(cell, toChannelsLast: true).data, cell.data)
    }

    func testVectorExponentialMatchesLibm() {
        var worst: Double = 0
        for v in stride(from: Float(-87), to: 88, by: 0.0137) {
            let reference = Foundation.exp(Double(v))
            worst = max(worst, abs(Double(Kernels.exponential(v)) - reference) / reference)
        }
        XCTAssertLessThan(worst, 5e-7)
        let swish = try! Kernels.activate(RuntimeTensor(shape: [9], data: [-100, -3, 0, 0.5, 4, 100, 7, 1, -1]), .swish, node: "swish").data
        let expected: [Float] = [-100, -3, 0, 0.5, 4, 100, 7, 1, -1].map { $0 / (1 + Foundation.exp(-$0)) }
        for (a, b) in zip(swish, expected) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(abs(b), 1)) }
    }
}

extension ChannelsLastPlanTests {
    /// Explicit pads as large as the window leave windows with no cell of the input (an ONNX file may
    /// say so): both kernels give the max of nothing (-infinity) and an average of zero, no crash.
    func testPoolingWindowsWhollyInPadding() throws {
        let x = RuntimeTensor(shape: [1, 2, 3, 3], data: (0..<18).map { Float($0) - 9 })
        for kind in [PoolKind.max, .average] {
            let a = PoolAttributes(kind: kind, poolSize: [2, 2], strides: [1, 1], padding: .explicit([3, 2, 3, 2]), layout: .channelsFirst)
            let first = try Kernels.pool(x, a, node: "pool")
            XCTAssertEqual(first.shape, [1, 2, 8, 6])
            XCTAssertEqual(first.data[0], kind == .max ? -.infinity : 0)
            let last = try Kernels.poolChannelsLast(Kernels.relayout(x, toChannelsLast: true).data, logical: x.shape, a, node: "pool")
            XCTAssertEqual(Kernels.relayout(RuntimeTensor(shape: [1, 8, 6, 2], data: last), toChannelsLast: false).data, first.data)
        }
    }
}
