import Foundation
import ScionIR
import ScionPasses
@testable import ScionRuntime
import XCTest

/// The trainer as a whole: what it caches, that it learns, that frozen tensors keep their bytes,
/// that trained tensors go back in the model's own layout, and BatchNormalization's moving averages.
/// Keras's own updates are compared in Tests/Interop/check_finetune.py; every op's gradient in
/// GradientCheckTests.
final class TrainerTests: XCTestCase {
    var random = SplitMix64(seed: 3)

    func parameter(_ name: String, _ role: String, _ shape: [Int], trainable: Bool, offset: Float = 0) -> Parameter {
        let values = (0..<shape.reduce(1, *)).map { _ in random.unit() - 0.5 + offset }
        return Parameter(name: name, role: ParameterRole(rawValue: role), shape: shape, dtype: .float32, trainable: trainable,
                         storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) }))
    }

    /// x [N, 4] → frozen Dense 4→4 (the base) → Dense 4→5 relu → Dropout → Dense 5→3 softmax.
    func denseModel(dropout: Float = 0) -> Graph {
        var parameters = ParameterTable()
        for (layer, inputs, units, trainable) in [("base", 4, 4, false), ("hidden", 4, 5, true), ("out", 5, 3, true)] {
            parameters.add(parameter("\(layer)/kernel", "kernel", [inputs, units], trainable: trainable))
            parameters.add(parameter("\(layer)/bias", "bias", [units], trainable: trainable))
        }
        let nodes = [
            Node(name: "base", op: .dense(DenseAttributes(units: 4)), inputs: ["x"], outputs: ["base"],
                 parameters: ["base/kernel", "base/bias"], trainable: false),
            Node(name: "hidden", op: .dense(DenseAttributes(units: 5, activation: .plainRelu)), inputs: ["base"], outputs: ["hidden"],
                 parameters: ["hidden/kernel", "hidden/bias"]),
            Node(name: "drop", op: .dropout(DropoutAttributes(rate: dropout)), inputs: ["hidden"], outputs: ["drop"]),
            Node(name: "out", op: .dense(DenseAttributes(units: 3, activation: .softmax(axis: -1))), inputs: ["drop"], outputs: ["out"],
                 parameters: ["out/kernel", "out/bias"]),
        ]
        return Graph(name: "head", inputs: [ValueInfo(name: "x", shape: Shape([nil, 4]), dtype: .float32)], outputs: ["out"],
                     nodes: nodes, parameters: parameters)
    }

    /// A Keras-layout (channels-last) CNN: x [N, 5, 5, 2] → Conv2D 3x3 (HWIO kernel) → BatchNormalization
    /// → ReLU → GlobalAveragePooling2D → Dense 3 softmax; `convTrainable` picks what trains.
    func kerasCNN(convTrainable: Bool) -> Graph {
        var parameters = ParameterTable()
        parameters.add(parameter("conv/kernel", "kernel", [3, 3, 2, 4], trainable: convTrainable))
        parameters.add(parameter("conv/bias", "bias", [4], trainable: convTrainable))
        for role in ["gamma", "beta", "moving_mean", "moving_variance"] {
            let statistic = role.hasPrefix("moving")
            parameters.add(parameter("bn/\(role)", role, [4], trainable: convTrainable && !statistic, offset: role == "moving_variance" || role == "gamma" ? 1 : 0))
        }
        parameters.add(parameter("dense/kernel", "kernel", [4, 3], trainable: true))
        parameters.add(parameter("dense/bias", "bias", [3], trainable: true))
        let nodes = [
            Node(name: "conv", op: .conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same,
                                                        layout: .channelsLast)),
                 inputs: ["x"], outputs: ["conv"], parameters: ["conv/kernel", "conv/bias"], trainable: convTrainable),
            Node(name: "bn", op: .batchNormalization(BatchNormalizationAttributes(axis: -1, epsilon: 1e-3, momentum: 0.9, center: true, scale: true)),
                 inputs: ["conv"], outputs: ["bn"], parameters: ["bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"], trainable: convTrainable),
            Node(name: "relu", op: .activation(.plainRelu), inputs: ["bn"], outputs: ["relu"]),
            Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsLast)), inputs: ["relu"], outputs: ["gap"]),
            Node(name: "dense", op: .dense(DenseAttributes(units: 3, activation: .softmax(axis: -1))), inputs: ["gap"], outputs: ["dense"],
                 parameters: ["dense/kernel", "dense/bias"]),
        ]
        return Graph(name: "cnn", inputs: [ValueInfo(name: "x", shape: Shape([nil, 5, 5, 2]), dtype: .float32)], outputs: ["dense"],
                     nodes: nodes, parameters: parameters)
    }

    /// A model as the executor and trainer take it: the lowering `Model.executor()` and `FineTuning`
    /// run (channels-first, grouped convolutions).
    func lowered(_ graph: Graph) throws -> Graph {
        var result = graph
        try ExecutorLowering().run(&result)
        return result
    }

    /// Three Gaussian blobs in `width` dimensions (the label picks which dimension is raised).
    func blobs(_ count: Int, shape: [Int] = [4]) -> (RuntimeTensor, RuntimeTensor) {
        var generator = SplitMix64(seed: 9)
        let width = shape.reduce(1, *)
        var x: [Float] = [], y: [Float] = []
        for index in 0..<count {
            let label = index % 3
            for position in 0..<width { x.append((position % 3 == label ? 2 : 0) + (generator.unit() - 0.5)) }
            y.append(Float(label))
        }
        return (RuntimeTensor(shape: [count] + shape, data: x), RuntimeTensor(shape: [count], data: y))
    }

    func testTheFrozenPrefixIsCachedAndTheFrontierMovesWithWhatTrains() throws {
        let head = try Trainer(graph: denseModel())
        XCTAssertEqual(head.frontier, ["base"])
        XCTAssertEqual(head.trainedNodeCount, 3)
        let (x, _) = blobs(6)
        XCTAssertTrue(try head.features(of: x).isCached)
        XCTAssertFalse(try head.features(of: x, memoryLimit: 16).isCached, "over the limit, the prefix reruns per batch")
        let cnn = try Trainer(graph: lowered(kerasCNN(convTrainable: false)))
        XCTAssertEqual(cnn.trainableParameters.sorted(), ["dense/bias", "dense/kernel"])
        XCTAssertTrue(cnn.trainingBatchNorms.isEmpty, "a frozen BatchNormalization runs in inference mode")
        let whole = try Trainer(graph: lowered(kerasCNN(convTrainable: true)))
        XCTAssertEqual(whole.trainingBatchNorms, ["bn"])
        XCTAssertEqual(whole.prefixNodeCount, 1, "only the input's layout Transpose is left to cache")
    }

    func testTheModelLearnsAndFrozenTensorsKeepTheirBytes() throws {
        let graph = denseModel(dropout: 0.1)
        var trainer = try Trainer(graph: graph)
        let (x, y) = blobs(90)
        let features = try trainer.features(of: x)
        var options = Trainer.Options()
        options.epochs = 40
        options.batchSize = 16
        options.learningRate = 0.05
        let before = try trainer.evaluate(features, targets: y, loss: options.loss)
        var batches = 0
        let history = try trainer.fit(features, targets: y, options: options, onBatch: { _ in batches += 1 })
        XCTAssertEqual(batches, 40 * 6)
        let after = try trainer.evaluate(features, targets: y, loss: options.loss)
        XCTAssertLessThan(after.loss, before.loss / 4, "\(history.map(\.loss))")
        XCTAssertGreaterThan(after.accuracy ?? 0, 0.95)
        let trained = trainer.trainedGraph()
        for name in ["base/kernel", "base/bias"] {
            XCTAssertEqual(try trained.parameters[name]?.storage.bytes(), try graph.parameters[name]?.storage.bytes(), name)
        }
        XCTAssertNotEqual(try trained.parameters["out/kernel"]?.storage.bytes(), try graph.parameters["out/kernel"]?.storage.bytes())
    }

    /// Trained kernels go back in Keras's HWIO layout: the executor on the written-back model gives
    /// the trainer's own predictions (a wrong element order would not).
    func testTrainedTensorsReturnInTheModelsOwnLayout() throws {
        let graph = kerasCNN(convTrainable: true)
        var trainer = try Trainer(graph: lowered(graph))
        let (x, y) = blobs(24, shape: [5, 5, 2])
        let features = try trainer.features(of: x)
        var options = Trainer.Options()
        options.epochs = 3
        options.batchSize = 8
        options.learningRate = 0.05
        _ = try trainer.fit(features, targets: y, options: options)
        let trained = try ExecutorLowering().writeBack(trainer.trainedTensors, into: graph)
        XCTAssertEqual(trained.parameters["conv/kernel"]?.shape, [3, 3, 2, 4])
        let expected = try trainer.predict(features)
        let actual = try XCTUnwrap(try Executor(graph: lowered(trained)).run(["x": x])["dense"])
        let scale = expected.data.map(abs).max() ?? 1
        XCTAssertLessThanOrEqual(zip(actual.data, expected.data).map { abs($0 - $1) }.max() ?? 1, 1e-5 * scale)
    }

    /// moving = moving · momentum + batch · (1 - momentum), with the batch's biased variance.
    func testMovingAveragesFollowKerasFormula() throws {
        let graph = kerasCNN(convTrainable: true)
        var trainer = try Trainer(graph: lowered(graph))
        let (x, y) = blobs(6, shape: [5, 5, 2])
        let features = try trainer.features(of: x)
        let meanBefore = try XCTUnwrap(trainer.executor.weights["bn/moving_mean"])
        let varianceBefore = try XCTUnwrap(trainer.executor.weights["bn/moving_variance"])
        // The batch's statistics of the convolution's output, from the executor on the model as given.
        var tapped = graph
        tapped.outputs = ["conv"]
        let conv = try XCTUnwrap(try Executor(graph: lowered(tapped)).run(["x": x])["conv"])
        var options = Trainer.Options()
        options.epochs = 1
        options.batchSize = 6
        options.learningRate = 0
        _ = try trainer.fit(features, targets: y, options: options)
        for c in 0..<4 {
            let values = stride(from: c, to: conv.count, by: 4).map { Double(conv.data[$0]) }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            XCTAssertEqual(Double(trainer.executor.weights["bn/moving_mean"]![c]), Double(meanBefore[c]) * 0.9 + mean * 0.1, accuracy: 1e-5)
            XCTAssertEqual(Double(trainer.executor.weights["bn/moving_variance"]![c]), Double(varianceBefore[c]) * 0.9 + variance * 0.1, accuracy: 1e-5)
        }
        let trained = try ExecutorLowering().writeBack(trainer.trainedTensors, into: graph)
        XCTAssertNotEqual(try trained.parameters["bn/moving_mean"]?.storage.bytes(), try graph.parameters["bn/moving_mean"]?.storage.bytes())
    }

    /// Binary cross-entropy through a sigmoid (the stable p - y gradient), binary accuracy at 0.5.
    func testBinaryCrossEntropyLearns() throws {
        var parameters = ParameterTable()
        parameters.add(parameter("out/kernel", "kernel", [4, 1], trainable: true))
        parameters.add(parameter("out/bias", "bias", [1], trainable: true))
        let graph = Graph(name: "binary", inputs: [ValueInfo(name: "x", shape: Shape([nil, 4]), dtype: .float32)], outputs: ["out"],
                          nodes: [Node(name: "out", op: .dense(DenseAttributes(units: 1, activation: .sigmoid)), inputs: ["x"], outputs: ["out"],
                                       parameters: ["out/kernel", "out/bias"])], parameters: parameters)
        var trainer = try Trainer(graph: graph)
        let (x, labels) = blobs(60)
        let y = RuntimeTensor(shape: [60, 1], data: labels.data.map { $0 == 0 ? 1 : 0 })
        let features = try trainer.features(of: x)
        var options = Trainer.Options()
        options.loss = .binaryCrossentropy
        options.epochs = 30
        options.batchSize = 10
        options.learningRate = 0.05
        let before = try trainer.evaluate(features, targets: y, loss: .binaryCrossentropy)
        _ = try trainer.fit(features, targets: y, options: options)
        let after = try trainer.evaluate(features, targets: y, loss: .binaryCrossentropy)
        XCTAssertLessThan(after.loss, before.loss / 3)
        XCTAssertGreaterThan(after.accuracy ?? 0, 0.95)
    }

    /// A graph that is not lowered is refused naming the node, never run in the wrong layout.
    func testAGraphNotLoweredIsRefusedNamingTheNode() throws {
        XCTAssertThrowsError(try Trainer(graph: kerasCNN(convTrainable: true))) { error in
            XCTAssertEqual((error as? RuntimeError)?.subject, "conv", "\(error)")
            XCTAssertTrue("\(error)".contains("channels-last"), "\(error)")
        }
        var pooled = kerasCNN(convTrainable: false)
        pooled.nodes[0].op = .conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same,
                                                  layout: .channelsFirst))
        XCTAssertThrowsError(try Executor(graph: pooled)) { error in
            XCTAssertEqual((error as? RuntimeError)?.subject, "gap", "\(error)")
        }
        var depthwise = kerasCNN(convTrainable: false)
        depthwise.nodes[0].op = .depthwiseConv(DepthwiseConvAttributes(kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same,
                                                                       depthMultiplier: 2, useBias: true, activation: .linear,
                                                                       layout: .channelsFirst))
        XCTAssertThrowsError(try Executor(graph: depthwise)) { error in
            XCTAssertEqual((error as? RuntimeError)?.subject, "conv", "\(error)")
            XCTAssertTrue("\(error)".contains("grouped"), "\(error)")
        }
    }

    func testNothingTrainableIsRefused() throws {
        var graph = denseModel()
        for name in graph.parameters.names { graph.parameters[name]?.trainable = false }
        XCTAssertThrowsError(try Trainer(graph: graph)) { error in
            XCTAssertTrue("\(error)".contains("has no trainable weights"), "\(error)")
        }
    }
}
