import Foundation
import HDF5
import ScionIR
import XCTest

@testable import ScionKeras

/// Configs a stranger could write: each ends in a KerasError naming the file, quickly, without a crash.
final class HostileConfigTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Writes a `.h5` with the given `model_config` and an empty `model_weights` group.
    func model(_ config: String) throws -> String {
        let path = directory.appendingPathComponent("\(UUID().uuidString).h5").path
        let file = try HDF5File(creating: path)
        try file.root.setStringAttribute("model_config", config)
        try file.root.setStringAttribute("keras_version", "2.15.0")
        let weights = try file.root.createGroup("model_weights")
        try weights.setStringArrayAttribute("layer_names", [])
        try file.flush()
        return path
    }

    func assertConfigError(_ path: String, mentions words: [String], line: UInt = #line) {
        XCTAssertThrowsError(try KerasModelReader.readHDF5(at: path), line: line) { error in
            guard let error = error as? KerasError else { return XCTFail("not a KerasError: \(error)", line: line) }
            XCTAssertTrue(error.description.hasPrefix(path), error.description, line: line)
            for word in words {
                XCTAssertTrue(error.description.contains(word), "\(word) in: \(error.description)", line: line)
            }
        }
    }

    func functional(_ layers: [String], inputs: String = #"[["in", 0, 0]]"#, outputs: String) -> String {
        #"{"class_name": "Functional", "config": {"name": "m", "layers": ["# + layers.joined(separator: ", ")
            + #"], "input_layers": \#(inputs), "output_layers": \#(outputs)}}"#
    }

    let inputLayer = #"{"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_input_shape": [null, 4]}, "inbound_nodes": []}"#

    func activation(_ name: String, reads source: String) -> String {
        #"{"class_name": "Activation", "name": "\#(name)", "config": {"name": "\#(name)", "activation": "relu"}, "inbound_nodes": [[["\#(source)", 0, 0, {}]]]}"#
    }

    func testDeeplyNestedJSONIsRefused() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        assertConfigError(try model(deep), mentions: ["model_config"])
    }

    func testConfigThatIsNotAModelIsRefused() throws {
        assertConfigError(try model(#"{"class_name": "Dense", "config": {"units": 3}}"#), mentions: ["Sequential or Functional"])
        assertConfigError(try model(#"{"class_name": "Functional", "config": {"name": "m"}}"#), mentions: ["layers"])
    }

    func testCycleBetweenLayersIsRefused() throws {
        let config = functional([inputLayer, activation("a", reads: "b"), activation("b", reads: "a")],
                                outputs: #"[["b", 0, 0]]"#)
        assertConfigError(try model(config), mentions: ["which no layer in the model produces"])
    }

    func testUnknownOutputIsRefused() throws {
        let config = functional([inputLayer, activation("a", reads: "in")], outputs: #"[["ghost", 0, 0]]"#)
        assertConfigError(try model(config), mentions: ["ghost", "model output"])
    }

    func testMalformedTensorReferenceIsRefused() throws {
        let config = functional([inputLayer, #"{"class_name": "Activation", "name": "a", "config": {"name": "a", "activation": "relu"}, "inbound_nodes": [[[7, "x"]]]}"#],
                                outputs: #"[["a", 0, 0]]"#)
        assertConfigError(try model(config), mentions: ["a"])
    }

    func testNegativeInputDimensionIsRefused() throws {
        let input = #"{"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_input_shape": [null, -4]}, "inbound_nodes": []}"#
        assertConfigError(try model(functional([input], outputs: #"[["in", 0, 0]]"#)), mentions: ["invalid dimension"])
    }

    func testModelsNestedTooDeepAreRefused() throws {
        var inner = #"{"class_name": "Sequential", "config": {"name": "s0", "layers": [{"class_name": "Activation", "config": {"name": "act", "activation": "relu"}}]}}"#
        for level in 1...40 {
            inner = #"{"class_name": "Sequential", "config": {"name": "s\#(level)", "layers": [\#(inner)]}}"#
        }
        let config = #"{"class_name": "Sequential", "config": {"name": "top", "layers": [{"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [null, 4]}}, \#(inner)]}}"#
        assertConfigError(try model(config), mentions: ["nested more than"])
    }

    /// Twenty thousand layers listed in reverse order: read in linear time, not quadratic.
    func testLongChainListedBackwardsReads() throws {
        let count = 20_000
        var layers = [inputLayer]
        for index in stride(from: count - 1, through: 0, by: -1) {
            layers.append(activation("a\(index)", reads: index == 0 ? "in" : "a\(index - 1)"))
        }
        let path = try model(functional(layers, outputs: #"[["a\#(count - 1)", 0, 0]]"#))
        let graph = try KerasModelReader.readHDF5(at: path)
        XCTAssertEqual(graph.nodes.count, count)
        XCTAssertEqual(graph.values["a\(count - 1)"]?.shape, Shape([nil, 4]))
    }
}
