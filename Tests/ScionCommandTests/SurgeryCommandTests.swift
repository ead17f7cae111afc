import Foundation
import XCTest

/// `scion cut | graft | freeze | edit | diff`, end to end. Keras and onnxruntime check the numbers in
/// Tests/Interop/check_surgery.py.
final class SurgeryCommandTests: XCTestCase {
    /// The JSON a command prints; `diff` exits 3 when the models differ, as they do after surgery.
    func json(_ arguments: [String]) throws -> [String: Any] {
        let result = try runScion(arguments)
        XCTAssertEqual(result.status, arguments.first == "diff" ? 3 : 0, result.standardError)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
    }

    func names(_ object: [String: Any], _ key: String) -> [String] {
        (object[key] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }

    /// The recipe in one step, then `diff` against the base: the classifier removed, the head added,
    /// every kept weight unchanged, the base frozen.
    func testEditThenDiffNamesTheSurgery() throws {
        let directory = try temporaryDirectory(self)
        let base = Repository.fixture("keras2/mobilenet_v2.h5")
        for suffix in ["keras", "h5", "onnx"] {
            let child = directory.appendingPathComponent("child.\(suffix)").path
            let result = try runScion(["edit", base, "--drop-top", "--head", "gap,dropout:0.2,dense:4:softmax", "--freeze-base",
                                       "--seed", "3", "-o", child])
            XCTAssertEqual(result.status, 0, result.standardError)
            let summary = try json(["inspect", "--json", child])
            XCTAssertEqual(summary["trainableParams"] as? Int, 1280 * 4 + 4, suffix)
            let diff = try json(["diff", base, child, "--json"])
            XCTAssertTrue(names(diff, "removed").contains("predictions"), "\(suffix): \(names(diff, "removed"))")
            XCTAssertTrue(names(diff, "added").contains("dense"), "\(suffix): \(names(diff, "added"))")
            XCTAssertEqual(names(diff, "weightsChanged"), [], suffix)
            XCTAssertEqual(diff["weightsUnchanged"] as? Int, diff["weightsCompared"] as? Int)
            XCTAssertGreaterThan(diff["weightsCompared"] as? Int ?? 0, 200)
            XCTAssertTrue(names(diff, "trainabilityChanged").contains("Conv1"), suffix)
        }
    }

    func testCutGraftAndFreezeStepByStepMatchEdit() throws {
        let directory = try temporaryDirectory(self)
        let base = Repository.fixture("keras3/mobilenet_v2.keras")
        let cut = directory.appendingPathComponent("cut.keras").path
        let grafted = directory.appendingPathComponent("grafted.keras").path
        let frozen = directory.appendingPathComponent("frozen.onnx").path
        XCTAssertEqual(try runScion(["cut", base, "--after", "out_relu", "-o", cut]).status, 0)
        XCTAssertEqual(try runScion(["graft", cut, "--head", "gap,bn,dense:2", "--seed", "1", "-o", grafted]).status, 0)
        let result = try runScion(["freeze", grafted, "--up-to", "out_relu", "--unfreeze", "^block_16", "-o", frozen])
        XCTAssertEqual(result.status, 0, result.standardError)
        let summary = try json(["inspect", "--json", frozen])
        // Trainable: block_16's weights (BN statistics excluded), the head's BN gamma/beta and Dense.
        let diff = try json(["diff", grafted, frozen, "--json"])
        XCTAssertTrue(names(diff, "trainabilityChanged").contains("Conv1"))
        XCTAssertFalse(names(diff, "trainabilityChanged").contains("block_16_project"), "unfrozen again")
        XCTAssertLessThan(summary["trainableParams"] as? Int ?? 0, summary["totalParams"] as? Int ?? 0)
    }

    /// Mistakes: exit 1, one line that says what is wrong and what would be right, nothing written.
    func testMistakesAreOneLineAndWriteNothing() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.keras").path
        let model = Repository.fixture("keras2/mobilenet_v2.h5")
        let cases: [([String], String, Bool)] = [
            (["cut", model, "--after", "blok_16_project", "-o", output], "closest: block_16_project", false),
            (["graft", model, "--head", "gap,dens:5", "-o", output], "did you mean 'dense'?", true),
            (["graft", model, "--head", "gap", "-o", output], "global pooling needs a spatial input", false),
            (["freeze", model, "--layers", "(", "-o", output], "not a valid regular expression", false),
            (["freeze", model, "-o", output], "give --all, --up-to LAYER", false),
            (["cut", Repository.fixture("keras2/multi_io.h5"), "--drop-top", "-o", output], "outputs", false),
            (["edit", model, "-o", output], "nothing to do", true),
        ]
        for (arguments, expected, usage) in cases {
            try assertOneLineFailure(arguments, mentions: expected, usage: usage)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    /// Surgery on ONNX input: a torch export cut at a node name, a head grafted channels-first, written
    /// back to ONNX.
    func testSurgeryOnATorchExport() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("resnet_head.onnx").path
        let result = try runScion(["edit", Repository.fixture("torch/tiny_resnet.onnx"), "--after", "/pool/GlobalAveragePool",
                                   "--head", "flatten,dense:3:softmax", "--freeze-base", "-o", output])
        XCTAssertEqual(result.status, 0, result.standardError)
        let summary = try json(["inspect", "--json", output])
        XCTAssertEqual(summary["trainableParams"] as? Int, 16 * 3 + 3)
    }
}
