import Foundation
import Scion
@testable import ScionCommand
import ScionImages
import ScionRuntime
import XCTest

/// `scion finetune --data DIR`: a folder of images (fixtures/images/digits, Keras's layout) read with
/// ScionImages; the arrays themselves are compared with Keras's in ScionImagesTests.
final class FinetuneImageFolderTests: XCTestCase {
    let folder = Repository.fixture("images/digits")

    func testTrainsOnAnImageFolderSplitAsKeras() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("trained.keras").path
        // The digits CNN takes 8 x 8 x 1: every image is decoded to gray and resized to 8 x 8.
        let result = try runScion(["finetune", Repository.fixture("digits/digits_cnn.h5"), "--data", folder, "--validation-split", "0.25",
                                   "--resize", "area", "--epochs", "2", "--seed", "1337", "-o", output])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output))
        XCTAssertTrue(result.standardOutput.contains("val_accuracy"), result.standardOutput)
        // A second folder with the same classes as validation data.
        let separate = try runScion(["finetune", Repository.fixture("digits/digits_cnn.h5"), "--data", folder, "--validation", folder,
                                     "--epochs", "1", "-o", output, "--force"])
        XCTAssertEqual(separate.status, 0, separate.standardError)
        XCTAssertTrue(separate.standardOutput.contains("val_accuracy"), separate.standardOutput)
    }

    /// A Keras model converted to ONNX keeps its NHWC input; a PyTorch export takes NCHW: the images
    /// arrive in each model's own layout, the same pixels.
    func testImagesArriveInTheModelsInputLayout() throws {
        let directory = try temporaryDirectory(self)
        let options = try ImageFolderOptions.parse(["--resize", "nearest"])
        let keras = try Model.load(Repository.fixture("digits/digits_cnn.h5"))
        let nhwc = try options.load(data: folder, validation: nil, validationSplit: nil, seed: 0, model: keras, names: nil).training.x
        XCTAssertEqual(nhwc.shape, [42, 8, 8, 1])
        let converted = directory.appendingPathComponent("digits.onnx").path
        XCTAssertEqual(try runScion(["convert", Repository.fixture("digits/digits_cnn.h5"), converted]).status, 0)
        XCTAssertEqual(try options.load(data: folder, validation: nil, validationSplit: nil, seed: 0, model: try Model.load(converted), names: nil).training.x, nhwc)

        let torch = try Model.load(Repository.fixture("torch/tiny_resnet.onnx"))
        let nchw = try options.load(data: folder, validation: nil, validationSplit: nil, seed: 0, model: torch, names: nil).training.x
        XCTAssertEqual(nchw.shape, [42, 3, 16, 16])
        // The same images channels-last, each channel gathered into its plane, are the NCHW batch.
        let geometry = ImageFolderOptions.InputGeometry(height: 16, width: 16, channels: 3, channelsFirst: false)
        let samples = try ImageFolderIndex(folder: folder).samples
        let lastBatch = try ImageBatches(samples: samples, batchSize: samples.count, pipeline: options.pipeline(for: geometry)).batch(0)
        var gathered = [Float](repeating: .nan, count: lastBatch.pixels.count)
        for (index, value) in lastBatch.pixels.enumerated() {
            let (image, pixel, channel) = (index / 768, index % 768 / 3, index % 3)
            gathered[image * 768 + channel * 256 + pixel] = value
        }
        XCTAssertEqual(nchw.data, gathered)
    }

    func testABadImageEndsTheRunOrIsSkippedWithAWarning() throws {
        let directory = try temporaryDirectory(self)
        let data = directory.appendingPathComponent("data")
        for name in ["a", "b"] {
            try FileManager.default.createDirectory(at: data.appendingPathComponent(name), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: folder + "/one/one_00.png", toPath: data.appendingPathComponent("\(name)/good.png").path)
        }
        let broken = data.appendingPathComponent("b/broken.jpg").path
        try FileManager.default.copyItem(atPath: Repository.root.appendingPathComponent("Tests/Hostile/image_truncated.jpg").path, toPath: broken)
        let output = directory.appendingPathComponent("out.keras").path
        let arguments = ["finetune", Repository.fixture("digits/digits_cnn.h5"), "--data", data.path, "--epochs", "1", "-o", output]

        let failing = try runScion(arguments)
        XCTAssertEqual(failing.status, 1)
        XCTAssertEqual(failing.standardError, "error: \(broken): is truncated (the image data ends early) (--on-bad-image skip leaves such files out)\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))

        let skipping = try runScion(arguments + ["--on-bad-image", "skip"])
        XCTAssertEqual(skipping.status, 0, skipping.standardError)
        XCTAssertEqual(skipping.standardError, "warning: \(broken): is truncated (the image data ends early) (skipped)\n")
    }

    func testImageFolderOptionMistakes() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.keras").path
        let model = Repository.fixture("digits/digits_cnn.h5")
        let cases: [([String], String)] = [
            (["--class-names", "one,eight"], "\(folder): has no class folder named 'eight' (its class folders: one, seven, three)"),
            (["--validation", Repository.digits("test.npz")], "with an image folder as --data, validation data must be a folder too"),
            (["--x", "images"], "--x applies to array files, not to the image folder"),
        ]
        for (extra, expected) in cases {
            let result = try runScion(["finetune", model, "--data", folder, "-o", output] + extra)
            XCTAssertNotEqual(result.status, 0, "\(extra)")
            XCTAssertTrue(result.standardError.contains(expected), "\(extra): \(result.standardError)")
        }
    }
}
