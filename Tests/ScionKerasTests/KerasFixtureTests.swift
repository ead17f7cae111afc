import HDF5
import ScionIR
import XCTest

@testable import ScionKeras

func readKeras(_ url: URL) throws -> Graph {
    url.pathExtension == "keras" ? try KerasModelReader.readArchive(at: url.path) : try KerasModelReader.readHDF5(at: url.path)
}

/// Every fixture written by real Keras 2 and Keras 3 reads, and Scion counts what Keras counted.
final class KerasFixtureTests: XCTestCase {
    /// The weights Keras counts: not the literals of keras.ops calls (a `__tensor__` or `__numpy__`
    /// operand, read as a constant node of type `Constant`), which Keras holds no variable for.
    static func kerasWeights(_ graph: Graph) -> [Parameter] {
        let literals = Set(graph.nodes.filter { graph.info.nodeTypes[$0.name] == "Constant" }.flatMap(\.parameters))
        return graph.parameters.all.filter { !literals.contains($0.name) }
    }

    func testEveryFixtureCountsMatchKeras() throws {
        let fixtures = try Repository.fixtureModels()
        XCTAssertGreaterThan(fixtures.count, 40, "fixtures are missing")
        for (url, reference) in fixtures {
            let graph = try readKeras(url)
            let name = url.lastPathComponent
            let weights = Self.kerasWeights(graph)
            XCTAssertEqual(weights.reduce(0) { $0 + $1.elementCount }, reference.totalParams, "total params of \(name)")
            if let trainable = reference.trainableParams {
                XCTAssertEqual(weights.reduce(0) { $0 + ($1.trainable ? $1.elementCount : 0) }, trainable, "trainable params of \(name)")
            }
        }
    }

    /// Keras's weight list, as (shape, trainable) pairs, equals Scion's: every weight found, none
    /// invented, each frozen or trainable as Keras says.
    func testEveryFixtureWeightMatchesKerasShapeAndTrainability() throws {
        for (url, reference) in try Repository.fixtureModels() {
            guard let weights = reference.weights else { continue }
            let graph = try readKeras(url)
            XCTAssertEqual(graph.layout, .channelsLast, url.path)
            // Weights-only files do not record trainability; compare shapes alone there.
            let known = graph.metadata["trainability"] != "unknown"
            let theirs = weights.map { "\($0.shape) \(known ? $0.trainable.map(String.init) ?? "?" : "?")" }.sorted()
            let ours = Self.kerasWeights(graph).map { "\($0.shape) \(known ? String($0.trainable) : "?")" }.sorted()
            XCTAssertEqual(ours, theirs, url.path)
        }
    }

    /// Output shape of every layer (nested ones too) equals what Keras reported.
    func testEveryLayerOutputShapeMatchesKeras() throws {
        var compared = 0
        for (url, reference) in try Repository.fixtureModels() {
            let graph = try readKeras(url)
            var byName: [String: Node] = [:]
            // A layer read as several nodes (TimeDistributed's fold, step, unfold) ends at the one named after it.
            for node in graph.nodes where byName[node.layer] == nil || node.name == node.layer { byName[node.layer] = node }
            // A Keras 2 config records no tensor shapes, so after a user's class or a Lambda (Python
            // code) nobody can say them: unknown there is the right answer, a wrong shape is not.
            let unknowable = Self.shapesAfterPythonLayers(graph)
            func check(_ layers: [KerasReference.Layer], scope: String) {
                for layer in layers {
                    let scoped = scope.isEmpty ? layer.name : "\(scope)/\(layer.name)"
                    if let inner = layer.layers {
                        check(inner, scope: scoped)
                        continue
                    }
                    guard layer.className != "InputLayer", let expected = layer.outputShapes?.first else { continue }
                    guard let node = byName[scoped] else {
                        XCTFail("\(url.lastPathComponent): no node for layer \(scoped)")
                        continue
                    }
                    // Keras 3's RandomCrop declares (height, width) but passes the image through at
                    // inference (it crops only while training): Scion's shapes are the computed ones.
                    if url.deletingLastPathComponent().lastPathComponent == "keras3", url.lastPathComponent.hasPrefix("cropping_layers."),
                       scoped.hasPrefix("random_crop") {
                        continue
                    }
                    let found = graph.values[node.outputs[0]]?.shape?.dimensions
                    if found == nil && unknowable.contains(node.name) { continue }
                    // A length Keras leaves unknown Scion may know: EinsumDense's `output_shape`
                    // (None, 4) makes Keras report (None, None, 4) for a sequence of 5.
                    let known = found.map { dimensions in
                        zip(dimensions, expected).map { $1 == nil ? nil : $0 } + dimensions.dropFirst(expected.count)
                    }
                    XCTAssertEqual(known, expected, "\(url.lastPathComponent): \(scoped)")
                    compared += 1
                }
            }
            check(reference.layers ?? [], scope: "")
        }
        XCTAssertGreaterThan(compared, 500)
    }

