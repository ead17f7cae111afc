import HDF5
import ScionIR

/// Reads files from `save_weights`: tensors without an architecture. Inspect lists them; operations
/// that need layers refuse (`Graph.hasArchitecture` is false). Trainability is not stored in such
/// files, so every tensor is listed as trainable except BatchNormalization-style statistics.
struct KerasWeightsOnlyReader {
    let file: String
    /// Hostile files could hold millions of tiny datasets or very deep groups; no real one does.
    static let maximumTensors = 1_000_000
    static let maximumDepth = 64

    /// Keras 2 `save_weights("x.h5")`: `layer_names` at the root, one group per layer.
    func readLegacy(root: HDF5Group) throws -> Graph {
        var graph = emptyGraph(format: "keras-h5-weights", root: root)
        for layer in try KerasModelReader.wrapping(file, { try splitStringArrayAttribute(root, "layer_names") }) {
            let group = try KerasModelReader.wrapping(file) { try root.group(layer) }
            for weightName in try KerasModelReader.wrapping(file, { try splitStringArrayAttribute(group, "weight_names") }) {
                let dataset = try KerasModelReader.wrapping(file) { try group.dataset(weightName) }
                let stripped = weightName.split(separator: ":").first.map(String.init) ?? weightName
                let name = stripped.hasPrefix(layer + "/") ? stripped : "\(layer)/\(stripped)"
                try add(name: name, dataset: dataset, to: &graph)
            }
        }
        return graph
    }

    /// Keras 3 `save_weights("x.weights.h5")`: groups by object path (`layers/dense/vars/0`).
    func readObjectPaths(root: HDF5Group) throws -> Graph {
        var graph = emptyGraph(format: "keras-weights-h5", root: root)
        try walk(root, prefix: "", depth: 0, graph: &graph)
        return graph
    }

    private func walk(_ group: HDF5Group, prefix: String, depth: Int, graph: inout Graph) throws {
        guard depth < Self.maximumDepth else {
            throw KerasError(.invalidWeights, file: file, subject: group.path, "groups nested more than \(Self.maximumDepth) deep")
        }
        let children = try KerasModelReader.wrapping(file) { try group.childNames() }
        for child in children {
            let path = prefix.isEmpty ? child : "\(prefix)/\(child)"
            switch try KerasModelReader.wrapping(file, { try group.kind(of: child) }) {
            case .group:
                try walk(try KerasModelReader.wrapping(file) { try group.group(child) }, prefix: path, depth: depth + 1, graph: &graph)
            case .dataset:
                try add(name: path, dataset: try KerasModelReader.wrapping(file) { try group.dataset(child) }, to: &graph)
            case .softLink, .externalLink:
                throw KerasError(.invalidWeights, file: file, subject: path, "is a link; Scion does not follow links in model files")
            default:
                continue
            }
        }
    }

    private func emptyGraph(format: String, root: HDF5Group) -> Graph {
        var graph = Graph(name: "weights", hasArchitecture: false, layout: .channelsLast)
        graph.metadata["format"] = format
        graph.metadata["trainability"] = "unknown"
        if let version = try? root.stringAttribute("keras_version") { graph.metadata["keras_version"] = version }
        return graph
    }

    private func add(name: String, dataset: HDF5Dataset, to graph: inout Graph) throws {
        guard graph.parameters.count < Self.maximumTensors else {
            throw KerasError(.invalidWeights, file: file, "more than \(Self.maximumTensors) tensors")
        }
        let role = KerasWeightRoles.role(fromWeightName: name, className: "")
        // No architecture says the class, so the name alone decides (trainability is `unknown` anyway).
        let statistic = role.isStatistic
        var unique = name
        var suffix = 1
        while graph.parameters[unique] != nil { unique = "\(name)_\(suffix)"; suffix += 1 }
        graph.parameters.add(try makeParameter(name: unique, role: role, dataset: dataset, trainable: !statistic, file: file))
    }
}
