import Foundation
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
