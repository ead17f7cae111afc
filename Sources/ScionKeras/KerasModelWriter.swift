import Foundation
import HDF5
import ScionIR
import ScionZip

/// Writes a graph as a Keras 3 model. Nested models are flattened into one Functional model (their
/// layers inlined, `/` in scoped names replaced by `_`, since Keras 3 refuses `/` in layer names);
/// a shared layer is one layer with several calls and its weights once.
package enum KerasModelWriter {
    /// The Keras version written into the files: Keras 3 reads configs by major version.
    static let kerasVersion = "3.15.1"
    /// zlib level for `--compress`: 6 is zlib's default balance of size and speed.
    static let deflateLevel = 6

    /// Writes a `.keras` archive: `metadata.json`, `config.json` and `model.weights.h5`, all stored
    /// uncompressed as Keras writes them. `path` is where to write (a temporary file, usually);
    /// `file` names the target in messages.
    /// With `compress`, weights are stored with HDF5's deflate filter (chunked), which h5py and Keras
    /// read transparently.
    package static func writeArchive(_ graph: Graph, to path: String, file: String, compress: Bool = false) throws {
        let plan = try KerasModelPlan(graph: graph, file: file)
        let config = plan.modelConfig()
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd@HH:mm:ss"
        var entries: [String: JSON] = ["keras_version": .string(kerasVersion), "date_saved": .string(formatter.string(from: Date()))]
        // Keras reads only its own keys from metadata.json: the class names ride along (Graph+ClassNames).
        if let classNames = graph.classNames { entries[Graph.classNamesKey] = .array(classNames.map(JSON.string)) }
        let metadata: JSON = .object(entries)
        let weightsPath = path + ".weights.h5.tmp"
        defer { try? FileManager.default.removeItem(atPath: weightsPath) }
        try writeWeights(plan, to: weightsPath, file: file, compress: compress)
        try KerasError.fromZip {
            let zip = try ZipWriter(path: path)
            try zip.addEntry(name: "metadata.json", bytes: Array(metadata.serialized.utf8), compress: false)
            try zip.addEntry(name: "config.json", bytes: Array(config.serialized.utf8), compress: false)
            try zip.addEntry(name: "model.weights.h5", contentsOfFile: weightsPath, compress: false)
            try zip.finish()
        }
    }

    /// The weights file: `layers/<snake_case class>[_N]/vars/<i>` in the order Keras 3 walks the
    /// loaded model's layers, and an empty `vars` for the model itself.
    static func writeWeights(_ plan: KerasModelPlan, to path: String, file: String, compress: Bool) throws {
        do {
            let weights = try HDF5File(creating: path)
            let root = weights.root
            _ = try root.createGroup("vars")
            _ = try root.createGroup("layers")
            var used: [String: Int] = [:]
            for index in plan.kerasLayerOrder() {
                let layer = plan.layers[index]
                // Operations are not layers: Keras 3 neither saves nor numbers them.
                if layer.specification.isOperation { continue }
                var groupName = kerasSnakeCase(layer.specification.className)
                if let count = used[groupName] {
                    used[groupName] = count + 1
                    groupName += "_\(count + 1)"
                } else {
                    used[groupName] = 0
                }
                _ = try root.createGroup("layers/\(groupName)/vars")
                // A sublayer's variables (role `forward_layer/cell/kernel`) go to its own group,
                // `forward_layer/cell/vars/<i>`, numbered within it (KerasNestedWeights).
                var counts: [String: Int] = [:]
                for parameter in layer.parameters {
                    guard let elementType = HDF5ElementType(parameter.dtype) else {
                        throw KerasError(.writeFailed, file: file, subject: parameter.name, "\(parameter.dtype) weights cannot be written to Keras")
                    }
                    let owner = parameter.role.rawValue.split(separator: "/").dropLast().joined(separator: "/")
                    let object = owner.isEmpty ? "layers/\(groupName)" : "layers/\(groupName)/\(owner)"
                    let position = counts[object, default: 0]
                    counts[object] = position + 1
                    if position == 0 && !owner.isEmpty { try createObjectGroups(root, layer: "layers/\(groupName)", owner: owner) }
                    let dataset = try root.createDataset("\(object)/vars/\(position)", elementType: elementType, shape: parameter.shape,
                                                         deflateLevel: compress ? deflateLevel : nil)
                    try dataset.write(bytes: try parameter.storage.bytes(keep: false))
                }
            }
            try weights.flush()
        } catch let error as HDF5Error {
            throw KerasError(.writeFailed, file: file, subject: "model.weights.h5", error.description)
        }
    }

    /// The `vars` group of every object on the way to a sublayer (`forward_layer/vars`,
    /// `forward_layer/cell/vars`), as Keras writes them, each once.
    private static func createObjectGroups(_ root: HDF5Group, layer: String, owner: String) throws {
        var path = layer
        for component in owner.split(separator: "/") {
            path += "/\(component)"
            if (try? root.kind(of: "\(path)/vars")) != .group { _ = try root.createGroup("\(path)/vars") }
        }
    }
}
