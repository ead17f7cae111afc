/// What a model file says about itself besides its graph: the format version, the operator sets, who
/// wrote it, its notes, and the names the file gave to things the IR holds anonymously. Readers fill
/// what their format has (ONNX today); `scion inspect` shows it. Nothing here changes how the graph
/// computes, so passes and writers may ignore it.
public struct ModelInfo: Equatable, Sendable {
    /// One `opset_import` entry: an operator domain (empty for the default `ai.onnx`) and its version.
    public struct OperatorSet: Equatable, Sendable {
        /// The operator domain; empty for the default `ai.onnx`.
        public var domain: String
        /// The domain's version the model uses.
        public var version: Int
        /// An operator set entry.
        public init(domain: String, version: Int) { self.domain = domain; self.version = version }
    }

    /// One key/value note (ONNX `metadata_props`), in file order.
    public struct Property: Equatable, Sendable {
        /// The note's key.
        public var key: String
        /// The note's value.
        public var value: String
        /// A note.
        public init(key: String, value: String) { self.key = key; self.value = value }
    }

    /// ONNX `ir_version`; nil for formats without one.
    public var irVersion: Int?
    /// The operator sets the file imports, in file order; empty for formats without them.
    public var operatorSets: [OperatorSet] = []
    /// The program that wrote the file, nil when the file does not say.
    public var producerName: String?
    /// The producing program's version, nil when the file does not say.
    public var producerVersion: String?
    /// The model's description (ONNX `doc_string`), nil when absent or empty.
    public var documentation: String?
    /// Key/value notes (ONNX `metadata_props`), in file order.
    public var properties: [Property] = []
    /// Names the file gives to dimensions of the graph's inputs and outputs (ONNX `dim_param`, such
    /// as `batch`), by value name: one entry per dimension, nil where the dimension has no name. The
    /// IR's `Shape` only knows such dimensions as unknown.
    public var dimensionNames: [String: [String?]] = [:]
    /// The type each node had in the file (ONNX `op_type`), by node name, because the IR's op does not
    /// tell it exactly (`Sum` and `Add` are both an elementwise add). Nodes made after reading (a
    /// grafted head) have no entry.
    public var nodeTypes: [String: String] = [:]

    /// Nothing known: what a graph built by hand has.
    public init() {}
}
