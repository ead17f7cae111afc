import Foundation
import HDF5
import ScionIR
import XCTest

@testable import ScionKeras

/// Layouts real files have that the small fixtures do not, written here with the HDF5 writer in
/// exactly the form Keras 2 uses.
final class KerasLayoutTests: XCTestCase {
    /// DenseNet names a layer `conv1/bn` and another `bn`; in a nested model's group their weights are
    /// `conv1/bn/gamma:0` and `bn/gamma:0`. Each must reach its own layer.
    func testLayerNamesContainingSlashesInNestedModel() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let batchNorm = { (name: String, source: String) in
            #"{"class_name": "BatchNormalization", "name": "\#(name)", "config": {"name": "\#(name)", "axis": -1, "center": true, "scale": true}, "inbound_nodes": [[["\#(source)", 0, 0, {}]]]}"#
        }
        let base = #"{"class_name": "Functional", "name": "densenet", "config": {"name": "densenet", "trainable": true, "layers": [{"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_input_shape": [null, 4]}, "inbound_nodes": []}, \#(batchNorm("conv1/bn", "in")), \#(batchNorm("bn", "conv1/bn"))], "input_layers": [["in", 0, 0]], "output_layers": [["bn", 0, 0]]}}"#
        let config = #"{"class_name": "Sequential", "config": {"name": "top", "layers": [{"class_name": "InputLayer", "config": {"name": "image", "batch_input_shape": [null, 4]}}, \#(base)]}}"#

        let file = try HDF5File(creating: path)
        try file.root.setStringAttribute("model_config", config)
        try file.root.setStringAttribute("keras_version", "2.15.0")
        let weights = try file.root.createGroup("model_weights")
        try weights.setStringArrayAttribute("layer_names", ["densenet"])
        let group = try weights.createGroup("densenet")
        var names: [String] = []
        for (layer, value) in [("conv1/bn", Float(1)), ("bn", Float(2))] {
            for (offset, role) in ["gamma", "beta", "moving_mean", "moving_variance"].enumerated() {
                let name = "\(layer)/\(role):0"
                names.append(name)
                let dataset = try group.createDataset(name, elementType: .float32, shape: [4])
                let values = [Float](repeating: value * 10 + Float(offset), count: 4)
                try values.withUnsafeBytes { try dataset.write($0) }
            }
        }
        try group.setStringArrayAttribute("weight_names", names)
        try file.flush()

        let graph = try KerasModelReader.readHDF5(at: path)
        XCTAssertEqual(graph.totalParameterCount, 32)
        func first(_ name: String) throws -> Float {
            let bytes = try XCTUnwrap(graph.parameters[name], name).storage.bytes()
            return bytes.withUnsafeBytes { $0.load(as: Float.self) }
        }
        XCTAssertEqual(try first("densenet/conv1/bn/gamma"), 10)
        XCTAssertEqual(try first("densenet/conv1/bn/moving_variance"), 13)
        XCTAssertEqual(try first("densenet/bn/gamma"), 20)
        XCTAssertEqual(try first("densenet/bn/moving_mean"), 22)
    }

    /// Keras 3's legacy `.h5` writes operation nodes (`x + 3.0`) without their `module`, under class
    /// names that merge layers also use. The call's form tells them apart.
    func testKeras3LegacyOperationNodesAreNotMergeLayers() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        func tensor(_ name: String) -> String {
            #"{"class_name": "__keras_tensor__", "config": {"shape": [null, 4], "dtype": "float32", "keras_history": ["\#(name)", 0, 0]}}"#
        }
        let layers = [
            #"{"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_shape": [null, 4]}, "inbound_nodes": []}"#,
            #"{"class_name": "Add", "config": {"name": "add"}, "name": "add", "inbound_nodes": [{"args": [\#(tensor("in")), 3.0], "kwargs": {}}]}"#,
            #"{"class_name": "Multiply", "config": {"name": "multiply"}, "name": "multiply", "inbound_nodes": [{"args": [\#(tensor("add")), 0.5], "kwargs": {}}]}"#,
            #"{"class_name": "Add", "config": {"name": "merge"}, "name": "merge", "inbound_nodes": [{"args": [[\#(tensor("in")), \#(tensor("multiply"))]], "kwargs": {}}]}"#,
        ]
        let config = #"{"class_name": "Functional", "config": {"name": "m", "layers": [\#(layers.joined(separator: ", "))], "input_layers": [["in", 0, 0]], "output_layers": [["merge", 0, 0]]}}"#
        let file = try HDF5File(creating: path)
        try file.root.setStringAttribute("model_config", config)
        try file.root.setStringAttribute("keras_version", "3.15.1")
        try file.root.createGroup("model_weights").setStringArrayAttribute("layer_names", [])
        try file.flush()

        let graph = try KerasModelReader.readHDF5(at: path)
        XCTAssertEqual(graph.node(named: "add")?.op, .rescaling(RescalingAttributes(scale: [1], offset: [3])))
        XCTAssertEqual(graph.node(named: "multiply")?.op, .rescaling(RescalingAttributes(scale: [0.5], offset: [0])))
        XCTAssertEqual(graph.node(named: "merge")?.op, .elementwise(.add))
        XCTAssertEqual(graph.node(named: "merge")?.inputs, ["in", "multiply"])
    }
}
