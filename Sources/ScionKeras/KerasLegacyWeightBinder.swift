import HDF5
import ScionIR

/// Binds weights stored the legacy way (Keras 2 `.h5`, Keras 3 `model.save("x.h5")`): one group per
/// top-level layer under `model_weights`, with a `weight_names` attribute listing dataset paths.
/// A nested model's group lists every weight inside it, trainable ones first; weights are matched to
/// layers by name, never by position.
struct KerasLegacyWeightBinder {
    let file: String
    let records: [KerasLayerRecord]

    mutating func bind(from weights: HDF5Group, into graph: inout Graph) throws {
        let layerNames = Set(try KerasModelReader.wrapping(file) { try splitStringArrayAttribute(weights, "layer_names") })
        for record in records where record.scope.isEmpty && layerNames.contains(record.name) {
            guard (try? weights.kind(of: record.name)) == .group else {
                throw KerasError(.invalidWeights, file: file, subject: record.scopedName,
                                 "layer is listed in layer_names but model_weights has no group for it")
            }
            let group = try KerasModelReader.wrapping(file) { try weights.group(record.name) }
            let weightNames = try KerasModelReader.wrapping(file) { try splitStringArrayAttribute(group, "weight_names") }
            // Group the weights by the layer they belong to, keeping their stored order.
            var byLayer: [(record: KerasLayerRecord, names: [String])] = []
            for weightName in weightNames {
                let target = record.isModel ? try owner(of: weightName, inside: record) : record
                if let position = byLayer.firstIndex(where: { $0.record.scopedName == target.scopedName }) {
                    byLayer[position].names.append(weightName)
                } else {
                    byLayer.append((target, [weightName]))
                }
            }
            for (target, names) in byLayer {
                for (weightName, role) in zip(names, roles(for: names, of: target)) {
                    guard (try? group.kind(of: weightName)) == .dataset else {
                        throw KerasError(.invalidWeights, file: file, subject: target.scopedName,
                                         "weight '\(weightName)' is listed in weight_names but its dataset is missing")
                    }
                    let dataset = try KerasModelReader.wrapping(file) { try group.dataset(weightName) }
                    try add(role: role, dataset: dataset, to: target, graph: &graph)
                }
            }
        }
    }

    /// Roles from the stored names (`kernel:0` -> `kernel`). When the names are not the ones the layer
    /// class uses (Keras 3 names some weights `variable`), and their number matches, by position.
    private func roles(for names: [String], of record: KerasLayerRecord) -> [ParameterRole] {
        let fromNames = names.map {
            KerasNestedWeights.role(fromWeightName: $0, layerName: record.name, className: record.className, config: record.config)
        }
        guard let expected = KerasWeightRoles.roles(className: record.className, config: record.config) else {
            return fromNames
        }
        if Set(fromNames).isSubset(of: Set(expected)) { return fromNames }
        return expected.count == names.count ? expected : fromNames
    }

    /// The layer inside nested model `model` that a weight name like `conv1/kernel:0` (or with more
    /// scope, `base/conv1/kernel`) belongs to: the layer whose scoped name ends with the name's path.
    private func owner(of weightName: String, inside model: KerasLayerRecord) throws -> KerasLayerRecord {
        let components = weightName.split(separator: "/").map(String.init)
        let layerPath = components.dropLast()
        let prefix = model.scopedName + "/"
        let candidates = records.filter { !$0.isModel && $0.scopedName.hasPrefix(prefix) }
        // Layer names may themselves contain "/" (DenseNet's `conv1/bn` beside its `bn`), so exact
        // matches win over suffix matches, longest first.
        for length in stride(from: layerPath.count, through: 1, by: -1) {
            let suffix = layerPath.suffix(length).joined(separator: "/")
            if let match = candidates.first(where: { $0.scopedName.dropFirst(prefix.count) == suffix || $0.name == suffix }) {
                return match
            }
        }
        for length in stride(from: layerPath.count, through: 1, by: -1) {
            let suffix = layerPath.suffix(length).joined(separator: "/")
            if let match = candidates.first(where: { $0.scopedName.hasSuffix("/" + suffix) }) { return match }
        }
        // A layer with sublayers names its weights below its own name
        // (`bilstm/forward_lstm/lstm_cell/kernel:0`): the owner is a leading part of the path.
        for end in stride(from: layerPath.count - 1, through: 1, by: -1) {
            let head = Array(layerPath.prefix(end))
            for length in stride(from: head.count, through: 1, by: -1) {
                let suffix = head.suffix(length).joined(separator: "/")
                if let match = candidates.first(where: { $0.scopedName.dropFirst(prefix.count) == suffix || $0.name == suffix }),
                   !KerasNestedWeights.sublayers(className: match.className, config: match.config).isEmpty {
                    return match
                }
            }
        }
        throw KerasError(.invalidWeights, file: file, subject: "\(model.scopedName)/\(weightName)",
                         "weight belongs to no layer of nested model '\(model.scopedName)'")
    }

    private func add(role: ParameterRole, dataset: HDF5Dataset, to record: KerasLayerRecord, graph: inout Graph) throws {
        let name = "\(record.scopedName)/\(role.rawValue)"
        guard graph.parameters[name] == nil else {
            throw KerasError(.invalidWeights, file: file, subject: name, "weight is stored twice")
        }
        let trainable = record.trainable
            && !KerasNestedWeights.isAlwaysFrozen(role, className: record.className, config: record.config)
        graph.parameters.add(try makeParameter(name: name, role: role, dataset: dataset, trainable: trainable, file: file))
        for index in record.nodeIndices { graph.nodes[index].parameters.append(name) }
    }
}
