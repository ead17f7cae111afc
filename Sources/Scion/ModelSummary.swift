import CZlib
import ScionIR

/// What `scion inspect` shows: where the model comes from (format, producer, versions, notes), its
/// interface, its layers with shapes, parameter counts and trainability, nested models nested.
/// Encodes to the JSON keys documented in docs/inspect.md (ModelSummary+Coding.swift).
public struct ModelSummary: Encodable, Sendable {
    /// A graph input or output.
    public struct Tensor: Encodable, Sendable {
        /// The value's name.
        public var name: String
        /// nil when unknown; unknown dimensions (the batch) are null.
        public var shape: [Int?]?
        /// Element type (`float32`...).
        public var dtype: String
        /// The file's names for the dimensions (ONNX `dim_param`), nil entries for unnamed ones; nil
        /// when the file names none.
        public var dimensionNames: [String?]?
    }

    /// One row of the layer table: a node, or a nested model with its own layers.
    public struct Layer: Encodable, Sendable {
        /// The layer's name (a nested one's without its model's scope).
        public var name: String
        /// Keras class name or ONNX op type, in the vocabulary of the format read.
        public var type: String
        /// The layers (nodes) producing what this one reads, or the graph inputs' names; a later
        /// output of a multi-output node is `name[k]`.
        public var inputs: [String]
        /// Shape of its (first) output; nil when unknown, unknown dimensions null.
        public var outputShape: [Int?]?
        /// Parameter count (elements of its weights).
        public var params: Int
        /// The layer's trainable flag.
        public var trainable: Bool
        /// For a later call of a shared layer: the layer whose weights it uses (counted there).
        public var sharedWith: String?
        /// The layers of a nested model.
        public var layers: [Layer]?
        /// A graph input's row: it has no trainability to show.
        var isInput = false
    }

    /// One stored weight tensor (listed with `includeWeights`).
    public struct Weight: Encodable, Sendable {
        /// The parameter's name (`conv1/kernel`).
        public var name: String
        /// Its dimensions.
        public var shape: [Int]
        /// Element type (`float32`...).
        public var dtype: String
        /// Bytes it occupies.
        public var bytes: Int
        /// CRC-32 of the stored bytes as 8 hex digits; only with `--weights`.
        public var crc32: String?
        /// nil when the file does not say (weights-only files).
        public var trainable: Bool?
    }

    /// The program that wrote the file.
    public struct Producer: Encodable, Sendable, Equatable {
        /// Its name (`tf2onnx`, `pytorch`, `keras`...).
        public var name: String
        /// Its version, when the file records one.
        public var version: String?
    }

    /// One ONNX operator set the model imports.
    public struct OperatorSet: Encodable, Sendable, Equatable {
        /// As in the file: empty for the default domain (`ai.onnx`).
        public var domain: String
        /// The operator set's version.
        public var version: Int
    }

    /// Whose words the table speaks: the format the model was read from decides the type names
    /// (Keras class names or ONNX op types) and how an unknown dimension reads (`None` or `?`).
    enum Vocabulary: Sendable { case keras, onnx }

