import Foundation
import ScionIR
import XCTest

@testable import ScionPasses

func floatBytes(count: Int, offset: Float = 0) -> [UInt8] {
    floatBytes((0..<count).map { offset + Float($0) })
}

func floatBytes(_ values: [Float]) -> [UInt8] {
    values.withUnsafeBytes { Array($0) }
}

func floats(_ bytes: [UInt8]) -> [Float] {
    stride(from: 0, to: bytes.count - 3, by: 4).map { offset in
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Float.self) }
    }
}

func parameterValues(_ graph: Graph, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
    let parameter = try XCTUnwrap(graph.parameters[name], "no parameter \(name)", file: file, line: line)
    return floats(try parameter.storage.bytes())
}

/// Row-major offset of `index` in a tensor of `shape`.
func offset(_ index: [Int], in shape: [Int]) -> Int {
    zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
}

/// Every index of a tensor of `shape`, row-major.
func allIndices(_ shape: [Int]) -> [[Int]] {
    var result: [[Int]] = [[]]
    for length in shape {
        result = result.flatMap { prefix in (0..<length).map { prefix + [$0] } }
    }
    return result
}

extension Graph {
    var transposes: [Node] {
        nodes.filter { if case .transpose = $0.op { true } else { false } }
    }

    /// Spatial ops still channels-last: none should be left after the pass.
    var channelsLastSpatialNodes: [Node] {
        nodes.filter { $0.op.spatialLayout == .channelsLast }
    }

    func outputShapes() -> [Shape?] { outputs.map { values[$0]?.shape } }
}

/// Runs the pass on a copy and checks what every run must give: verify() passes, output names and
/// shapes unchanged, no channels-last spatial op left, metadata set.
func convert(_ original: Graph, file: StaticString = #filePath, line: UInt = #line) throws -> Graph {
    var before = original
    try before.verify()
    var graph = original
    try ChannelsFirstLayoutPass().run(&graph)
    try graph.verify()
    XCTAssertEqual(graph.outputs, before.outputs, "output names", file: file, line: line)
    XCTAssertEqual(graph.outputShapes(), before.outputShapes(), "output shapes", file: file, line: line)
    XCTAssertEqual(graph.inputs, before.inputs, "inputs", file: file, line: line)
    XCTAssertEqual(graph.channelsLastSpatialNodes.map(\.name), [], "channels-last spatial ops left", file: file, line: line)
    XCTAssertEqual(graph.layout, .channelsFirst, file: file, line: line)
    return graph
}
