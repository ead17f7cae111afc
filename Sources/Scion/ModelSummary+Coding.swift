import ScionIR

// Encoders that write every documented key, null when unknown or when the format has no such thing:
// consumers of `--json` can rely on the keys.
extension ModelSummary.Tensor {
    enum CodingKeys: String, CodingKey { case name, shape, dtype, dimensionNames }
    /// Encodes the keys docs/inspect.md lists.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(shape, forKey: .shape)
        try container.encode(dtype, forKey: .dtype)
        try container.encode(dimensionNames, forKey: .dimensionNames)
    }
}

extension ModelSummary.Layer {
    enum CodingKeys: String, CodingKey { case name, type, inputs, outputShape, params, trainable, sharedWith, layers }
    /// Encodes the keys docs/inspect.md lists.
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
    /// Encodes the keys docs/inspect.md lists.
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

/// A JSON object key chosen at run time (a metadata_props key).
private struct PropertyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension ModelSummary {
    enum CodingKeys: String, CodingKey {
        case format, name, kerasVersion, producer, backend, irVersion, opsets, metadata, docString, classNames, weightsOnly
        case inputs, outputs, layers, totalParams, trainableParams, nonTrainableParams, sizeBytes, trainableBytes, constants, weights
    }
    /// Encodes the keys docs/inspect.md lists.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(format, forKey: .format)
        try container.encode(name, forKey: .name)
        try container.encode(kerasVersion, forKey: .kerasVersion)
        try container.encode(producer, forKey: .producer)
        try container.encode(backend, forKey: .backend)
        try container.encode(irVersion, forKey: .irVersion)
        try container.encode(opsets, forKey: .opsets)
        if let metadata {
            // An object, as users look values up by key. ONNX forbids repeated keys; should a file
            // repeat one anyway, the first value is kept, as the table lists it first.
            var object = container.nestedContainer(keyedBy: PropertyKey.self, forKey: .metadata)
            var seen = Set<String>()
            for property in metadata where seen.insert(property.key).inserted {
                try object.encode(property.value, forKey: PropertyKey(stringValue: property.key))
            }
        } else {
            try container.encodeNil(forKey: .metadata)
        }
        try container.encode(docString, forKey: .docString)
        try container.encode(classNames, forKey: .classNames)
        try container.encode(weightsOnly, forKey: .weightsOnly)
        try container.encode(inputs, forKey: .inputs)
        try container.encode(outputs, forKey: .outputs)
        try container.encode(layers, forKey: .layers)
        try container.encode(totalParams, forKey: .totalParams)
        try container.encode(trainableParams, forKey: .trainableParams)
        try container.encode(nonTrainableParams, forKey: .nonTrainableParams)
        try container.encode(sizeBytes, forKey: .sizeBytes)
        try container.encode(trainableBytes, forKey: .trainableBytes)
        try container.encode(constants, forKey: .constants)
        try container.encodeIfPresent(weights, forKey: .weights)
    }
}

extension ModelSummary.Producer {
    enum CodingKeys: String, CodingKey { case name, version }
    /// Encodes the keys docs/inspect.md lists.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
    }
}