    /// The format read, as given to `init` (`keras-h5`, `keras`, `onnx`).
    public var format: String
    /// The model's name.
    public var name: String
    /// The Keras version that saved the file; nil for ONNX or when not recorded.
    public var kerasVersion: String?
    /// The program that wrote the file: the ONNX exporter, or Keras for Keras files.
    public var producer: Producer?
    /// The Keras backend recorded in the file (`tensorflow`, `jax`...); nil for ONNX or when not recorded.
    public var backend: String?
    /// ONNX only (nil for Keras files).
    public var irVersion: Int?
    /// ONNX operator sets imported, in file order; nil for Keras files.
    public var opsets: [OperatorSet]?
    /// ONNX `metadata_props` in file order; nil for Keras files.
    public var metadata: [ModelInfo.Property]?
    /// ONNX `doc_string`; nil when absent.
    public var docString: String?
    /// The class names the model stores (Graph+ClassNames), in output order; nil when it stores none.
    public var classNames: [String]?
    /// True for a weights-only file: no layers, inputs or outputs.
    public var weightsOnly: Bool
    /// The graph's inputs.
    public var inputs: [Tensor]
    /// The graph's outputs.
    public var outputs: [Tensor]
    /// The table's rows in order, graph inputs included; a nested model holds its own layers.
    public var layers: [Layer]
    /// Elements in all weights.
    public var totalParams: Int
    /// nil when the file does not say which weights are trainable (weights-only files).
    public var trainableParams: Int?
    /// Elements in the frozen weights; nil when the file does not say (weights-only files).
    public var nonTrainableParams: Int?
    /// Bytes of all weights.
    public var sizeBytes: Int
    /// Bytes of the trainable weights; nil when the file does not say.
    public var trainableBytes: Int?
    /// Constant operands that are not weights (an ONNX Reshape's target shape, a Gather's index:
    /// integer or boolean tensors), left out of every count above; 0 when there are none.
    public var constants: Int
    /// Every weight, when asked for with `includeWeights`; nil otherwise.
    public var weights: [Weight]?
    var vocabulary: Vocabulary

    /// Summarizes `graph`. With `checksums`, reads every weight to list it with its CRC-32; without,
    /// reads no weight bytes at all.
    public init(graph: Graph, format: String, includeWeights: Bool, checksums: Bool) throws {
        self.format = format
        name = graph.name
        weightsOnly = !graph.hasArchitecture
        classNames = graph.classNames
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
        let leftOut = Self.nonWeightConstants(graph)
        constants = leftOut.count
        let all = graph.parameters.all.filter { !leftOut.contains($0.name) }
        let trainabilityKnown = graph.metadata["trainability"] != "unknown"
        totalParams = all.reduce(0) { $0 + $1.elementCount }
        sizeBytes = all.reduce(0) { $0 + $1.byteCount }
        if trainabilityKnown {
            let trainable = all.reduce(0) { $0 + ($1.trainable ? $1.elementCount : 0) }
            trainableParams = trainable
            nonTrainableParams = totalParams - trainable
            trainableBytes = all.reduce(0) { $0 + ($1.trainable ? $1.byteCount : 0) }
        }
        layers = LayerTreeBuilder(graph: graph, vocabulary: vocabulary, uncounted: leftOut).build()
        if includeWeights || weightsOnly {
            weights = try graph.parameters.all.map { parameter in
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

extension ModelSummary {
    /// The parameters of constant nodes that hold values rather than weights: the integers (or
    /// booleans) an ONNX file feeds a Reshape, a Gather, a Slice or a Where, and the literals it
    /// spells with `Constant` nodes or that folding computed (an epsilon, a scale from a Shape).
    /// Keras counts only weights, and a model's size in parameters should not change with how its
    /// exporter spelled a reshape. Floating-point initializers count: an Add's bias is a weight.
    static func nonWeightConstants(_ graph: Graph) -> Set<String> {
        var names = Set<String>()
        for node in graph.nodes {
            guard case .onnx(.constant(let attributes)) = node.op,
                  !attributes.dtype.isFloatingPoint || graph.info.nodeTypes[node.name] == "Constant" else { continue }
            names.formUnion(node.parameters)
        }
        return names
    }
}

/// A tensor's CRC-32 as `inspect --weights` and the training verification print it: eight
/// lower-case hex digits (`00001a2b`).
func crc32Text(_ bytes: [UInt8]) -> String {
    let value = bytes.withUnsafeBufferPointer { CZlib.crc32(0, $0.baseAddress, uInt($0.count)) }
    let digits = String(UInt32(truncatingIfNeeded: value), radix: 16)
    return String(repeating: "0", count: Swift.max(0, 8 - digits.count)) + digits
}
