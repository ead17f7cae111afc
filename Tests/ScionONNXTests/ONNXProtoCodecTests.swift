import Foundation
import ScionIR
import ScionONNX
import XCTest

/// The protobuf codec against real ONNX files (from the onnx wheel's backend test data, see
/// Resources/README.md), against onnx's own checker, and with storage-backed weights.
final class ONNXProtoCodecTests: XCTestCase {
    private typealias Support = ONNXProtoTestSupport
    private static let fixtures = [
        "pytorch_conv2d.onnx", "pytorch_operator_mm.onnx", "string_normalizer.onnx", "sequence_model.onnx",
        "light_bvlc_alexnet.onnx",
    ]

    // MARK: Real files. Expected numbers came from onnx's Python API (onnx 1.23.2: onnx.load,
    // numpy_helper.to_array).

    func testDecodesPyTorchConvolution() throws {
        let model = try ONNXProtoCodec.decode(contentsOf: Support.resource("pytorch_conv2d.onnx"))
        XCTAssertEqual(model.irVersion, 3)
        XCTAssertEqual(model.producerName, "pytorch")
        XCTAssertEqual(model.producerVersion, "0.3")
        XCTAssertEqual(model.operatorSets, [ONNXOperatorSet(domain: "", version: 6)])
        XCTAssertEqual(model.defaultOpset, 6)
        let graph = model.graph
        XCTAssertEqual(graph.name, "torch-jit-export")
        XCTAssertEqual(graph.nodes.map(\.opType), ["Conv"])
        let conv = try XCTUnwrap(graph.nodes.first)
        XCTAssertEqual(conv.inputs, ["0", "1", "2"])
        XCTAssertEqual(conv.outputs, ["3"])
        XCTAssertEqual(conv.attributes.map(\.name), ["dilations", "group", "kernel_shape", "pads", "strides"])
        guard case .ints(let kernel) = conv.attribute("kernel_shape"), case .int(let group) = conv.attribute("group"),
              case .ints(let pads) = conv.attribute("pads") else {
            return XCTFail("unexpected attribute kinds \(conv.attributes)")
        }
        XCTAssertEqual(kernel, [3, 2])
        XCTAssertEqual(group, 1)
        XCTAssertEqual(pads, [0, 0, 0, 0])

        XCTAssertEqual(graph.initializers.map(\.name), ["1", "2"])
        XCTAssertEqual(graph.initializers.map(\.dimensions), [[4, 3, 3, 2], [4]])
        XCTAssertEqual(graph.initializers.map(\.dataType), [1, 1])
        let weights = try XCTUnwrap(Support.bytes(graph.initializers.first))
        let bias = try XCTUnwrap(Support.bytes(graph.initializers.last))
        XCTAssertEqual(weights.count, 288)
        XCTAssertEqual(bias.count, 16)
        XCTAssertEqual(Array(weights.prefix(4)), [27, 95, 18, 190])  // -0.14294092 as float32
        XCTAssertEqual(weights.reduce(0) { $0 + Int($1) }, 35604)
        XCTAssertEqual(bias.reduce(0) { $0 + Int($1) }, 1866)

        XCTAssertEqual(graph.inputs.map(\.name), ["0", "1", "2"])
        XCTAssertEqual(graph.outputs, [ONNXValueInfo(name: "3", elementType: 1,
                                                     shape: [.value(2), .value(4), .value(5), .value(4)])])
    }

    func testDecodesTensorFloatIntStringAndStringListAttributes() throws {
        let product = try ONNXProtoCodec.decode(contentsOf: Support.resource("pytorch_operator_mm.onnx"))
        XCTAssertEqual(product.graph.nodes.map(\.opType), ["Constant", "Gemm"])
        guard case .tensor(let constant) = product.graph.nodes[0].attribute("value"),
              case .float(let alpha) = product.graph.nodes[1].attribute("alpha"),
              case .float(let beta) = product.graph.nodes[1].attribute("beta"),
              case .int(let broadcast) = product.graph.nodes[1].attribute("broadcast") else {
            return XCTFail("unexpected attributes \(product.graph.nodes.map(\.attributes))")
        }
        XCTAssertEqual(constant.dimensions, [1])
        XCTAssertEqual(constant.dataType, 1)
        XCTAssertEqual(Support.bytes(constant), [0, 0, 0, 0])
        XCTAssertEqual(alpha, 1)
        XCTAssertEqual(beta, 0)
        XCTAssertEqual(broadcast, 1)

        let normalizer = try ONNXProtoCodec.decode(contentsOf: Support.resource("string_normalizer.onnx"))
        XCTAssertEqual(normalizer.irVersion, 5)
        XCTAssertEqual(normalizer.operatorSets, [ONNXOperatorSet(domain: "", version: 10)])
        let node = try XCTUnwrap(normalizer.graph.nodes.first)
        XCTAssertEqual(node.opType, "StringNormalizer")
        guard case .string(let action) = node.attribute("case_change_action"),
              case .int(let caseSensitive) = node.attribute("is_case_sensitive"),
              case .strings(let stopwords) = node.attribute("stopwords") else {
            return XCTFail("unexpected attributes \(node.attributes)")
        }
        XCTAssertEqual(String(decoding: action, as: UTF8.self), "LOWER")
        XCTAssertEqual(caseSensitive, 1)
        XCTAssertEqual(stopwords.map { String(decoding: $0, as: UTF8.self) }, ["monday"])
        XCTAssertEqual(normalizer.graph.inputs, [ONNXValueInfo(name: "x", elementType: 8, shape: [.value(4)])])
    }

