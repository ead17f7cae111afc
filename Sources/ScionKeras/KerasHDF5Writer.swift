import HDF5
import ScionIR

/// Writes the legacy `.h5` layout Keras 3's `legacy_h5_format` writes and reads: root attributes
/// `model_config`, `keras_version`, `backend`; group `model_weights` listing `layer_names`, and per
/// layer a group whose `weight_names` name its datasets. Keras 3 binds these weights by position (the
/// n-th layer with weights in `model.layers` order gets the n-th listed layer's weights), so layers
/// are listed in that order.
extension KerasModelWriter {
    /// HDF5 object headers hold at most this much attribute data; Keras splits longer name lists.
    static let attributeChunkLimit = 64512

    /// `path` is where to write (a temporary file, usually); `file` names the target in messages.
    package static func writeHDF5(_ graph: Graph, to path: String, file: String, compress: Bool = false) throws {
        let plan = try KerasModelPlan(graph: graph, file: file)
        let config = plan.modelConfig(legacy: true)
        do {
            let output = try HDF5File(creating: path)
            let root = output.root
            try root.setStringAttribute("keras_version", kerasVersion)
            try root.setStringAttribute("backend", "jax")
            // Keras's legacy loader reads only the attributes it knows: the class names ride along (Graph+ClassNames).
            if let classNames = graph.metadata[Graph.classNamesKey] {
                guard classNames.utf8.count <= attributeChunkLimit else {
                    throw KerasError(.writeFailed, file: file, subject: Graph.classNamesKey,
                                     "the class names take \(classNames.utf8.count) bytes; an .h5 attribute holds \(attributeChunkLimit) (write .keras)")
                }
                try root.setStringAttribute(Graph.classNamesKey, classNames)
            }
            try root.setStringAttribute("model_config", config.serialized)
            let weights = try root.createGroup("model_weights")
            let order = plan.kerasLayerOrder()
            try setSplitAttribute(weights, "layer_names", order.map { plan.layers[$0].name })
            try weights.setStringAttribute("backend", "jax")
            try weights.setStringAttribute("keras_version", kerasVersion)
            // Keras creates the groups sorted by name so no group name is created after a prefix of it.
            for index in order.sorted(by: { plan.layers[$0].name < plan.layers[$1].name }) {
                let layer = plan.layers[index]
                let group = try weights.createGroup(layer.name)
                // Keras binds these by position in `trainable_weights + non_trainable_weights`:
                // trainable first, which only reorders a layer whose sublayers hold statistics.
                let parameters = layer.parameters.filter(\.trainable) + layer.parameters.filter { !$0.trainable }
                let names = parameters.map { parameter in
                    let role: ParameterRole = parameter.role == .depthwiseKernel && layer.specification.className.hasPrefix("DepthwiseConv")
                        ? .kernel : parameter.role
                    return "\(layer.name)/\(role.rawValue)"
                }
                try setSplitAttribute(group, "weight_names", names)
                for (parameter, name) in zip(parameters, names) {
                    guard let elementType = HDF5ElementType(parameter.dtype) else {
                        throw KerasError(.writeFailed, file: file, subject: parameter.name, "\(parameter.dtype) weights cannot be written to Keras")
                    }
                    let dataset = try group.createDataset(name, elementType: elementType, shape: parameter.shape,
                                                          deflateLevel: compress ? deflateLevel : nil)
                    try dataset.write(bytes: try parameter.storage.bytes(keep: false))
                }
            }
            let topLevel = try weights.createGroup("top_level_model_weights")
            try setSplitAttribute(topLevel, "weight_names", [])
            try output.flush()
        } catch let error as HDF5Error {
            throw KerasError(.writeFailed, file: file, error.description)
        }
    }

    /// Writes a list of names as one attribute, or as `name0`, `name1`... when it would not fit an
    /// object header: numpy's `array_split` into the fewest chunks that fit, as Keras does.
    static func setSplitAttribute(_ group: HDF5Group, _ name: String, _ values: [String]) throws {
        let width = max(1, values.map(\.utf8.count).max() ?? 1)
        var chunkCount = 1
        func chunks(_ count: Int) -> [[String]] {
            let base = values.count / count, extra = values.count % count
            var result: [[String]] = []
            var start = 0
            for index in 0..<count {
                let size = base + (index < extra ? 1 : 0)
                result.append(Array(values[start..<(start + size)]))
                start += size
            }
            return result
        }
        while chunks(chunkCount).contains(where: { $0.count * width > attributeChunkLimit }), chunkCount < max(1, values.count) {
            chunkCount += 1
        }
        if chunkCount == 1 {
            try group.setStringArrayAttribute(name, values)
        } else {
            for (index, chunk) in chunks(chunkCount).enumerated() {
                try group.setStringArrayAttribute("\(name)\(index)", chunk)
            }
        }
    }
}
