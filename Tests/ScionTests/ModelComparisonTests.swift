import Foundation
import Scion
import ScionIR
import ScionRuntime
import XCTest

/// `ModelComparison` finds the layer where two models part, also when the two name their layers
/// differently (a Keras model and its tf2onnx or torch export), and says so when it could compare
/// nothing but the outputs.
final class ModelComparisonTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func fixture(_ path: String) -> String { fixtures.appendingPathComponent(path).path }

    /// The fixture's input arrays, in the model's input order.
    func inputs(_ name: String, folder: String = "keras2") throws -> [RuntimeTensor] {
        let single = fixture("\(folder)/\(name).input.npy")
        if FileManager.default.fileExists(atPath: single) { return [try NumpyFile.read(single)] }
        return try (0...).lazy.map { self.fixture("\(folder)/\(name).input_\($0).npy") }
            .prefix { FileManager.default.fileExists(atPath: $0) }.map { try NumpyFile.read($0) }
    }

    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scion-compare-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testAChangedKernelIsTheFirstDivergence() throws {
        let path = fixture("keras2/mobilenet_v2.h5")
        let input = try NumpyFile.read(fixture("keras2/mobilenet_v2.input.npy"))
        let original = try Model.load(path)
        XCTAssertTrue(try ModelComparison(original, original, inputs: [input]).agrees)

        var changed = try Model.load(path)
        let target = "block_3_project"
        _ = try perturb(&changed, layer: target, by: 0.5)
        let comparison = try ModelComparison(original, changed, inputs: [input])
        XCTAssertFalse(comparison.agrees)
        XCTAssertEqual(comparison.firstDivergence?.layer, target)
        let before = try XCTUnwrap(comparison.layers.first { $0.layer == "block_3_depthwise_relu" })
        XCTAssertEqual(before.maxAbs, 0, "layers before the change agree")
        XCTAssertTrue(comparison.text().contains("First divergence: \(target)"))
    }

    /// Keras models against the ONNX files tf2onnx made of them: no layer shares a name, yet every
    /// layer is matched by structure (BatchNormalization folded into the convolution, activations
    /// fused, NHWC/NCHW transposes and 1x1 reshapes looked through, an Average sharing its sum with
    /// an Add) and agrees; the outputs' argmax agrees on every row. conv1d_zoo and misc_zoo are
    /// `testNothingMatchedSaysOnlyOutputsWereCompared`'s.
    func testKerasModelsAgainstTheirTf2onnxExports() throws {
        let expected = ["mobilenet_v2": 65, "conv2d_zoo": 21, "merge_zoo": 17, "mobilenet_v3_small": 121, "inception_resnet_block": 10,
                        "mobilenet": 31, "efficientnet_blocks": 17, "embedding": 3, "lambda_scale": 3, "many_layers": 2, "multi_io": 7,
                        "nested_functional": 5, "nested_transfer": 5, "partly_frozen": 5, "shared_layer": 7, "teachable_machine": 30,
                        "trained_with_optimizer": 5]
        for (name, matched) in expected {
            let comparison = try ModelComparison(try Model.load(fixture("keras2/\(name).h5")), try Model.load(fixture("tf2onnx/\(name).onnx")),
                                                 inputs: try inputs(name))
            XCTAssertEqual(comparison.matchedByName, 0, name)
            XCTAssertEqual(comparison.matchedByStructure, matched, name)
            XCTAssertEqual(comparison.referenceLayers, matched, "\(name): every layer matched")
            XCTAssertGreaterThanOrEqual(comparison.layersCompared, matched, name)
            XCTAssertNil(comparison.firstDivergence, "\(name): \(comparison.text())")
            XCTAssertTrue(comparison.agrees, "\(name): \(comparison.text())")
            XCTAssertTrue(comparison.outputs.allSatisfy { $0.argmaxAgreement ?? 1 == 1 }, name)
            XCTAssertTrue(comparison.text().contains("No layer diverges among the \(comparison.layersCompared) values compared"), name)
        }
    }

    /// The failing side across formats: one weight of the tf2onnx export perturbed (in its own
    /// OIHW layout) makes that layer the first divergence, named in both models.
    func testAPerturbedWeightInTheExportIsFoundAtItsLayer() throws {
        var export = try Model.load(fixture("tf2onnx/mobilenet_v2.onnx"))
        let layer = try XCTUnwrap(export.graph.nodes.first { $0.name.hasSuffix("block_5_project/Conv2D") }?.name)
        _ = try perturb(&export, layer: layer, by: 0.5)
        let comparison = try ModelComparison(try Model.load(fixture("keras2/mobilenet_v2.h5")), export, inputs: try inputs("mobilenet_v2"))
        XCTAssertFalse(comparison.agrees)
        XCTAssertEqual(comparison.firstDivergence?.layer, "block_5_project", comparison.text())
        XCTAssertEqual(comparison.firstDivergence?.candidateLayer, layer)
        XCTAssertTrue(try XCTUnwrap(comparison.layers.first { $0.layer == "block_5_depthwise" }).withinTolerance, "the layer before agrees")
    }

    /// A Keras model against Scion's ONNX conversion of it and that converted back to Keras, and a
    /// torch export against its Keras conversion: every layer matched by name, compared step by step.
    func testModelsAgainstTheirScionConversions() throws {
        let directory = try temporaryDirectory()
        let keras = try Model.load(fixture("keras2/mobilenet_v2.h5"))
        let onnx = directory.appendingPathComponent("m.onnx").path, back = directory.appendingPathComponent("m.keras").path
        try keras.write(to: onnx)
        try Model.load(onnx).write(to: back)
        for path in [onnx, back] {
            let comparison = try ModelComparison(keras, try Model.load(path), inputs: try inputs("mobilenet_v2"))
            XCTAssertEqual(comparison.matchedByName, 65, path)
            XCTAssertEqual(comparison.layersCompared, 156, path)
            XCTAssertTrue(comparison.agrees, comparison.text())
        }
        let torch = try Model.load(fixture("torch/tiny_resnet.onnx"))
        let converted = directory.appendingPathComponent("resnet.keras").path
        try torch.write(to: converted)
        let input = try NumpyFile.read(fixture("torch/tiny_resnet.input.npy"))
        let comparison = try ModelComparison(torch, try Model.load(converted), inputs: [input])
        XCTAssertEqual(comparison.layersMatched, comparison.referenceLayers)
        XCTAssertGreaterThan(comparison.layersCompared, 10)
        XCTAssertTrue(comparison.agrees, comparison.text())
    }

    /// When nothing matches (tf2onnx writes a Conv1D as a Conv2D between reshapes with its bias
    /// after a transpose; misc_zoo's LayerNormalization as Shape arithmetic Keras cannot read), the
    /// report says only the outputs were compared, never "No layer diverges".
    func testNothingMatchedSaysOnlyOutputsWereCompared() throws {
        for name in ["conv1d_zoo", "misc_zoo"] {
            let comparison = try ModelComparison(try Model.load(fixture("keras2/\(name).h5")), try Model.load(fixture("tf2onnx/\(name).onnx")),
                                                 inputs: try inputs(name))
            XCTAssertEqual(comparison.layersCompared, 0, name)
            let text = comparison.text()
            XCTAssertTrue(text.contains("0 layers matched: only outputs compared"), text)
            XCTAssertTrue(text.hasSuffix("The outputs agree within the tolerance; no layer was compared."), text)
            XCTAssertFalse(text.contains("No layer diverges"), text)
            XCTAssertTrue(comparison.agrees, "\(name): the outputs agree")
        }
    }

    /// Outputs of different shapes are said to differ in shape, not as an infinite difference.
    func testOutputsOfDifferentShapesAreSaidToDiffer() throws {
        let original = try Model.load(fixture("keras2/mobilenet_v2.h5"))
        var wider = original
        let index = try XCTUnwrap(wider.graph.nodes.firstIndex { $0.name == "predictions" })
        var bias = try XCTUnwrap(wider.graph.parameter(of: wider.graph.nodes[index], role: .bias))
        var kernel = try XCTUnwrap(wider.graph.parameter(of: wider.graph.nodes[index], role: .kernel))
        kernel.shape = [kernel.shape[0], 10]
        kernel.storage = TensorStorage(bytes: [UInt8](repeating: 0, count: kernel.shape[0] * 10 * 4))
        bias.shape = [10]
        bias.storage = TensorStorage(bytes: [UInt8](repeating: 0, count: 40))
        wider.graph.parameters[kernel.name] = kernel
        wider.graph.parameters[bias.name] = bias
        wider.graph.nodes[index].op = .dense(DenseAttributes(units: 10, activation: .softmax(axis: -1)))
        try wider.graph.inferShapes()
        let comparison = try ModelComparison(original, wider, inputs: try inputs("mobilenet_v2"))
        XCTAssertFalse(comparison.agrees)
        let output = try XCTUnwrap(comparison.outputs.first)
        XCTAssertTrue(output.shapesDiffer)
        XCTAssertNil(output.maxAbs)
        XCTAssertTrue(comparison.text().contains("Output predictions: output shapes differ: [2, 5] vs [2, 10]"), comparison.text())
        XCTAssertFalse(comparison.text().contains("inf"), comparison.text())
    }
}
