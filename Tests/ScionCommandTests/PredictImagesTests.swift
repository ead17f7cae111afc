import Foundation
import Scion
@testable import ScionCommand
import ScionRuntime
import XCTest

/// `scion predict` and `scion evaluate` on images (fixtures/images/digits, Keras's layout): the
/// samples are the pixels `finetune --data DIR` trains on (compared with Keras's own arrays in
/// ScionImagesTests), named by path, labelled by class folder.
final class PredictImagesTests: XCTestCase {
    let folder = Repository.fixture("images/digits")

    func testPredictOnAFolderGivesTheModelsOutputForEveryImage() throws {
        let model = Repository.fixture("digits/digits_cnn.h5")
        let result = try runScion(["predict", model, folder, "--top", "1", "--json"])
        XCTAssertEqual(result.status, 0, result.standardError)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [[String: Any]])
        // The same pixels as finetune's loader, through the executor.
        let loaded = try Model.load(model)
        let x = try ImageFolderOptions.parse([]).load(data: folder, validation: nil, validationSplit: nil, seed: 0, model: loaded, names: nil).training.x
        let probabilities = try XCTUnwrap(try loaded.executor().run([loaded.graph.inputs[0].name: x]).values.first)
        let classes = probabilities.shape[1]
        XCTAssertEqual(rows.count, x.shape[0])
        XCTAssertEqual(rows.first?["file"] as? String, folder + "/one/one_00.png")
        for (sample, row) in rows.enumerated() {
            let scores = Array(probabilities.data[(sample * classes)..<((sample + 1) * classes)])
            let best = try XCTUnwrap((row["predictions"] as? [[String: Any]])?.first)
            let index = try XCTUnwrap(best["index"] as? Int)
            XCTAssertEqual(Float(try XCTUnwrap(best["probability"] as? Double)), scores.max() ?? -1, accuracy: 1e-5)
            XCTAssertEqual(scores[index], scores.max())
        }
        // One image file is one sample.
        let single = try runScion(["predict", model, folder + "/seven/seven_03.png", "--top", "1", "--json"])
        XCTAssertEqual(single.status, 0, single.standardError)
        XCTAssertTrue(single.standardOutput.contains("seven_03.png"), single.standardOutput)
    }

    func testEvaluateOnClassFoldersLabelsByFolderAndNamesTheClasses() throws {
        let directory = try temporaryDirectory(self)
        let three = directory.appendingPathComponent("three.keras").path
        XCTAssertEqual(try runScion(["edit", Repository.fixture("digits/digits_cnn.h5"), "--drop-top", "--head", "gap,dense:3:softmax",
                                     "-o", three]).status, 0)
        let result = try runScion(["evaluate", three, "--data", folder, "--json"])
        XCTAssertEqual(result.status, 0, result.standardError)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        XCTAssertEqual(object["samples"] as? Int, 42)
        XCTAssertEqual(object["classes"] as? [String], ["one", "seven", "three"])
        let matrix = try XCTUnwrap(object["confusionMatrix"] as? [[Int]])
        XCTAssertEqual(matrix.map { $0.reduce(0, +) }, [14, 14, 14], "each class folder's images are its row")
        // A folder without class folders has no labels to score.
        let flat = try runScion(["evaluate", three, "--data", folder + "/seven/nested"])
        XCTAssertEqual(flat.status, 1)
        XCTAssertTrue(flat.standardError.contains("class folders"), flat.standardError)
    }
}
