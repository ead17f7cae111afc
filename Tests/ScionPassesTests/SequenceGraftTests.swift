import Foundation
import Scion
import ScionIR
@testable import ScionPasses
import ScionRuntime
import ScionTestSupport
import XCTest

/// A head grafted on an ONNX model pools and projects the axes the graph says hold the steps and the
/// features, not the ones the file format's channels-first convention would. torch's
/// TransformerEncoder(batch_first=True) writes (batch, steps, features): `gap` used to average the
/// features away (a (batch, steps) output, a Dense of steps + 1 weights per unit), and `--drop-top`
/// on a bidirectional GRU cut at its time-major (steps, batch, features) output.
final class SequenceGraftTests: XCTestCase {
    static let torch = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/torch")

    func apply(_ pass: some GraphPass, to graph: Graph) throws -> Graph {
        var changed = graph
        try pass.run(&changed)
        try changed.verify()
        return changed
    }

    /// The graph's one output on the fixture's stored input, run as `scion run` runs it.
    func output(of graph: Graph, input fixture: String) throws -> RuntimeTensor {
        let inputs = try FixtureArrays.read(Self.torch, fixture, "input")
        let executor = try Model(graph: graph, format: .onnx, path: fixture).executor()
        let results = try executor.run(Dictionary(uniqueKeysWithValues: zip(executor.graph.inputs.map(\.name), inputs)))
        return try XCTUnwrap(results[graph.outputs[0]])
    }

    /// Mean of `x` over `axes` (the others kept, in order).
    func mean(_ x: RuntimeTensor, over axes: Set<Int>) -> RuntimeTensor {
        let kept = x.shape.indices.filter { !axes.contains($0) }
        let shape = kept.map { x.shape[$0] }
        var sums = [Float](repeating: 0, count: shape.reduce(1, *))
        let strides = x.shape.indices.map { x.shape[($0 + 1)...].reduce(1, *) }
        for flat in x.data.indices {
            let index = x.shape.indices.map { flat / strides[$0] % x.shape[$0] }
            let target = kept.reduce(0) { $0 * x.shape[$1] + index[$1] }
            sums[target] += x.data[flat]
        }
        let count = Float(axes.map { x.shape[$0] }.reduce(1, *))
        return RuntimeTensor(shape: shape, data: sums.map { $0 / count })
    }

