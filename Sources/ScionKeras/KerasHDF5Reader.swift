import Foundation
import HDF5
import ScionIR

/// Reads Keras `.h5` files: whole models written by Keras 2 (tf.keras, tf_keras) and Keras 3's legacy
/// `.h5` saver, and weights-only files from `save_weights`.
package enum KerasModelReader {
    /// Reads a `.h5` model or weights file. Reads no weight bytes: parameters load on first use.
    /// `walkRecordsIn`: a folder where the walk of the file is kept (`HDF5WalkRecords`).
    package static func readHDF5(at path: String, walkRecordsIn folder: String? = nil) throws -> Graph {
        let record = walkRecord(in: folder, for: path)
        let file = try wrapping(path) { try HDF5File(readingFrom: path, walkRecord: record) }
        let root = file.root
        if root.hasAttribute("model_config") {
            return try readModel(root: root, path: path)
        }
        if root.hasAttribute("layer_names") || root.hasAttribute("layer_names0") {
            return try KerasWeightsOnlyReader(file: path).readLegacy(root: root)
        }
        if (try? root.kind(of: "layers")) == .group || (try? root.kind(of: "vars")) == .group {
            return try KerasWeightsOnlyReader(file: path).readObjectPaths(root: root)
        }
        throw KerasError(.notAKerasFile, file: path,
                         "an HDF5 file, but not a Keras model: no model_config attribute and no Keras weights")
    }

    /// The record of the walk of the file at `path` (of `inner` inside it) in `folder`; nil without
    /// a folder, or when the file or the program cannot be looked at.
    static func walkRecord(in folder: String?, for path: String, inner: String? = nil) -> HDF5WalkRecords? {
        guard let folder, let file = FileIdentity.of(path), let program = FileIdentity.program else { return nil }
        return HDF5WalkRecords(identity: "file \(file)\(inner.map { " inner \($0)" } ?? "")\n\(program)",
                               file: FileIdentity.cacheFile(for: path, inner: inner, in: folder, suffix: "walk"))
    }

    private static func readModel(root: HDF5Group, path: String) throws -> Graph {
        let configText = try wrapping(path) { try root.stringAttribute("model_config") }
        let version = (try? root.stringAttribute("keras_version")) ?? "2"
        let builder = try architecture(configText: Data(configText.utf8), configName: "model_config",
                                       kerasVersion: version, format: "keras-h5", path: path)
        var graph = builder.graph
        if let backend = try? root.stringAttribute("backend") { graph.metadata["backend"] = backend }
        if let names = (try? root.stringAttribute(Graph.classNamesKey)).flatMap(Graph.decodeClassNames) { graph.classNames = names }
        if (try? root.kind(of: "model_weights")) == nil {
            throw KerasError(.invalidWeights, file: path, subject: "model_weights", "group is missing: the file holds no weights")
        }
        // A link (soft or external) is refused by the group lookup, with what it points to.
        let weights = try wrapping(path) { try root.group("model_weights") }
        var binder = KerasLegacyWeightBinder(file: path, records: builder.records)
        try binder.bind(from: weights, into: &graph)
        try finish(&graph, file: path)
        return graph
    }

    /// A model's architecture from its config JSON alone (`model_config` of an .h5, `config.json` of
    /// a .keras): the layers, their connections and inferred shapes, without weights. `file` names
    /// the source in errors.
    package static func readArchitecture(configJSON: Data, kerasVersion: String = "3", file: String) throws -> Graph {
        var graph = try architecture(configText: configJSON, configName: "config", kerasVersion: kerasVersion,
                                     format: "keras-config", path: file).graph
        do {
            try KerasMergeShapes.readAsKeras(&graph, file: file)
            try graph.inferShapes()
        } catch let error as IRError {
            throw KerasError(.invalidConfig, file: file, subject: error.subject, error.reason)
        }
        return graph
    }

    /// Parses a model config and builds its nodes; weights come after.
    static func architecture(configText: Data, configName: String, kerasVersion: String, format: String,
                             path: String) throws -> KerasGraphBuilder {
        let config: JSON
        do {
            config = try JSON.parse(configText)
        } catch {
            throw KerasError(.invalidConfig, file: path, subject: configName, "is not valid JSON (\(error))")
        }
        let major = Int(kerasVersion.prefix { $0.isNumber }) ?? 2
        var builder = KerasGraphBuilder(file: path, kerasMajorVersion: major, modelName: "model")
        try builder.buildTopLevel(config)
        builder.graph.metadata["format"] = format
        builder.graph.metadata["keras_version"] = kerasVersion
        return builder
    }

    /// Checks the finished graph and turns IR errors into errors naming the file.
    static func finish(_ graph: inout Graph, file: String) throws {
        // Keras 2 lists a nested model's trainable weights first; list them in layer order instead.
        graph.parameters.reorder(first: graph.nodes.flatMap(\.parameters))
        do {
            try KerasOpaqueShapes.fill(&graph)
            let major = Int((graph.metadata["keras_version"] ?? "2").prefix { $0.isNumber }) ?? 2
            if graph.nodes.contains(where: { graph.info.nodeTypes[$0.name] == KerasTimeDistributed.className }) {
                try KerasTimeDistributed.expand(&graph, table: KerasLayerTable(kerasMajorVersion: major))
                try KerasOpaqueShapes.fill(&graph)
            }
            try KerasMergeShapes.readAsKeras(&graph, file: file)
            try graph.verify()
        } catch let error as IRError {
            throw KerasError(error.kind == .parameter ? .invalidWeights : .invalidConfig, file: file,
                             subject: error.subject, error.reason)
        }
    }

    /// Runs an HDF5 call, turning its error into a KerasError naming the file and object.
    static func wrapping<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as HDF5Error {
            let subject = error.object == "/" ? "" : error.object
            throw KerasError(.notAKerasFile, file: path, subject: subject, error.reason)
        }
    }
}

/// Reads a string-array attribute that Keras may have split into `NAME0`, `NAME1`... because HDF5
/// object headers hold at most 64 KB.
func splitStringArrayAttribute(_ holder: some HDF5AttributeHolder, _ name: String) throws -> [String] {
    if holder.hasAttribute(name) { return try holder.stringArrayAttribute(name) }
    var result: [String] = []
    var chunk = 0
    while holder.hasAttribute("\(name)\(chunk)") {
        result += try holder.stringArrayAttribute("\(name)\(chunk)")
        chunk += 1
    }
    return result
}
