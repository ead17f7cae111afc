import Foundation
import ScionIR
import ScionKeras
import XCTest

@testable import ScionPasses

/// The pass on every model Keras wrote for the fixtures: verify() passes, outputs keep their names
/// and shapes, no channels-last spatial op is left, every permuted weight reads back at its size,
/// and the number of Transposes is the one expected (printed in the log).
final class ChannelsFirstFixtureTests: XCTestCase {
    /// Transposes per fixture: one per image input, one per image output, plus one per boundary of a
    /// channels-last island (ConvNeXt's LayerNormalization and Dense; Embedding feeding a spatial
    /// op). Models without spatial ops get none; conv2d_zoo's Flatten -> Concatenate -> Dense
    /// permutes Dense rows instead of transposing.
    let expectedTransposes: [String: Int] = [
        "activation_zoo": 0, "conv1d_zoo": 1, "conv2d_zoo": 1, "convnext_blocks": 4, "efficientnet_blocks": 2,
        "embedding": 1, "inception_resnet_block": 2, "lambda_scale": 2, "many_layers": 0, "merge_zoo": 0,
        "misc_zoo": 0, "mobilenet": 1, "mobilenet_v2": 1, "mobilenet_v3_small": 1, "multi_io": 1,
        "nested_functional": 1, "nested_transfer": 1, "partly_frozen": 1, "shared_layer": 2,
        "teachable_machine": 1, "trained_with_optimizer": 1,
        // Recurrent layers read and write their Keras order (the ONNX writer transposes around its
        // node itself). MultiHeadAttention keeps the order
        // Keras wrote (it projects the last axis): each attention's sequence is transposed once
        // for the GlobalAveragePooling that reads it, as embedding's.
        "text_rnn": 0, "attention": 1, "group_norm": 3, "transfer_guide": 1,
        // keras.ops models: the zoo has no spatial op; the ViT one Transpose into its patchify
        // Conv2D and one out of it for the reshape to tokens (its own keras.ops.transpose calls keep
        // the batch axis: Permutes).
        "kerasops_zoo": 0, "kerasops_vit": 2, "kerasops_text": 0, "upsampling_bilinear": 2, "transformer_ops": 0,
        "resizing": 1, "resizing_kernels": 1, "resizing_antialias": 1, "cropping_layers": 1,
        "rnn_simple": 0, "rnn_lstm": 0, "rnn_gru": 0, "rnn_bidirectional": 0, "rnn_states": 0, "rnn_seq2seq": 0, "masked_text": 0, "masked_variants": 0, "masking_sequence": 0, "masking_dense": 0,
        "masked_pooling": 2, "masked_pooling_dropped": 1, "masked_transformer": 1,
        // A user's class computes in Keras's channels-last layout: its image input goes back to NHWC.
        "custom_layer": 3, "lambda_layer": 0,
        "transformer_block": 1, "attention_variants": 3, "einsum_dense": 1,
        "unit_norm": 0, "dot_attention": 4, "self_attention": 3,
        // tiny_vit: the image to channels-first for its patch Conv2D, back for the Reshape to a
        // sequence, the sequence once for its GlobalAveragePooling1D.
        "tiny_vit": 3,
        // TimeDistributed folds time into the batch with Reshapes, which read and write Keras's
        // order: the per-frame Conv2D and MaxPooling2D each get a Transpose in and out, and the
        // frames' features one for their GlobalAveragePooling1D. The tagger's Dense needs none.
        "time_distributed_frames": 5, "time_distributed_tagger": 0,
        // ConvLSTM reads and writes Keras's order: its output goes to channels-first once for the pooling.
        "conv_lstm": 1, "conv_lstm_variants": 1,
    ]

    /// The repository's fixtures folder, found from this file's path.
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func read(_ url: URL) throws -> Graph {
        url.pathExtension == "keras" ? try KerasModelReader.readArchive(at: url.path) : try KerasModelReader.readHDF5(at: url.path)
    }

    func modelFiles(in folder: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
            .filter { ($0.hasSuffix(".h5") || $0.hasSuffix(".keras")) && !$0.hasPrefix("weights_only") }
            .map { folder.appendingPathComponent($0) }
    }

    func testEveryFixtureConvertsWithTheExpectedTransposes() throws {
        var converted = 0
        for version in ["keras2", "keras3"] {
            for url in try modelFiles(in: Self.fixtures.appendingPathComponent(version)) {
                let name = "\(version)/\(url.lastPathComponent)"
                let source = try read(url)
                let graph = try convert(source)
                let transposes = graph.transposes
                print("layout: \(name): \(transposes.count) transpose(s) \(transposes.map(\.name))")
                let base = url.deletingPathExtension().lastPathComponent
                XCTAssertEqual(transposes.count, expectedTransposes[base], name)
                for parameter in graph.parameters.all {
                    let bytes = try parameter.storage.bytes(keep: false)
                    XCTAssertEqual(bytes.count, parameter.byteCount, "\(name): \(parameter.name)")
                }
                XCTAssertEqual(graph.totalParameterCount, source.totalParameterCount, name)
                XCTAssertEqual(graph.trainableParameterCount, source.trainableParameterCount, name)
                converted += 1
            }
        }
        XCTAssertGreaterThan(converted, 40, "fixtures are missing")
    }

    /// Weights-only files have no architecture to convert.
    func testWeightsOnlyFixtureIsRefused() throws {
        var graph = try read(Self.fixtures.appendingPathComponent("keras2/weights_only.h5"))
        XCTAssertThrowsError(try ChannelsFirstLayoutPass().run(&graph)) { error in
            XCTAssertTrue(error is PassError, "\(error)")
        }
    }

    /// Full-size keras.applications models (fixtures/applications, not committed; skipped when not
    /// made). Converts each without reading a weight and prints its Transposes: one at the input
    /// for all but ConvNeXt, whose LayerNormalization and Dense run channels-last in every block.
    func testFullSizeApplicationsConvert() throws {
        let root = Self.fixtures.appendingPathComponent("applications")
        guard FileManager.default.fileExists(atPath: root.path) else {
            throw XCTSkip("fixtures/applications not made; run fixtures/make_applications.py")
        }
        var converted = 0
        for version in ["keras2", "keras3"] {
            let folder = root.appendingPathComponent(version)
            guard FileManager.default.fileExists(atPath: folder.path) else { continue }
            for url in try modelFiles(in: folder) {
                let name = "\(version)/\(url.lastPathComponent)"
                let graph = try convert(try read(url))
                print("layout: \(name): \(graph.transposes.count) transpose(s)")
                if !url.lastPathComponent.hasPrefix("ConvNeXt") {
                    XCTAssertEqual(graph.transposes.count, 1, name)
                }
                converted += 1
            }
        }
        XCTAssertGreaterThan(converted, 0)
    }
}
