import ScionIR

/// One direction's gradients from backprop through time.
struct RecurrentDirectionGradients {
    /// `[batch, time, features]`, in the input's time order.
    var input: [Float]
    var kernel: [Float]
    var recurrentKernel: [Float]
    /// `[G*units]`, or GRU with `resetAfter`: input row then recurrent row, `[2 * 3*units]`.
    var bias: [Float]
    /// What the states before the first step receive, `[batch * units]` each: ONNX's `initial_h`
    /// and (LSTM) `initial_c` when the node reads them.
    var initialHidden: [Float] = []
    var initialCell: [Float] = []
}

extension Kernels {
    /// f'(x) as a function of the input and output; linear's is 1.
    static func derivative(_ activation: Activation, node: String) throws -> (Float, Float) -> Float {
        if activation == .linear { return { _, _ in 1 } }
        guard let derivative = elementDerivative(activation) else {
            throw RuntimeError(node, "activation \(activation.displayName) has no gradient inside a recurrent cell yet")
        }
        return derivative
    }

    /// Backprop through time for one direction, from the run the forward pass kept. `stepGradients`
    /// is `[steps, batch, units]` in processing order (what each step's output receives), `finalHidden`
    /// and `finalCell` what the last states receive. With a mask (`run.kept`) a skipped step passes
    /// the states' gradients through unchanged and gives its cell nothing; with dropout
    /// (`run.dropout`) the products' gradients go through the same masks.
    static func recurrentDirectionBackward(_ x: RuntimeTensor, _ w: RecurrentCellWeights, _ a: RecurrentAttributes,
                                           run: RecurrentDirectionRun, reversed: Bool, stepGradients: [Float],
                                           finalHidden: [Float]?, finalCell: [Float]?,
                                           convolution: RecurrentConvolutionGeometry? = nil, node: String) throws
        -> RecurrentDirectionGradients
    {
        let (batch, time, features) = (x.shape[0], x.shape[1], x.shape[2])
        let units = a.units, width = a.cell.gateCount * units, size = batch * units
        let act = try derivative(a.activation, node: node), gate = try derivative(a.recurrentActivation, node: node)
        let activate = elementFunction(a.activation) ?? { $0 }
        var dProjected = [Float](repeating: 0, count: batch * time * width)
        // ConvLSTM's recurrent kernel reads a patch of the state: `taps * units` rows.
        var dRecurrent = [Float](repeating: 0, count: (convolution?.taps ?? 1) * units * width)
        var dRecurrentBias = [Float](repeating: 0, count: width)
        var dh = finalHidden ?? [Float](repeating: 0, count: size)
        var dc = finalCell ?? [Float](repeating: 0, count: size)
        let gruSplit = a.cell == .gru && !a.resetAfter
        let zrKernel = gruSplit ? columns(w.recurrentKernel, rows: units, width: width, range: 0..<(2 * units)) : []
        let hKernel = gruSplit ? columns(w.recurrentKernel, rows: units, width: width, range: (2 * units)..<width) : []
        var dZ = [Float](repeating: 0, count: batch * width)
        let stateMasks = run.dropout.state
        for step in (0..<time).reversed() {
            let t = reversed ? time - 1 - step : step
            let previous = Array(run.state(after: step - 1))
            let base = step * batch * width
            for index in 0..<size { dh[index] += stepGradients[step * size + index] }
            // A skipped step carried the states: their gradients bypass the cell, which gets none.
            let skipped = run.kept.map { kept in (0..<batch).filter { !kept[$0 * time + t] } } ?? []
            var carriedHidden = [Float](), carriedCell = [Float]()
            for n in skipped {
                carriedHidden += dh[(n * units)..<((n + 1) * units)]
                if a.cell == .lstm { carriedCell += dc[(n * units)..<((n + 1) * units)] }
                for j in 0..<units {
                    dh[n * units + j] = 0
                    if a.cell == .lstm { dc[n * units + j] = 0 }
                }
            }
            var dPrevious = [Float](repeating: 0, count: size)
            switch a.cell {
            case .simpleRNN:
                for n in 0..<batch {
                    for j in 0..<units {
                        let k = n * width + j
                        dZ[k] = dh[n * units + j] * act(run.preactivations[base + k], run.activations[base + k])
                    }
                }
            case .lstm:
                for n in 0..<batch {
                    for j in 0..<units {
                        let s = n * units + j, k = n * width + j
                        let (i, f, g, o) = (run.activations[base + k], run.activations[base + k + units],
                                            run.activations[base + k + 2 * units], run.activations[base + k + 3 * units])
                        let c = run.cells[(step + 1) * size + s], cPrevious = run.cells[step * size + s], tc = activate(c)
                        let dcTotal = dc[s] + dh[s] * o * act(c, tc)
                        dZ[k] = dcTotal * g * gate(run.preactivations[base + k], i)
                        dZ[k + units] = dcTotal * cPrevious * gate(run.preactivations[base + k + units], f)
                        dZ[k + 2 * units] = dcTotal * i * act(run.preactivations[base + k + 2 * units], g)
                        dZ[k + 3 * units] = dh[s] * tc * gate(run.preactivations[base + k + 3 * units], o)
                        dc[s] = dcTotal * f
                    }
                }
            case .gru:
                // dZ holds the input projection's gradient; the recurrent product's differs in the
                // candidate's columns (multiplied by r when the reset comes after the product).
                var dRecurrentCandidate = [Float](repeating: 0, count: size)
                for n in 0..<batch {
                    for j in 0..<units {
                        let s = n * units + j, k = n * width + j
                        let (z, r, hh) = (run.activations[base + k], run.activations[base + k + units], run.activations[base + k + 2 * units])
                        let dCandidate = dh[s] * (1 - z) * act(run.preactivations[base + k + 2 * units], hh)
                        dPrevious[s] += dh[s] * z
                        dZ[k] = dh[s] * (previous[s] - hh) * gate(run.preactivations[base + k], z)
                        dZ[k + 2 * units] = dCandidate
                        if a.resetAfter {
                            let recurrentCandidate = run.recurrentCandidate[step * size + s]
                            dZ[k + units] = dCandidate * recurrentCandidate * gate(run.preactivations[base + k + units], r)
                            dRecurrentCandidate[s] = dCandidate * r
                        }
                    }
                }
                if gruSplit {
                    // candidate = x_h + (r * h) U_h: d(r * h) = dCandidate U_hᵀ.
                    var candidateGradient = [Float](repeating: 0, count: size), dReset = [Float](repeating: 0, count: size)
                    for n in 0..<batch { for j in 0..<units { candidateGradient[n * units + j] = dZ[n * width + 2 * units + j] } }
                    product(candidateGradient, hKernel, m: batch, n: units, k: units, into: &dReset, transposeB: true)
                    var resetState = [Float](repeating: 0, count: size)
                    for n in 0..<batch {
                        for j in 0..<units {
                            let s = n * units + j, k = n * width + j
                            let r = run.activations[base + k + units], mask = stateMasks?[2][s] ?? 1
                            resetState[s] = r * previous[s] * mask
                            dPrevious[s] += dReset[s] * r * mask
                            dZ[k + units] = dReset[s] * previous[s] * mask * gate(run.preactivations[base + k + units], r)
                        }
                    }
                    // dU_h += (r * h)ᵀ dCandidate, dU_zr += hᵀ d[z, r]; dh += d[z, r] U_zrᵀ.
                    var dH = [Float](repeating: 0, count: units * units)
                    product(resetState, candidateGradient, m: units, n: units, k: batch, into: &dH, transposeA: true)
                    var zr = [Float](repeating: 0, count: batch * 2 * units)
                    for n in 0..<batch { for j in 0..<(2 * units) { zr[n * 2 * units + j] = dZ[n * width + j] } }
                    for row in 0..<units { for j in 0..<units { dRecurrent[row * width + 2 * units + j] += dH[row * units + j] } }
                    if let stateMasks {
                        droppedProductBackward(previous, masks: stateMasks, rowsPerMask: 1, w.recurrentKernel, rows: batch, inner: units,
                                               units: units, gates: 0..<2, matrixWidth: width, dResult: zr, dMatrix: &dRecurrent,
                                               dValue: &dPrevious)
                    } else {
                        var dZR = [Float](repeating: 0, count: units * 2 * units)
                        product(previous, zr, m: units, n: 2 * units, k: batch, into: &dZR, transposeA: true)
                        for row in 0..<units { for j in 0..<(2 * units) { dRecurrent[row * width + j] += dZR[row * 2 * units + j] } }
                        product(zr, zrKernel, m: batch, n: units, k: 2 * units, into: &dPrevious, transposeB: true, accumulate: true)
                    }
                } else {
                    var recurrentGradient = dZ
                    for n in 0..<batch { for j in 0..<units { recurrentGradient[n * width + 2 * units + j] = dRecurrentCandidate[n * units + j] } }
                    recurrentProductBackward(previous, w.recurrentKernel, stateMasks, batch: batch, units: units, width: width,
                                             dResult: recurrentGradient, dRecurrent: &dRecurrent, dPrevious: &dPrevious)
                    for n in 0..<batch { for j in 0..<width { dRecurrentBias[j] += recurrentGradient[n * width + j] } }
                }
            }
            if let convolution {
                // The recurrent product read the state's patches: their gradient folds back onto it.
                let patches = convolution.unfoldState(previous), depth = convolution.taps * units
                product(patches, dZ, m: depth, n: width, k: batch, into: &dRecurrent, transposeA: true, accumulate: true)
                var dPatches = [Float](repeating: 0, count: batch * depth)
                product(dZ, w.recurrentKernel, m: batch, n: depth, k: width, into: &dPatches, transposeB: true)
                for (index, value) in convolution.foldState(dPatches).enumerated() { dPrevious[index] += value }
            } else if a.cell != .gru {
                recurrentProductBackward(previous, w.recurrentKernel, stateMasks, batch: batch, units: units, width: width,
                                         dResult: dZ, dRecurrent: &dRecurrent, dPrevious: &dPrevious)
            }
            for n in 0..<batch {
                for j in 0..<width { dProjected[(n * time + t) * width + j] = dZ[n * width + j] }
            }
            for (index, n) in skipped.enumerated() {
                for j in 0..<units {
                    dPrevious[n * units + j] += carriedHidden[index * units + j]
                    if a.cell == .lstm { dc[n * units + j] = carriedCell[index * units + j] }
                }
            }
            dh = dPrevious
        }
        var dKernel = [Float](repeating: 0, count: features * width)
        var dx = [Float](repeating: 0, count: batch * time * features)
        if let inputMasks = run.dropout.input {
            droppedProductBackward(x.data, masks: inputMasks, rowsPerMask: time, w.kernel, rows: batch * time, inner: features,
                                   units: units, gates: 0..<a.cell.gateCount, matrixWidth: width, dResult: dProjected,
                                   dMatrix: &dKernel, dValue: &dx)
        } else {
            product(x.data, dProjected, m: features, n: width, k: batch * time, into: &dKernel, transposeA: true)
            product(dProjected, w.kernel, m: batch * time, n: features, k: width, into: &dx, transposeB: true)
        }
        var dBias = [Float](repeating: 0, count: width)
        for row in 0..<(batch * time) { for j in 0..<width { dBias[j] += dProjected[row * width + j] } }
        if w.recurrentBias != nil { dBias += dRecurrentBias }
        return RecurrentDirectionGradients(input: dx, kernel: dKernel, recurrentKernel: dRecurrent, bias: dBias,
                                           initialHidden: dh, initialCell: a.cell == .lstm ? dc : [])
    }

    /// The VJP of the recurrent product `previous · U` (each gate's block by its dropout mask when
    /// `masks`): adds into `dRecurrent` and `dPrevious`.
    private static func recurrentProductBackward(_ previous: [Float], _ recurrentKernel: [Float], _ masks: [[Float]]?, batch: Int,
                                                 units: Int, width: Int, dResult: [Float], dRecurrent: inout [Float],
                                                 dPrevious: inout [Float]) {
        if let masks {
            droppedProductBackward(previous, masks: masks, rowsPerMask: 1, recurrentKernel, rows: batch, inner: units, units: units,
                                   gates: 0..<(width / units), matrixWidth: width, dResult: dResult, dMatrix: &dRecurrent,
                                   dValue: &dPrevious)
        } else {
            product(previous, dResult, m: units, n: width, k: batch, into: &dRecurrent, transposeA: true, accumulate: true)
            product(dResult, recurrentKernel, m: batch, n: units, k: width, into: &dPrevious, transposeB: true, accumulate: true)
        }
    }
}
