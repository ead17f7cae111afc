import Foundation
import ScionIR
import ScionKeras
import ScionONNX
import ScionPasses

/// Writing a model: format from the output's extension, written to a temporary file beside the target
/// and renamed into place, so a failure leaves nothing behind and an existing file untouched.
extension Model {
    /// How `write(to:options:)` writes: ONNX opset and external data, replacing, Keras compression.
    public struct WriteOptions: Sendable {
        /// ONNX opset to write; nil writes the lowest that expresses the model
        /// (`ONNXExporter.lowestOpset`: 13, or the opset its ops' native forms need).
        public var opset: Int64?
        /// Replace an existing file.
        public var force: Bool
        /// ONNX: weights go to `OUT.data` beside the model when they exceed this many bytes (protobuf
        /// cannot hold a message over 2 GiB); 0 always writes them there.
        public var externalDataThreshold: Int
        /// The default `externalDataThreshold`: 2 GiB less 64 MiB of room for the graph itself.
        public static let protobufLimit = (1 << 31) - (64 << 20)
        /// Keras files: store weights with HDF5's deflate filter.
        public var compress = false
        /// Keras files from ONNX: image-like inputs become channels-last instead of getting a Permute
        /// at entry (see `KerasLayersPass`).
        public var channelsLastInputs = false

        /// Options with the given opset, replacing and threshold; `compress` and `channelsLastInputs` off.
        public init(opset: Int64? = nil, force: Bool = false,
                    externalDataThreshold: Int = WriteOptions.protobufLimit) {
            self.opset = opset; self.force = force; self.externalDataThreshold = externalDataThreshold
        }
    }

    /// Writes the model to `path` in the format its extension names.
    public func write(to path: String, options: WriteOptions = WriteOptions()) throws {
        try requireArchitecture(for: "writing")
        let format = try ModelFormat.forOutput(path: path)
        if FileManager.default.fileExists(atPath: path) && !options.force {
            throw ScionError(file: path, "already exists; pass --force to replace it")
        }
        switch format {
        case .onnx:
            var graph = self.graph
            if graph.layout != .channelsFirst {
                try namingTheSource { try ChannelsFirstLayoutPass().run(&graph) }
            }
            var onnx = try ONNXExporter.makeModel(from: graph, file: path, opset: options.opset)
            let weightBytes = graph.parameters.all.reduce(0) { $0 + $1.byteCount }
            if weightBytes > options.externalDataThreshold {
                let dataName = (path as NSString).lastPathComponent + ".data"
                let dataPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(dataName)
                if FileManager.default.fileExists(atPath: dataPath) && !options.force {
                    throw ScionError(file: dataPath, "already exists; pass --force to replace it")
                }
                try AtomicFile.write(to: dataPath) { temporary in
                    try ONNXExternalData.write(&onnx.graph.initializers, to: temporary, location: dataName, file: path)
                }
            }
            let model = onnx
            try AtomicFile.write(to: path) { temporary in
                try ONNXProtoCodec.write(model, to: temporary, file: path)
            }
        case .kerasArchive:
            let graph = try kerasGraph(options)
            try AtomicFile.write(to: path) { temporary in
                try KerasModelWriter.writeArchive(graph, to: temporary, file: path, compress: options.compress)
            }
        case .kerasHDF5:
            let graph = try kerasGraph(options)
            try AtomicFile.write(to: path) { temporary in
                try KerasModelWriter.writeHDF5(graph, to: temporary, file: path, compress: options.compress)
            }
        }
    }
}

extension Model {
    /// The graph as Keras layers: an ONNX graph goes through `KerasLayersPass` (patterns to layers,
    /// channels-first to channels-last); a Keras one is written as it is.
    func kerasGraph(_ options: WriteOptions) throws -> Graph {
        var graph = self.graph
        try namingTheSource { try KerasLayersPass(channelsLastInputs: options.channelsLastInputs).run(&graph) }
        return graph
    }

    /// Runs a pass over this model; its refusal, or shape inference failing inside it (a rewrite
    /// that left a node it cannot type), becomes one error naming the file the model was read from.
    func namingTheSource(_ pass: () throws -> Void) throws {
        do {
            try pass()
        } catch let error as PassError {
            throw ScionError(file: path, "\(error.subject.isEmpty ? "" : "node '\(error.subject)': ")\(error.reason)")
        } catch let error as IRError {
            throw ScionError(file: path, "node '\(error.subject)': \(error.reason)")
        }
    }
}

/// Writes through a temporary file in the target's folder, renamed over the target only when the
/// writer succeeded: readers never see a half-written file, and an existing file survives a failure.
/// Writing onto the file being read is safe: the reader keeps the old file open until it is done.
public enum AtomicFile {
    /// Calls `body` with a temporary path in `path`'s folder, then renames what it wrote onto `path`;
    /// throws (and removes the temporary file) when `body` throws or the folder does not exist.
    public static func write(to path: String, _ body: (String) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ScionError(file: path, "folder \(folder.path) does not exist")
        }
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).scion-\(UUID().uuidString).tmp").path
        do {
            try body(temporary)
            guard rename(temporary, path) == 0 else {
                throw ScionError(file: path, "cannot move the written file into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }
}
