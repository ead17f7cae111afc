import ScionIR
@testable import ScionPasses
import XCTest

/// Cut, graft and freeze on small hand-built models; the full-size keras.applications checks against
/// Keras and onnxruntime are in Tests/Interop/check_surgery.py.
final class SurgeryPassTests: XCTestCase {
    /// image → conv → bn → relu → gap → dense (softmax), a nested `base` scope for the first three.
    func classifier() -> Graph {
        var sketch = GraphSketch(inputs: [("image", [nil, 8, 8, 3])])
        sketch.add("base/conv", Ops.conv(4, kernel: [3, 3]), ["image"], parameters: [("kernel", [3, 3, 3, 4]), ("bias", [4])])
        sketch.add("base/bn", Ops.batchNormalization, ["base/conv"], parameters: Ops.batchNormalizationRoles(4))
        sketch.add("base/block_out", .activation(.plainRelu), ["base/bn"])
        sketch.add("gap", Ops.globalAverage(), ["base/block_out"])
        sketch.add("dense", Ops.dense(10, activation: .softmax(axis: -1)), ["gap"], parameters: [("kernel", [4, 10]), ("bias", [10])])
        sketch.outputs = ["dense"]
        var graph = sketch.graph
        for index in 0..<3 { graph.nodes[index].scope = "base" }
        graph.submodels = [Submodel(path: "base", type: "Functional", trainable: true)]
        return graph
    }

    func run(_ pass: some GraphPass, on graph: Graph) throws -> Graph {
        var changed = graph
        try pass.run(&changed)
        try changed.verify()
        return changed
    }

    func testCutAfterANestedLayerBySuffixDropsTheClassifierAndItsWeights() throws {
        let cut = try run(CutPass(.after("block_out")), on: classifier())
        XCTAssertEqual(cut.nodes.map(\.name), ["base/conv", "base/bn", "base/block_out"])
        XCTAssertEqual(cut.outputs, ["base/block_out"])
        XCTAssertNil(cut.parameters["dense/kernel"])
        XCTAssertEqual(cut.values["base/block_out"]?.shape, Shape([nil, 8, 8, 4]))
        XCTAssertEqual(cut.submodels.map(\.path), ["base"])
    }

    func testDropTopCutsAfterTheLastSpatialLayer() throws {
        let cut = try run(CutPass(.dropTop), on: classifier())
        XCTAssertEqual(cut.outputs, ["base/block_out"])
    }

    func testUnknownLayerNamesTheClosestOnes() throws {
        XCTAssertThrowsError(try run(CutPass(.after("blok_out")), on: classifier())) { error in
            XCTAssertTrue("\(error)".contains("no layer has this name; closest: base/block_out"), "\(error)")
        }
    }

    func testCutThatWouldLeaveAnotherOutputDanglingIsRefused() throws {
        var graph = classifier()
        graph.outputs = ["dense", "base/bn"]
        XCTAssertThrowsError(try run(CutPass(.after("gap")), on: graph)) { error in
            XCTAssertTrue("\(error)".contains("base/bn dangling"), "\(error)")
        }
        // Every output depends on the cut point: fine.
        graph.outputs = ["dense", "gap"]
        XCTAssertEqual(try run(CutPass(.after("base/bn")), on: graph).outputs, ["base/bn"])
    }

