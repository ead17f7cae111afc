import Foundation
import ScionIR
import ScionZip
import XCTest

@testable import ScionKeras

/// Every fixture written back as Keras 3 (`.keras` and legacy `.h5`) and read again by Scion keeps
/// its weights byte for byte, its trainable flags and its ops. Whether real Keras 3 loads the files
/// and predicts the same is checked by `Tests/Interop/check_keras.py`.
final class KerasWriterTests: XCTestCase {
    private func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "scion-writer-\(UUID().uuidString)-\(name)"
    }

    /// Weights as (shape, trainable, bytes), sorted: names change (`/` becomes `_`), contents must not.
    private func weightSummary(_ graph: Graph) throws -> [String] {
        try graph.parameters.all.map { parameter in
            let bytes = try parameter.storage.bytes()
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return "\(parameter.shape) \(parameter.dtype) \(parameter.trainable) \(bytes.count) \(hash)"
        }.sorted()
    }

    private func roundTrip(_ url: URL, archive: Bool) throws -> (Graph, Graph) {
        let original = try readKeras(url)
        let path = temporaryPath(url.deletingPathExtension().lastPathComponent + (archive ? ".keras" : ".h5"))
        defer { try? FileManager.default.removeItem(atPath: path) }
        if archive {
            try KerasModelWriter.writeArchive(original, to: path, file: path)
            return (try readKeras(url), try KerasModelReader.readArchive(at: path))
        }
        try KerasModelWriter.writeHDF5(original, to: path, file: path)
        return (try readKeras(url), try KerasModelReader.readHDF5(at: path))
    }

    /// An op as the writers must keep it. An opaque layer's config is Keras's, rewritten on the way
    /// (Keras 2-only keys dropped, `name`/`dtype` written anew, Keras 3's `shared_object_id`s gone):
    /// its class and output shapes must survive; whether Keras 3 builds it is check_keras.py's job.
    /// In `.h5` (Keras 2's schema, which records no tensor shapes) the output shape of a Lambda or a
    /// user's class is known only from a Keras 3 source; it is not compared there.
    private func comparable(_ op: Op, archive: Bool = true) -> String {
        // tf.keras's RandomCrop is written as the Resizing it computes at inference (its seed with it lost).
        if case .resizing(let a) = op { return "\(Op.resizing(a.inferenceForm))" }
        guard case .opaque(let a) = op else { return "\(op)" }
        let declaredOnly = a.registration != nil || a.type == "Lambda"
        let shapes = archive || !declaredOnly ? a.outputShapes.map { "\($0)" } ?? "?" : "not compared"
        return "opaque \(a.domain) \(a.type) \(shapes)"
    }

    private func checkEveryFixture(archive: Bool) throws {
        let fixtures = try Repository.fixtureModels().filter { !$0.model.lastPathComponent.contains("weights") }
        XCTAssertGreaterThan(fixtures.count, 40, "fixtures are missing")
        for (url, _) in fixtures {
            let name = "\(url.deletingLastPathComponent().lastPathComponent)/\(url.lastPathComponent)"
            // Sources Keras 3 cannot express: the writers refuse them, naming the layer. tf.keras's
            // tabulated bicubic Resizing; Keras 2's hard sigmoid as an LSTM's gates.
            let refusals = ["keras2/resizing_kernels.h5": "up_bicubic: tf.keras's bicubic Resizing",
                            "keras2/rnn_lstm.h5": "lstm_back: LSTM with activation hard_sigmoid has no Keras 3 equivalent",
                            // tf.keras's ConvLSTM2D gates default to its hard_sigmoid.
                            "keras2/conv_lstm.h5": "convlstm_seq: ConvLSTM2D with activation hard_sigmoid has no Keras 3 equivalent"]
            if let refusal = refusals[name] {
                XCTAssertThrowsError(try roundTrip(url, archive: archive)) { error in
                    XCTAssertTrue("\(error)".contains(refusal), "\(error)")
                }
                continue
            }
            let (original, written) = try roundTrip(url, archive: archive)
            XCTAssertEqual(written.totalParameterCount, original.totalParameterCount, "total params of \(name)")
            XCTAssertEqual(written.trainableParameterCount, original.trainableParameterCount, "trainable params of \(name)")
            XCTAssertEqual(try weightSummary(written), try weightSummary(original), "weights of \(name)")
            // Keras 2's hard sigmoid has no Keras 3 name: written as Rescaling + ReLU(max 1), two nodes.
            if name != "keras2/activation_zoo.h5" {
                XCTAssertEqual(written.nodes.map { comparable($0.op, archive: archive) },
                               original.nodes.map { comparable($0.op, archive: archive) }, "ops of \(name)")
                XCTAssertEqual(written.nodes.map(\.trainable), original.nodes.map(\.trainable), "trainable flags of \(name)")
            }
        }
    }

    func testEveryFixtureSurvivesTheKerasArchive() throws { try checkEveryFixture(archive: true) }

    func testEveryFixtureSurvivesTheLegacyHDF5() throws { try checkEveryFixture(archive: false) }

    func testArchiveHoldsStoredEntriesInKerasOrder() throws {
        let url = Repository.root.appendingPathComponent("fixtures/keras3/nested_transfer.keras")
        let path = temporaryPath("nested.keras")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try KerasModelWriter.writeArchive(try readKeras(url), to: path, file: path)
        let archive = try ZipArchive(path: path)
        XCTAssertEqual(archive.entries.map(\.name), ["metadata.json", "config.json", "model.weights.h5"])
        for entry in archive.entries { XCTAssertNotNil(try archive.storedBytes(of: entry, verifyingChecksum: true), entry.name) }
        guard let configEntry = archive.entry(named: "config.json") else { return XCTFail("no config.json") }
        let config = try JSON.parse(Data(archive.contents(of: configEntry, limit: 1 << 20)))
        let names = config["config"]?["layers"]?.array?.compactMap { $0["name"]?.string } ?? []
        XCTAssertFalse(names.contains { $0.contains("/") }, "Keras 3 refuses '/' in layer names: \(names)")
        XCTAssertEqual(Set(names).count, names.count)
    }

    func testKerasTwoHardSigmoidIsWrittenExactly() throws {
        var graph = Graph(name: "hard", inputs: [ValueInfo(name: "x", shape: Shape([nil, 4]), dtype: .float32)], outputs: ["h"])
        graph.nodes = [Node(name: "h", op: .activation(.hardSigmoid(alpha: 0.2, beta: 0.5)), inputs: ["x"], outputs: ["h"])]
        try graph.inferShapes()
        let path = temporaryPath("hard.keras")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try KerasModelWriter.writeArchive(graph, to: path, file: path)
        let written = try KerasModelReader.readArchive(at: path)
        XCTAssertEqual(written.nodes.map(\.op), [
            .rescaling(RescalingAttributes(scale: [0.2], offset: [0.5])),
            .activation(.relu(maxValue: 1, negativeSlope: 0, threshold: 0))])
    }

    func testFusedActivationWithoutKerasThreeNameBecomesLayers() throws {
        var graph = Graph(name: "fused", inputs: [ValueInfo(name: "x", shape: Shape([nil, 4]), dtype: .float32)], outputs: ["d"])
        let kernel = Parameter(name: "d/kernel", role: .kernel, shape: [4, 2], dtype: .float32, trainable: true,
                               storage: TensorStorage(bytes: [UInt8](repeating: 0, count: 32)))
        graph.parameters.add(kernel)
        let dense = DenseAttributes(units: 2, useBias: false, activation: .hardSigmoid(alpha: 0.2, beta: 0.5))
        graph.nodes = [Node(name: "d", op: .dense(dense), inputs: ["x"], outputs: ["d"], parameters: ["d/kernel"])]
        try graph.inferShapes()
        let path = temporaryPath("fused.keras")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try KerasModelWriter.writeArchive(graph, to: path, file: path)
        let written = try KerasModelReader.readArchive(at: path)
        XCTAssertEqual(written.nodes.map(\.op), [
            .dense(DenseAttributes(units: 2, useBias: false)),
            .rescaling(RescalingAttributes(scale: [0.2], offset: [0.5])),
            .activation(.relu(maxValue: 1, negativeSlope: 0, threshold: 0))])
        XCTAssertEqual(written.nodes.map(\.inputs), [["x"], ["d"], [written.nodes[1].name]])
    }

    func testChannelsFirstGraphsAreRefused() throws {
        var graph = Graph(name: "onnx", inputs: [ValueInfo(name: "x", shape: Shape([1, 3, 8, 8]), dtype: .float32)], outputs: ["y"])
        // LRN has no Keras layer and no keras.ops spelling Scion writes (a MatMul and a comparison now have).
        graph.nodes = [Node(name: "y", op: .onnx(.localResponseNormalization(LocalResponseNormalizationAttributes(size: 3, alpha: 1e-4,
                                                                                                                 beta: 0.75, bias: 1))),
                            inputs: ["x"], outputs: ["y"])]
        graph.layout = .channelsFirst
        XCTAssertThrowsError(try KerasModelWriter.writeArchive(graph, to: temporaryPath("x.keras"), file: "out.keras")) { error in
            XCTAssertEqual((error as? KerasError)?.kind, .writeFailed)
            XCTAssertTrue("\(error)".contains("ONNX"), "\(error)")
        }
        graph.layout = nil
        XCTAssertThrowsError(try KerasModelWriter.writeHDF5(graph, to: temporaryPath("x.h5"), file: "out.h5")) { error in
            XCTAssertEqual((error as? KerasError)?.subject, "y")
        }
    }
}
