import Foundation
@testable import Scion
import XCTest

/// `diff` on layers with sublayers (LSTM, GRU, Bidirectional, typed since issue 15; MultiHeadAttention,
/// kept opaque): the same model in .h5 and .keras, or converted from Keras 2, is the same; a changed
/// opaque setting is one line.
final class OpaqueConfigDiffTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")
    func fixture(_ path: String) -> String { Self.fixtures.appendingPathComponent(path).path }

    func testTheSameRecurrentAndAttentionModelsInEveryFileAreTheSame() throws {
        for (a, b) in [("keras3/attention.h5", "keras3/attention.keras"), ("keras3/text_rnn.h5", "keras3/text_rnn.keras")] {
            let diff = try ModelDiff(try Model.load(fixture(a)), try Model.load(fixture(b)))
            XCTAssertTrue(diff.isEmpty, "\(a) vs \(b): \(diff.text())")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-opaque-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for source in ["keras2/text_rnn.h5", "keras2/attention.h5"] {
            let model = try Model.load(fixture(source))
            let written = directory.appendingPathComponent(UUID().uuidString + ".keras").path
            try model.write(to: written)
            let diff = try ModelDiff(model, try Model.load(written))
            XCTAssertTrue(diff.isEmpty, "\(source) converted to .keras: \(diff.text())")
        }
    }

    func testAChangedSettingIsOneLineAndSpellingsAreNot() {
        let before = #"{"units": 8, "dropout": 0.0, "shared_object_id": 5, "build_config": {"input_shape": [null, 7]},"#
            + #" "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},"#
            + #" "layer": {"class_name": "LSTM", "config": {"units": 4, "trainable": true}}}"#
        let after = #"{"units": 16, "dropout": 0, "dtype": "float32", "layer": {"class_name": "LSTM", "config": {"units": 4, "trainable": false}}}"#
        let a = OpaqueConfigFields.fields(before), b = OpaqueConfigFields.fields(after)
        let changed = a.compactMap { field in b.first { $0.name == field.name }.flatMap { $0 == field ? nil : "\(field.name) \(field.text) -> \($0.text)" } }
        XCTAssertEqual(changed, ["units 8 -> 16"])
        XCTAssertEqual(Set(a.map(\.name)), ["dropout", "dtype", "layer.class_name", "layer.config.units", "units"])
    }
}
