import Foundation
import ScionIR

/// One direction of a recurrent layer's weights, in Keras's layout (gates stacked along columns:
/// LSTM `i f c o`, GRU `z r h`).
struct RecurrentCellWeights {
    /// `[features, G*units]`.
    var kernel: [Float]
    /// `[units, G*units]`.
    var recurrentKernel: [Float]
    /// `[G*units]`, added to the input projection; nil without bias.
    var inputBias: [Float]?
    /// GRU with `resetAfter` only: `[3*units]`, added to the recurrent projection.
    var recurrentBias: [Float]?
}

/// Everything one direction computed, kept for backprop through time. Steps are in processing
/// order (step 0 reads the last time step when the direction reads backwards).
struct RecurrentDirectionRun {
    let batch: Int, steps: Int, units: Int
    /// `[steps + 1, batch, units]`: the hidden state before step 0 (zeros), then after each step.
    var hidden: [Float]
    /// LSTM: `[steps + 1, batch, units]` cell states, like `hidden`; empty otherwise.
    var cells: [Float] = []
    /// `[steps, batch, G*units]`: each gate's value before its activation (GRU's candidate: the
    /// whole sum `x_h + r * rec_h`, or `x_h + (r * h) U_h` without `resetAfter`).
    var preactivations: [Float]
    /// `[steps, batch, G*units]`: the gates after their activations.
    var activations: [Float]
    /// GRU with `resetAfter`: `[steps, batch, units]`, `h U_h + b_h` before the reset gate.
    var recurrentCandidate: [Float] = []
    /// Keras's mask as read (`[batch * time]`, time order); nil: every step was read.
    var kept: [Bool]? = nil
    /// The dropout masks used while training; empty otherwise.
    var dropout = RecurrentDropout()

    /// The hidden state after step `step` (or the initial one for -1), `[batch, units]`.
    func state(after step: Int) -> ArraySlice<Float> {
        let size = batch * units
        return hidden[((step + 1) * size)..<((step + 2) * size)]
    }
}

