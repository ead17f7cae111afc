import Foundation
import Scion
@testable import ScionCommand
import ScionPasses
import ScionRuntime
import XCTest

/// `scion finetune --augment`: Keras's augmentation layers in front of the training graph only. The
/// transforms themselves are compared with Keras's in ScionRuntimeTests' AugmentationKerasTests.
final class FinetuneAugmentTests: XCTestCase {
    let folder = Repository.fixture("images/digits")
    let model = Repository.fixture("digits/digits_cnn.h5")

    func history(_ result: CommandResult) throws -> [[String: Any]] {
        let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any]
        return try XCTUnwrap(object?["history"] as? [[String: Any]], result.standardOutput)
    }

    func losses(_ history: [[String: Any]], _ key: String = "loss") -> [Double] { history.compactMap { $0[key] as? Double } }

    /// Trains (the loss falls), repeats itself for a seed, differs for another seed and from training
    /// without augmentation; the validation numbers are the trained model's on the images as they are
    /// (`scion evaluate` of the written file gives the last val_loss), and the file holds no
    /// augmentation layer.
    func testAugmentedTrainingOnAnImageFolder() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.keras").path
        func run(_ extra: [String]) throws -> [[String: Any]] {
            let result = try runScion(["finetune", model, "--data", folder, "--validation", folder, "--epochs", "4", "--batch-size", "8",
                                       "--learning-rate", "0.003", "-o", output, "--force", "--json"] + extra)
            XCTAssertEqual(result.status, 0, result.standardError)
            return try history(result)
        }
        let first = try run(["--augment", "flip,rotate:0.1", "--seed", "1"])
        let trainingLoss = losses(first)
        XCTAssertEqual(trainingLoss.count, 4)
        XCTAssertLessThan(trainingLoss[3], trainingLoss[0], "the loss did not fall: \(trainingLoss)")
        let validationLoss = try XCTUnwrap(losses(first, "val_loss").last)
        let evaluated = try runScion(["evaluate", output, "--data", folder, "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.standardError)
        let report = try JSONSerialization.jsonObject(with: Data(evaluated.standardOutput.utf8)) as? [String: Any]
        let plainLoss = try XCTUnwrap(report?["loss"] as? Double)
        XCTAssertEqual(validationLoss, plainLoss, accuracy: 1e-4 * abs(plainLoss), "validation did not see the images as they are")
        let written = try Model.load(output), given = try Model.load(model)
        XCTAssertEqual(written.graph.nodes.map(\.name), given.graph.nodes.map(\.name), "the written model holds the training augmentation")

        XCTAssertEqual(losses(try run(["--augment", "flip,rotate:0.1", "--seed", "1"])), trainingLoss, "not reproducible for a seed")
        XCTAssertNotEqual(losses(try run(["--augment", "flip,rotate:0.1", "--seed", "2"])), trainingLoss)
        XCTAssertNotEqual(losses(try run(["--seed", "1"])), trainingLoss, "--augment changed nothing")
    }

    /// Augmentation before a frozen base: one note on stderr (the base runs every batch); without
    /// augmentation the frozen prefix is cached and nothing is said. The model's own layers are named.
    func testSaysWhatAugmentsAndWhenFrozenFeaturesCannotBeCached() throws {
        let directory = try temporaryDirectory(self)
        let frozen = directory.appendingPathComponent("frozen.keras").path
        XCTAssertEqual(try runScion(["freeze", model, "--layers", "conv1|bn1", "-o", frozen]).status, 0)
        let output = directory.appendingPathComponent("out.keras").path
        let arguments = ["finetune", frozen, "--data", folder, "--epochs", "1", "-o", output, "--force"]
        let augmented = try runScion(arguments + ["--augment", "flip:horizontal,crop"])
        XCTAssertEqual(augmented.status, 0, augmented.standardError)
        XCTAssertEqual(augmented.standardError, "note: augmentation (augment_flip, augment_crop) transforms the images before frozen layers "
            + "(conv1, bn1): their outputs change every epoch, so they run for every batch instead of being cached once per image\n")
        XCTAssertTrue(augmented.standardOutput.contains("Augmenting the training images"), augmented.standardOutput)
        XCTAssertTrue(augmented.standardOutput.contains("nothing frozen before them"), augmented.standardOutput)
        let plain = try runScion(arguments)
        XCTAssertEqual(plain.status, 0, plain.standardError)
        XCTAssertEqual(plain.standardError, "")
        XCTAssertTrue(plain.standardOutput.contains("features cached"), plain.standardOutput)

        // Keras's transfer-learning guide model holds its own augmentation layers before a frozen base.
        let two = directory.appendingPathComponent("two")
        for name in ["one", "three"] {
            try FileManager.default.copyItem(atPath: folder + "/" + name, toPath: two.appendingPathComponent(name).path)
        }
        let guide = try runScion(["finetune", Repository.fixture("keras3/transfer_guide.keras"), "--data", two.path, "--epochs", "1",
                                  "--loss", "binary_crossentropy", "-o", output, "--force"])
        XCTAssertEqual(guide.status, 0, guide.standardError)
        XCTAssertTrue(guide.standardOutput.contains("the model's own augmentation/random_flip (RandomFlip)"), guide.standardOutput)
        XCTAssertTrue(guide.standardError.hasPrefix("note: augmentation (augmentation/random_flip, "), guide.standardError)
    }

    func testAugmentMistakesAreUsageErrorsNamingTheFlag() throws {
        let cases: [([String], String)] = [
            (["--augment", "flip,spin:0.1"], "--augment 'spin:0.1': unknown transform 'spin'"),
            (["--augment", "rotate:2"], "--augment 'rotate:2': the factor must be a number above 0 and at most 1"),
            (["--augment", "zoom"], "--augment 'zoom': zoom needs a factor, e.g. zoom:0.1"),
            (["--augment", "crop:1"], "--augment 'crop:1': the factor must be a number above 1 and at most 2"),
            (["--augment", "flip:diagonal"], "--augment 'flip:diagonal': flip's mode is horizontal, vertical or horizontal_and_vertical"),
            (["--augment", "zoom:0.1,zoom:0.2"], "'zoom' is given twice"),
            (["--augment", "flip,,rotate:0.1"], "--augment '': an empty entry"),
            (["--augment-into-model"], "--augment-into-model writes --augment's layers: give --augment too"),
            (["--augment", "flip,crop", "--augment-into-model"], "--augment-into-model: crop is Scion's training-only resize and crop"),
            (["--augment", "noise:2"], "--augment 'noise:2': the factor must be a number above 0 and at most 1"),
        ]
        for (arguments, message) in cases {
            XCTAssertThrowsError(try AugmentOptions.parse(arguments), "\(arguments)") { error in
                let text = AugmentOptions.message(for: error)
                XCTAssertTrue(text.contains(message), "\(arguments): \(text)")
            }
        }
        // Through the command: exit 2, one line, nothing written.
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.keras").path
        for (extra, message) in [(["--augment", "rotate:2"], "--augment 'rotate:2': the factor must be"),
                                 (["--augment", "flip", "--no-augment"], "--augment and --no-augment: give one"),
                                 (["--augment", "flip,brightness:0.2", "--preprocess", "tf"],
                                  "--augment brightness works on pixel values 0 to 255, and --preprocess tf changes them")] {
            let result = try runScion(["finetune", model, "--data", folder, "--epochs", "1", "-o", output] + extra)
            XCTAssertEqual(result.status, 2, "\(extra): \(result.standardError)")
            XCTAssertTrue(result.standardError.hasPrefix("error: " + message), "\(extra): \(result.standardError)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output))
        }
    }

    /// --augment-into-model: the layers stay in the written model as the model's own (Keras 3 loading
    /// them: Tests/Interop/finetune_augmentation.py), named as their nodes.
    func testAugmentIntoModelKeepsTheLayers() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.keras").path
        let result = try runScion(["finetune", model, "--data", folder, "--epochs", "1", "--augment", "flip,rotate:0.1",
                                   "--augment-into-model", "-o", output])
        XCTAssertEqual(result.status, 0, result.standardError)
        let written = try Model.load(output)
        XCTAssertEqual(Array(written.graph.nodes.prefix(2).map(\.layer)), ["augment_flip", "augment_rotate"])
        XCTAssertEqual(TrainingAugmentation.modelsOwnAugmentation(written.graph), ["augment_flip (RandomFlip)", "augment_rotate (RandomRotation)"])
    }

    /// A PyTorch export takes NCHW: the added layers read its channel axis there, and come out again.
    func testTheAddedLayersFollowTheInputLayoutAndAreRemoved() throws {
        let torch = try Model.load(Repository.fixture("torch/tiny_resnet.onnx"))
        let steps = try AugmentOptions.parse(["--augment", "flip,rotate:0.1,crop"]).steps()
        var graph = torch.graph
        try TrainingAugmentation(steps: steps).run(&graph)
        let added = graph.nodes.prefix(3)
        XCTAssertEqual(added.map(\.name), ["augment_flip", "augment_rotate", "augment_crop"])
        for node in added {
            guard case .augmentation(let a) = node.op else { return XCTFail("\(node.name) is \(node.op)") }
            XCTAssertEqual(a.layout, .channelsFirst, node.name)
        }
        XCTAssertEqual(added.first?.inputs, [torch.graph.inputs[0].name])
        XCTAssertFalse(graph.nodes.dropFirst(3).contains { $0.inputs.contains(torch.graph.inputs[0].name) })
        let removed = TrainingAugmentation.removed(from: graph)
        XCTAssertEqual(removed.nodes, torch.graph.nodes)
        XCTAssertEqual(removed.outputs, torch.graph.outputs)
    }
}
