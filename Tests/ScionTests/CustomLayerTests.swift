import Foundation
@testable import Scion
import ScionIR
import XCTest

/// Layers Scion cannot interpret (a user's registered class, Lambda) are kept as read: the same model
/// in every file diffs empty, a changed weight or setting of one is reported, the class's registered
/// name survives a round trip, and shapes Keras 3 recorded after them are kept.
final class CustomLayerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")
    func fixture(_ path: String) -> String { Self.fixtures.appendingPathComponent(path).path }

    func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scion-custom-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testTheUsersClassKeepsItsRegisteredNameAndShapes() throws {
        for source in ["keras3/custom_layer.keras", "keras3/custom_layer.h5", "keras2/custom_layer.h5"] {
            let model = try Model.load(fixture(source))
            let node = try XCTUnwrap(model.graph.node(named: "head_scale"))
            guard case .opaque(let a) = node.op else { return XCTFail("\(source): head_scale is \(node.op)") }
            XCTAssertEqual(a.type, "ScaleBy", source)
            XCTAssertEqual(a.registration?.registeredName, "scion_fixtures>ScaleBy", source)
            XCTAssertEqual(node.parameters.count, 1, source)
            // Keras 3 records the shapes of the tensors each call reads; a Keras 2 config does not.
            let shape = model.graph.values["head_scale"]?.shape
            XCTAssertEqual(shape, source.hasPrefix("keras3") ? Shape([nil, 5]) : nil, source)
        }
        let lambda = try Model.load(fixture("keras3/lambda_layer.keras"))
        guard case .opaque(let difference) = try XCTUnwrap(lambda.graph.node(named: "difference")).op else {
            return XCTFail("difference is not kept as read")
        }
        XCTAssertTrue(difference.takesList, "Lambda(...)([a, b]) reads one list")
        XCTAssertNil(difference.registration, "Lambda is Keras's own class")
    }

    func testTheSameModelInEveryFileIsTheSameAndAChangeIsReported() throws {
        let directory = try scratch()
        for source in ["keras3/custom_layer.keras", "keras3/custom_layer.h5", "keras2/custom_layer.h5", "keras3/lambda_layer.keras"] {
            let model = try Model.load(fixture(source))
            for format in ["keras", "h5"] {
                let written = directory.appendingPathComponent("\(UUID().uuidString).\(format)").path
                try model.write(to: written)
                let diff = try ModelDiff(model, try Model.load(written))
                XCTAssertTrue(diff.isEmpty, "\(source) -> \(format): \(diff.text())")
            }
        }
        // The weights of a user's layer pair by position (`.keras` numbers them, `.h5` names them):
        // a changed one is a change, not a weight removed and another added.
        let original = try Model.load(fixture("keras3/custom_layer.h5"))
        var changed = original
        let name = try perturb(&changed, layer: "head_scale", by: 0.5)
        let written = directory.appendingPathComponent("changed.keras").path
        try changed.write(to: written)
        let diff = try ModelDiff(original, try Model.load(written))
        XCTAssertFalse(diff.isEmpty)
        XCTAssertEqual(diff.weightsChanged.map(\.name), [name])
        XCTAssertEqual(diff.weightsRemoved + diff.weightsAdded, [])
        // A changed setting of the class is one line.
        var refactored = original
        let index = try XCTUnwrap(refactored.graph.nodes.firstIndex { $0.name == "head_scale" })
        guard case .opaque(var a) = refactored.graph.nodes[index].op else { return XCTFail("head_scale") }
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(a.configuration.utf8)) as? [String: Any])
        XCTAssertEqual(config["factor"] as? Double, 3)
        config["factor"] = 4.5
        a.configuration = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        refactored.graph.nodes[index].op = .opaque(a)
        let settings = try ModelDiff(original, refactored)
        XCTAssertEqual(settings.changed.map { "\($0.layer): \($0.field) \($0.before) -> \($0.after)" }, ["head_scale: factor 3 -> 4.5"])
    }
}
