import Foundation
@testable import ScionCommand
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
