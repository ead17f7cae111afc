import Foundation
import HDF5
import ScionIR
import XCTest

@testable import ScionKeras

/// Keras 3 operation nodes (`keras.ops` calls) read as IR ops and written back; the fixtures
/// `kerasops_zoo` and `kerasops_vit` prove the numbers against Keras, these the rules one by one.
final class KerasOperationTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-kerasops-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A Keras 3 `.h5` holding a Functional model: input `(N, 4, 6)`, then `layer`, its output the model's.
    func model(with layer: String, output: String) throws -> String {
        let config = #"{"class_name": "Functional", "config": {"name": "m", "layers": ["#
            + #"{"class_name": "InputLayer", "name": "x", "config": {"name": "x", "batch_shape": [null, 4, 6]}, "inbound_nodes": []}, "#
            + layer + #"], "input_layers": [["x", 0, 0]], "output_layers": [["\#(output)", 0, 0]]}}"#
        let path = directory.appendingPathComponent("\(UUID().uuidString).h5").path
        let file = try HDF5File(creating: path)
        try file.root.setStringAttribute("model_config", config)
        try file.root.setStringAttribute("keras_version", "3.15.1")
        let weights = try file.root.createGroup("model_weights")
        try weights.setStringArrayAttribute("layer_names", [])
        try file.flush()
        return path
    }

    let tensor = #"{"class_name": "__keras_tensor__", "config": {"shape": [null, 4, 6], "dtype": "float32", "keras_history": ["x", 0, 0]}}"#

    func operation(_ className: String, name: String, config: String = "", arguments: String) -> String {
        #"{"module": "keras.src.ops.numpy", "class_name": "\#(className)", "name": "\#(name)", "#
            + #""config": {"name": "\#(name)"\#(config)}, "inbound_nodes": [{"args": [\#(arguments)], "kwargs": {}}]}"#
    }

    /// An operation Scion does not read is kept as read (inspect lists it, surgery cuts it), and what
    /// it could not read is the reason every path that needs its meaning gives, naming node and op.
    func testUnknownOperationIsKeptAndItsReasonNamesTheNodeAndTheOp() throws {
        let path = try model(with: operation("Cumprod", name: "running", config: #", "axis": 1"#, arguments: tensor), output: "running")
        let graph = try KerasModelReader.readHDF5(at: path)
        guard case .opaque(let a) = try XCTUnwrap(graph.node(named: "running")).op else { return XCTFail("running is read") }
        XCTAssertEqual(a.domain, "keras.ops")
        XCTAssertTrue(a.uninterpretedReason.hasPrefix("keras.ops operation Cumprod"), a.uninterpretedReason)
        XCTAssertFalse(a.uninterpretedReason.contains("\n"))
        XCTAssertThrowsError(try KerasModelWriter.writeArchive(graph, to: path + ".keras", file: path + ".keras")) { error in
            XCTAssertTrue("\(error)".contains("running") && "\(error)".contains("keras.ops operation Cumprod"), "\(error)")
        }
    }

    /// Comparisons and logic, Where, Mod, Triu/Tril, Einsum and TakeAlongAxis are read as the IR's
    /// ONNX ops (NotEqual as Equal then Not) and written back as the same calls; an Einsum with an
    /// ellipsis stays as read. Check_onnx_keras.py --runtime-ops proves their numbers in Keras.
    func testLogicWhereModTriangleEinsumAndTakeAlongAxisAreRead() throws {
        let cases: [(String, String, String, [Op])] = [
            ("Greater", "", "\(tensor), \(tensor)", [.onnx(.comparison(.greater))]),
            ("LessEqual", "", "\(tensor), \(tensor)", [.onnx(.comparison(.lessOrEqual))]),
            ("LogicalXor", "", "\(tensor), \(tensor)", [.onnx(.comparison(.xor))]),
            ("NotEqual", "", "\(tensor), \(tensor)", [.onnx(.comparison(.equal)), .onnx(.unary(.not))]),
            ("LogicalNot", "", tensor, [.onnx(.unary(.not))]),
            ("Where", "", "\(tensor), \(tensor), \(tensor)", [.onnx(.select)]),
            ("Mod", "", "\(tensor), \(tensor)", [.onnx(.mod(ModAttributes(fmod: false)))]),
            ("Tril", #", "k": -1"#, tensor, [.onnx(.trilu(TriluAttributes(upper: false, k: -1)))]),
            ("Einsum", #", "subscripts": "bij,bkj->bik""#, "\(tensor), \(tensor)",
             [.onnx(.einsum(EinsumAttributes(equation: "bij,bkj->bik")))]),
            ("TakeAlongAxis", #", "axis": 2"#, "\(tensor), \(tensor)", [.onnx(.gatherElements(GatherAttributes(axis: 2)))]),
        ]
        for (className, config, arguments, ops) in cases {
            let graph = try KerasModelReader.readHDF5(at: try model(with: operation(className, name: "op", config: config, arguments: arguments),
                                                                    output: "op"))
            XCTAssertEqual(graph.nodes.map(\.op), ops, className)
        }
        let ellipsis = try model(with: operation("Einsum", name: "op", config: #", "subscripts": "...j,...j->...""#,
                                                 arguments: "\(tensor), \(tensor)"), output: "op")
        guard case .opaque(let a) = try XCTUnwrap(try KerasModelReader.readHDF5(at: ellipsis).node(named: "op")).op else {
            return XCTFail("an Einsum with an ellipsis is read")
        }
        XCTAssertTrue(a.uninterpretedReason.contains("ellipsis"), a.uninterpretedReason)
    }

    func testKeywordArgumentsAndNonNumericConstantsAreNotRead() throws {
        let keywords = #"{"module": "keras.src.ops.numpy", "class_name": "Add", "name": "sum", "config": {"name": "sum"}, "#
            + #""inbound_nodes": [{"args": [\#(tensor)], "kwargs": {"x2": 1.0}}]}"#
        let text = try model(with: operation("Multiply", name: "scaled", arguments: #"\#(tensor), "two""#), output: "scaled")
        for (path, node, reason) in [(try model(with: keywords, output: "sum"), "sum", "keyword arguments [\"x2\"]"),
                                     (text, "scaled", "not a number")] {
            let graph = try KerasModelReader.readHDF5(at: path)
            guard case .opaque(let a) = try XCTUnwrap(graph.node(named: node)).op else { return XCTFail("\(node) is read") }
            XCTAssertTrue(a.uninterpretedReason.contains(reason), a.uninterpretedReason)
        }
    }

    /// Operation nodes in a legacy `.h5` have no `module`: recognised by the Keras 3 call form and a
    /// config without `trainable`, so `Add` with a constant is arithmetic, not the merge layer.
    func testLegacyOperationNodeWithoutModuleIsRecognised() throws {
        let layer = #"{"class_name": "Subtract", "name": "flipped", "config": {"name": "flipped"}, "#
            + #""inbound_nodes": [{"args": [1.0, \#(tensor)], "kwargs": {}}]}"#
        let graph = try KerasModelReader.readHDF5(at: try model(with: layer, output: "flipped"))
        XCTAssertEqual(graph.nodes.map(\.op), [.rescaling(RescalingAttributes(scale: [-1], offset: [1]))])
    }

    func testConstantOperandsBecomeRescalingReciprocalClipAndProducts() throws {
        func ops(_ className: String, _ arguments: String) throws -> [Op] {
            let reader = KerasOperationReader(className: className, config: .object([:]),
                                              arguments: try JSON.parse(Data("[\(arguments)]".utf8)).array ?? [])
            return try reader.plan().ops
        }
        XCTAssertEqual(try ops("TrueDivide", "3.0, \(tensor)"),
                       [.onnx(.unary(.reciprocal)), .rescaling(RescalingAttributes(scale: [3], offset: [0]))])
        XCTAssertEqual(try ops("TrueDivide", "\(tensor), 4"), [.rescaling(RescalingAttributes(scale: [0.25], offset: [0]))])
        XCTAssertEqual(try ops("Maximum", "\(tensor), 0.5"), [.onnx(.clip(ClipAttributes(minimum: 0.5, maximum: nil)))])
        XCTAssertEqual(try ops("Power", "\(tensor), 2"), [.elementwise(.multiply)])
        XCTAssertThrowsError(try ops("Power", "\(tensor), 3")) { error in
            XCTAssertTrue("\((error as? KerasOperationReader.Refusal)?.reason ?? "")".contains("power 3"), "\(error)")
        }
    }

    /// numpy's basic indexing: `x[:, 1:5:2, -1, None]` on (N, 6, 8, 3) slices axes 1 and 2, drops axis
    /// 2 (the integer) and inserts an axis where None sits in the result; `x[..., ::-1]` reverses the last.
    func testSliceKeyFollowsNumpyIndexing() throws {
        func key(_ items: String) throws -> [JSON] { [JSON.null, try JSON.parse(Data(items.utf8))] }
        let slice = { (start: String, stop: String, step: String) in
            #"{"class_name": "__slice__", "config": {"start": \#(start), "stop": \#(stop), "step": \#(step)}}"#
        }
        let full = slice("null", "null", "null")
        let ops = try KerasSliceKey(arguments: try key("[\(full), \(slice("1", "5", "2")), -1, null]"), rank: 4).ops()
        XCTAssertEqual(ops, [
            .onnx(.slice(SliceAttributes(starts: [1, -1], ends: [5, Int.max], axes: [1, 2], steps: [2, 1]))),
            .onnx(.squeeze(AxesAttributes(axes: [2]))),
            .onnx(.unsqueeze(AxesAttributes(axes: [2]))),
        ])
        let reversed = try KerasSliceKey(arguments: try key(#"[{"class_name": "__ellipsis__", "config": {}}, \#(slice("null", "null", "-1"))]"#),
                                         rank: 3).ops()
        XCTAssertEqual(reversed, [.onnx(.slice(SliceAttributes(starts: [-1], ends: [Int.min], axes: [2], steps: [-1])))])
        XCTAssertThrowsError(try KerasSliceKey(arguments: try key("[0, 0, 0, 0]"), rank: 3).ops())
    }

    /// The writer spells a Slice back as a GetItem key with every axis up to the last one sliced
    /// (no Ellipsis, which Keras's .h5 loader cannot read), and reading that key gives the Slice back.
    func testSliceKeyRoundTrips() throws {
        let original = SliceAttributes(starts: [1, -1], ends: [Int.max, Int.min], axes: [1, -1], steps: [1, -3])
        let key = try KerasOperationWriter.sliceKey(original, rank: 3)
        XCTAssertFalse(key.serialized.contains("ellipsis"), key.serialized)
        let read = try KerasSliceKey(arguments: [.null, key], rank: 3).ops()
        XCTAssertEqual(read, [.onnx(.slice(SliceAttributes(starts: [1, -1], ends: [Int.max, Int.min], axes: [1, 2], steps: [1, -3])))])
    }
}
