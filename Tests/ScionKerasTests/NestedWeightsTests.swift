import Foundation
import ScionIR
import XCTest

@testable import ScionKeras

/// Layers whose variables live in sublayers (LSTM/GRU cells, Bidirectional, MultiHeadAttention):
/// Scion counted them as 0 parameters in a `.keras` archive (their groups are nested:
/// `layers/bidirectional/forward_layer/cell/vars/0`) and refused the `.h5` ("bilstm/kernel: weight is
/// stored twice"). The references are Keras's own numbers in fixtures/kerasN/{text_rnn,attention}.json.
final class NestedWeightsTests: XCTestCase {
    /// Every layer of every fixture holds what Keras's `layer.count_params()` says.
    func testEveryLayerCountMatchesKeras() throws {
        var compared = 0
        for (url, reference) in try Repository.fixtureModels() where !url.path.hasSuffix(".weights.h5") {
            let graph = try readKeras(url)
            // A nested model holds its layers' weights; a layer's own name may contain `/`
            // (MobileNetV3's `Conv/BatchNorm` beside `Conv`), so only models take the prefix.
            func count(_ scoped: String, model: Bool) -> Int {
                let nodes = graph.nodes.filter { $0.layer == scoped || (model && $0.layer.hasPrefix(scoped + "/")) }
                let names = Set(nodes.flatMap(\.parameters))
                return names.compactMap { graph.parameters[$0]?.elementCount }.reduce(0, +)
            }
            func check(_ layers: [KerasReference.Layer], scope: String) {
                for layer in layers where layer.className != "InputLayer" {
                    let scoped = scope.isEmpty ? layer.name : "\(scope)/\(layer.name)"
                    XCTAssertEqual(count(scoped, model: layer.layers != nil), layer.params, "\(url.lastPathComponent): \(scoped)")
                    compared += 1
                    if let inner = layer.layers { check(inner, scope: scoped) }
                }
            }
            check(reference.layers ?? [], scope: "")
        }
        XCTAssertGreaterThan(compared, 500)
    }

    /// The text models' nested weights, from `.h5` (Keras 2 and 3) and `.keras` alike: the same
    /// parameter names, in Keras's `layer.weights` order, with Keras's shapes and trainability.
    func testRecurrentAndAttentionWeightsAreFoundInKerasOrder() throws {
        let cell = ["kernel", "recurrent_kernel", "bias"]
        let expected: [String: [String]] = [
            "text_rnn": ["embed/embeddings"] + ["forward_layer", "backward_layer"].flatMap { side in cell.map { "bilstm/\(side)/cell/\($0)" } }
                + cell.map { "gru/cell/\($0)" } + ["out/kernel", "out/bias"],
            "attention": ["embed/embeddings"]
                + ["query_dense", "key_dense", "value_dense", "output_dense"].flatMap { ["mha/\($0)/kernel", "mha/\($0)/bias"] }
                + ["norm/gamma", "norm/beta", "out/kernel", "out/bias"],
        ]
        var files = 0
        for (url, reference) in try Repository.fixtureModels() {
            let name = url.deletingPathExtension().lastPathComponent
            guard let names = expected[name], let weights = reference.weights else { continue }
            let graph = try readKeras(url)
            XCTAssertEqual(graph.nodes.flatMap(\.parameters), names, url.path)
            XCTAssertEqual(graph.parameters.all.map(\.shape), weights.map(\.shape), "\(url.path): shapes in Keras's order")
            XCTAssertEqual(graph.parameters.all.map(\.trainable), weights.map { $0.trainable ?? true }, "\(url.path): trainable")
            files += 1
        }
        XCTAssertEqual(files, 6, "text_rnn and attention: Keras 2 .h5, Keras 3 .h5 and .keras")
    }

    /// Keras's weight names map to sublayer attributes whatever the file calls the sublayers.
    func testLegacyWeightNamesMapToSublayerAttributes() throws {
        let bidirectional = try JSON.parse(Data(#"{"layer": {"class_name": "LSTM", "config": {"name": "lstm"}}}"#.utf8))
        for (stored, role) in [("bilstm/forward_lstm/lstm_cell/kernel:0", "forward_layer/cell/kernel"),
                               ("text_rnn/bilstm/backward_lstm/lstm_cell/bias", "backward_layer/cell/bias"),
                               ("bilstm/forward_layer/cell/recurrent_kernel", "forward_layer/cell/recurrent_kernel")] {
            XCTAssertEqual(KerasNestedWeights.role(fromWeightName: stored, layerName: "bilstm", className: "Bidirectional",
                                                   config: bidirectional).rawValue, role, stored)
        }
        XCTAssertEqual(KerasNestedWeights.role(fromWeightName: "mha/attention_output/kernel:0", layerName: "mha",
                                               className: "MultiHeadAttention", config: .object([:])).rawValue, "output_dense/kernel")
        // TimeDistributed: tf.keras names the inner weights as the wrapper's, Keras 3 under the inner
        // layer's name, Scion under the attribute; all three are the attribute `layer`'s.
        let distributed = try JSON.parse(Data(#"{"layer": {"class_name": "BatchNormalization", "config": {"name": "bn"}}}"#.utf8))
        for stored in ["td/moving_mean:0", "model/td/moving_mean:0", "td/bn/moving_mean", "td/layer/moving_mean"] {
            let role = KerasNestedWeights.role(fromWeightName: stored, layerName: "td", className: "TimeDistributed", config: distributed)
            XCTAssertEqual(role.rawValue, "layer/moving_mean", stored)
            XCTAssertTrue(KerasNestedWeights.isAlwaysFrozen(role, className: "TimeDistributed", config: distributed), stored)
        }
        XCTAssertEqual(KerasNestedWeights.role(fromWeightName: "conv1/kernel:0", layerName: "conv1", className: "Conv2D",
                                               config: .object([:])).rawValue, "kernel", "layers without sublayers are unchanged")
    }
}
