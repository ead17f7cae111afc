import Foundation
import Scion
@testable import ScionCommand
import ScionImages
import ScionRuntime
import XCTest

/// Image folders stream into `finetune`: batches decoded as training reads them, the frozen prefix's
/// outputs (or the pixels, under a budget) kept, else every epoch decodes its shuffled rows again.
/// Whichever path, the numbers are the same; `--test DIR` scores the trained model as `evaluate` does.
final class StreamedImagesTests: XCTestCase {
    let folder = Repository.fixture("images/digits")
    let model = Repository.fixture("digits/digits_cnn.h5")

    private func history(_ json: String) throws -> (cached: Bool, history: [[String: Double]], test: [String: Any]?) {
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let phases = try XCTUnwrap(object["phases"] as? [[String: Any]])
        let records = try XCTUnwrap(object["history"] as? [[String: Any]])
        let numbers = records.map { record in
            record.compactMapValues { $0 as? Double }.filter { $0.key != "seconds" }
        }
        return (try XCTUnwrap(phases.first?["cached"] as? Bool), numbers, object["test"] as? [String: Any])
    }

    /// The digits folder decodes to 42 x 8 x 8 x 1 float32 (10,752 bytes); a 1,000-byte budget for
    /// kept pixels makes every training step decode its rows again. The epochs' losses and accuracies
    /// (shuffled order, validation split as Keras) equal those of the run that kept the pixels.
    func testPixelsOverTheBudgetAreDecodedAgainWithTheSameResults() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("trained.keras").path
        let arguments = ["finetune", model, "--data", folder, "--validation-split", "0.25", "--resize", "area", "--epochs", "3",
                         "--seed", "1337", "--batch-size", "8", "-o", output, "--force", "--json"]
        let kept = try runScion(arguments)
        XCTAssertEqual(kept.status, 0, kept.standardError)
        let streamed = try runScion(arguments, environment: ["SCION_INPUT_CACHE_BYTES": "1000"])
        XCTAssertEqual(streamed.status, 0, streamed.standardError)
        let (keptCached, keptHistory, _) = try history(kept.standardOutput)
        let (streamedCached, streamedHistory, _) = try history(streamed.standardOutput)
        XCTAssertTrue(keptCached)
        XCTAssertFalse(streamedCached)
        XCTAssertEqual(keptHistory.count, 3)
        XCTAssertEqual(keptHistory, streamedHistory)
    }

    /// Each image preprocessed by the task that decoded it gives the bits one pass over the batch
    /// gives, channels-last (a Keras model) and channels-first (a PyTorch export); a mode the images
    /// cannot take stays on the batch, which refuses it.
    func testImagesPreprocessedAsTheyAreDecodedEqualTheBatchPass() throws {
        let options = try ImageFolderOptions.parse([])
        let samples = try ImageFolderIndex(folder: folder).samples
        for (path, modes) in [(model, [InputPreprocessing.tf]), (Repository.fixture("torch/tiny_resnet.onnx"), [.tf, .caffe, .torch])] {
            let loaded = try Model.load(path)
            let input = try options.inputGeometry(loaded, file: folder)
            let raw = try options.load(data: folder, validation: nil, validationSplit: nil, seed: 0, model: loaded, names: nil).training.x
            for mode in modes {
                let stream = StreamedImages(folder: folder, samples: samples, options: options, input: input, mode: mode, model: loaded)
                XCTAssertEqual(stream.batchMode, InputPreprocessing.none, "\(path) \(mode)")
                var streamed: [Float] = []
                try stream.forEachBatch(size: 16) { streamed += $0.data }
                let expected = try PreprocessOptions.apply(mode, to: raw, model: loaded, file: folder)
                XCTAssertEqual(streamed.map(\.bitPattern), expected.data.map(\.bitPattern), "\(path) \(mode)")
            }
        }
        let digits = try Model.load(model)
        let gray = StreamedImages(folder: folder, samples: samples, options: options, input: try options.inputGeometry(digits, file: folder),
                                  mode: .caffe, model: digits)
        XCTAssertEqual(gray.batchMode, .caffe)
        XCTAssertThrowsError(try gray.forEachBatch(size: 16) { _ in }) { XCTAssertTrue("\($0)".contains("needs 3 colour channels"), "\($0)") }
    }

    /// `finetune --test DIR` prints and stores what `scion evaluate` gives for the written model.
    func testFinetuneTestFolderMatchesEvaluate() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("trained.keras").path
        let run = try runScion(["finetune", model, "--data", folder, "--resize", "area", "--epochs", "1", "--test", folder,
                                "-o", output, "--json"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let test = try XCTUnwrap(try history(run.standardOutput).test)
        let evaluate = try runScion(["evaluate", output, "--data", folder, "--resize", "area", "--json"])
        XCTAssertEqual(evaluate.status, 0, evaluate.standardError)
        let evaluated = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluate.standardOutput.utf8)) as? [String: Any])
        XCTAssertEqual(test["samples"] as? Int, 42)
        for key in ["accuracy", "loss", "top5Accuracy"] {
            XCTAssertEqual(test[key] as? Double, evaluated[key] as? Double, key)
        }
        XCTAssertEqual(test["confusionMatrix"] as? [[Int]], evaluated["confusionMatrix"] as? [[Int]])
        let text = try runScion(["finetune", model, "--data", folder, "--resize", "area", "--epochs", "1", "--test", folder,
                                 "-o", output, "--force"])
        XCTAssertEqual(text.status, 0, text.standardError)
        XCTAssertTrue(text.standardOutput.contains("Test on \(folder):"), text.standardOutput)
    }
}
