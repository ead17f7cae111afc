import ScionIR

/// Keras's `dropout` and `recurrent_dropout` inside a recurrent cell while training
/// (keras/src/layers/rnn/dropout_rnn_cell.py): masks drawn once per batch and direction, used at
/// every step, each value 0 (dropped, probability `rate`) or `1 / (1 - rate)`.
struct RecurrentDropout {
    /// One mask per gate, each `[batch, features]`, on the input; nil without `dropout`.
    var input: [[Float]]?
    /// One mask per gate, each `[batch, units]`, on the previous hidden state; nil without
    /// `recurrent_dropout`. GRU's update `z * h` keeps the state undropped, as Keras does.
    var state: [[Float]]?

    init(input: [[Float]]? = nil, state: [[Float]]? = nil) {
        self.input = input
        self.state = state
    }

    /// Draws the masks of one direction for one batch the way Keras 3's cells use them: with
    /// `recurrent_dropout` an LSTM or GRU runs "implementation 1", one mask per gate for the input
    /// and for the state; otherwise one input mask shared by the gates (SimpleRNN always shares).
    static func draw(_ a: RecurrentAttributes, batch: Int, features: Int, random: inout SplitMix64) -> RecurrentDropout {
        let perGate = a.cell != .simpleRNN && a.recurrentDropout > 0
        func masks(_ rate: Float, _ count: Int) -> [[Float]]? {
            // Keras applies a rate only strictly between 0 and 1.
            guard rate > 0 && rate < 1 else { return nil }
            let keep = 1 / (1 - rate)
            let drawn = (0..<(perGate ? a.cell.gateCount : 1)).map { _ in
                (0..<count).map { _ in random.unit() < rate ? Float(0) : keep }
            }
            return perGate ? drawn : Array(repeating: drawn[0], count: a.cell.gateCount)
        }
        return RecurrentDropout(input: masks(a.dropout, batch * features), state: masks(a.recurrentDropout, batch * a.units))
    }
}

extension Kernels {
    /// `[rows, gates.count * units]`: for each gate `g` in `gates`, `value` `[rows, inner]` times its
    /// mask, times the column block `g` of `matrix` `[inner, matrixWidth]`. A mask has one row per
    /// `rowsPerMask` rows of `value` (the time steps of one sample share their sample's mask).
    static func droppedProduct(_ value: [Float], masks: [[Float]], rowsPerMask: Int, _ matrix: [Float], rows: Int, inner: Int,
                               units: Int, gates: Range<Int>, matrixWidth: Int) -> [Float] {
        let width = gates.count * units
        var result = [Float](repeating: 0, count: rows * width)
        var block = [Float](repeating: 0, count: rows * units)
        for (position, g) in gates.enumerated() {
            let dropped = Self.dropped(value, masks[g], rows: rows, inner: inner, rowsPerMask: rowsPerMask)
            let kernel = columns(matrix, rows: inner, width: matrixWidth, range: (g * units)..<((g + 1) * units))
            product(dropped, kernel, m: rows, n: units, k: inner, into: &block)
            for row in 0..<rows { for j in 0..<units { result[row * width + position * units + j] = block[row * units + j] } }
        }
        return result
    }

    /// The VJP of `droppedProduct` for `dResult` `[rows, gates.count * units]`: adds into the
    /// matrix's column blocks `gates` and into the value's gradient (through the masks).
    static func droppedProductBackward(_ value: [Float], masks: [[Float]], rowsPerMask: Int, _ matrix: [Float], rows: Int,
                                       inner: Int, units: Int, gates: Range<Int>, matrixWidth: Int, dResult: [Float],
                                       dMatrix: inout [Float], dValue: inout [Float]) {
        let width = gates.count * units
        var dBlock = [Float](repeating: 0, count: inner * units), dDropped = [Float](repeating: 0, count: rows * inner)
        for (position, g) in gates.enumerated() {
            let dropped = Self.dropped(value, masks[g], rows: rows, inner: inner, rowsPerMask: rowsPerMask)
            let kernel = columns(matrix, rows: inner, width: matrixWidth, range: (g * units)..<((g + 1) * units))
            let dOut = columns(dResult, rows: rows, width: width, range: (position * units)..<((position + 1) * units))
            product(dropped, dOut, m: inner, n: units, k: rows, into: &dBlock, transposeA: true)
            for row in 0..<inner { for j in 0..<units { dMatrix[row * matrixWidth + g * units + j] += dBlock[row * units + j] } }
            product(dOut, kernel, m: rows, n: inner, k: units, into: &dDropped, transposeB: true)
            for row in 0..<rows {
                let maskRow = (row / rowsPerMask) * inner
                for i in 0..<inner { dValue[row * inner + i] += dDropped[row * inner + i] * masks[g][maskRow + i] }
            }
        }
    }

    /// `value` `[rows, inner]` times `mask` `[rows / rowsPerMask, inner]` row by row.
    private static func dropped(_ value: [Float], _ mask: [Float], rows: Int, inner: Int, rowsPerMask: Int) -> [Float] {
        var result = value
        for row in 0..<rows {
            let maskRow = (row / rowsPerMask) * inner
            for i in 0..<inner { result[row * inner + i] *= mask[maskRow + i] }
        }
        return result
    }
}
