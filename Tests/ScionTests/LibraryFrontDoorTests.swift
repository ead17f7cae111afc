import Foundation
import Scion  // alone: the IR, the passes, the executor and the trainer come with it (Exports.swift)
import XCTest

/// The DocC articles' code (Sources/Scion/Scion.docc), run as the articles show it, on the digits CNN
/// that `scion demo` ships (pretrained by Keras on the digits 0-4; fixtures/digits/README.md). Each
/// test's first block is copied exactly into the article it names; keep the two the same.
final class LibraryFrontDoorTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let files = ["Sources/ScionCommand/Resources/digits/digits_cnn.keras", "Sources/ScionCommand/Resources/digits/fewshot.npz",
                        "fixtures/digits/pretrain.npz"]

    var folder: URL?
    var previousDirectory = FileManager.default.currentDirectoryPath

    /// The articles name files as a user in their own folder would; the tests run in a fresh folder
    /// holding copies of them.
    override func setUpWithError() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scion-docs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for file in Self.files {
            let source = Self.root.appendingPathComponent(file)
            try FileManager.default.copyItem(at: source, to: folder.appendingPathComponent(source.lastPathComponent))
        }
        previousDirectory = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(folder.path))
        self.folder = folder
    }

    override func tearDownWithError() throws {
        _ = FileManager.default.changeCurrentDirectoryPath(previousDirectory)
        if let folder { try FileManager.default.removeItem(at: folder) }
    }

    // Mirrors LoadingAndInspecting.md.
    func testLoadingAndInspecting() throws {
        let model = try Model.load("digits_cnn.keras")
        print(model.format.rawValue, model.graph.totalParameterCount, model.graph.trainableParameterCount)
        for node in model.graph.nodes {
            let shape = model.graph.values[node.outputs[0]]?.shape
            print(node.name, node.op.typeName, shape?.description ?? "?", node.parameters)
        }
        // End of the article's code.
        XCTAssertEqual(model.format, .kerasArchive)
        // Keras's own counts for this file (model.count_params(); `scion inspect` shows the same).
        XCTAssertEqual(model.graph.totalParameterCount, 24069)
        XCTAssertEqual(model.graph.trainableParameterCount, 23845)
        XCTAssertEqual(model.graph.nodes.map(\.name), ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "pool", "conv3", "bn3", "relu3",
                                                       "gap", "digits_0_4"])
        XCTAssertEqual(model.graph.values["gap"]?.shape, Shape([nil, 64]))
        XCTAssertEqual(model.graph.node(named: "bn1")?.parameters, ["bn1/gamma", "bn1/beta", "bn1/moving_mean", "bn1/moving_variance"])
    }

    // Mirrors Surgery.md and the README's From Swift section.
    func testCutGraftFreeze() throws {
        var model = try Model.load("digits_cnn.keras")
        try model.apply(CutPass(.after("gap")))
        try model.apply(GraftPass(head: try HeadSpec(parsing: "dropout:0.2,dense:5:softmax"), seed: 0))
        try model.apply(FreezePass(upTo: "gap"))
        for node in model.graph.nodes.suffix(3) {
            print(node.name, node.op.typeName, node.trainable)
        }
        print(model.graph.totalParameterCount, model.graph.trainableParameterCount)
        // End of the article's code.
        XCTAssertEqual(model.graph.outputs, ["dense"])
        XCTAssertEqual(model.graph.nodes.suffix(3).map(\.name), ["gap", "dropout", "dense"])
        XCTAssertNil(model.graph.node(named: "digits_0_4"))
        // The cut removed Dense(5) on 64 features (325 values) and the graft added one of the same size.
        XCTAssertEqual(model.graph.totalParameterCount, 24069)
        XCTAssertEqual(model.graph.trainableParameterCount, 325)
        XCTAssertEqual(model.graph.parameters["dense/kernel"]?.shape, [64, 5])
        XCTAssertEqual(model.graph.node(named: "conv1")?.trainable, false)
    }

    // Mirrors Converting.md.
    func testWriteONNXAndReadBack() throws {
        let model = try Model.load("digits_cnn.keras")
        try model.write(to: "digits_cnn.onnx")
        let onnx = try Model.load("digits_cnn.onnx")
        print(onnx.format.rawValue, onnx.graph.totalParameterCount, onnx.graph.inputs[0].shape?.description ?? "?")
        try model.write(to: "digits_cnn.h5", options: Model.WriteOptions(force: true))
        // End of the article's code.
        XCTAssertEqual(onnx.format, .onnx)
        XCTAssertEqual(onnx.graph.totalParameterCount, 24069)
        // Same interface as the Keras model: channels-last images in, one Transpose at the entry.
        XCTAssertEqual(onnx.graph.inputs[0].shape, Shape([nil, 8, 8, 1]))
        XCTAssertEqual(onnx.graph.nodes.first?.op.typeName, "Transpose")
        XCTAssertEqual(try Model.load("digits_cnn.h5").graph.totalParameterCount, 24069)
        // And the same numbers.
        let (images, _) = try TrainingData.load("pretrain.npz")
        let expected = try scores(model, images.rows(0..<16)), found = try scores(onnx, images.rows(0..<16))
        XCTAssertEqual(found.shape, expected.shape)
        XCTAssertLessThan(zip(found.data, expected.data).map { abs($0 - $1) }.max() ?? .infinity, 1e-5)
    }

    // Mirrors Running.md.
    func testRunTheExecutor() throws {
        let model = try Model.load("digits_cnn.keras")
        let (images, labels) = try TrainingData.load("pretrain.npz")
        let executor = try model.executor(taps: ["gap"])
        let results = try executor.run([executor.graph.inputs[0].name: images.rows(0..<4)])
        for (name, tensor) in results.sorted(by: { $0.key < $1.key }) {
            print(name, tensor.shape)
        }
        // End of the article's code.
        XCTAssertEqual(results["gap"]?.shape, [4, 64])
        let probabilities = try XCTUnwrap(results["digits_0_4"])
        XCTAssertEqual(probabilities.shape, [4, 5])
        // The pretrained classifier knows its own digits: each image's best class is its label (0, 1, 2, 3).
        let best = (0..<4).map { row in (0..<5).max { probabilities.data[row * 5 + $0] < probabilities.data[row * 5 + $1] } }
        XCTAssertEqual(best, labels.rows(0..<4).data.map { Int($0) })
    }

    // Mirrors FineTuningAHead.md.
    func testFineTuneAHead() throws {
        var model = try Model.load("digits_cnn.keras")
        try model.apply(GraftPass(head: try HeadSpec(parsing: "dense:5:softmax"), at: "gap", seed: 0))
        try model.apply(FreezePass(upTo: "gap"))
        let (x, y) = try TrainingData.load("fewshot.npz")

        var options = Trainer.Options()
        options.epochs = 5
        options.batchSize = 16
        options.learningRate = 0.01
        var tuning = FineTuning(model: model)
        try tuning.run(FineTuning.Phase(name: "head", options: options), data: (x, y), validation: nil)

        var slower = options
        slower.learningRate = FineTuning.tenth(of: options.learningRate)
        let thaw = FreezePass(unfreezeTop: 4, keepBatchNormFrozen: true)
        try tuning.run(FineTuning.Phase(name: "fine-tune", options: slower, unfreeze: thaw), data: (x, y), validation: nil)
        for record in tuning.history {
            print(record.phase, record.epoch, record.loss, record.accuracy ?? 0)
        }
        try tuning.model.write(to: "digits_5_9.keras")
        // End of the article's code.
        XCTAssertEqual(tuning.history.map(\.phase), Array(repeating: "head", count: 5) + Array(repeating: "fine-tune", count: 5))
        let head = tuning.history.prefix(5).map(\.loss)
        XCTAssertLessThan(try XCTUnwrap(head.last), try XCTUnwrap(head.first))
        // The head trained on the frozen base's cached outputs; the second phase thawed conv3 (relu3, bn3
        // and gap have no trainable weights, and bn3 stays frozen).
        XCTAssertEqual(tuning.plans.map(\.trainableValues), [325, 325 + 18496])
        XCTAssertEqual(tuning.plans.map(\.cached), [true, true])
        XCTAssertEqual(tuning.plans[1].unfrozen, ["conv3"])
        XCTAssertEqual(tuning.plans[1].batchNormKeptFrozen, ["bn3"])
        // What was not trained is byte for byte the pretrained model's, in the file written.
        let written = try Model.load("digits_5_9.keras")
        XCTAssertEqual(try written.graph.parameters["conv1/kernel"]?.storage.bytes(), try model.graph.parameters["conv1/kernel"]?.storage.bytes())
        XCTAssertNotEqual(try written.graph.parameters["conv3/kernel"]?.storage.bytes(), try model.graph.parameters["conv3/kernel"]?.storage.bytes())
    }

    /// The articles (and the README's From Swift section) show the code above as it is: every Swift
    /// block of an article is in this file.
    func testArticlesShowTheCodeTheseTestsRun() throws {
        let catalog = Self.root.appendingPathComponent("Sources/Scion/Scion.docc")
        let tests = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        let articles = ["LoadingAndInspecting", "Surgery", "Converting", "Running", "FineTuningAHead"]
        for article in articles + ["README"] {
            let file = article == "README" ? Self.root.appendingPathComponent("README.md") : catalog.appendingPathComponent(article + ".md")
            var text = try String(contentsOf: file, encoding: .utf8)
            if article == "README" { text = text.components(separatedBy: "## From Swift").last?.replacingOccurrences(of: "import Scion\n\n", with: "") ?? "" }
            let blocks = text.components(separatedBy: "```swift\n").dropFirst().compactMap { $0.components(separatedBy: "```").first }
            XCTAssertFalse(blocks.isEmpty, "\(article).md has no Swift code")
            for block in blocks {
                let indented = block.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0.isEmpty ? "" : "        " + $0 }.joined(separator: "\n")
                XCTAssertTrue(tests.contains(indented), "\(article).md shows code that LibraryFrontDoorTests does not run:\n\(block)")
            }
        }
    }

    /// The first output of `model` on `x`.
    func scores(_ model: Model, _ x: RuntimeTensor) throws -> RuntimeTensor {
        let executor = try model.executor()
        return try XCTUnwrap(executor.run([executor.graph.inputs[0].name: x])[executor.graph.outputs[0]])
    }
}