extension Kernels {
    /// `c[m×n] (+)= a[m×k] · b[k×n]` on arrays, row-major, with BLAS.
    static func product(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, into c: inout [Float], offset: Int = 0,
                        transposeA: Bool = false, transposeB: Bool = false, accumulate: Bool = false) {
        guard m > 0, n > 0, k > 0 else { return }
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(m: m, n: n, k: k, a: pa.baseAddress!, transposeA: transposeA, b: pb.baseAddress!,
                              transposeB: transposeB, c: pc.baseAddress! + offset, accumulate: accumulate)
                }
            }
        }
    }

    /// Runs one direction of a cell over `x` `[batch, time, features]`. The input projection of every
    /// time step is one BLAS product; then each step adds the recurrent product and the gates.
    /// `kept` (`[batch * time]`, time order; nil: every step) is Keras's mask: at a step not kept
    /// the states are carried over unchanged. `dropout` (training only) drops the input and the
    /// previous state per gate before their products, as Keras's cells do.
    /// With `convolution` (ConvLSTM), `x` is the unfolded input and each row one sample's position;
    /// the state is unfolded before its recurrent product (`RecurrentConvolutionGeometry`).
    /// `initial` (ONNX's `initial_h`, `initial_c` of this direction, `[batch * units]` each) are the
    /// states before the first step; zeros without.
    static func recurrentDirection(_ x: RuntimeTensor, _ w: RecurrentCellWeights, _ a: RecurrentAttributes,
                                   reversed: Bool, kept: [Bool]? = nil, dropout: RecurrentDropout = RecurrentDropout(),
                                   convolution: RecurrentConvolutionGeometry? = nil, initial: [ArraySlice<Float>] = [],
                                   node: String) throws -> RecurrentDirectionRun {
        let (batch, time, features) = (x.shape[0], x.shape[1], x.shape[2])
        let units = a.units, gates = a.cell.gateCount, width = gates * units
        guard let act = elementFunction(a.activation) ?? (a.activation == .linear ? { $0 } : nil),
              let gate = elementFunction(a.recurrentActivation) ?? (a.recurrentActivation == .linear ? { $0 } : nil) else {
            throw RuntimeError(node, "\(a.cell.rawValue) activation \(a.activation.displayName) or "
                               + "\(a.recurrentActivation.displayName) is not elementwise")
        }
        // Input projection of all steps at once: [batch * time, G*units].
        var projected = [Float](repeating: 0, count: batch * time * width)
        if let masks = dropout.input {
            projected = droppedProduct(x.data, masks: masks, rowsPerMask: time, w.kernel, rows: batch * time, inner: features,
                                       units: units, gates: 0..<gates, matrixWidth: width)
        } else {
            product(x.data, w.kernel, m: batch * time, n: width, k: features, into: &projected)
        }
        if let bias = w.inputBias {
            for row in 0..<(batch * time) { for column in 0..<width { projected[row * width + column] += bias[column] } }
        }
        let size = batch * units
        var run = RecurrentDirectionRun(
            batch: batch, steps: time, units: units, hidden: [Float](repeating: 0, count: (time + 1) * size),
            preactivations: [Float](repeating: 0, count: time * batch * width),
            activations: [Float](repeating: 0, count: time * batch * width))
        if a.cell == .lstm { run.cells = [Float](repeating: 0, count: (time + 1) * size) }
        for (index, state) in initial.enumerated() {
            guard state.count == size, index < a.cell.stateCount else {
                throw RuntimeError(node, "initial state \(index) of \(state.count) values does not fit \(batch) rows of \(units) units")
            }
            if index == 0 { run.hidden.replaceSubrange(0..<size, with: state) } else { run.cells.replaceSubrange(0..<size, with: state) }
        }
        if a.cell == .gru && a.resetAfter { run.recurrentCandidate = [Float](repeating: 0, count: time * size) }
        run.kept = kept
        run.dropout = dropout
        // GRU without resetAfter multiplies the reset state by the candidate's columns alone.
        let gruSplit = a.cell == .gru && !a.resetAfter
        let zrKernel = gruSplit ? columns(w.recurrentKernel, rows: units, width: width, range: 0..<(2 * units)) : []
        let hKernel = gruSplit ? columns(w.recurrentKernel, rows: units, width: width, range: (2 * units)..<width) : []
        var recurrent = [Float](repeating: 0, count: batch * width)
        for step in 0..<time {
            let t = reversed ? time - 1 - step : step
            let previous = Array(run.state(after: step - 1))
            if gruSplit {
                var zr = [Float](repeating: 0, count: batch * 2 * units)
                if let masks = dropout.state {
                    zr = droppedProduct(previous, masks: masks, rowsPerMask: 1, w.recurrentKernel, rows: batch, inner: units,
                                        units: units, gates: 0..<2, matrixWidth: width)
                } else {
                    product(previous, zrKernel, m: batch, n: 2 * units, k: units, into: &zr)
                }
                for n in 0..<batch { for j in 0..<(2 * units) { recurrent[n * width + j] = zr[n * 2 * units + j] } }
            } else {
                if let masks = dropout.state {
                    recurrent = droppedProduct(previous, masks: masks, rowsPerMask: 1, w.recurrentKernel, rows: batch, inner: units,
                                               units: units, gates: 0..<gates, matrixWidth: width)
                } else {
                    let source = convolution?.unfoldState(previous) ?? previous
                    product(source, w.recurrentKernel, m: batch, n: width, k: source.count / batch, into: &recurrent)
                }
                if let bias = w.recurrentBias {
                    for n in 0..<batch { for j in 0..<width { recurrent[n * width + j] += bias[j] } }
                }
            }
            let gateBase = step * batch * width
            let next = (step + 1) * size
            switch a.cell {
            case .simpleRNN:
                for n in 0..<batch {
                    for j in 0..<units {
                        let pre = projected[(n * time + t) * width + j] + recurrent[n * width + j]
                        run.preactivations[gateBase + n * width + j] = pre
                        let h = act(pre)
                        run.activations[gateBase + n * width + j] = h
                        run.hidden[next + n * units + j] = h
                    }
                }
            case .lstm:
                for n in 0..<batch {
                    for j in 0..<units {
                        // Gates i, f, c, o (Keras's order); the candidate takes `activation`.
                        func value(_ g: Int) -> Float {
                            let pre = projected[(n * time + t) * width + g * units + j] + recurrent[n * width + g * units + j]
                            run.preactivations[gateBase + n * width + g * units + j] = pre
                            let activated = g == 2 ? act(pre) : gate(pre)
                            run.activations[gateBase + n * width + g * units + j] = activated
                            return activated
                        }
                        let (i, f, g, o) = (value(0), value(1), value(2), value(3))
                        let c = f * run.cells[step * size + n * units + j] + i * g
                        run.cells[next + n * units + j] = c
                        run.hidden[next + n * units + j] = o * act(c)
                    }
                }
            case .gru:
                var resetState = [Float]()
                if gruSplit { resetState = [Float](repeating: 0, count: size) }
                for n in 0..<batch {
                    for j in 0..<units {
                        for g in 0..<2 {
                            let pre = projected[(n * time + t) * width + g * units + j] + recurrent[n * width + g * units + j]
                            run.preactivations[gateBase + n * width + g * units + j] = pre
                            run.activations[gateBase + n * width + g * units + j] = gate(pre)
                        }
                        if gruSplit {
                            // The candidate's own dropped state (Keras's `h_tm1_h`).
                            let dropped = previous[n * units + j] * (dropout.state?[2][n * units + j] ?? 1)
                            resetState[n * units + j] = run.activations[gateBase + n * width + units + j] * dropped
                        }
                    }
                }
                var candidate = [Float](repeating: 0, count: size)
                if gruSplit { product(resetState, hKernel, m: batch, n: units, k: units, into: &candidate) }
                for n in 0..<batch {
                    for j in 0..<units {
                        let z = run.activations[gateBase + n * width + j], r = run.activations[gateBase + n * width + units + j]
                        var inner = candidate[n * units + j]
                        if !gruSplit {
                            inner = recurrent[n * width + 2 * units + j]
                            run.recurrentCandidate[step * size + n * units + j] = inner
                            inner *= r
                        }
                        let pre = projected[(n * time + t) * width + 2 * units + j] + inner
                        run.preactivations[gateBase + n * width + 2 * units + j] = pre
                        let hh = act(pre)
                        run.activations[gateBase + n * width + 2 * units + j] = hh
                        run.hidden[next + n * units + j] = z * previous[n * units + j] + (1 - z) * hh
                    }
                }
            }
            if let kept {
                for n in 0..<batch where !kept[n * time + t] {
                    for j in 0..<units {
                        run.hidden[next + n * units + j] = previous[n * units + j]
                        if a.cell == .lstm { run.cells[next + n * units + j] = run.cells[step * size + n * units + j] }
                    }
                }
            }
        }
        return run
    }

    /// The columns `range` of a row-major `[rows, width]` matrix, as a contiguous matrix.
    static func columns(_ matrix: [Float], rows: Int, width: Int, range: Range<Int>) -> [Float] {
        var result = [Float]()
        result.reserveCapacity(rows * range.count)
        for row in 0..<rows { result += matrix[(row * width + range.lowerBound)..<(row * width + range.upperBound)] }
        return result
    }

    /// The output sequence `[batch, steps, units]` of a run, in processing order or flipped back to
    /// time order.
    static func sequence(of run: RecurrentDirectionRun, flipped: Bool) -> [Float] {
        let (batch, steps, units) = (run.batch, run.steps, run.units)
        var output = [Float](repeating: 0, count: batch * steps * units)
        for step in 0..<steps {
            let position = flipped ? steps - 1 - step : step
            for n in 0..<batch {
                let source = (step + 1) * batch * units + n * units
                let target = (n * steps + position) * units
                for j in 0..<units { output[target + j] = run.hidden[source + j] }
            }
        }
        return output
    }
}
