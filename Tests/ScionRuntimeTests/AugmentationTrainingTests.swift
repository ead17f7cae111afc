import Foundation
import ScionIR
import ScionPasses
@testable import ScionRuntime
import XCTest

/// Keras's augmentation layers in the trainer: each transforms its input while training, the same
/// way for the same seed and differently for another; at inference, and with augmentation off,
/// each is the identity. (Their statistics against Keras's fit(): Tests/Interop/finetune_augmentation.py.)
final class AugmentationTrainingTests: XCTestCase {
    /// Each augmentation layer, in the order the transfer-learning guide stacks them, with settings
    /// as Keras writes them.
    let layers: [(AugmentationKind, String)] = [
        (.randomFlip, #"{"mode": "horizontal_and_vertical"}"#),
        (.randomRotation, #"{"factor": 0.1, "fill_mode": "reflect", "interpolation": "bilinear"}"#),
        (.randomZoom, #"{"height_factor": [-0.3, 0.2], "width_factor": null, "fill_mode": "constant", "fill_value": 5.0}"#),
        (.randomTranslation, #"{"height_factor": 0.2, "width_factor": 0.2, "fill_mode": "wrap", "interpolation": "nearest"}"#),
        (.randomContrast, #"{"factor": 0.3, "value_range": [0, 255]}"#),
        (.randomBrightness, #"{"factor": 0.2, "value_range": [0, 255]}"#),
        (.gaussianNoise, #"{"stddev": 0.5}"#),
        (.gaussianDropout, #"{"rate": 0.3}"#),
    ]

    /// x [N, 6, 7, 2] channels-last → the augmentation layers → GlobalAveragePooling2D → Dense 3, lowered.
    func model() throws -> Graph {
        var parameters = ParameterTable()
        var random = SplitMix64(seed: 1)
        for (name, shape) in [("dense/kernel", [2, 3]), ("dense/bias", [3])] {
            let values = (0..<shape.reduce(1, *)).map { _ in random.unit() - 0.5 }
            parameters.add(Parameter(name: name, role: ParameterRole(rawValue: name.hasSuffix("kernel") ? "kernel" : "bias"), shape: shape,
                                     dtype: .float32, trainable: true, storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
        }
        var nodes: [Node] = []
        var previous = "x"
        for (kind, configuration) in layers {
            let name = kind.rawValue.lowercased()
            nodes.append(Node(name: name, op: .augmentation(AugmentationAttributes(kind: kind, configuration: configuration)),
                              inputs: [previous], outputs: [name]))
            previous = name
        }
        nodes.append(Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsLast)),
                          inputs: [previous], outputs: ["gap"]))
        nodes.append(Node(name: "dense", op: .dense(DenseAttributes(units: 3, activation: .softmax(axis: -1))), inputs: ["gap"],
                          outputs: ["dense"], parameters: ["dense/kernel", "dense/bias"]))
        var graph = Graph(name: "augmented", inputs: [ValueInfo(name: "x", shape: Shape([nil, 6, 7, 2]), dtype: .float32)],
                          outputs: ["dense"], nodes: nodes, parameters: parameters)
        try ExecutorLowering().run(&graph)
        return graph
    }

    /// Pixel values in [0, 255], as the guide's images.
    func images() -> RuntimeTensor {
        var random = SplitMix64(seed: 2)
        return RuntimeTensor(shape: [4, 6, 7, 2], data: (0..<(4 * 6 * 7 * 2)).map { _ in random.uniform(0, 255) })
    }

    /// Each augmentation layer's output in one forward pass.
    func outputs(_ trainer: Trainer, training: Bool, seed: UInt64) throws -> [String: RuntimeTensor] {
        var random = SplitMix64(seed: seed)
        let batch = try trainer.frontierBatch(try trainer.features(of: images()), rows: Array(0..<4))
        let tape = try trainer.forward(batch, training: training, random: &random)
        var result: [String: RuntimeTensor] = [:]
        for node in trainer.graph.nodes {
            if case .augmentation = node.op, let input = node.inputs.first, let output = node.outputs.first {
                result[node.name] = tape.values[output]
                result[node.name + " input"] = tape.values[input]
            }
        }
        return result
    }

    func testEachLayerAugmentsTheSameWayForASeedAndDifferentlyForAnother() throws {
        let trainer = try Trainer(graph: try model())
        let first = try outputs(trainer, training: true, seed: 7), again = try outputs(trainer, training: true, seed: 7)
        let other = try outputs(trainer, training: true, seed: 8)
        for (kind, _) in layers {
            let name = kind.rawValue.lowercased()
            let output = try XCTUnwrap(first[name], name), input = try XCTUnwrap(first[name + " input"], name)
            XCTAssertEqual(output.shape, input.shape, name)
            XCTAssertNotEqual(output.data, input.data, "\(name) changed nothing while training")
            XCTAssertEqual(again[name]?.data, output.data, "\(name) is not deterministic for a seed")
            XCTAssertNotEqual(other[name]?.data, output.data, "\(name) gave the same transform for another seed")
            XCTAssertTrue(output.data.allSatisfy(\.isFinite), name)
        }
    }

    func testEachLayerIsTheIdentityAtInferenceAndWithAugmentationOff() throws {
        let graph = try model()
        for (trainer, training) in [(try Trainer(graph: graph), false), (try Trainer(graph: graph, augmenting: false), true)] {
            let values = try outputs(trainer, training: training, seed: 7)
            for (kind, _) in layers {
                let name = kind.rawValue.lowercased()
                XCTAssertEqual(values[name]?.data, values[name + " input"]?.data, "\(name), training \(training)")
            }
        }
    }

    func testAugmentationKeepsTheImageLayoutAndTheRange() throws {
        // Contrast and Brightness clip to Keras's value_range; a flip of a channels-first image moves
        // whole rows or columns of one channel.
        let trainer = try Trainer(graph: try model())
        let values = try outputs(trainer, training: true, seed: 11)
        for name in ["randomcontrast", "randombrightness"] {
            XCTAssertTrue(try XCTUnwrap(values[name]).data.allSatisfy { (0...255).contains($0) }, name)
        }
        let input = try XCTUnwrap(values["randomflip input"]), output = try XCTUnwrap(values["randomflip"])
        XCTAssertEqual(input.shape, [4, 2, 6, 7], "the lowered graph runs channels-first")
        for sample in 0..<4 {
            for channel in 0..<2 {
                let plane = (sample * 2 + channel) * 42
                XCTAssertEqual(Set(input.data[plane..<(plane + 42)]), Set(output.data[plane..<(plane + 42)]),
                               "a flip permutes one image channel's pixels")
            }
        }
    }
}
