import ScionIR

/// Keras's recurrent weights and ONNX's, both ways (docs/recurrent.md has the table).
///
/// ```
///            Keras (the IR)                          ONNX (layout 0, one direction d)
///  kernel    [features, G*units], gates as columns   W[d]  [G*units, features]  (transposed)
///  recurrent [units, G*units]                        R[d]  [G*units, units]     (transposed)
///  bias      [G*units]  or GRU reset_after [2, 3u]   B[d]  [2*G*units] = input bias, recurrent bias
///  LSTM gates  i f c o                               i o f c
///  GRU gates   z r h                                 z r h
/// ```
/// GRU `reset_after=True` is ONNX's `linear_before_reset=1` (Keras's two bias rows are ONNX's Wb and
/// Rb); `reset_after=False` is `linear_before_reset=0` with Keras's one bias as Wb and Rb zero.
/// SimpleRNN's one bias is Wb, Rb zero. Any ONNX model's Wb + Rb can be read back into one Keras
/// bias except for GRU's candidate with `linear_before_reset=0`, whose Rb stays apart only with
/// `linear_before_reset=1`: the importer adds Rb into Wb where the sum is the same function.
enum ONNXRecurrentMapping {
    /// ONNX gate `k` holds Keras gate `onnxGateOrder[k]`.
    static func onnxGateOrder(_ cell: RecurrentAttributes.Cell) -> [Int] {
        switch cell {
        case .simpleRNN: [0]
        case .lstm: [0, 3, 1, 2]
        case .gru: [0, 1, 2]
        }
    }

    /// ONNX op type of a cell.
    static func onnxType(_ cell: RecurrentAttributes.Cell) -> String {
        switch cell {
        case .simpleRNN: "RNN"
        case .lstm: "LSTM"
        case .gru: "GRU"
        }
    }

    /// Where each value of a Keras `[rows, G*units]` matrix (gates as column blocks) sits in ONNX's
    /// `[G*units, rows]` (gates reordered): `(keras, onnx)` flat index pairs, one per value. Both
    /// directions of the conversion walk this one map; a bias vector is the one-row case.
    private static func gateIndexPairs(rows: Int, units: Int, cell: RecurrentAttributes.Cell) -> [(keras: Int, onnx: Int)] {
        let order = onnxGateOrder(cell), width = order.count * units
        var pairs: [(keras: Int, onnx: Int)] = []
        pairs.reserveCapacity(rows * width)
        for (onnxGate, kerasGate) in order.enumerated() {
            for j in 0..<units {
                for row in 0..<rows { pairs.append((row * width + kerasGate * units + j, (onnxGate * units + j) * rows + row)) }
            }
        }
        return pairs
    }

    /// Keras `[rows, G*units]` (gates as column blocks) to ONNX `[G*units, rows]`, gates reordered.
    static func toONNX(_ matrix: [Float], rows: Int, units: Int, cell: RecurrentAttributes.Cell) -> [Float] {
        var result = [Float](repeating: 0, count: matrix.count)
        for pair in gateIndexPairs(rows: rows, units: units, cell: cell) { result[pair.onnx] = matrix[pair.keras] }
        return result
    }

    /// ONNX `[G*units, rows]` back to Keras `[rows, G*units]`.
    static func toKeras(_ matrix: [Float], rows: Int, units: Int, cell: RecurrentAttributes.Cell) -> [Float] {
        var result = [Float](repeating: 0, count: matrix.count)
        for pair in gateIndexPairs(rows: rows, units: units, cell: cell) { result[pair.keras] = matrix[pair.onnx] }
        return result
    }

    /// A Keras-ordered bias vector `[G*units]` in ONNX's gate order.
    static func vectorToONNX(_ vector: [Float], units: Int, cell: RecurrentAttributes.Cell) -> [Float] {
        toONNX(vector, rows: 1, units: units, cell: cell)
    }

    /// An ONNX-ordered bias vector back in Keras's gate order.
    static func vectorToKeras(_ vector: [Float], units: Int, cell: RecurrentAttributes.Cell) -> [Float] {
        toKeras(vector, rows: 1, units: units, cell: cell)
    }

    /// ONNX's name for an activation inside RNN/LSTM/GRU, with the alpha and beta it consumes from
    /// `activation_alpha` / `activation_beta`; nil when ONNX's recurrent ops have none that equals it.
    static func onnxActivation(_ activation: Activation) -> (name: String, alpha: [Float], beta: [Float])? {
        switch activation {
        case .sigmoid: ("Sigmoid", [], [])
        case .tanh: ("Tanh", [], [])
        case .relu(nil, 0, 0): ("Relu", [], [])
        case .hardSigmoid(let alpha, let beta): ("HardSigmoid", [alpha], [beta])
        case .leakyRelu(let alpha): ("LeakyRelu", [alpha], [])
        case .elu(let alpha): ("Elu", [alpha], [])
        case .softsign: ("Softsign", [], [])
        case .softplus: ("Softplus", [], [])
        case .linear: ("Affine", [1], [0])
        default: nil
        }
    }

    /// The activation an ONNX name (with the alpha and beta it takes) stands for; nil for one Scion
    /// does not run.
    static func activation(_ name: String, alpha: inout ArraySlice<Float>, beta: inout ArraySlice<Float>) -> Activation? {
        func next(_ values: inout ArraySlice<Float>, _ fallback: Float) -> Float { values.popFirst() ?? fallback }
        switch name.lowercased() {
        case "sigmoid": return .sigmoid
        case "tanh": return .tanh
        case "relu": return .plainRelu
        case "hardsigmoid":
            let a = next(&alpha, 0.2)
            return .hardSigmoid(alpha: a, beta: next(&beta, 0.5))
        case "leakyrelu": return .leakyRelu(alpha: next(&alpha, 0.01))
        case "elu": return .elu(alpha: next(&alpha, 1))
        case "softsign": return .softsign
        case "softplus": return .softplus
        case "affine":
            let (a, b) = (next(&alpha, 1), next(&beta, 0))
            return a == 1 && b == 0 ? .linear : nil
        default: return nil
        }
    }
}
