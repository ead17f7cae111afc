import CZlib
import ScionIR

/// What `scion inspect` shows: layers, shapes, parameter counts and trainability, nested models
/// nested. Encodes to the documented JSON keys.
public struct ModelSummary: Encodable, Sendable {
    public struct Tensor: Encodable, Sendable {
        public var name: String
        /// nil when unknown; unknown dimensions (the batch) are null.
        public var shape: [Int?]?
        public var dtype: String
    }

    public struct Layer: Encodable, Sendable {
        public var name: String
        public var type: String
        public var inputs: [String]
        public var outputShape: [Int?]?
        public var params: Int
        public var trainable: Bool
        /// For a later call of a shared layer: the layer whose weights it uses (counted there).
        public var sharedWith: String?
        /// The layers of a nested model.
        public var layers: [Layer]?
    }

    public struct Weight: Encodable, Sendable {
        public var name: String
        public var shape: [Int]
        public var dtype: String
        public var bytes: Int
        /// CRC-32 of the stored bytes as 8 hex digits; only with `--weights`.
        public var crc32: String?
        /// nil when the file does not say (weights-only files).
        public var trainable: Bool?
    }

    public var format: String
    public var name: String
    public var kerasVersion: String?
    public var weightsOnly: Bool
    public var inputs: [Tensor]
    public var outputs: [Tensor]
    public var layers: [Layer]
    public var totalParams: Int
    /// nil when the file does not say which weights are trainable (weights-only files).
    public var trainableParams: Int?
    public var nonTrainableParams: Int?
    public var sizeBytes: Int
    public var trainableBytes: Int?
    public var weights: [Weight]?

    /// Summarizes `graph`. With `checksums`, reads every weight to list it with its CRC-32; without,
    /// reads no weight bytes at all.
    public init(graph: Graph, format: String, includeWeights: Bool, checksums: Bool) throws {
        self.format = format
        name = graph.name
        kerasVersion = graph.metadata["keras_version"]
        weightsOnly = !graph.hasArchitecture
        inputs = graph.inputs.map { Tensor(name: $0.name, shape: $0.shape?.dimensions, dtype: $0.dtype.rawValue) }
        outputs = graph.outputs.map { name in
            let info = graph.values[name]
            return Tensor(name: name, shape: info?.shape?.dimensions, dtype: info?.dtype.rawValue ?? "unknown")
        }
        let all = graph.parameters.all
        let trainabilityKnown = graph.metadata["trainability"] != "unknown"
        totalParams = all.reduce(0) { $0 + $1.elementCount }
        sizeBytes = all.reduce(0) { $0 + $1.byteCount }
        if trainabilityKnown {
            let trainable = all.reduce(0) { $0 + ($1.trainable ? $1.elementCount : 0) }
            trainableParams = trainable
            nonTrainableParams = totalParams - trainable
            trainableBytes = all.reduce(0) { $0 + ($1.trainable ? $1.byteCount : 0) }
        }
        layers = LayerTreeBuilder(graph: graph).build()
        if includeWeights || weightsOnly {
            weights = try all.map { parameter in
                var checksum: String?
                if checksums {
                    let bytes = try parameter.storage.bytes(keep: false)
                    let value = bytes.withUnsafeBufferPointer { buffer in
                        CZlib.crc32(0, buffer.baseAddress, uInt(buffer.count))
                    }
                    checksum = hex8(UInt32(truncatingIfNeeded: value))
                }
                return Weight(name: parameter.name, shape: parameter.shape, dtype: parameter.dtype.rawValue,
                              bytes: parameter.byteCount, crc32: checksum,
                              trainable: trainabilityKnown ? parameter.trainable : nil)
            }
        }
    }
}

// Encoders that write every key, null when unknown: consumers of `--json` can rely on the keys.
extension ModelSummary.Tensor {
    enum CodingKeys: String, CodingKey { case name, shape, dtype }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(shape, forKey: .shape)
        try container.encode(dtype, forKey: .dtype)
    }
}

extension ModelSummary.Layer {
    enum CodingKeys: String, CodingKey { case name, type, inputs, outputShape, params, trainable, sharedWith, layers }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(type, forKey: .type)
        try container.encode(inputs, forKey: .inputs)
        try container.encode(outputShape, forKey: .outputShape)
        try container.encode(params, forKey: .params)
        try container.encode(trainable, forKey: .trainable)
        try container.encodeIfPresent(sharedWith, forKey: .sharedWith)
        try container.encodeIfPresent(layers, forKey: .layers)
    }
}

extension ModelSummary.Weight {
    enum CodingKeys: String, CodingKey { case name, shape, dtype, bytes, crc32, trainable }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(shape, forKey: .shape)
        try container.encode(dtype, forKey: .dtype)
        try container.encode(bytes, forKey: .bytes)
        try container.encodeIfPresent(crc32, forKey: .crc32)
        try container.encode(trainable, forKey: .trainable)
    }
}

