import ScionIR
import XCTest

/// Output shapes of single ops, against values Keras reports for the same layers.
final class ShapeInferenceTests: XCTestCase {
    func infer(_ op: Op, inputs: [[Int?]], parameters: [String: [Int]] = [:]) throws -> Shape? {
        let node = Node(name: "n", op: op, inputs: inputs.indices.map { "x\($0)" }, outputs: ["y"])
        let infos = inputs.enumerated().map { ValueInfo(name: "x\($0.offset)", shape: Shape($0.element), dtype: .float32) }
        let shapes = Dictionary(uniqueKeysWithValues: parameters.map { (ParameterRole(rawValue: $0.key), $0.value) })
        return try ShapeInference.outputs(of: node, inputs: infos, parameterShapes: shapes).first?.shape
    }

    func conv(_ kernel: Int, stride: Int, padding: Padding, dilation: Int = 1, filters: Int = 8) -> Op {
        .conv(ConvAttributes(filters: filters, kernelSize: [kernel, kernel], strides: [stride, stride],
                             dilations: [dilation, dilation], padding: padding, layout: .channelsLast))
    }

    func testConvolutionOutputSizes() throws {
        let kernel = ["kernel": [3, 3, 3, 8], "bias": [8]]
        // Keras: Conv2D(8, 3, strides=2, padding="same") on 224x224 -> 112; "valid" -> 111.
        XCTAssertEqual(try infer(conv(3, stride: 2, padding: .same), inputs: [[nil, 224, 224, 3]], parameters: kernel),
                       Shape([nil, 112, 112, 8]))
        XCTAssertEqual(try infer(conv(3, stride: 2, padding: .valid), inputs: [[nil, 224, 224, 3]], parameters: kernel),
                       Shape([nil, 111, 111, 8]))
        XCTAssertEqual(try infer(conv(3, stride: 1, padding: .valid, dilation: 2), inputs: [[nil, 16, 16, 3]], parameters: kernel),
                       Shape([nil, 12, 12, 8]))
        XCTAssertEqual(try infer(conv(3, stride: 2, padding: .explicit([1, 1, 1, 1])), inputs: [[nil, 7, 7, 3]], parameters: kernel),
                       Shape([nil, 4, 4, 8]))
    }