    func assertClose(_ got: RuntimeTensor, _ want: RuntimeTensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, want.shape, message, file: file, line: line)
        let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-5 * max(1, want.data.map(abs).max() ?? 1), message, file: file, line: line)
    }

    /// Both exporters' encoders end at a LayerNormalization of (batch, 12, 32): `gap` averages the
    /// 12 steps and keeps the 32 features, and the Dense after it has 32 · 3 + 3 weights.
    func testGapOnATransformerEncoderPoolsTheSteps() throws {
        for name in ["encoder_ts", "encoder_dynamo"] {
            let model = try Model.load(Self.torch.appendingPathComponent("\(name).onnx").path)
            let cut = try apply(CutPass(.dropTop), to: model.graph)
            let features = try output(of: cut, input: "encoder")
            XCTAssertEqual(features.shape.dropFirst(), [12, 32], name)

            let pooled = try apply(GraftPass(head: try HeadSpec(parsing: "gap"), seed: 0), to: cut)
            XCTAssertEqual(pooled.values[pooled.outputs[0]]?.shape?.dimensions.last, 32, name)
            assertClose(try output(of: pooled, input: "encoder"), mean(features, over: [1]), name)

            let head = try apply(GraftPass(head: try HeadSpec(parsing: "gap,dense:3:softmax"), seed: 0), to: cut)
            XCTAssertEqual(head.parameters["dense/kernel"]?.shape, [32, 3], name)
        }
    }

    /// `dense` on the sequence projects each step's features, as Keras's Dense on (N, steps, F) does,
    /// and a softmax after it normalises those units (the last axis), not the steps.
    func testDenseOnASequenceProjectsEachStep() throws {
        let model = try Model.load(Self.torch.appendingPathComponent("encoder_ts.onnx").path)
        let cut = try apply(CutPass(.dropTop), to: model.graph)
        let head = try apply(GraftPass(head: try HeadSpec(parsing: "dense:4,softmax"), seed: 0), to: cut)
        XCTAssertEqual(head.parameters["dense/kernel"]?.shape, [32, 4])
        let probabilities = try output(of: head, input: "encoder")
        XCTAssertEqual(probabilities.shape.dropFirst(), [12, 4])
        for row in stride(from: 0, to: probabilities.data.count, by: 4) {
            XCTAssertEqual(probabilities.data[row..<(row + 4)].reduce(0, +), 1, accuracy: 1e-5)
        }
    }

    /// A convolution chain is channels-first, as before: ShuffleNet's (batch, 128, 2, 2) is pooled
    /// over height and width.
    func testGapOnAChannelsFirstImageStillPoolsHeightAndWidth() throws {
        let model = try Model.load(Self.torch.appendingPathComponent("shufflenet_ts.onnx").path)
        let cut = try apply(CutPass(.dropTop), to: model.graph)
        let features = try output(of: cut, input: "shufflenet")
        XCTAssertEqual(features.shape.dropFirst(), [128, 2, 2])
        let pooled = try apply(GraftPass(head: try HeadSpec(parsing: "gap"), seed: 0), to: cut)
        assertClose(try output(of: pooled, input: "shufflenet"), mean(features, over: [2, 3]), "shufflenet")
        XCTAssertThrowsError(try apply(GraftPass(head: try HeadSpec(parsing: "dense:3"), seed: 0), to: cut)) { error in
            XCTAssertTrue("\(error)".contains("would mix the spatial axes of channels-first data"), "\(error)")
        }
    }

    /// torch's recurrent layers run time-major: x (N, 6, 4) → (6, N, 4) → projection (6, N, 5) →
    /// back to (N, 6, 5) → mean over the steps → classifier. The cut is the batch-major value after the
    /// Transpose back, and a head on the time-major projection is refused.
    func timeMajorModel() -> Graph {
        var sketch = GraphSketch(inputs: [("x", [nil, 6, 4])])
        sketch.add("to_time_major", .transpose(TransposeAttributes(permutation: [1, 0, 2])), ["x"])
        sketch.add("proj", Ops.dense(5), ["to_time_major"], parameters: [("kernel", [4, 5]), ("bias", [5])])
        sketch.add("to_batch_major", .transpose(TransposeAttributes(permutation: [1, 0, 2])), ["proj"])
        sketch.add("mean", .onnx(.reduce(ReduceAttributes(kind: .mean, axes: [1], keepDimensions: false))), ["to_batch_major"])
        sketch.add("fc", Ops.dense(3), ["mean"], parameters: [("kernel", [5, 3]), ("bias", [3])])
        sketch.outputs = ["fc"]
        var graph = sketch.graph
        graph.layout = .channelsFirst
        return graph
    }

    func testTimeMajorValuesAreNeitherCutNorGraftedOn() throws {
        let graph = timeMajorModel()
        XCTAssertEqual(try apply(CutPass(.dropTop), to: graph).outputs, ["to_batch_major"])
        XCTAssertEqual(AxisRoles.of("proj", in: try apply(CutPass(.after("proj")), to: graph))?.batch, 1)

        let pooled = try apply(GraftPass(head: try HeadSpec(parsing: "gap"), at: "to_batch_major", seed: 0), to: graph)
        XCTAssertEqual(pooled.values[pooled.outputs[0]]?.shape, Shape([nil, 5]))
        for head in ["gap", "dense:3", "flatten"] {
            XCTAssertThrowsError(try apply(GraftPass(head: try HeadSpec(parsing: head), at: "proj", seed: 0), to: graph), head) { error in
                XCTAssertTrue("\(error)".contains("'proj' (6, None, 5) is time-major: its batch is axis 1"), "\(error)")
            }
        }
    }

    /// A classifier that flattens the time-major projection itself leaves no batch-major value to cut
    /// at: `--drop-top` refuses, pointing at --after.
    func testDropTopRefusesATimeMajorCut() {
        var sketch = GraphSketch(inputs: [("x", [nil, 6, 4])])
        sketch.add("to_time_major", .transpose(TransposeAttributes(permutation: [1, 0, 2])), ["x"])
        sketch.add("proj", Ops.dense(5), ["to_time_major"], parameters: [("kernel", [4, 5]), ("bias", [5])])
        sketch.add("flat", .flatten(FlattenAttributes(layout: .channelsFirst)), ["proj"])
        sketch.add("fc", Ops.dense(3), ["flat"], parameters: [("kernel", [30, 3]), ("bias", [3])])
        sketch.outputs = ["fc"]
        var graph = sketch.graph
        graph.layout = .channelsFirst
        XCTAssertThrowsError(try apply(CutPass(.dropTop), to: graph)) { error in
            XCTAssertTrue("\(error)".contains("proj: the classifier's input (6, None, 5) is time-major (its batch is axis 1, not 0)"), "\(error)")
        }
    }

    /// A rank-3 value nothing explains (the input itself, through an activation) is refused, not
    /// pooled by a guess.
    func testAValueOfUnknownLayoutIsRefused() throws {
        var sketch = GraphSketch(inputs: [("x", [nil, 6, 4])])
        sketch.add("relu", .activation(.plainRelu), ["x"])
        sketch.outputs = ["relu"]
        var graph = sketch.graph
        graph.layout = .channelsFirst
        XCTAssertThrowsError(try apply(GraftPass(head: try HeadSpec(parsing: "gap"), seed: 0), to: graph)) { error in
            XCTAssertTrue("\(error)".contains("cannot tell the layout of 'relu' (None, 6, 4)"), "\(error)")
        }
    }
}
