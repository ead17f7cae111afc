import Foundation
import Scion
import ScionIR
import XCTest

extension ModelDiffTests {
    /// A recurrent layer's settings survive ONNX: the same model through ONNX diffs empty; a GRU
    /// reading backwards and a Bidirectional merging by average instead of sum are reported by their
    /// Keras names, read back from ONNX's direction and the nodes after the GRU/LSTM node.
    func testRecurrentSettingsSurviveONNX() throws {
        let directory = try temporaryDirectory()
        for (file, layer, expected) in [("keras3/rnn_gru.keras", "gru_after", "gru_after: go_backwards false -> true"),
                                        ("keras3/rnn_bidirectional.keras", "bi_sum", "bi_sum: merge_mode sum -> ave")] {
            let original = try Model.load(fixture(file))
            var changed = original
            try edit(&changed, layer) { op in
                guard case .recurrent(var a) = op else { return op }
                if a.bidirectional == nil { a.goBackwards = true } else { a.bidirectional = .ave }
                return .recurrent(a)
            }
            for (name, model) in [("same", original), ("changed", changed)] {
                let onnx = directory.appendingPathComponent("\(name).onnx").path
                try? FileManager.default.removeItem(atPath: onnx)
                try model.write(to: onnx)
                let diff = try ModelDiff(original, try Model.load(onnx))
                let fields = diff.changed.map { "\($0.layer): \($0.field) \($0.before) -> \($0.after)" }
                XCTAssertEqual(fields, name == "same" ? [] : [expected], "\(file) \(name)")
            }
        }
    }
}
