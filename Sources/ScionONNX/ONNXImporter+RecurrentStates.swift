import ScionIR

/// The optional inputs of ONNX's RNN, LSTM and GRU: initial states of zeros are dropped (the op
/// starts from zeros, as Keras's layers do), any other initial states become inputs of the op;
/// sequence lengths that are every row's full length and LSTM peepholes of zeros are what the op
/// computes anyway. Anything else keeps the node opaque with the reason (`opaqueReason`),
/// which `run` and the writers repeat.
extension ONNXImportSession {
    /// The node's initial states the op must read (none when they are zeros: `initial_h` (5), LSTM's
    /// `initial_c` (6)), or why the optional inputs cannot be the recurrent op: `sequence_lens` (4),
    /// peepholes `P` (7).
    mutating func recurrentOptionalInputs(_ node: ONNXNode, cell: RecurrentAttributes.Cell, time: Int?) throws
        -> (states: [String], refusal: String?) {
        func refuse(_ reason: String) -> ([String], String?) { ([], reason) }
        if let lengths = input(node, 4) {
            guard let values = try numbers(lengths)?.integers else {
                return refuse("sequence_lens computed in the graph (rows of different lengths) is not supported: "
                    + "the recurrent op reads every step of every row")
            }
            guard let time, values.allSatisfy({ $0 == Int64(time) }) else {
                return refuse("sequence_lens \(values.prefix(8)) is not every row's full length\(time.map { " (\($0) steps)" } ?? ""): "
                    + "the recurrent op reads every step of every row")
            }
        }
        if let peepholes = input(node, 7), try !isZeros(peepholes) {
            return refuse("LSTM peepholes (input P) are not supported: Keras's LSTM has none")
        }
        let hidden = input(node, 5), cellState = cell == .lstm ? input(node, 6) : nil
        let zeroHidden = try hidden.map { try isZeros($0) } ?? true
        let zeroCell = try cellState.map { try isZeros($0) } ?? true
        // What computed dropped inputs (the constant, torch's ConstantOfShape of the batch's size)
        // goes once the graph is read, when nothing else reads it.
        droppedInitialStates.formUnion([4, 7].compactMap { input(node, $0) })
        if zeroHidden && zeroCell {
            droppedInitialStates.formUnion([hidden, cellState].compactMap { $0 })
            return ([], nil)
        }
        // States that are not zeros are read as given; the op then reads every state, so an absent
        // one (zeros by ONNX's rule) has no value to read.
        guard let hidden, cell != .lstm || cellState != nil else {
            return refuse("\(hidden == nil ? "initial_h" : "initial_c") absent while the other initial state is not zeros is "
                + "not supported: give both")
        }
        return ([hidden] + (cellState.map { [$0] } ?? []), nil)
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
        // Zeros of a symbolic size the symbolic folding left unimported (ONNXImporter+SymbolicShapes).
        if symbolic.zeroFills.contains(value) { return true }
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
