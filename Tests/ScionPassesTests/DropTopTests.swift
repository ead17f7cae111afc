import Foundation
import ScionIR
import ScionKeras
@testable import ScionPasses
import XCTest

/// `--drop-top` removes the trailing classifier, as keras.applications' `include_top=False` does.
/// The old rule (walk back through rank ≤ 2 layers, cut after the first spatial one) kept MobileNet's
/// 1x1-convolution classifier on its pooled `(N,1,1,C)` map and cut text models at the Embedding,
/// dropping the LSTM. Every keras.applications family is checked against Keras itself in
/// Tests/Interop/check_drop_top.py.
final class DropTopTests: XCTestCase {
    func cutAfter(_ graph: Graph) throws -> String {
        var cut = graph
        try CutPass(.dropTop).run(&cut)
        try cut.verify()
        XCTAssertEqual(try CutPass.dropTopLayer(in: graph), cut.outputs.first)
        return cut.outputs.first ?? ""
    }

    func refusal(_ graph: Graph) -> String {
        var cut = graph
        do {
            try CutPass(.dropTop).run(&cut)
            return "cut after \(cut.outputs)"
        } catch {
            return "\(error)"
        }
    }

    /// image → conv → `features` (relu), then `head(...)` builds the classifier on it.
    func imageModel(_ head: (inout GraphSketch, String) -> Void) -> Graph {
        var sketch = GraphSketch(inputs: [("image", [nil, 8, 8, 3])])
        sketch.add("conv", Ops.conv(4, kernel: [3, 3]), ["image"], parameters: [("kernel", [3, 3, 3, 4]), ("bias", [4])])
        sketch.add("features", .activation(.plainRelu), ["conv"])
        head(&sketch, "features")
        return sketch.graph
    }

    /// MobileNet v1: GlobalAveragePooling2D(keepdims) → Dropout → 1x1 Conv2D `conv_preds` → Reshape → softmax.
    func testMobileNetConvolutionClassifierOnThePooledMapIsDropped() throws {
        let graph = imageModel { sketch, features in
            sketch.add("gap", Ops.globalAverage(keep: true), [features])
            sketch.add("dropout", .dropout(DropoutAttributes(rate: 0.001)), ["gap"])
            sketch.add("conv_preds", Ops.conv(5, kernel: [1, 1]), ["dropout"], parameters: [("kernel", [1, 1, 4, 5]), ("bias", [5])])
            sketch.add("reshape_2", .reshape(ReshapeAttributes(targetShape: [5])), ["conv_preds"])
            sketch.add("predictions", .activation(.softmax(axis: -1)), ["reshape_2"])
            sketch.outputs = ["predictions"]
        }
        XCTAssertEqual(try cutAfter(graph), "features")
    }

    /// MobileNetV3 (tf_keras spelling): after the pooled map, `Conv_2`, hard-swish as x · relu6(x + 3) / 6
    /// (two branches that meet again), Dropout, `Logits` 1x1 Conv2D, Flatten, softmax.
    func testMobileNetV3HeadWithHardSwishBranchesIsDropped() throws {
        let graph = imageModel { sketch, features in
            sketch.add("gap", Ops.globalAverage(keep: true), [features])
            sketch.add("Conv_2", Ops.conv(6, kernel: [1, 1]), ["gap"], parameters: [("kernel", [1, 1, 4, 6]), ("bias", [6])])
            sketch.add("plus3", .rescaling(RescalingAttributes(scale: [1], offset: [3])), ["Conv_2"])
            sketch.add("relu6", .activation(.relu6), ["plus3"])
            sketch.add("sixth", .rescaling(RescalingAttributes(scale: [1.0 / 6], offset: [0])), ["relu6"])
            sketch.add("hard_swish", .elementwise(.multiply), ["Conv_2", "sixth"])
            sketch.add("dropout", .dropout(DropoutAttributes(rate: 0.2)), ["hard_swish"])
            sketch.add("Logits", Ops.conv(5, kernel: [1, 1]), ["dropout"], parameters: [("kernel", [1, 1, 6, 5]), ("bias", [5])])
            sketch.add("flatten", .flatten(FlattenAttributes(layout: .channelsLast)), ["Logits"])
            sketch.add("Predictions", .activation(.softmax(axis: -1)), ["flatten"])
            sketch.outputs = ["Predictions"]
        }
        XCTAssertEqual(try cutAfter(graph), "features")
    }

    /// VGG: Flatten → fc1 → fc2 → predictions all go; ConvNeXt: pooling → LayerNormalization → Dense.
    func testFlattenAndNormalisedHeadsAreDropped() throws {
        let vgg = imageModel { sketch, features in
            sketch.add("flatten", .flatten(FlattenAttributes(layout: .channelsLast)), [features])
            sketch.add("fc1", Ops.dense(8, activation: .plainRelu), ["flatten"], parameters: [("kernel", [256, 8]), ("bias", [8])])
            sketch.add("predictions", Ops.dense(3, activation: .softmax(axis: -1)), ["fc1"], parameters: [("kernel", [8, 3]), ("bias", [3])])
            sketch.outputs = ["predictions"]
        }
        XCTAssertEqual(try cutAfter(vgg), "features")
        let convnext = imageModel { sketch, features in
            sketch.add("head_gap", Ops.globalAverage(), [features])
            sketch.add("head_layernorm", .layerNormalization(LayerNormalizationAttributes(axes: [-1], epsilon: 1e-6, center: true, scale: true)), ["head_gap"],
                       parameters: [("gamma", [4]), ("beta", [4])])
            sketch.add("head_dense", Ops.dense(3), ["head_layernorm"], parameters: [("kernel", [4, 3]), ("bias", [3])])
            sketch.outputs = ["head_dense"]
        }
        XCTAssertEqual(try cutAfter(convnext), "features")
    }