extension ModelSummary {
    enum CodingKeys: String, CodingKey {
        case format, name, kerasVersion, weightsOnly, inputs, outputs, layers, totalParams, trainableParams
        case nonTrainableParams, sizeBytes, trainableBytes, weights
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(format, forKey: .format)
        try container.encode(name, forKey: .name)
        try container.encode(kerasVersion, forKey: .kerasVersion)
        try container.encode(weightsOnly, forKey: .weightsOnly)
        try container.encode(inputs, forKey: .inputs)
        try container.encode(outputs, forKey: .outputs)
        try container.encode(layers, forKey: .layers)
        try container.encode(totalParams, forKey: .totalParams)
        try container.encode(trainableParams, forKey: .trainableParams)
        try container.encode(nonTrainableParams, forKey: .nonTrainableParams)
        try container.encode(sizeBytes, forKey: .sizeBytes)
        try container.encode(trainableBytes, forKey: .trainableBytes)
        try container.encodeIfPresent(weights, forKey: .weights)
    }
}

/// `0x1a2b` -> `"00001a2b"`.
func hex8(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: Swift.max(0, 8 - digits.count)) + digits
}

/// Builds the nested layer rows from the flat, scoped node list.
struct LayerTreeBuilder {
    let graph: Graph

    func build() -> [ModelSummary.Layer] {
        guard graph.hasArchitecture else { return [] }
        var rows: [ModelSummary.Layer] = graph.inputs.map {
            ModelSummary.Layer(name: $0.name, type: "InputLayer", inputs: [], outputShape: $0.shape?.dimensions,
                               params: 0, trainable: true)
        }
        var counted = Set<String>()
        var nodeRows: [(scope: String, row: ModelSummary.Layer)] = []
        for node in graph.nodes {
            let fresh = node.parameters.filter { !counted.contains($0) }
            let params = fresh.compactMap { graph.parameters[$0]?.elementCount }.reduce(0, +)
            let sharedWith = !node.parameters.isEmpty && fresh.isEmpty ? node.layer : nil
            counted.formUnion(node.parameters)
            // The layer's own flag, as Keras reports it (a Normalization layer is trainable even
            // though its statistics are not).
            let trainable = node.trainable
            let row = ModelSummary.Layer(
                name: displayName(node.name, scope: node.scope), type: node.op.typeName,
                inputs: node.inputs, outputShape: graph.values[node.outputs.first ?? ""]?.shape?.dimensions,
                params: params, trainable: trainable, sharedWith: sharedWith)
            nodeRows.append((node.scope, row))
        }
        rows += nest(nodeRows, scope: "")
        return rows
    }

    private func displayName(_ name: String, scope: String) -> String {
        scope.isEmpty ? name : String(name.dropFirst(scope.count + 1))
    }

    /// Groups rows of `scope`'s direct children, turning each nested scope into one row holding its
    /// own rows, in order of first appearance.
    private func nest(_ rows: [(scope: String, row: ModelSummary.Layer)], scope: String) -> [ModelSummary.Layer] {
        var result: [ModelSummary.Layer] = []
        var index = 0
        while index < rows.count {
            let current = rows[index]
            if current.scope == scope {
                result.append(current.row)
                index += 1
                continue
            }
            // The child scope this row sits in, one level below `scope`.
            let remainder = scope.isEmpty ? current.scope : String(current.scope.dropFirst(scope.count + 1))
            let childName = String(remainder.split(separator: "/").first ?? Substring(remainder))
            let childScope = scope.isEmpty ? childName : "\(scope)/\(childName)"
            var members: [(scope: String, row: ModelSummary.Layer)] = []
            while index < rows.count, rows[index].scope == childScope || rows[index].scope.hasPrefix(childScope + "/") {
                members.append(rows[index])
                index += 1
            }
            let children = nest(members, scope: childScope)
            let submodel = graph.submodels.first { $0.path == childScope }
            let nodesInside = graph.nodes.filter { $0.scope == childScope || $0.scope.hasPrefix(childScope + "/") }
            let inside = Set(nodesInside.flatMap(\.outputs))
            let entry = nodesInside.first
            let exit = nodesInside.last
            result.append(ModelSummary.Layer(
                name: childName, type: submodel?.type ?? "Model",
                inputs: entry?.inputs.filter { !inside.contains($0) } ?? [],
                outputShape: exit.flatMap { graph.values[$0.outputs.first ?? ""]?.shape?.dimensions },
                params: Self.total(children), trainable: submodel?.trainable ?? true, layers: children))
        }
        return result
    }

    private static func total(_ rows: [ModelSummary.Layer]) -> Int {
        rows.reduce(0) { $0 + $1.params }
    }
}