    func testGraftAddsKerasInitialisedHeadWithFreshNames() throws {
        let base = try run(CutPass(.dropTop), on: classifier())
        let head = try HeadSpec(parsing: "gap,dropout:0.2,bn,dense:5:softmax")
        let grafted = try run(GraftPass(head: head, seed: 7), on: base)
        XCTAssertEqual(grafted.nodes.suffix(4).map(\.op.typeName), ["GlobalAveragePooling2D", "Dropout", "BatchNormalization", "Dense"])
        XCTAssertEqual(grafted.nodes.suffix(4).map(\.name), ["global_average_pooling2d", "dropout", "batch_normalization", "dense"])
        XCTAssertEqual(grafted.values[grafted.outputs[0]]?.shape, Shape([nil, 5]))
        let kernel = floats(try XCTUnwrap(grafted.parameters["dense/kernel"]).storage.bytes())
        XCTAssertEqual(grafted.parameters["dense/kernel"]?.shape, [4, 5])
        let limit = (6.0 / 9.0).squareRoot()
        XCTAssertTrue(kernel.allSatisfy { abs(Double($0)) <= limit }, "glorot_uniform bound")
        XCTAssertGreaterThan(Set(kernel).count, 15, "random, not constant")
        XCTAssertEqual(floats(try XCTUnwrap(grafted.parameters["dense/bias"]).storage.bytes()), [0, 0, 0, 0, 0])
        XCTAssertEqual(floats(try XCTUnwrap(grafted.parameters["batch_normalization/moving_variance"]).storage.bytes()), [1, 1, 1, 1])
        XCTAssertEqual(grafted.parameters["batch_normalization/moving_mean"]?.trainable, false)
        // The same seed gives the same weights; another seed others.
        let again = try run(GraftPass(head: head, seed: 7), on: base)
        XCTAssertEqual(try again.parameters["dense/kernel"]?.storage.bytes(), try grafted.parameters["dense/kernel"]?.storage.bytes())
        let other = try run(GraftPass(head: head, seed: 8), on: base)
        XCTAssertNotEqual(try other.parameters["dense/kernel"]?.storage.bytes(), try grafted.parameters["dense/kernel"]?.storage.bytes())
    }

    func testGraftAtALayerReplacesTheClassifierAndNeverReusesAName() throws {
        let grafted = try run(GraftPass(head: try HeadSpec(parsing: "dense:3"), at: "gap", seed: 1), on: classifier())
        XCTAssertEqual(grafted.nodes.last?.name, "dense_1", "'dense' is taken by the old classifier's name")
        XCTAssertNil(grafted.parameters["dense/kernel"], "the old classifier is gone")
        XCTAssertEqual(grafted.parameters["dense_1/kernel"]?.shape, [4, 3])
    }

    func testGlobalPoolingOfAFlatValueIsRefusedWithAHint() throws {
        XCTAssertThrowsError(try run(GraftPass(head: try HeadSpec(parsing: "gap,dense:2"), seed: 1), on: classifier())) { error in
            XCTAssertTrue("\(error)".contains("head item 1: global pooling needs a spatial input"), "\(error)")
        }
    }

    func testHeadSpecMistakesSayWhatWouldBeRight() {
        for (text, expected) in [("gap,dens:5", "did you mean 'dense'?"), ("dense:0", "positive whole number"),
                                 ("dropout:1.5", "0 <= RATE < 1"), ("dense:5:softmx", "unknown activation 'softmx'"),
                                 ("", "the head is empty")] {
            XCTAssertThrowsError(try HeadSpec(parsing: text)) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text): \(error)")
            }
        }
        XCTAssertEqual(try HeadSpec(parsing: "gap, dropout:0.2 ,dense:5:softmax").layers,
                       [.globalAveragePooling, .dropout(rate: 0.2), .dense(units: 5, activation: .softmax(axis: -1))])
    }

    func testFreezeUpToALayerFreezesItsAncestorsOnly() throws {
        let frozen = try run(FreezePass(upTo: "gap"), on: classifier())
        XCTAssertEqual(frozen.nodes.map(\.trainable), [false, false, false, false, true])
        XCTAssertEqual(frozen.parameters["base/conv/kernel"]?.trainable, false)
        XCTAssertEqual(frozen.parameters["dense/kernel"]?.trainable, true)
        XCTAssertEqual(frozen.submodels.first?.trainable, false)
        XCTAssertEqual(frozen.trainableParameterCount, 4 * 10 + 10)
    }

    /// Unfreezing the top of a base makes its weights trainable, except BatchNormalization's moving
    /// statistics, which never are.
    func testUnfreezeNeverMakesMovingStatisticsTrainable() throws {
        let thawed = try run(FreezePass(all: true, unfreeze: "bn$"), on: classifier())
        XCTAssertEqual(thawed.parameters["base/bn/gamma"]?.trainable, true)
        XCTAssertEqual(thawed.parameters["base/bn/moving_mean"]?.trainable, false)
        XCTAssertEqual(thawed.parameters["base/conv/kernel"]?.trainable, false)
        XCTAssertEqual(thawed.submodels.first?.trainable, true, "a nested model with a trainable layer is trainable")
        XCTAssertThrowsError(try run(FreezePass(layers: "^nothing"), on: classifier())) { error in
            XCTAssertTrue("\(error)".contains("--layers matches no layer"), "\(error)")
        }
    }
}
