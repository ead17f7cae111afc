import Foundation
import ScionIR
import ScionPasses
@testable import ScionRuntime
import XCTest

/// How weights reach the executor (Executor+Weights.swift): read once as float32, the inference
/// executor's graph left holding no bytes, the trainer's keeping its storages, and a lowered Keras
/// kernel readable in the file's own HWIO order.
final class ExecutorWeightsTests: XCTestCase {
    /// x [N, 5, 5, 2] → conv 3x3 (HWIO [3, 3, 2, 4], bias) → GAP → Dense 3, channels-last as Keras has it.
    func model() -> Graph {
        var parameters = ParameterTable()
        var random = SplitMix64(seed: 7)
        for (name, shape) in [("conv/kernel", [3, 3, 2, 4]), ("conv/bias", [4]), ("dense/kernel", [4, 3]), ("dense/bias", [3])] {
            let values = (0..<shape.reduce(1, *)).map { _ in random.unit() - 0.5 }
            parameters.add(Parameter(name: name, role: ParameterRole(rawValue: name.hasSuffix("kernel") ? "kernel" : "bias"), shape: shape,
                                     dtype: .float32, trainable: true, storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
        }
        let conv = Op.conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same, layout: .channelsLast))
        let nodes = [
            Node(name: "conv", op: conv, inputs: ["x"], outputs: ["conv"], parameters: ["conv/kernel", "conv/bias"]),
            Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsLast)), inputs: ["conv"], outputs: ["gap"]),
            Node(name: "dense", op: .dense(DenseAttributes(units: 3, activation: .linear)), inputs: ["gap"], outputs: ["dense"],
                 parameters: ["dense/kernel", "dense/bias"]),
        ]
        return Graph(name: "weights", inputs: [ValueInfo(name: "x", shape: Shape([nil, 5, 5, 2]), dtype: .float32)],
                     outputs: ["dense"], nodes: nodes, parameters: parameters)
    }

    func floats(_ storage: TensorStorage) throws -> [Float] {
        try storage.bytes(keep: false).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testInferenceExecutorIsTheOnlyHolderOfTheWeights() throws {
        let graph = model()
        var lowered = graph
        try ExecutorLowering().run(&lowered)
        // Without the channels-last plan, which reorders convolution kernels for its own kernels.
        let executor = try Executor(graph: lowered, channelsLastPlan: false)
        for parameter in lowered.parameters.all {
            XCTAssertEqual(executor.weights[parameter.name], try floats(parameter.storage), parameter.name)
            let held = try XCTUnwrap(executor.graph.parameters[parameter.name])
            XCTAssertEqual(held.shape, parameter.shape)
            XCTAssertEqual(held.storage.byteCount, parameter.storage.byteCount)
            XCTAssertThrowsError(try held.storage.bytes()) { XCTAssertTrue("\($0)".contains("handed to the executor"), "\($0)") }
        }
        // The graphs it was given keep their bytes: only the executor's own copy lets go.
        XCTAssertEqual(try floats(try XCTUnwrap(graph.parameters["conv/kernel"]).storage).count, 72)
        let x = RuntimeTensor(shape: [2, 5, 5, 2], data: (0..<100).map { Float($0) / 50 - 1 })
        let first = try XCTUnwrap(try executor.run(["x": x])["dense"])
        XCTAssertEqual(try XCTUnwrap(try Executor(graph: lowered, channelsLastPlan: false).run(["x": x])["dense"]).data, first.data,
                       "the run does not read the graph's bytes")
        // The trainer's executor writes untrained tensors back from its graph: it keeps them.
        let training = try Executor(graph: lowered, fusing: false)
        XCTAssertEqual(try floats(try XCTUnwrap(training.graph.parameters["conv/kernel"]).storage), executor.weights["conv/kernel"])
    }

    func testLoweredKernelIsReadableInTheFilesOrder() throws {
        let graph = model()
        var lowered = graph
        try ExecutorLowering().run(&lowered)
        let kernel = try XCTUnwrap(lowered.parameters["conv/kernel"])
        XCTAssertEqual(kernel.shape, [4, 2, 3, 3])
        let original = try XCTUnwrap(Executor.storedFiltersLast(kernel))
        XCTAssertEqual(try floats(original), try floats(try XCTUnwrap(graph.parameters["conv/kernel"]).storage), "exactly the HWIO values as given")
        XCTAssertNil(Executor.storedFiltersLast(try XCTUnwrap(lowered.parameters["conv/bias"])), "a bias is not reordered")
        // Through the loader: the channels-last convolution's kernel in the file's order, the rest as lowered, all released.
        var held = lowered
        try held.inferShapes()
        let plan = ChannelsLastPlan(held, order: try held.topologicalOrder())
        let prepared = try Executor.loadWeights(&held, loading: nil, releasing: true, channelsLast: plan)
        XCTAssertEqual(prepared.convolutionForms, ["conv": .matrix(.filtersLast)])
        XCTAssertEqual(prepared.kernels["conv/kernel"]?.array, try floats(original))
        XCTAssertEqual(prepared.values["conv/bias"], try floats(try XCTUnwrap(lowered.parameters["conv/bias"]).storage))
        XCTAssertThrowsError(try held.parameters["conv/kernel"]?.storage.bytes())
        // Channels-first, the same kernel is the lowered OIHW one.
        var channelsFirst = lowered
        let oihw = try Executor.loadWeights(&channelsFirst, loading: nil, releasing: false)
        XCTAssertEqual(oihw.values["conv/kernel"], try floats(kernel.storage))
    }
}