    func testDecodesTypedInt64ScalarsAndUnknownDimensions() throws {
        let model = try ONNXProtoCodec.decode(contentsOf: Support.resource("sequence_model.onnx"))
        XCTAssertEqual(model.irVersion, 7)
        XCTAssertEqual(model.graph.nodes.count, 5)
        XCTAssertEqual(model.graph.nodes.last?.opType, "SequenceAt")
        // int64_data: [1] and [2], scalars (no dims), 8 bytes each once converted.
        XCTAssertEqual(model.graph.initializers.map(\.name), ["pos", "pos_at"])
        XCTAssertEqual(model.graph.initializers.map(\.dimensions), [[], []])
        XCTAssertEqual(Support.bytes(model.graph.initializers.first), [1, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(Support.bytes(model.graph.initializers.last), [2, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(model.graph.inputs.first { $0.name == "pos" }?.shape, [])
        XCTAssertEqual(model.graph.outputs, [ONNXValueInfo(name: "out", elementType: 1,
                                                           shape: [.unknown, .value(3), .value(4)])])
    }

    func testDecodesLightAlexNet() throws {
        let model = try ONNXProtoCodec.decode(contentsOf: Support.resource("light_bvlc_alexnet.onnx"))
        XCTAssertEqual(model.producerName, "onnx-caffe2")
        XCTAssertEqual(model.defaultOpset, 9)
        let graph = model.graph
        XCTAssertEqual(graph.nodes.count, 40)
        XCTAssertEqual(graph.initializers.count, 17)
        XCTAssertEqual(graph.inputs.count, 18)
        XCTAssertEqual(graph.nodes.filter { $0.opType == "ConstantOfShape" }.count, 16)
        var kinds: [String: Int] = [:]
        for attribute in graph.nodes.flatMap(\.attributes) {
            let kind: String
            switch attribute.value {
            case .tensor: kind = "TENSOR"
            case .ints: kind = "INTS"
            case .int: kind = "INT"
            case .float: kind = "FLOAT"
            default: kind = "other"
            }
            kinds[kind, default: 0] += 1
        }
        XCTAssertEqual(kinds, ["TENSOR": 16, "INTS": 24, "INT": 8, "FLOAT": 8])
        // The ConstantOfShape values are float_data [0.02], read into raw bytes.
        guard case .tensor(let fill) = graph.nodes[0].attribute("value") else { return XCTFail("no fill value") }
        XCTAssertEqual(Support.bytes(fill), Support.littleEndian(0.02))
        let lrn = try XCTUnwrap(graph.nodes.first { $0.name == "n2" })
        guard case .float(let alpha) = lrn.attribute("alpha") else { return XCTFail("no LRN alpha") }
        XCTAssertEqual(alpha, 0.0001)
        XCTAssertEqual(graph.nodes.first { $0.name == "n18" }?.outputs, ["r18", "r19"])
        XCTAssertEqual(graph.initializers.map { Support.bytes($0)?.reduce(0) { $0 + Int($1) } ?? -1 },
                       [96, 121, 1, 59, 129, 136, 129, 327, 1, 199, 16, 52, 16, 32, 235, 251, 37])
    }

    // MARK: Round trips

    func testFixturesRoundTripExactly() throws {
        let directory = try Support.temporaryDirectory(for: self)
        for fixture in Self.fixtures {
            let original = try ONNXProtoCodec.decode(contentsOf: Support.resource(fixture))
            let path = directory.appendingPathComponent(fixture).path
            try ONNXProtoCodec.write(original, to: path, file: fixture)
            let reread = try ONNXProtoCodec.decode(contentsOf: path)
            XCTAssertEqual(try Support.dump(reread), try Support.dump(original), fixture)
        }
    }

    func testEveryAttributeKindRoundTrips() throws {
        let directory = try Support.temporaryDirectory(for: self)
        let model = ONNXProtoSampleModels.allAttributeKinds()
        let path = directory.appendingPathComponent("kinds.onnx").path
        try ONNXProtoCodec.write(model, to: path, file: "kinds.onnx")
        XCTAssertEqual(try Support.dump(ONNXProtoCodec.decode(contentsOf: path)), try Support.dump(model))
    }

    func testWrittenFilesPassTheONNXChecker() throws {
        let directory = try Support.temporaryDirectory(for: self)
        var paths: [String] = []
        var expected: [String] = []
        for fixture in Self.fixtures {
            let model = try ONNXProtoCodec.decode(contentsOf: Support.resource(fixture))
            let path = directory.appendingPathComponent(fixture).path
            try ONNXProtoCodec.write(model, to: path, file: fixture)
            paths.append(path)
            expected.append(try Self.oracleSummary(of: model, path: path, directory: directory))
        }
        let (sample, _) = try ONNXProtoSampleModels.checkable(externalDirectory: directory)
        let samplePath = directory.appendingPathComponent("sample.onnx").path
        try ONNXProtoCodec.write(sample, to: samplePath, file: "sample.onnx")
        paths.append(samplePath)
        expected.append(try Self.oracleSummary(of: sample, path: samplePath, directory: directory))
        try Support.shareWithInterop(["pytorch_conv2d.onnx", "sequence_model.onnx", "light_bvlc_alexnet.onnx",
                                      "sample.onnx", "external.bin"].map { directory.appendingPathComponent($0) })

        let results = try Support.runOracle(Self.checkerScript, arguments: paths)
        XCTAssertEqual(results, expected)
    }

    /// What the checker script prints for a model: its path, node count, and per initializer the
    /// name, dims and byte count and sum of its bytes (external ones read from `directory`).
    private static func oracleSummary(of model: ONNXModel, path: String, directory: URL) throws -> String {
        let initializers = try model.graph.initializers.map { tensor -> String in
            var bytes: [UInt8]
            switch tensor.data {
            case .raw(let raw): bytes = raw
            case .storage(let storage): bytes = try storage.bytes()
            case .strings(let strings): bytes = strings.flatMap { $0 }
            case .external(let location, let offset, let length):
                let data = try Data(contentsOf: directory.appendingPathComponent(location))
                bytes = Array(data.dropFirst(offset).prefix(length ?? data.count))
            }
            return "\(tensor.name):\(tensor.dimensions):\(bytes.count):\(bytes.reduce(0) { $0 + Int($1) })"
        }
        return "\(path) nodes \(model.graph.nodes.count) \(initializers)"
    }

    private static let checkerScript = """
        import sys, onnx
        from onnx import numpy_helper
        for path in sys.argv[1:]:
            onnx.checker.check_model(path, full_check=True)
            model = onnx.load(path)
            tensors = []
            for tensor in model.graph.initializer:
                if tensor.data_type == onnx.TensorProto.STRING:
                    data = b"".join(tensor.string_data)
                else:
                    data = numpy_helper.to_array(tensor).tobytes()
                dims = "[" + ", ".join(str(d) for d in tensor.dims) + "]"
                tensors.append('"%s:%s:%d:%d"' % (tensor.name, dims, len(data), sum(data)))
            print("RESULT %s nodes %d [%s]" % (path, len(model.graph.node), ", ".join(tensors)))
        """

    // MARK: Streaming

    func testStorageInitializersAreReadOnceAndWrittenIntact() throws {
        let directory = try Support.temporaryDirectory(for: self)
        let large = CountingSource(content: (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let small = CountingSource(content: Support.littleEndian(1.5) + Support.littleEndian(-2))
        let empty = CountingSource(content: [])
        let graph = ONNXGraph(
            name: "streamed",
            nodes: [ONNXNode(name: "sum", opType: "Add", inputs: ["x", "small"], outputs: ["y"])],
            initializers: [
                ONNXTensor(name: "large", dimensions: [768, 1024], dataType: 1, data: .storage(TensorStorage(source: large))),
                ONNXTensor(name: "small", dimensions: [2], dataType: 1, data: .storage(TensorStorage(source: small))),
                ONNXTensor(name: "empty", dimensions: [0, 4], dataType: 1, data: .storage(TensorStorage(source: empty))),
            ],
            inputs: [ONNXValueInfo(name: "x", elementType: 1, shape: [.value(2)])],
            outputs: [ONNXValueInfo(name: "y", elementType: 1, shape: [.value(2)])]
        )
        let model = ONNXModel(irVersion: 8, operatorSets: [ONNXOperatorSet(domain: "", version: 17)], graph: graph)
        let path = directory.appendingPathComponent("streamed.onnx").path
        try ONNXProtoCodec.write(model, to: path, file: "streamed.onnx")

        XCTAssertEqual([large.reads, small.reads, empty.reads], [1, 1, 1])
        for case .storage(let storage) in model.graph.initializers.map(\.data) {
            XCTAssertFalse(storage.isLoaded, "the writer must not keep the bytes it streamed")
        }
        let reread = try ONNXProtoCodec.decode(contentsOf: path)
        XCTAssertEqual(reread.graph.initializers.map { Support.bytes($0) }, [large.content, small.content, []])
        XCTAssertEqual(reread.graph.initializers.map(\.dimensions), [[768, 1024], [2], [0, 4]])
        try Support.shareWithInterop([URL(fileURLWithPath: path)])

        let results = try Support.runOracle(Self.checkerScript, arguments: [path])
        let expected = [
            "\(path) nodes 1 [\"large:[768, 1024]:\(3 << 20):\(large.content.reduce(0) { $0 + Int($1) })\", "
                + "\"small:[2]:8:\(small.content.reduce(0) { $0 + Int($1) })\", \"empty:[0, 4]:0:0\"]",
        ]
        XCTAssertEqual(results, expected)
    }

    func testStorageThatMisbehavesFailsTheWriteAndLeavesNoFile() throws {
        struct SourceFailure: Error {}
        let directory = try Support.temporaryDirectory(for: self)
        let sources = [
            CountingSource(content: [1, 2, 3, 4], announcedCount: 8),  // announces 8, delivers 4
            CountingSource(content: [1, 2, 3, 4, 5, 6, 7, 8], failure: SourceFailure()),
        ]
        for source in sources {
            let tensor = ONNXTensor(name: "w", dimensions: [2], dataType: 1, data: .storage(TensorStorage(source: source)))
            let model = ONNXModel(irVersion: 8, operatorSets: [], graph: ONNXGraph(name: "g", initializers: [tensor]))
            let path = directory.appendingPathComponent("broken.onnx").path
            XCTAssertThrowsError(try ONNXProtoCodec.write(model, to: path, file: "broken.onnx")) { error in
                XCTAssertEqual((error as? ONNXError)?.kind, .writeFailed, "\(error)")
                XCTAssertEqual((error as? ONNXError)?.subject, "tensor 'w'")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        }
    }

    func testWriterRefusesBytesThatDisagreeWithDims() throws {
        let directory = try Support.temporaryDirectory(for: self)
        let tensors = [
            ONNXTensor(name: "short", dimensions: [3], dataType: 1, data: .raw([0, 0, 0, 0])),
            ONNXTensor(name: "negative", dimensions: [-1], dataType: 1, data: .raw([])),
            ONNXTensor(name: "strings", dimensions: [2], dataType: 8, data: .strings([[0x61]])),
            ONNXTensor(name: "raw strings", dimensions: [1], dataType: 8, data: .raw([0x61])),
            ONNXTensor(name: "external", dimensions: [2], dataType: 1, data: .external(location: "w.bin", offset: 0, length: 4)),
        ]
        for tensor in tensors {
            let model = ONNXModel(irVersion: 8, operatorSets: [], graph: ONNXGraph(name: "g", initializers: [tensor]))
            let path = directory.appendingPathComponent("refused.onnx").path
            XCTAssertThrowsError(try ONNXProtoCodec.write(model, to: path, file: "refused.onnx")) { error in
                XCTAssertEqual((error as? ONNXError)?.kind, .invalidTensor, "\(error)")
            }
        }
    }

    func testWritingToAnImpossiblePathFails() {
        let model = ONNXModel(irVersion: 8, operatorSets: [], graph: ONNXGraph(name: "g"))
        XCTAssertThrowsError(try ONNXProtoCodec.write(model, to: "/nonexistent-directory/model.onnx", file: "model.onnx")) {
            XCTAssertEqual(($0 as? ONNXError)?.kind, .writeFailed)
        }
    }
}
