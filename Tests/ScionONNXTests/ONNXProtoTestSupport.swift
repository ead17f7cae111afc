import Foundation
import ScionIR
import ScionONNX
import Synchronization
import XCTest

/// Helpers shared by the codec tests: fixture paths, a canonical text form of a model for exact
/// comparisons, a hand-rolled protobuf writer for hostile inputs, and the onnx Python oracle.
enum ONNXProtoTestSupport {
    static func resource(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Resources").appendingPathComponent(name).path
    }

    /// A fresh directory, removed by the test's teardown block.
    static func temporaryDirectory(for testCase: XCTestCase) throws -> URL {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("scion-onnx-proto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        testCase.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        return directory
    }

    // MARK: Canonical form

    /// Every field of the model as text, floats by bit pattern and bytes in full, so two models
    /// compare equal exactly when their dumps do. Storage-backed tensors are read (and kept).
    static func dump(_ model: ONNXModel) throws -> String {
        var lines = [
            "ir \(model.irVersion) producer '\(model.producerName)' '\(model.producerVersion)' domain '\(model.domain)'",
            "model version \(model.modelVersion) doc '\(model.documentation)'",
            "opsets \(model.operatorSets.map { "\($0.domain):\($0.version)" })",
            "metadata \(model.metadata.map { "\($0.key)=\($0.value)" })",
        ]
        try dump(model.graph, indent: "", into: &lines)
        return lines.joined(separator: "\n")
    }

    private static func dump(_ graph: ONNXGraph, indent: String, into lines: inout [String]) throws {
        lines.append("\(indent)graph '\(graph.name)'")
        for node in graph.nodes {
            lines.append("\(indent) node '\(node.name)' \(node.domain):\(node.opType) \(node.inputs) -> \(node.outputs)")
            for attribute in node.attributes {
                lines.append("\(indent)  attribute '\(attribute.name)'")
                try dump(attribute.value, indent: indent + "   ", into: &lines)
            }
        }
        for tensor in graph.initializers { try lines.append("\(indent) initializer " + describe(tensor)) }
        for info in graph.inputs { lines.append("\(indent) input \(describe(info))") }
        for info in graph.outputs { lines.append("\(indent) output \(describe(info))") }
        for info in graph.valueInfo { lines.append("\(indent) value_info \(describe(info))") }
    }

    private static func dump(_ value: ONNXAttributeValue, indent: String, into lines: inout [String]) throws {
        switch value {
        case .float(let value): lines.append("\(indent)float \(String(value.bitPattern, radix: 16))")
        case .int(let value): lines.append("\(indent)int \(value)")
        case .string(let value): lines.append("\(indent)string \(value)")
        case .tensor(let tensor): try lines.append("\(indent)tensor " + describe(tensor))
        case .graph(let graph): try dump(graph, indent: indent, into: &lines)
        case .floats(let values): lines.append("\(indent)floats \(values.map { String($0.bitPattern, radix: 16) })")
        case .ints(let values): lines.append("\(indent)ints \(values)")
        case .strings(let values): lines.append("\(indent)strings \(values)")
        case .tensors(let tensors): for tensor in tensors { try lines.append("\(indent)tensors " + describe(tensor)) }
        case .graphs(let graphs): for graph in graphs { try dump(graph, indent: indent + "graphs ", into: &lines) }
        }
    }

    static func describe(_ tensor: ONNXTensor) throws -> String {
        let data: String
        switch tensor.data {
        case .raw(let bytes): data = "bytes \(bytes)"
        case .storage(let storage): data = "bytes \(try storage.bytes())"
        case .external(let location, let offset, let length): data = "external \(location) \(offset) \(String(describing: length))"
        case .strings(let values): data = "strings \(values)"
        }
        return "'\(tensor.name)' type \(tensor.dataType) dims \(tensor.dimensions) \(data)"
    }

    static func describe(_ info: ONNXValueInfo) -> String {
        "'\(info.name)' type \(info.elementType) shape \(String(describing: info.shape))"
    }

    /// The raw bytes of a tensor held in memory.
    /// A tensor's bytes, held or (a large initializer of a file read from disk) read from the file.
    static func bytes(_ tensor: ONNXTensor?) -> [UInt8]? {
        switch tensor?.data {
        case .raw(let bytes): return bytes
        case .storage(let storage): return try? storage.bytes(keep: false)
        default: return nil
        }
    }

    static func littleEndian(_ value: Float) -> [UInt8] {
        withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
    }

    /// `make test` sets SCION_INTEROP_DIR when it runs the unit tests; Tests/Interop/check_onnx.py
    /// later runs onnx's checker and onnxruntime on every .onnx file there. Only files onnxruntime
    /// can load belong there (not the opset 6 fixtures, nor custom domains).
    static func shareWithInterop(_ files: [URL]) throws {
        guard let root = ProcessInfo.processInfo.environment["SCION_INTEROP_DIR"], !root.isEmpty else { return }
        let folder = URL(fileURLWithPath: root).appendingPathComponent("onnx-proto-codec")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for file in files {
            let target = folder.appendingPathComponent(file.lastPathComponent)
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.copyItem(at: file, to: target)
        }
    }

    // MARK: The onnx Python oracle

    /// The shared oracle venv of this machine, else the one `make oracle` builds in .build.
    static let oraclePythons = [
        "/opt/scion-oracle-venv/bin/python",
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/oracle-venv/bin/python").path,
    ]

    /// Runs a Python script with onnx available and returns the lines it printed starting with
    /// "RESULT ", without that prefix. Skips the test when the oracle is not installed.
    static func runOracle(_ script: String, arguments: [String]) throws -> [String] {
        guard let oraclePython = oraclePythons.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("the onnx Python oracle is not installed (\(oraclePythons.joined(separator: " or ")))")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: oraclePython)
        process.arguments = ["-c", script] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            XCTFail("the onnx oracle failed:\n\(output)")
            return []
        }
        return output.split(separator: "\n").filter { $0.hasPrefix("RESULT ") }.map { String($0.dropFirst(7)) }
    }
}

