import ScionIR

/// The optional inputs of ONNX's RNN, LSTM and GRU that the recurrent op has no place for, and when
/// they are what the op computes anyway: initial states of zeros (Keras's start), sequence lengths
/// that are every row's full length, LSTM peepholes of zeros. Anything else keeps the node opaque
/// with the reason (`recurrentRefusal`), which `run` and the writers repeat.
extension ONNXImportSession {
    /// Why the node's optional inputs cannot be the recurrent op, or nil when they are what it
    /// computes: `sequence_lens` (4), `initial_h` (5), `initial_c` (6), LSTM's peepholes `P` (7).
    mutating func recurrentInputsRefusal(_ node: ONNXNode, time: Int?) throws -> String? {
        if let lengths = input(node, 4) {
            guard let values = try numbers(lengths)?.integers else {
                return "sequence_lens computed in the graph (rows of different lengths) is not supported: "
                    + "the recurrent op reads every step of every row"
            }
            guard let time, values.allSatisfy({ $0 == Int64(time) }) else {
                return "sequence_lens \(values.prefix(8)) is not every row's full length\(time.map { " (\($0) steps)" } ?? ""): "
                    + "the recurrent op reads every step of every row"
            }
        }
        if let peepholes = input(node, 7), try !isZeros(peepholes) {
            return "LSTM peepholes (input P) are not supported: Keras's LSTM has none"
        }
        for (position, name) in [(5, "initial_h"), (6, "initial_c")] {
            if let state = input(node, position), try !isZeros(state) {
                return "\(name) that is not zeros is not supported: the recurrent op starts from zero states, as Keras's layers do "
                    + "when called without initial_state"
            }
        }
        // What computed them (the constant, torch's ConstantOfShape of the batch's size) goes once the
        // graph is read, when nothing else reads it.
        droppedInitialStates.formUnion([4, 5, 6, 7].compactMap { input(node, $0) })
        return nil
    }

    /// Whether a value is all zeros, recognised by its structure so that zeros of a symbolic batch
    /// count: a constant of zeros (also what folding made of torch's static Expand), a
    /// ConstantOfShape whose fill is zero (or absent), and the reshapings, slicings, broadcasts and
    /// concatenations of zeros torch wraps around them (a per-layer Slice of one zeros tensor, an
    /// Expand of a zeros constant to `[dirs, batch, hidden]`).
    func isZeros(_ value: String, depth: Int = 0) throws -> Bool {
        if let constant = constants[value] {
            guard constant.dtype.isFloatingPoint || constant.dtype == .int64 || constant.dtype == .int32 else { return false }
            return try constant.storage.bytes(keep: true).allSatisfy { $0 == 0 }
        }
        guard depth < 16, let producer = model.graph.nodes.first(where: { $0.outputs.first == value }) else { return false }
        switch producer.opType {
        case "ConstantOfShape":
            guard case .tensor(let fill)? = producer.attribute("value") else { return true }
            return try constant(from: fill, fromInitializer: false).storage.bytes(keep: true).allSatisfy { $0 == 0 }
        case "Expand", "Slice", "Reshape", "Squeeze", "Unsqueeze", "Tile", "Transpose", "Identity", "Cast", "Flatten":
            guard let data = input(producer, 0) else { return false }
            return try isZeros(data, depth: depth + 1)
        case "Concat":
            return try !producer.inputs.isEmpty && producer.inputs.allSatisfy { try !$0.isEmpty && isZeros($0, depth: depth + 1) }
        default:
            return false
        }
    }
}
