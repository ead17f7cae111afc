import Foundation
import ScionIR
import ScionPasses
@testable import ScionRuntime
import XCTest

/// Augmentation and the frozen base's feature cache: augmentation in front of a frozen layer makes the
/// frozen layer run every batch (and `TrainingAugmentation` names both, for finetune's note);
/// augmentation after the frozen part keeps the frozen part cached; with augmentation off the
/// augmentation layers are deterministic and the cache covers them.
final class AugmentationCacheTests: XCTestCase {
    /// x [N, 6, 6, 1] → (noise before) → conv 3x3 (frozen) → (noise after) → GAP → Dense 2 (trainable).
    func model(noiseBeforeConv: Bool) throws -> Graph {
        var parameters = ParameterTable()
        var random = SplitMix64(seed: 5)
        for (name, shape, trainable) in [("conv/kernel", [3, 3, 1, 4], false), ("conv/bias", [4], false),
                                         ("dense/kernel", [4, 2], true), ("dense/bias", [2], true)] {
            let values = (0..<shape.reduce(1, *)).map { _ in random.unit() - 0.5 }
            parameters.add(Parameter(name: name, role: ParameterRole(rawValue: name.hasSuffix("kernel") ? "kernel" : "bias"), shape: shape,
                                     dtype: .float32, trainable: trainable, storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
        }
        let noise = Op.augmentation(AugmentationAttributes(kind: .gaussianNoise, configuration: #"{"stddev": 0.5}"#))
        let conv = Op.conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same, layout: .channelsLast))
        var nodes: [Node] = []
        if noiseBeforeConv {
            nodes.append(Node(name: "noise", op: noise, inputs: ["x"], outputs: ["noise"]))
            nodes.append(Node(name: "conv", op: conv, inputs: ["noise"], outputs: ["conv"], parameters: ["conv/kernel", "conv/bias"]))
            nodes.append(Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsLast)),
                              inputs: ["conv"], outputs: ["gap"]))
        } else {
            nodes.append(Node(name: "conv", op: conv, inputs: ["x"], outputs: ["conv"], parameters: ["conv/kernel", "conv/bias"]))
            nodes.append(Node(name: "noise", op: noise, inputs: ["conv"], outputs: ["noise"]))
            nodes.append(Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsLast)),
                              inputs: ["noise"], outputs: ["gap"]))
        }
        nodes.append(Node(name: "dense", op: .dense(DenseAttributes(units: 2, activation: .softmax(axis: -1))), inputs: ["gap"],
                          outputs: ["dense"], parameters: ["dense/kernel", "dense/bias"]))
        return Graph(name: "cached", inputs: [ValueInfo(name: "x", shape: Shape([nil, 6, 6, 1]), dtype: .float32)],
                     outputs: ["dense"], nodes: nodes, parameters: parameters)
    }

    func lowered(_ graph: Graph) throws -> Graph {
        var graph = graph
        try ExecutorLowering().run(&graph)
        return graph
    }

    func testAugmentationBeforeAFrozenLayerEndsTheCache() throws {
        let graph = try model(noiseBeforeConv: true)
        let found = try TrainingAugmentation.augmentationBeforeFrozenLayers(graph)
        XCTAssertEqual(found.augmentations, ["noise"])
        XCTAssertEqual(found.frozen, ["conv"])
        let trainer = try Trainer(graph: try lowered(graph))
        XCTAssertFalse(trainer.prefixHasWeights, "the frozen conv was cached behind the noise: \(trainer.frontier)")
        // Off, the noise is the identity: the conv is cached again.
        XCTAssertTrue(try Trainer(graph: try lowered(graph), augmenting: false).prefixHasWeights)
    }

    func testAugmentationAfterTheFrozenPartKeepsTheCache() throws {
        let graph = try model(noiseBeforeConv: false)
        let found = try TrainingAugmentation.augmentationBeforeFrozenLayers(graph)
        XCTAssertEqual(found.augmentations, [])
        XCTAssertEqual(found.frozen, [])
        let trainer = try Trainer(graph: try lowered(graph))
        XCTAssertTrue(trainer.prefixHasWeights, "the frozen conv is not cached: \(trainer.frontier)")
        let features = try trainer.features(of: RuntimeTensor(shape: [3, 6, 6, 1], data: (0..<108).map { Float($0) }))
        XCTAssertTrue(features.isCached)
    }
}