    func testNestedTransferModelIsFlattenedWithScopeAndFrozen() throws {
        for file in ["keras2/nested_transfer.h5", "keras3/nested_transfer.h5", "keras3/nested_transfer.keras",
                     "keras2/nested_functional.h5", "keras3/nested_functional.keras"] {
            let graph = try readKeras(Repository.fixtures.appendingPathComponent(file))
            XCTAssertEqual(graph.submodels.map(\.path), ["base"], file)
            XCTAssertEqual(graph.submodels.first?.trainable, false, file)
            let conv = try XCTUnwrap(graph.node(named: "base/base_conv1"), file)
            XCTAssertEqual(conv.scope, "base")
            XCTAssertFalse(conv.trainable)
            XCTAssertEqual(graph.parameters["base/base_conv1/kernel"]?.trainable, false, file)
            XCTAssertEqual(graph.parameters["head/kernel"]?.trainable, true, file)
        }
    }

    /// Keras 2 lists a nested model's trainable weights before its non-trainable ones; matching by
    /// position would give a BatchNormalization's gamma the moving mean's numbers.
    func testKeras2NestedWeightsAreMatchedByName() throws {
        let url = Repository.fixtures.appendingPathComponent("keras2/nested_transfer.h5")
        let graph = try readKeras(url)
        let file = try HDF5File(readingFrom: url.path)
        let group = try file.root.group("model_weights/base")
        for (parameter, stored) in [("base/base_bn1/moving_mean", "base_bn1/moving_mean:0"),
                                    ("base/base_bn2/gamma", "base_bn2/gamma:0"),
                                    ("base/base_conv2/bias", "base_conv2/bias:0")] {
            let ours = try XCTUnwrap(graph.parameters[parameter]).storage.bytes()
            XCTAssertEqual(ours, try group.dataset(stored).readBytes(), parameter)
        }
    }

    func testSharedLayerCallsUseOneSetOfWeights() throws {
        for file in ["keras2/shared_layer.h5", "keras3/shared_layer.keras"] {
            let graph = try readKeras(Repository.fixtures.appendingPathComponent(file))
            let calls = Dictionary(grouping: graph.nodes, by: \.layer)
                .filter { $0.value.count > 1 && !$0.value[0].parameters.isEmpty }
            XCTAssertEqual(calls.count, 2, "\(file): a shared Dense and a shared Conv2D")
            for (layer, nodes) in calls {
                XCTAssertEqual(Set(nodes.map(\.parameters)).count, 1, "\(file): \(layer)")
                XCTAssertNotEqual(nodes[0].inputs, nodes[1].inputs)
            }
        }
    }

    func testSplitLayerNamesAttributeIsJoined() throws {
        let url = Repository.fixtures.appendingPathComponent("keras2/many_layers.h5")
        let weights = try HDF5File(readingFrom: url.path).root.group("model_weights")
        XCTAssertFalse(weights.hasAttribute("layer_names"))
        XCTAssertTrue(weights.hasAttribute("layer_names1"), "the fixture must exercise the split")
        let graph = try readKeras(url)
        XCTAssertEqual(graph.nodes.count, 42, "every layer Keras listed, less the input")
    }

    func testReadingLoadsNoWeightBytes() throws {
        let graph = try readKeras(Repository.fixtures.appendingPathComponent("keras3/mobilenet_v2.keras"))
        XCTAssertGreaterThan(graph.parameters.count, 100)
        XCTAssertTrue(graph.parameters.all.allSatisfy { !$0.storage.isLoaded })
    }