    func testChannelsFirstConvolutionUsesOIHWKernel() throws {
        let op = Op.conv(ConvAttributes(filters: 8, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1],
                                        padding: .valid, useBias: false, layout: .channelsFirst))
        XCTAssertEqual(try infer(op, inputs: [[2, 3, 10, 10]], parameters: ["kernel": [8, 3, 3, 3]]), Shape([2, 8, 8, 8]))
        XCTAssertThrowsError(try infer(op, inputs: [[2, 3, 10, 10]], parameters: ["kernel": [3, 3, 3, 8]]))
    }

    func testGroupedConvolutionKernelHasChannelsPerGroup() throws {
        let op = Op.conv(ConvAttributes(filters: 8, kernelSize: [1, 1], strides: [1, 1], dilations: [1, 1],
                                        padding: .valid, groups: 2, useBias: false, layout: .channelsLast))
        XCTAssertEqual(try infer(op, inputs: [[nil, 4, 4, 6]], parameters: ["kernel": [1, 1, 3, 8]]), Shape([nil, 4, 4, 8]))
    }

    func testDepthwiseAndSeparable() throws {
        let depthwise = DepthwiseConvAttributes(kernelSize: [3, 3], strides: [2, 2], dilations: [1, 1], padding: .same,
                                                depthMultiplier: 2, useBias: true, activation: .linear, layout: .channelsLast)
        XCTAssertEqual(try infer(.depthwiseConv(depthwise), inputs: [[nil, 9, 9, 4]],
                                 parameters: ["depthwise_kernel": [3, 3, 4, 2], "bias": [8]]), Shape([nil, 5, 5, 8]))
        XCTAssertEqual(try infer(.separableConv(SeparableConvAttributes(filters: 6, depthwise: depthwise)), inputs: [[nil, 9, 9, 4]],
                                 parameters: ["depthwise_kernel": [3, 3, 4, 2], "pointwise_kernel": [1, 1, 8, 6], "bias": [6]]),
                       Shape([nil, 5, 5, 6]))
    }

    func testTransposedConvolutionFollowsKerasLengths() throws {
        func op(_ padding: Padding, outputPadding: [Int]? = nil) -> Op {
            .convTranspose(ConvTransposeAttributes(filters: 4, kernelSize: [3, 3], strides: [2, 2], dilations: [1, 1],
                                                   padding: padding, outputPadding: outputPadding, useBias: false,
                                                   activation: .linear, layout: .channelsLast))
        }
        let kernel = ["kernel": [3, 3, 4, 6]]
        XCTAssertEqual(try infer(op(.same), inputs: [[nil, 5, 5, 6]], parameters: kernel), Shape([nil, 10, 10, 4]))
        XCTAssertEqual(try infer(op(.valid), inputs: [[nil, 5, 5, 6]], parameters: kernel), Shape([nil, 11, 11, 4]))
        XCTAssertEqual(try infer(op(.same, outputPadding: [1, 1]), inputs: [[nil, 5, 5, 6]], parameters: kernel),
                       Shape([nil, 10, 10, 4]))
    }

    func testPoolingPaddingAndCropping() throws {
        let pool = Op.pool(PoolAttributes(kind: .max, poolSize: [3, 3], strides: [2, 2], padding: .valid, layout: .channelsLast))
        XCTAssertEqual(try infer(pool, inputs: [[nil, 147, 147, 64]]), Shape([nil, 73, 73, 64]))
        let padding = Op.zeroPadding(SpatialPaddingAttributes(padding: [[0, 1], [0, 1]], layout: .channelsLast))
        XCTAssertEqual(try infer(padding, inputs: [[nil, 224, 224, 3]]), Shape([nil, 225, 225, 3]))
        let cropping = Op.cropping(SpatialPaddingAttributes(padding: [[1, 1], [2, 0]], layout: .channelsLast))
        XCTAssertEqual(try infer(cropping, inputs: [[nil, 8, 8, 3]]), Shape([nil, 6, 6, 3]))
        XCTAssertThrowsError(try infer(cropping, inputs: [[nil, 2, 8, 3]]))
    }

    func testReshapeResolvesMinusOneAndRejectsWrongCounts() throws {
        XCTAssertEqual(try infer(.reshape(ReshapeAttributes(targetShape: [1, 1, -1])), inputs: [[nil, 32]]),
                       Shape([nil, 1, 1, 32]))
        XCTAssertThrowsError(try infer(.reshape(ReshapeAttributes(targetShape: [5, -1])), inputs: [[nil, 32]]))
        XCTAssertThrowsError(try infer(.reshape(ReshapeAttributes(targetShape: [3, 3])), inputs: [[nil, 32]]))
    }

    func testFlattenPermuteConcatenateAndBroadcast() throws {
        XCTAssertEqual(try infer(.flatten(FlattenAttributes(layout: .channelsLast)), inputs: [[nil, 7, 7, 512]]),
                       Shape([nil, 25088]))
        XCTAssertEqual(try infer(.permute(PermuteAttributes(dimensions: [2, 1])), inputs: [[nil, 3, 5]]), Shape([nil, 5, 3]))
        XCTAssertEqual(try infer(.concatenate(ConcatenateAttributes(axis: -1)), inputs: [[nil, 4, 4, 3], [nil, 4, 4, 5]]),
                       Shape([nil, 4, 4, 8]))
        XCTAssertThrowsError(try infer(.concatenate(ConcatenateAttributes(axis: -1)), inputs: [[nil, 4, 4, 3], [nil, 5, 4, 5]]))
        XCTAssertEqual(try infer(.elementwise(.multiply), inputs: [[nil, 7, 7, 32], [nil, 1, 1, 32]]), Shape([nil, 7, 7, 32]))
        XCTAssertThrowsError(try infer(.elementwise(.add), inputs: [[nil, 7, 7, 32], [nil, 7, 7, 16]]))
    }

    func testNormalizationParameters() throws {
        let batchNorm = Op.batchNormalization(BatchNormalizationAttributes(axis: -1, epsilon: 1e-3, momentum: 0.99,
                                                                         center: false, scale: true))
        XCTAssertEqual(try infer(batchNorm, inputs: [[nil, 4, 4, 8]],
                                 parameters: ["gamma": [8], "moving_mean": [8], "moving_variance": [8]]),
                       Shape([nil, 4, 4, 8]))
        XCTAssertThrowsError(try infer(batchNorm, inputs: [[nil, 4, 4, 8]],
                                       parameters: ["gamma": [8], "moving_mean": [4], "moving_variance": [8]]))
        let layerNorm = Op.layerNormalization(LayerNormalizationAttributes(axes: [-1], epsilon: 1e-6, center: true, scale: true))
        XCTAssertEqual(try infer(layerNorm, inputs: [[nil, 5, 16]], parameters: ["gamma": [16], "beta": [16]]),
                       Shape([nil, 5, 16]))
    }

    func testEmbeddingAppendsOutputDimension() throws {
        let op = Op.embedding(EmbeddingAttributes(inputDimension: 10, outputDimension: 4))
        XCTAssertEqual(try infer(op, inputs: [[nil, 6]], parameters: ["embeddings": [10, 4]]), Shape([nil, 6, 4]))
    }
}
