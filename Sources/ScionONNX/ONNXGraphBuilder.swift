import ScionIR

/// Accumulates ONNX nodes and initializers while a graph is exported, handing out unique names for
/// the intermediate values and constants an IR node expands into.
struct ONNXGraphBuilder {
    let file: String
    let opset: Int64
    /// The lowest opset that writes every node emitted so far in its native form (LayerNormalization
    /// as one node from 17, Gelu from 20...) or at all (Resize's antialias from 18): what
    /// `ONNXExporter` writes when no opset is asked for.
    var nativeOpset: Int64 = ONNXExporter.supportedOpsets.lowerBound
    var nodes: [ONNXNode] = []
    var initializers: [ONNXTensor] = []
    /// Constants made from frozen weights (a frozen recurrent layer's converted W, R, B): listed with
    /// the frozen parameters so the reader freezes what they become.
    var frozenConstants: [String] = []
    private var valueNames: UniqueNames
    /// Node names live apart from value names in ONNX, so a node keeps its layer's name even though
    /// its output value has the same one.
    private var nodeNames = UniqueNames()

    init(file: String, opset: Int64, reservedNames: Set<String>) {
        self.file = file
        self.opset = opset
        self.valueNames = UniqueNames(taken: reservedNames)
    }

    /// Whether the opset written has the ONNX form that arrived in `version`, noting that an export
    /// free to choose would want it.
    mutating func hasNative(_ version: Int64) -> Bool {
        nativeOpset = max(nativeOpset, version)
        return opset >= version
    }

    /// A name not used yet, derived from `base`.
    mutating func uniqueName(_ base: String) -> String { valueNames.claim(base) }

    /// A node name not used by another node yet.
    mutating func uniqueNodeName(_ base: String) -> String { nodeNames.claim(base) }

    /// Adds a node; returns its first output.
    @discardableResult
    mutating func add(_ opType: String, name: String, inputs: [String], output: String,
                      attributes: [ONNXAttribute] = []) -> String {
        nodes.append(ONNXNode(name: uniqueNodeName(name), opType: opType, inputs: inputs, outputs: [output],
                              attributes: attributes))
        return output
    }

    /// Adds a node whose output is a fresh intermediate value; returns that value's name.
    mutating func intermediate(_ opType: String, name: String, inputs: [String],
                               attributes: [ONNXAttribute] = []) -> String {
        add(opType, name: name, inputs: inputs, output: uniqueName("\(name)/\(opType.lowercased())"),
            attributes: attributes)
    }

    /// A float32 constant initializer.
    mutating func constant(_ name: String, floats: [Float], dimensions: [Int64]) -> String {
        let unique = uniqueName(name)
        let bytes = floats.withUnsafeBytes { [UInt8]($0) }
        initializers.append(ONNXTensor(name: unique, dimensions: dimensions, dataType: ONNXDataType.float.rawValue,
                                       data: .raw(bytes)))
        return unique
    }

    /// An int64 constant initializer (shapes, pads, axes).
    mutating func constant(_ name: String, int64s: [Int64], dimensions: [Int64]? = nil) -> String {
        let unique = uniqueName(name)
        let bytes = int64s.withUnsafeBytes { [UInt8]($0) }
        initializers.append(ONNXTensor(name: unique, dimensions: dimensions ?? [Int64(int64s.count)],
                                       dataType: ONNXDataType.int64.rawValue, data: .raw(bytes)))
        return unique
    }

    func unsupported(_ node: Node, _ reason: String) -> ONNXError {
        ONNXError(.unsupported, file: file, subject: node.name, reason)
    }
}

extension ONNXAttribute {
    static func int(_ name: String, _ value: Int) -> ONNXAttribute { ONNXAttribute(name: name, value: .int(Int64(value))) }
    static func ints(_ name: String, _ values: [Int]) -> ONNXAttribute {
        ONNXAttribute(name: name, value: .ints(values.map { Int64($0) }))
    }
    static func float(_ name: String, _ value: Float) -> ONNXAttribute { ONNXAttribute(name: name, value: .float(value)) }
    static func string(_ name: String, _ value: String) -> ONNXAttribute {
        ONNXAttribute(name: name, value: .string(Array(value.utf8)))
    }
}