    /// Embedding → LSTM (opaque, shape known from its config) → Dropout → Dense: the LSTM stays.
    func testTextModelKeepsTheRecurrentLayer() throws {
        var sketch = GraphSketch(inputs: [("tokens", [nil, 7])])
        sketch.inputs[0].dtype = .int32
        sketch.add("embedding", .embedding(EmbeddingAttributes(inputDimension: 20, outputDimension: 4)), ["tokens"],
                   parameters: [("embeddings", [20, 4])])
        sketch.add("lstm", .opaque(OpaqueAttributes(domain: "keras", type: "LSTM", configuration: #"{"units": 6}"#,
                                                    outputShapes: [Shape([nil, 6])])), ["embedding"])
        sketch.add("dropout", .dropout(DropoutAttributes(rate: 0.5)), ["lstm"])
        sketch.add("dense", Ops.dense(3, activation: .softmax(axis: -1)), ["dropout"], parameters: [("kernel", [6, 3]), ("bias", [3])])
        sketch.outputs = ["dense"]
        XCTAssertEqual(try cutAfter(sketch.graph), "lstm")
    }

    func testWhenItCannotTellItRefusesNamingTheLayers() {
        var mlp = GraphSketch(inputs: [("x", [nil, 10])])
        mlp.add("dense", Ops.dense(8, activation: .plainRelu), ["x"], parameters: [("kernel", [10, 8]), ("bias", [8])])
        mlp.add("dense_1", Ops.dense(3), ["dense"], parameters: [("kernel", [8, 3]), ("bias", [3])])
        mlp.outputs = ["dense_1"]
        let flat = refusal(mlp.graph)
        XCTAssertTrue(flat.contains("cannot tell where the classifier starts") && flat.contains("dense, dense_1"), flat)

        // Two feature maps pooled and merged: which one is "the" base?
        let branches = imageModel { sketch, features in
            sketch.add("other", Ops.conv(4, kernel: [1, 1]), ["image"], parameters: [("kernel", [1, 1, 3, 4]), ("bias", [4])])
            sketch.add("gap", Ops.globalAverage(), [features])
            sketch.add("gap_other", Ops.globalAverage(), ["other"])
            sketch.add("concat", .concatenate(ConcatenateAttributes(axis: -1)), ["gap", "gap_other"])
            sketch.add("dense", Ops.dense(3), ["concat"], parameters: [("kernel", [8, 3]), ("bias", [3])])
            sketch.outputs = ["dense"]
        }
        let merged = refusal(branches)
        XCTAssertTrue(merged.contains("read several feature layers (features, other)"), merged)

        // Already a base: nothing to drop, said so instead of a silent no-op.
        let base = imageModel { sketch, features in sketch.outputs = [features] }
        XCTAssertTrue(refusal(base).contains("features: the output layer (ReLU with output (None, 8, 8, 4)) is not a classifier layer"),
                      refusal(base))
    }

    /// tf2onnx flattens NHWC features as Transpose then Reshape: the Transpose goes with the head.
    func testTransposeBeforeAFlatteningReshapeBelongsToTheHead() throws {
        let graph = imageModel { sketch, features in
            sketch.add("to_nhwc", .transpose(TransposeAttributes(permutation: [0, 2, 3, 1])), [features])
            sketch.add("flat", .reshape(ReshapeAttributes(targetShape: [-1, 256], includesBatch: true)), ["to_nhwc"])
            sketch.add("fc", .onnx(.matMul), ["flat"], parameters: [("kernel", [256, 3])])
            sketch.outputs = ["fc"]
        }
        XCTAssertEqual(try cutAfter(graph), "features")
    }

    /// Real files: Keras's MobileNets (v1's 1x1-conv head, v3's in both spellings) and the text fixtures.
    func testFixturesAreCutWhereIncludeTopFalseEnds() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures")
        for (file, layer) in [("keras3/mobilenet.keras", "conv_pw_13_relu"), ("keras2/mobilenet.h5", "conv_pw_13_relu"),
                              ("keras3/mobilenet_v3_small.keras", "activation_17"), ("keras2/mobilenet_v3_small.h5", "multiply_17"),
                              ("keras3/mobilenet_v2.keras", "out_relu"), ("keras2/teachable_machine.h5", "sequential_1/model1/conv_pw_13_relu"),
                              ("keras3/text_rnn.keras", "gru"), ("keras2/text_rnn.h5", "gru"), ("keras3/attention.keras", "norm"),
                              ("keras3/embedding.keras", "embed")] {
            let url = fixtures.appendingPathComponent(file)
            let graph = file.hasSuffix(".keras") ? try KerasModelReader.readArchive(at: url.path) : try KerasModelReader.readHDF5(at: url.path)
            XCTAssertEqual(try cutAfter(graph), layer, file)
        }
    }
}
