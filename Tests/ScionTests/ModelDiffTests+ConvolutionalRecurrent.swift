import Foundation
import Scion
import ScionIR
import XCTest

extension ModelDiffTests {
    /// A ConvLSTM's settings are its Keras fields: a changed padding is one line in Keras's words,
    /// and the same model written to .keras diffs empty.
    func testConvolutionalLSTMSettingsAreKerasFields() throws {
        let directory = try temporaryDirectory()
        let original = try Model.load(fixture("keras3/conv_lstm.keras"))
        var changed = original
        try edit(&changed, "convlstm_last") { op in
            guard case .recurrent(var a) = op else { return op }
            a.convolution?.padding = .same
            return .recurrent(a)
        }
        let keras = directory.appendingPathComponent("same.keras").path
        try original.write(to: keras)
        XCTAssertTrue(try ModelDiff(original, try Model.load(keras)).isEmpty)
        let fields = try ModelDiff(original, changed).changed.map { "\($0.layer): \($0.field) \($0.before) -> \($0.after)" }
        XCTAssertEqual(fields, ["convlstm_last: padding valid -> same"])
    }

    /// ONNX has no ConvLSTM: Scion unrolls it over a fixed time length, and refuses an unknown one
    /// in one line naming the layer, writing nothing.
    func testConvolutionalLSTMOverAnUnknownTimeLengthIsRefusedForONNX() throws {
        let directory = try temporaryDirectory()
        var model = try Model.load(fixture("keras3/conv_lstm.keras"))
        let shape = try XCTUnwrap(model.graph.inputs[0].shape)
        model.graph.inputs[0].shape = Shape([shape[0], nil] + (2..<shape.rank).map { shape[$0] })
        let onnx = directory.appendingPathComponent("unknown_time.onnx").path
        XCTAssertThrowsError(try model.write(to: onnx)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("convlstm_seq") && message.contains("unknown number of time steps"), message)
            XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: onnx))
    }
}
