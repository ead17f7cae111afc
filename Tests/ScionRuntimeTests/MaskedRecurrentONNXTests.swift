import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import XCTest

/// Recurrent layers reading Keras's mask written to ONNX (docs/recurrent.md, "Masks in ONNX"): the
/// file read back by Scion runs to Keras's numbers (onnxruntime's are Tests/Interop/check_onnx.py),
/// and what the ONNX form does not compute is refused naming the layer.
final class MaskedRecurrentONNXTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scion-mask-onnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testTheONNXFormReadBackGivesKerasNumbers() throws {
        let directory = try temporaryDirectory()
        for fixture in ["keras2/masked_text.h5", "keras3/masked_text.keras", "keras2/masked_variants.h5", "keras3/masked_variants.keras"] {
            let source = FixtureRunTests.fixtures.appendingPathComponent(fixture)
            let base = source.deletingPathExtension()
            let onnx = directory.appendingPathComponent(fixture.replacingOccurrences(of: "/", with: "_") + ".onnx").path
            try Model.load(source.path).write(to: onnx)
            let model = try Model.load(onnx)
            XCTAssertFalse(model.graph.nodes.contains { if case .recurrent(let a) = $0.op { a.maskValue != nil } else { false } },
                           "\(fixture): read back as ONNX's own ops around unmasked RNNs")
            let executor = try model.executor()
            let tokens = try NumpyFile.read(base.path + ".input.npy"), want = try NumpyFile.read(base.path + ".output.npy")
            let results = try executor.run([executor.graph.inputs[0].name: tokens])
            let got = try XCTUnwrap(model.graph.outputs.first.flatMap { results[$0] }, fixture)
            XCTAssertEqual(got.shape, want.shape, fixture)
            let scale = want.data.map(abs).max() ?? 1
            let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(fixture): max |a-b| \(worst), max |b| \(scale)")
        }
    }

    /// A mask source with values per step (`[batch, time, features]`, as `Masking` gives): a step is
    /// kept where any of them differs from `maskValue`. masked_text with the Embedding's row of token 0
    /// set to zeros and its output as the first layer's mask source is the same model (only the padding's
    /// vectors changed, and those are skipped), so Keras's numbers hold for the executor and for the
    /// ONNX form, which reduces the step's values.
    func testAMaskSourceWithValuesPerStep() throws {
        var model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_text.keras").path)
        let embed = try XCTUnwrap(model.graph.nodes.first { $0.name == "embed" })
        var table = try XCTUnwrap(model.graph.parameters[embed.parameters[0]])
        var rows = try table.storage.bytes(keep: true).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        for j in 0..<table.shape[1] { rows[j] = 0 }
        table.storage = TensorStorage(bytes: rows.withUnsafeBytes { [UInt8]($0) })
        model.graph.parameters[table.name] = table
        let index = try XCTUnwrap(model.graph.nodes.firstIndex { $0.name == "lstm_seq" })
        model.graph.nodes[index].inputs[1] = try XCTUnwrap(embed.outputs.first)
        let base = FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_text").path
        let tokens = try NumpyFile.read(base + ".input.npy"), want = try NumpyFile.read(base + ".output.npy")
        let onnx = try temporaryDirectory().appendingPathComponent("m.onnx").path
        try model.write(to: onnx)
        XCTAssertTrue(try String(decoding: Data(contentsOf: URL(fileURLWithPath: onnx)), as: UTF8.self).contains("ReduceSum"))
        for candidate in [model, try Model.load(onnx)] {
            let executor = try candidate.executor()
            let results = try executor.run([executor.graph.inputs[0].name: tokens])
            let got = try XCTUnwrap(candidate.graph.outputs.first.flatMap { results[$0] })
            let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * (want.data.map(abs).max() ?? 1), "\(candidate.format): max |a-b| \(worst)")
        }
    }

    /// An LSTM's final cell state is not among the ONNX form's outputs (the states are read from
    /// the outputs), so `return_state` is refused rather than written wrong.
    func testAMaskedLSTMsCellStateIsRefusedNamingTheLayer() throws {
        var model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent("keras3/masked_text.keras").path)
        let index = try XCTUnwrap(model.graph.nodes.firstIndex { $0.name == "lstm_seq" })
        guard case .recurrent(var a) = model.graph.nodes[index].op else { return XCTFail("lstm_seq is not recurrent") }
        a.returnState = true
        model.graph.nodes[index].op = .recurrent(a)
        model.graph.nodes[index].outputs += ["lstm_seq:1", "lstm_seq:2"]
        let onnx = try temporaryDirectory().appendingPathComponent("m.onnx").path
        XCTAssertThrowsError(try model.write(to: onnx)) { error in
            XCTAssertTrue("\(error)".contains("lstm_seq") && "\(error)".contains("cell state"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: onnx), "nothing half-written")
    }

    /// The steps are moved by `[time, time]` matrices: an unknown number of them is refused.
    func testAnUnknownNumberOfStepsIsRefusedNamingTheLayer() throws {
        var model = try Model.load(FixtureRunTests.fixtures.appendingPathComponent("keras2/masked_text.h5").path)
        model.graph.inputs[0].shape = Shape([nil, nil])
        let onnx = try temporaryDirectory().appendingPathComponent("m.onnx").path
        XCTAssertThrowsError(try model.write(to: onnx)) { error in
            XCTAssertTrue("\(error)".contains("lstm_seq") && "\(error)".contains("fixed number of time steps"), "\(error)")
        }
    }
}