/// A TensorSource that counts how often its bytes are read, to show the writer reads each
/// initializer exactly once and keeps nothing.
final class CountingSource: TensorSource {
    let content: [UInt8]
    private let readCount = Mutex(0)
    /// How often `readBytes()` ran.
    var reads: Int { readCount.withLock { $0 } }
    /// What `byteCount` announces; by default the true count.
    let announcedCount: Int?
    let failure: (any Error & Sendable)?

    init(content: [UInt8], announcedCount: Int? = nil, failure: (any Error & Sendable)? = nil) {
        self.content = content
        self.announcedCount = announcedCount
        self.failure = failure
    }

    var byteCount: Int { announcedCount ?? content.count }
    var location: String { "counting source" }

    func readBytes() throws -> [UInt8] {
        readCount.withLock { $0 += 1 }
        if let failure { throw failure }
        return content
    }
}

/// Writes protobuf wire format by hand, for inputs the codec's own writer refuses to produce.
struct WireWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    mutating func integer(_ field: Int, _ value: Int64) {
        varint(UInt64(field << 3))
        varint(UInt64(bitPattern: value))
    }

    mutating func data(_ field: Int, _ content: [UInt8]) {
        varint(UInt64(field << 3 | 2))
        varint(UInt64(content.count))
        bytes.append(contentsOf: content)
    }

    mutating func string(_ field: Int, _ text: String) { data(field, Array(text.utf8)) }

    mutating func message(_ field: Int, _ build: (inout WireWriter) -> Void) {
        var inner = WireWriter()
        build(&inner)
        data(field, inner.bytes)
    }

    /// A ModelProto (ir_version 8, opset 13) whose graph `build` fills.
    static func model(graph build: (inout WireWriter) -> Void) -> [UInt8] {
        var model = WireWriter()
        model.integer(1, 8)
        model.message(8) { $0.integer(2, 13) }
        model.message(7) { graph in
            graph.string(2, "hostile")
            build(&graph)
        }
        return model.bytes
    }
}