    func testArchiveWeightsFollowObjectPaths() throws {
        let graph = try readKeras(Repository.fixtures.appendingPathComponent("keras3/conv2d_zoo.keras"))
        // Every weight lives under the layer's own name in the IR, whatever Keras's path was.
        for parameter in graph.parameters.all {
            let layer = parameter.name.split(separator: "/").dropLast().joined(separator: "/")
            XCTAssertNotNil(graph.nodes.first { $0.layer == layer }, parameter.name)
        }
    }

    func testWeightsOnlyFilesListTensorsWithoutArchitecture() throws {
        for file in ["keras2/weights_only.h5", "keras3/weights_only.weights.h5"] {
            let graph = try readKeras(Repository.fixtures.appendingPathComponent(file))
            XCTAssertFalse(graph.hasArchitecture, file)
            XCTAssertTrue(graph.nodes.isEmpty)
            XCTAssertEqual(graph.totalParameterCount, 4794, file)
        }
    }

    func testKeras2LambdaAndTFOpLambdaFromApplicationsAreInterpreted() throws {
        let inception = try readKeras(Repository.fixtures.appendingPathComponent("keras2/lambda_scale.h5"))
        XCTAssertTrue(inception.nodes.contains { if case .scaledResidual = $0.op { true } else { false } })
        let mobilenet = try readKeras(Repository.fixtures.appendingPathComponent("keras2/mobilenet_v3_small.h5"))
        XCTAssertFalse(mobilenet.nodes.contains { if case .opaque = $0.op { true } else { false } })
    }

    /// Python arithmetic in a model: Keras 2 writes `TFOpLambda` layers, Keras 3 operation nodes whose
    /// class names collide with merge layers. MobileNetV3's hard sigmoid is `relu6(x + 3) * (1 / 6)`.
    func testArithmeticWithConstantsIsRescaling() throws {
        for file in ["keras2/mobilenet_v3_small.h5", "keras3/mobilenet_v3_small.keras"] {
            let graph = try readKeras(Repository.fixtures.appendingPathComponent(file))
            let rescalings = graph.nodes.compactMap { node -> RescalingAttributes? in
                if case .rescaling(let attributes) = node.op, node.inputs.count == 1 { return attributes }
                return nil
            }
            XCTAssertTrue(rescalings.contains { $0.scale == [1] && $0.offset == [3] }, file)
            XCTAssertTrue(rescalings.contains { abs($0.scale[0] - 1.0 / 6.0) < 1e-6 && $0.offset == [0] }, file)
            XCTAssertFalse(graph.nodes.contains { if case .elementwise = $0.op { $0.inputs.count < 2 } else { false } }, file)
        }
    }

    func testSnakeCaseMatchesKeras() {
        XCTAssertEqual(kerasSnakeCase("BatchNormalization"), "batch_normalization")
        XCTAssertEqual(kerasSnakeCase("Conv2D"), "conv2d")
        XCTAssertEqual(kerasSnakeCase("DepthwiseConv2D"), "depthwise_conv2d")
        XCTAssertEqual(kerasSnakeCase("ReLU"), "re_lu")
        XCTAssertEqual(kerasSnakeCase("PReLU"), "p_re_lu")
        XCTAssertEqual(kerasSnakeCase("Conv2DTranspose"), "conv2d_transpose")
        XCTAssertEqual(kerasSnakeCase("GlobalAveragePooling2D"), "global_average_pooling2d")
    }
    /// Nodes whose output shape depends on a Lambda's or a user's class's output shape that the file
    /// does not record.
    static func shapesAfterPythonLayers(_ graph: Graph) -> Set<String> {
        var unknown = Set<String>()
        var unknownValues = Set<String>()
        for node in ((try? graph.topologicalOrder()) ?? Array(graph.nodes.indices)).map({ graph.nodes[$0] }) {
            var starts = false
            if case .opaque(let a) = node.op, a.domain == "keras", a.outputShapes == nil,
               a.registration != nil || a.type == "Lambda" { starts = true }
            if starts || node.inputs.contains(where: unknownValues.contains) {
                unknown.insert(node.name)
                unknownValues.formUnion(node.outputs)
            }
        }
        return unknown
    }
}
