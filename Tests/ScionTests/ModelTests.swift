import Foundation
import Scion
import ScionIR
import XCTest

/// The library's front door, used the way a Swift caller would.
final class ModelTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func testFormatIsDetectedByMagicBytesNotExtension() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let archive = directory.appendingPathComponent("really-an-archive.h5")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("keras3/nested_transfer.keras"), to: archive)
        XCTAssertEqual(try ModelFormat.detect(path: archive.path), .kerasArchive)
        let model = try Model.load(archive.path)
        XCTAssertEqual(model.graph.totalParameterCount, 1211)
        XCTAssertEqual(try ModelFormat.detect(path: fixtures.appendingPathComponent("keras2/nested_transfer.h5").path), .kerasHDF5)
    }

    func testOutputFormatComesFromTheExtension() throws {
        XCTAssertEqual(try ModelFormat.forOutput(path: "out/model.onnx"), .onnx)
        XCTAssertEqual(try ModelFormat.forOutput(path: "model.KERAS"), .kerasArchive)
        XCTAssertEqual(try ModelFormat.forOutput(path: "model.h5"), .kerasHDF5)
        XCTAssertThrowsError(try ModelFormat.forOutput(path: "model.pt")) { error in
            XCTAssertTrue(String(describing: error).contains(".pt"))
        }
    }

    func testSummaryCountsNestedModelAndShowsItNested() throws {
        let model = try Model.load(fixtures.appendingPathComponent("keras3/nested_functional.keras").path)
        let summary = try ModelSummary(graph: model.graph, format: model.format.rawValue, includeWeights: false, checksums: false)
        XCTAssertEqual(summary.totalParams, 1211)
        XCTAssertEqual(summary.trainableParams, 39)
        let base = try XCTUnwrap(summary.layers.first { $0.name == "base" })
        XCTAssertEqual(base.type, "Functional")
        XCTAssertFalse(base.trainable)
        XCTAssertEqual(base.params, 1172)
        XCTAssertEqual(base.layers?.first?.name, "base_conv1")
        XCTAssertNil(summary.weights)
        XCTAssertTrue(model.graph.parameters.all.allSatisfy { !$0.storage.isLoaded }, "a summary reads no weights")
    }

    /// Constants Scion's ONNX writer adds to spell an op (GELU's sqrt(2), 1 and 0.5 in torch's ViT) are
    /// listed frozen: read back, the model trains exactly what it trained before (`finetune` of the
    /// written file used to move them).
    func testConstantsOfAnOpsSpellingStayFrozenReadBack() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = try Model.load(fixtures.appendingPathComponent("torch/vit_dynamo.onnx").path)
        let path = directory.appendingPathComponent("vit.onnx").path
        // Opset 17: before ONNX's Gelu (20), so the writer spells GELU out with its constants.
        var options = Model.WriteOptions()
        options.opset = 17
        try original.write(to: path, options: options)
        let back = try Model.load(path)
        let trainable = { (model: Model) in Set(model.graph.parameters.all.filter(\.trainable).map(\.name)) }
        XCTAssertEqual(trainable(back), trainable(original))
        XCTAssertTrue(back.graph.parameters.all.contains { $0.name.hasSuffix("/sqrt2") && !$0.trainable })
    }

    func testSharedLayerIsCountedOnce() throws {
        let model = try Model.load(fixtures.appendingPathComponent("keras2/shared_layer.h5").path)
        let summary = try ModelSummary(graph: model.graph, format: model.format.rawValue, includeWeights: false, checksums: false)
        XCTAssertEqual(summary.layers.reduce(0) { $0 + $1.params }, summary.totalParams)
        XCTAssertEqual(summary.layers.filter { $0.sharedWith != nil }.count, 2)
    }

    func testWeightsOnlyFilesAreRefusedByOperationsThatNeedLayers() throws {
        let path = fixtures.appendingPathComponent("keras3/weights_only.weights.h5").path
        let model = try Model.load(path)
        XCTAssertThrowsError(try model.requireArchitecture(for: "convert")) { error in
            XCTAssertTrue(String(describing: error).hasPrefix(path))
            XCTAssertTrue(String(describing: error).contains("weights only"))
        }
        XCTAssertNoThrow(try Model.load(fixtures.appendingPathComponent("keras3/conv2d_zoo.keras").path)
            .requireArchitecture(for: "convert"))
    }

    func testMissingFileNamesIt() {
        XCTAssertThrowsError(try Model.load("/no/such/model.keras")) { error in
            XCTAssertEqual(String(describing: error), "/no/such/model.keras: no such file")
        }
    }
}
