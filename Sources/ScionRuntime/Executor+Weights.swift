import ScionIR

/// How weights get from the file into the executor: each parameter read once, float32 values
/// straight into the array the executor keeps (no byte array beside it), and, for an inference
/// executor, the graph's hold on the file's bytes let go once it has them, so the executor is the
/// only holder of the weights while it runs.
extension Executor {
    /// Every parameter the executor reads (those in `loading`, or all) as float32, by name. With
    /// `releasing`, each one read is replaced in `graph` by a storage that says the executor holds
    /// it (`HeldByExecutor`): the graph keeps shapes and names but no bytes, so the model's own copy
    /// (an ONNX file's bytes, a `.keras` archive's mapped pages) is freed once its owner lets the
    /// model go. The trainer's executor keeps its storages: it writes the untrained ones back as
    /// they are (`Trainer.trainedGraph`).
    static func loadWeights(_ graph: inout Graph, loading: Set<String>?, releasing: Bool) throws -> [String: [Float]] {
        try loadWeights(&graph, loading: loading, releasing: releasing, inFileOrder: []).values
    }

    /// The same, with the parameters named in `inFileOrder` read in the order the file holds them
    /// when the lowering reordered them (`floatsInFileOrder`: the HWIO kernels of convolutions an
    /// executor runs channels-last), with no permutation at all. `fileShapes` names those that were,
    /// with the file's shape; the others in `inFileOrder` (an ONNX file's kernels, never reordered)
    /// come in the lowered graph's order as usual.
    static func loadWeights(_ graph: inout Graph, loading: Set<String>?, releasing: Bool,
                            inFileOrder: Set<String>) throws -> (values: [String: [Float]], fileShapes: [String: [Int]]) {
        var weights: [String: [Float]] = [:], fileShapes: [String: [Int]] = [:]
        for parameter in graph.parameters.all where loading?.contains(parameter.name) ?? true {
            if inFileOrder.contains(parameter.name), let (values, shape, _) = try floatsInFileOrder(parameter) {
                weights[parameter.name] = values
                fileShapes[parameter.name] = shape
            } else {
                weights[parameter.name] = try floats(parameter)
            }
            guard releasing else { continue }
            var released = parameter
            released.storage = TensorStorage(source: HeldByExecutor(name: parameter.name, byteCount: parameter.storage.byteCount))
            graph.parameters[parameter.name] = released
        }
        return (weights, fileShapes)
    }

    /// A parameter's values as float32 (integer constants converted). float32 data is read from the
    /// file (or the permutation of it) straight into the result's buffer.
    static func floats(_ parameter: Parameter) throws -> [Float] {
        let count = parameter.elementCount
        if parameter.dtype == .float32 && parameter.storage.byteCount == count * 4 {
            return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                try parameter.storage.readBytes(into: UnsafeMutableRawBufferPointer(buffer))
                initialized = count
            }
        }
        return try converted(parameter.storage.bytes(keep: false), parameter)
    }

    /// The float32 values of a parameter the lowering reordered (a Keras kernel, HWIO in the file,
    /// OIHW in the lowered graph) in the file's own order, without permuting anything: `shape` is the
    /// file's, and `permutation` takes these values to the lowered parameter's (output axis `k` is
    /// axis `permutation[k]` of `shape`). nil when the parameter is not a whole-tensor reordering
    /// (ONNX weights, biases, a permuted part of a Dense kernel): read `floats` then.
    ///
    /// For an executor that runs some convolutions channels-last: their kernels are wanted HWIO,
    /// exactly what Keras wrote, so reading them here skips the HWIO→OIHW→HWIO round trip.
    static func floatsInFileOrder(_ parameter: Parameter) throws -> (values: [Float], shape: [Int], permutation: [Int])? {
        guard parameter.dtype == .float32, let (original, shape, permutation) = parameter.storage.reordering,
              shape.checkedProduct == parameter.elementCount, original.byteCount == parameter.elementCount * 4 else { return nil }
        let count = parameter.elementCount
        let values = try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try original.readBytes(into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
        return (values, shape, permutation)
    }

    /// Bytes of another element type converted to float32.
    private static func converted(_ bytes: [UInt8], _ parameter: Parameter) throws -> [Float] {
        let count = parameter.elementCount
        return try bytes.withUnsafeBytes { raw -> [Float] in
            switch parameter.dtype {
            case .float32 where bytes.count == count * 4:
                return Array(raw.bindMemory(to: Float.self).prefix(count))
            case .float64 where bytes.count == count * 8:
                return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
            case .int64 where bytes.count == count * 8:
                return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .int32 where bytes.count == count * 4:
                return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            // Bools are held as 0 and 1, as the comparisons make them (a constant attention mask).
            case .bool where bytes.count == count:
                return (0..<count).map { raw[$0] == 0 ? 0 : 1 }
            default:
                throw RuntimeError(parameter.name, "holds \(parameter.dtype) values (\(bytes.count) bytes for shape \(parameter.shape)); the executor runs float32")
            }
        }
    }
}

/// Stands in for a parameter's bytes in an inference executor's graph once the executor holds the
/// values (`Executor.loadWeights`): the size stays known, and a read says where the values are
/// instead of reading the file again.
final class HeldByExecutor: TensorSource {
    let name: String
    let byteCount: Int
    var location: String { "\(name) (held by the executor as float32)" }

    init(name: String, byteCount: Int) { self.name = name; self.byteCount = byteCount }

    func readBytes() throws -> [UInt8] {
        throw RuntimeError(name, "its values were handed to the executor (and may be folded); read the model's own graph for its bytes")
    }
}
