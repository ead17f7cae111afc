import CZlib
import ScionIR

/// What `scion inspect` shows: where the model comes from (format, producer, versions, notes), its
/// interface, its layers with shapes, parameter counts and trainability, nested models nested.
/// Encodes to the JSON keys documented in docs/inspect.md (ModelSummary+Coding.swift).
public struct ModelSummary: Encodable, Sendable {
    public struct Tensor: Encodable, Sendable {
        public var name: String
        /// nil when unknown; unknown dimensions (the batch) are null.
        public var shape: [Int?]?
        public var dtype: String
        /// The file's names for the dimensions (ONNX `dim_param`), nil entries for unnamed ones; nil
        /// when the file names none.
        public var dimensionNames: [String?]?
    }

    public struct Layer: Encodable, Sendable {
        public var name: String
        public var type: String
        /// The layers (nodes) producing what this one reads, or the graph inputs' names; a later
        /// output of a multi-output node is `name[k]`.
        public var inputs: [String]
        public var outputShape: [Int?]?
        public var params: Int
        public var trainable: Bool
        /// For a later call of a shared layer: the layer whose weights it uses (counted there).
        public var sharedWith: String?
        /// The layers of a nested model.
        public var layers: [Layer]?
        /// A graph input's row: it has no trainability to show.
        var isInput = false
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

    public struct Producer: Encodable, Sendable, Equatable {
        public var name: String
        public var version: String?
    }

    public struct OperatorSet: Encodable, Sendable, Equatable {
        /// As in the file: empty for the default domain (`ai.onnx`).
        public var domain: String
        public var version: Int
    }

    /// Whose words the table speaks: the format the model was read from decides the type names
    /// (Keras class names or ONNX op types) and how an unknown dimension reads (`None` or `?`).
    enum Vocabulary: Sendable { case keras, onnx }

    public var format: String
    public var name: String
    public var kerasVersion: String?
    /// The program that wrote the file: the ONNX exporter, or Keras for Keras files.
    public var producer: Producer?
    /// The Keras backend recorded in the file (`tensorflow`, `jax`...); nil for ONNX or when not recorded.
    public var backend: String?
    /// ONNX only (nil for Keras files).
    public var irVersion: Int?
    public var opsets: [OperatorSet]?
    /// ONNX `metadata_props` in file order; nil for Keras files.
    public var metadata: [ModelInfo.Property]?
    public var docString: String?
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
    var vocabulary: Vocabulary

    /// Summarizes `graph`. With `checksums`, reads every weight to list it with its CRC-32; without,
    /// reads no weight bytes at all.
    public init(graph: Graph, format: String, includeWeights: Bool, checksums: Bool) throws {
        self.format = format
        name = graph.name
        weightsOnly = !graph.hasArchitecture
        let info = graph.info
        // Only the ONNX reader records an IR version: it marks a model read from ONNX.
        vocabulary = info.irVersion == nil ? .keras : .onnx
        switch vocabulary {
        case .onnx:
            producer = info.producerName.map { Producer(name: $0, version: info.producerVersion) }
            irVersion = info.irVersion
            opsets = info.operatorSets.map { OperatorSet(domain: $0.domain, version: $0.version) }
            metadata = info.properties
            docString = info.documentation
        case .keras:
            kerasVersion = graph.metadata["keras_version"]
            backend = graph.metadata["backend"]
            producer = Producer(name: "Keras", version: kerasVersion)
        }
        func tensor(_ name: String, _ value: ValueInfo?) -> Tensor {
            Tensor(name: name, shape: value?.shape?.dimensions, dtype: value?.dtype.rawValue ?? "unknown",
                   dimensionNames: info.dimensionNames[name])
        }
        inputs = graph.inputs.map { tensor($0.name, $0) }
        outputs = graph.outputs.map { tensor($0, graph.values[$0]) }
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
        layers = LayerTreeBuilder(graph: graph, vocabulary: vocabulary).build()
        if includeWeights || weightsOnly {
            weights = try all.map { parameter in
                var checksum: String?
                if checksums {
                    checksum = crc32Text(try parameter.storage.bytes(keep: false))
                }
                return Weight(name: parameter.name, shape: parameter.shape, dtype: parameter.dtype.rawValue,
                              bytes: parameter.byteCount, crc32: checksum,
                              trainable: trainabilityKnown ? parameter.trainable : nil)
            }
        }
    }
}

/// A tensor's CRC-32 as `inspect --weights` and the training verification print it: eight
/// lower-case hex digits (`00001a2b`).
func crc32Text(_ bytes: [UInt8]) -> String {
    let value = bytes.withUnsafeBufferPointer { CZlib.crc32(0, $0.baseAddress, uInt($0.count)) }
    let digits = String(UInt32(truncatingIfNeeded: value), radix: 16)
    return String(repeating: "0", count: Swift.max(0, 8 - digits.count)) + digits
}
