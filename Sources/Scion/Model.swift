import Foundation
import ScionIR
import ScionKeras
import ScionONNX

/// A model file read into the IR: the library's front door.
///
/// ```swift
/// let model = try Model.load("mobilenet.h5")
/// print(model.graph.totalParameterCount)
/// ```
public struct Model: Sendable {
    /// The model's layers, values and parameters; passes change it (`apply(_:)`).
    public var graph: Graph
    /// The format the file was read from.
    public var format: ModelFormat
    /// The file the model was read from; errors about the model name it.
    public var path: String

    /// A model from a graph built or changed in code; `format` and `path` are what errors and writers report.
    public init(graph: Graph, format: ModelFormat, path: String) {
        self.graph = graph; self.format = format; self.path = path
    }

    /// Reads a model, telling the format by its first bytes (and by extension when they say nothing).
    /// Reads no weight bytes: parameters load when first used. `cache`: a folder where the check of
    /// a Keras file's HDF5 structures (a walk in a child process) is kept for the next reading of the
    /// same unchanged file (`HDF5WalkRecords`); the executor keeps prepared weights there too
    /// (`executor(weightsCache:)`).
    public static func load(_ path: String, cache: String? = nil) throws -> Model {
        let format = try ModelFormat.detect(path: path)
        let graph: Graph
        switch format {
        case .kerasHDF5: graph = try KerasModelReader.readHDF5(at: path, walkRecordsIn: cache)
        case .kerasArchive: graph = try KerasModelReader.readArchive(at: path, walkRecordsIn: cache)
        case .onnx:
            let onnx = try ONNXProtoCodec.decode(contentsOf: path)
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            graph = try ONNXImporter.importModel(onnx, file: path, folder: folder)
        }
        return Model(graph: graph, format: format, path: path)
    }

    /// Refuses weights-only files for operations that need layers (converting, cutting, running...).
    package func requireArchitecture(for operation: String) throws {
        guard graph.hasArchitecture else {
            throw ScionError(file: path, "holds weights only (saved with save_weights): \(operation) needs the model's "
                + "architecture; save the whole model with model.save()")
        }
    }
}

/// The file formats Scion reads and writes.
public enum ModelFormat: String, Sendable, CaseIterable {
    /// Keras `.h5` (Keras 2, Keras 3 legacy, or weights only).
    case kerasHDF5 = "keras-h5"
    /// Keras 3 `.keras` zip archive.
    case kerasArchive = "keras"
    /// ONNX `.onnx` (with external data files next to it, if any).
    case onnx

    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The format of an existing file, from its magic bytes; the extension decides only for files
    /// whose first bytes say nothing (ONNX has no magic).
    public static func detect(path: String) throws -> ModelFormat {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ScionError(file: path, "no such file")
        }
        guard !isDirectory.boolValue else { throw ScionError(file: path, "is a directory, not a model file") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ScionError(file: path, "cannot be opened for reading") }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 8)) ?? Data())
        if head.isEmpty { throw ScionError(file: path, "is empty") }
        if head.starts(with: hdf5Signature) { return .kerasHDF5 }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) { return .kerasArchive }
        switch (path as NSString).pathExtension.lowercased() {
        case "h5", "hdf5", "keras2": return .kerasHDF5  // HDF5 may start after a user block
        case "keras": return .kerasArchive
        case "onnx": return .onnx
        default:
            throw ScionError(file: path, "is not a model Scion reads (expected Keras .h5, .keras or .onnx)")
        }
    }

    /// The format a path's extension asks for, for writers.
    package static func forOutput(path: String) throws -> ModelFormat {
        switch (path as NSString).pathExtension.lowercased() {
        case "h5", "hdf5": return .kerasHDF5
        case "keras": return .kerasArchive
        case "onnx": return .onnx
        case let other: throw ScionError(file: path, "cannot tell the output format from extension '.\(other)' (use .onnx, .h5 or .keras)")
        }
    }
}

/// An error of the front door: a file it cannot take, with the file named.
public struct ScionError: Error, CustomStringConvertible, Sendable {
    /// The file the error is about.
    public var file: String
    /// What is wrong with it.
    public var reason: String
    /// An error about `file`.
    public init(file: String, _ reason: String) { self.file = file; self.reason = reason }
    /// `file: reason`.
    public var description: String { "\(file): \(reason)" }
}
