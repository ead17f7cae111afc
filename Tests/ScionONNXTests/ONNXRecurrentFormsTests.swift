import Foundation
import Scion
import ScionIR
import ScionRuntime
import ScionTestSupport
import XCTest

/// ONNX RNN, LSTM and GRU in the forms exporters write (docs/recurrent.md, "The import"): zero
/// initial states made from the symbolic batch (ConstantOfShape, Slice, Expand), computed initial
/// states (inputs of the op), full-length
/// sequence_lens, layout 1, every direction, Y / Y_h / Y_c read, GRU's linear_before_reset 0 and 1,
/// activations; run by Scion's executor to onnxruntime's numbers (Resources/recurrent, made by
/// make_recurrent_forms.py), at batch 2 and 3. Forms the op cannot be stay opaque with the reason.
final class ONNXRecurrentFormsTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/recurrent")
    static let forms = ["lstm_bidirectional_zero_states", "gru_reverse_full_lengths", "rnn_relu_state_only",
                        "gru_bidirectional_layout1", "lstm_forward_layout1", "torch_stack", "torch_state_stack",
                        "torch_squeezed_states", "lstm_computed_initial_state", "gru_layout1_initial_state",
                        "gru_layout1_merged"]

    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scion-onnx-recurrent-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Runs `model` on the stored inputs of `name` (batch 2, and 3 when stored) and compares every
    /// output with onnxruntime's: `max|a-b| <= 1e-4 * max|b|`.
    func assertRunsToOnnxruntime(_ model: Model, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let executor = try model.executor()
        var runs = 0
        for (inputs, outputs) in [("input", "output"), ("input3", "output3")] {
            let x = try FixtureArrays.read(Self.folder, name, inputs)
            guard let input = x.first else { continue }
            let want = try FixtureArrays.read(Self.folder, name, outputs)
            let results = try executor.run([executor.graph.inputs[0].name: input])
            XCTAssertEqual(model.graph.outputs.count, want.count, name, file: file, line: line)
            for (output, expected) in zip(model.graph.outputs, want) {
                let got = try XCTUnwrap(results[output], "\(name): \(output)", file: file, line: line)
                XCTAssertEqual(got.shape, expected.shape, "\(name) \(inputs): \(output)", file: file, line: line)
                let scale = expected.data.map(abs).max() ?? 1
                let worst = zip(got.data, expected.data).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name) \(inputs): \(output): max |a-b| \(worst), max |b| \(scale)",
                                         file: file, line: line)
            }
            runs += 1
        }
        XCTAssertGreaterThan(runs, 0, "\(name): no stored inputs", file: file, line: line)
    }

    func testEveryFormIsTheRecurrentOpAndRunsToOnnxruntimesNumbers() throws {
        for name in Self.forms {
            let model = try Model.load(Self.folder.appendingPathComponent("\(name).onnx").path)
            let opaque = model.graph.nodes.filter { if case .opaque = $0.op { true } else { false } }
            XCTAssertEqual(opaque.map(\.name), [], "\(name): every node interpreted")
            XCTAssertTrue(model.graph.nodes.contains { if case .recurrent(let a) = $0.op { a.timeMajor } else { false } }, name)
            // The zero states' computation (Shape, ConstantOfShape, Slice, Expand) is gone with them.
            XCTAssertFalse(model.graph.nodes.contains { ["ConstantOfShape", "Expand", "Shape"].contains(model.graph.info.nodeTypes[$0.name]) },
                           "\(name): \(model.graph.nodes.map { model.graph.info.nodeTypes[$0.name] ?? "?" })")
            try assertRunsToOnnxruntime(model, name)
        }
    }

    /// Written back to ONNX (layout 0 even for layout-1 nodes: onnxruntime runs only that) and read
    /// again, the numbers hold.
    func testTheFormsRoundTripThroughONNX() throws {
        let directory = try temporaryDirectory()
        for name in Self.forms {
            let path = directory.appendingPathComponent("\(name).onnx").path
            try Model.load(Self.folder.appendingPathComponent("\(name).onnx").path).write(to: path)
            let written = try Model.load(path)
            XCTAssertFalse(written.graph.nodes.contains { if case .opaque = $0.op { true } else { false } }, name)
            try assertRunsToOnnxruntime(written, name)
        }
    }

    /// torch's time-major stack (LSTM → Transpose, Reshape → GRU → Squeeze, Transpose → x[:, -1] +
    /// h[-1]) becomes batch-major Keras layers: no Transpose of the batch axis is left, and the
    /// .keras file read back runs to onnxruntime's numbers (Keras's own, loading it: check_onnx_keras.py).
    func testTorchsTimeMajorStackConvertsToBatchMajorKerasLayers() throws {
        let directory = try temporaryDirectory()
        for format in ["keras", "h5"] {
            let path = directory.appendingPathComponent("torch_stack.\(format)").path
            try Model.load(Self.folder.appendingPathComponent("torch_stack.onnx").path).write(to: path)
            let keras = try Model.load(path)
            let layers = keras.graph.nodes.compactMap { node -> RecurrentAttributes? in
                if case .recurrent(let a) = node.op { a } else { nil }
            }
            XCTAssertEqual(layers.map(\.cell), [.lstm, .gru], format)
            XCTAssertEqual(layers.map(\.bidirectional), [.concat, nil], format)
            XCTAssertFalse(layers.contains(where: \.timeMajor), format)
            XCTAssertFalse(keras.graph.nodes.contains { if case .transpose = $0.op { true } else { false } }, format)
            try assertRunsToOnnxruntime(keras, "torch_stack")
        }
    }

    /// Layout 1 read batch-first (`Y` reshaped to `[batch, time, 2*units]`) is Keras's Bidirectional
    /// returning sequences, the importer's Transposes gone.
    func testLayoutOneConvertsToABidirectionalLayer() throws {
        let path = try temporaryDirectory().appendingPathComponent("gru_layout1_merged.keras").path
        try Model.load(Self.folder.appendingPathComponent("gru_layout1_merged.onnx").path).write(to: path)
        let keras = try Model.load(path)
        let layers = keras.graph.nodes.compactMap { node -> RecurrentAttributes? in
            if case .recurrent(let a) = node.op { a } else { nil }
        }
        XCTAssertEqual(layers.map(\.bidirectional), [.concat])
        XCTAssertEqual(layers.map(\.returnSequences), [true])
        XCTAssertFalse(keras.graph.nodes.contains { if case .transpose = $0.op { true } else { false } })
        try assertRunsToOnnxruntime(keras, "gru_layout1_merged")
    }

    /// torch's `h_n` of a stack (the layers' Y_h concatenated, read by `h[-2]`, `h[-1]`): the last
    /// layer's Keras returned states.
    /// One direction's `h_n.squeeze(0)` and `c_n[-1]` likewise.
    func testTorchsFinalStatesAreTheLastLayersReturnedStates() throws {
        for name in ["torch_state_stack", "torch_squeezed_states"] {
            let path = try temporaryDirectory().appendingPathComponent("\(name).keras").path
            try Model.load(Self.folder.appendingPathComponent("\(name).onnx").path).write(to: path)
            let keras = try Model.load(path)
            let layers = keras.graph.nodes.compactMap { node -> RecurrentAttributes? in
                if case .recurrent(let a) = node.op { a } else { nil }
            }
            XCTAssertEqual(layers.map(\.returnSequences), [true, false], name)
            XCTAssertEqual(layers.map(\.returnState), [false, true], name)
            try assertRunsToOnnxruntime(keras, name)
        }
    }

    /// Initial states are read by `run`, the trainer and the ONNX writer; computed ones (here from the
    /// input, not a `[batch, units]` value per direction) the Keras writers refuse by name.
    func testInitialStatesAreRefusedByTheKerasWritersByName() throws {
        let model = try Model.load(Self.folder.appendingPathComponent("lstm_computed_initial_state.onnx").path)
        let path = try temporaryDirectory().appendingPathComponent("m.keras").path
        XCTAssertThrowsError(try model.write(to: path)) { error in
            XCTAssertTrue("\(error)".contains("that are not [batch, units] values stacked per direction: Keras's initial_state takes"), "\(error)")
        }
    }

    /// The trainer trains through the imported ops (`finetune` on a torch export): torch's stack and
    /// its GRU → LSTM read by their final states fit a target that needs every step (the inputs'
    /// mean over time), their mean squared error falling to a tenth.
    func testTrainingGoesThroughTheImportedOps() throws {
        for (name, outputWidth) in [("torch_stack", 4), ("torch_squeezed_states", 6)] {
            let model = try Model.load(Self.folder.appendingPathComponent("\(name).onnx").path)
            var trainer = try Trainer(graph: model.graph)
            var random = SplitMix64(seed: 3)
            let samples = 32, steps = 5, features = 3
            let x = (0..<(samples * steps * features)).map { _ in Float(random.next() % 2000) / 1000 - 1 }
            var y = [Float](repeating: 0, count: samples * outputWidth)
            for n in 0..<samples {
                for j in 0..<outputWidth {
                    let feature = j % features
                    let mean = (0..<steps).map { x[(n * steps + $0) * features + feature] }.reduce(0, +) / Float(steps)
                    y[n * outputWidth + j] = 0.5 * mean
                }
            }
            var options = Trainer.Options()
            (options.loss, options.epochs, options.batchSize, options.learningRate) = (.meanSquaredError, 40, 8, 0.01)
            let batches = try trainer.features(of: RuntimeTensor(shape: [samples, steps, features], data: x))
            let history = try trainer.fit(batches, targets: RuntimeTensor(shape: [samples, outputWidth], data: y), options: options)
            let (first, last) = (try XCTUnwrap(history.first).loss, try XCTUnwrap(history.last).loss)
            XCTAssertLessThan(last, 0.1 * first, "\(name): mse \(first) → \(last)")
        }
    }

    /// What the recurrent op cannot compute stays opaque, and `run` says why.
    func testFormsTheOpCannotBeAreRefusedWithTheReason() throws {
        for (name, reason) in [("refused_partial_initial_state", "initial_c absent while the other initial state is not zeros"),
                               ("refused_sequence_lengths", "sequence_lens computed in the graph")] {
            let model = try Model.load(Self.folder.appendingPathComponent("\(name).onnx").path)
            let lstm = try XCTUnwrap(model.graph.nodes.first { model.graph.info.nodeTypes[$0.name] == "LSTM" }, name)
            guard case .opaque(let a) = lstm.op else { return XCTFail("\(name): read as \(lstm.op)") }
            XCTAssertTrue(a.uninterpretedReason.contains(reason), "\(name): \(a.uninterpretedReason)")
        }
    }
}
