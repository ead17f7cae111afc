import ScionIR

/// Recurrent layers (SimpleRNN, LSTM, GRU, Bidirectional): the forward run of each direction
/// (`Kernels.recurrentDirection`), merged and arranged into Keras's outputs.
extension Executor {
    /// One direction's weights, read by their Keras roles under `path` (`cell`, `forward_layer/cell`).
    func recurrentWeights(_ node: Node, _ a: RecurrentAttributes, path: String) throws -> RecurrentCellWeights {
        var weights = RecurrentCellWeights(kernel: try require(node, .sublayer(path, .kernel)),
                                           recurrentKernel: try require(node, .sublayer(path, .recurrentKernel)))
        if a.useBias {
            let bias = try require(node, .sublayer(path, .bias))
            let width = a.cell.gateCount * a.units
            guard bias.count == (a.cell == .gru && a.resetAfter ? 2 * width : width) else {
                throw RuntimeError(node.name, "bias of \(bias.count) values does not fit \(a.units) units")
            }
            weights.inputBias = Array(bias[0..<width])
            if bias.count == 2 * width { weights.recurrentBias = Array(bias[width...]) }
        }
        return weights
    }

    /// Each direction's run: the forward one reads backwards when `goBackwards`, the backward one
    /// the other way. `dropout` (training only): each direction's masks.
    /// With `convolution` (ConvLSTM), `x` is the unfolded input.
    /// `initialStates` (ONNX's form): `initial_h` and LSTM's `initial_c`, `[directions, batch, units]`.
    func recurrentRuns(_ node: Node, _ x: RuntimeTensor, _ a: RecurrentAttributes, kept: [Bool]? = nil,
                       dropout: [RecurrentDropout]? = nil, convolution: RecurrentConvolutionGeometry? = nil,
                       initialStates: [RuntimeTensor] = []) throws
        -> [RecurrentDirectionRun] {
        guard x.rank == 3 else { throw RuntimeError(node.name, "\(node.op.typeName) needs a [batch, time, features] input, got \(x.shape)") }
        let directions = a.cellPaths.count, size = x.shape[0] * a.units
        for state in initialStates where state.shape != [directions, x.shape[0], a.units] {
            throw RuntimeError(node.name, "\(node.op.typeName)'s initial state \(state.shape) is not [\(directions), \(x.shape[0]), \(a.units)]")
        }
        return try a.cellPaths.enumerated().map { direction, path in
            try Kernels.recurrentDirection(x, try recurrentWeights(node, a, path: path), a,
                                           reversed: direction == 0 ? a.goBackwards : !a.goBackwards, kept: kept,
                                           dropout: dropout?[direction] ?? RecurrentDropout(), convolution: convolution,
                                           initial: initialStates.map { $0.data[(direction * size)..<((direction + 1) * size)] },
                                           node: node.name)
        }
    }

    /// Keras's `initial_state` inputs (`[batch, units]` each: h (and c) per direction) in the form
    /// `recurrentRuns` takes, ONNX's: h, then c, each `[directions, batch, units]`. Empty without.
    static func kerasInitialStates(_ node: Node, _ inputs: [RuntimeTensor], _ a: RecurrentAttributes) throws -> [RuntimeTensor] {
        let count = a.initialStateCount
        guard count > 0 else { return [] }
        guard inputs.count > count, let batch = inputs.first?.shape.first else {
            throw RuntimeError(node.name, "\(node.op.typeName) reads \(count) initial states, got \(inputs.count - 1) inputs after the sequence")
        }
        let states = Array(inputs.suffix(count)), directions = a.cellPaths.count, kinds = a.cell.stateCount
        for state in states where state.shape != [batch, a.units] {
            throw RuntimeError(node.name, "\(node.op.typeName)'s initial state \(state.shape) is not [\(batch), \(a.units)]")
        }
        return (0..<kinds).map { kind in
            RuntimeTensor(shape: [directions, batch, a.units], data: (0..<directions).flatMap { states[$0 * kinds + kind].data })
        }
    }

    /// ConvLSTM's geometry for input `x`; nil for a dense cell.
    static func convolutionGeometry(_ node: Node, _ x: RuntimeTensor, _ a: RecurrentAttributes) throws -> RecurrentConvolutionGeometry? {
        guard let convolution = a.convolution else { return nil }
        guard a.cell == .lstm, a.bidirectional == nil, !a.timeMajor, a.maskValue == nil else {
            throw RuntimeError(node.name, "\(node.op.typeName) runs as one LSTM direction without a mask only")
        }
        return try RecurrentConvolutionGeometry(inputShape: x.shape, a, convolution, node: node.name)
    }

    /// Keras's mask as kept steps `[batch * time]`: a step is kept where some value of the mask
    /// source (`[batch, time, ...]`) differs from `maskValue`. Nil without a mask.
    static func keptSteps(_ node: Node, _ x: RuntimeTensor, source: RuntimeTensor?, _ a: RecurrentAttributes) throws -> [Bool]? {
        guard let value = a.maskValue else { return nil }
        guard let source, x.rank == 3 else {
            throw RuntimeError(node.name, "\(node.op.typeName) reads a Keras mask: it needs a [batch, time, features] input "
                               + "and a mask source, got \(x.shape) and \(source.map { "\($0.shape)" } ?? "none")")
        }
        return try Kernels.keptSteps(source, value: value, batch: x.shape[0], time: x.shape[1], node: node.name)
    }

    /// All of the node's outputs: the (merged) output, then the final states. `inputs` are the
    /// node's: the sequence, then with `maskValue` the mask source.
    func recurrent(_ node: Node, _ inputs: [RuntimeTensor], _ a: RecurrentAttributes) throws -> [RuntimeTensor] {
        guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
        if let geometry = try Self.convolutionGeometry(node, x, a) {
            return geometry.arrange(Self.recurrentOutputs(try recurrentRuns(node, geometry.unfoldInput(x), a, convolution: geometry), a))
        }
        guard a.timeMajor else {
            let kept = try Self.keptSteps(node, x, source: inputs.count > 1 ? inputs[1] : nil, a)
            let initial = try Self.kerasInitialStates(node, inputs, a)
            return Self.recurrentOutputs(try recurrentRuns(node, x, a, kept: kept, initialStates: initial), a, kept: kept)
        }
        guard x.rank == 3 else { throw RuntimeError(node.name, "\(node.op.typeName) needs a [time, batch, features] input, got \(x.shape)") }
        return Self.timeMajorOutputs(try recurrentRuns(node, Kernels.transpose(x, [1, 0, 2]), a, initialStates: Array(inputs.dropFirst())), a)
    }

    /// ONNX's outputs: `Y [time, directions, batch, units]` with every direction in time order, then
    /// `Y_h` and (LSTM) `Y_c` `[directions, batch, units]`.
    static func timeMajorOutputs(_ runs: [RecurrentDirectionRun], _ a: RecurrentAttributes) -> [RuntimeTensor] {
        guard let first = runs.first else { return [] }
        let (batch, steps, units, directions) = (first.batch, first.steps, first.units, runs.count)
        var y = [Float](repeating: 0, count: steps * directions * batch * units)
        var hidden = [Float](), cells = [Float]()
        for (d, run) in runs.enumerated() {
            let readsBackwards = d == 0 ? a.goBackwards : !a.goBackwards
            let sequence = Kernels.sequence(of: run, flipped: readsBackwards)
            for n in 0..<batch {
                for t in 0..<steps {
                    for j in 0..<units { y[((t * directions + d) * batch + n) * units + j] = sequence[(n * steps + t) * units + j] }
                }
            }
            let size = batch * units
            hidden += run.state(after: steps - 1)
            if a.cell == .lstm { cells += run.cells[(steps * size)..<((steps + 1) * size)] }
        }
        var outputs = [RuntimeTensor(shape: [steps, directions, batch, units], data: y),
                       RuntimeTensor(shape: [directions, batch, units], data: hidden)]
        if a.cell == .lstm { outputs.append(RuntimeTensor(shape: [directions, batch, units], data: cells)) }
        return outputs
    }

    /// Keras's outputs from the directions' runs. Bidirectional flips the backward direction's
    /// sequence back into time order before merging.
    /// With a mask (`kept`) and `zeroOutputsAtMaskedSteps`, a skipped step's output is zeros, and so
    /// is the last output when the last step read was skipped (Keras returns that step's output).
    static func recurrentOutputs(_ runs: [RecurrentDirectionRun], _ a: RecurrentAttributes, kept: [Bool]? = nil) -> [RuntimeTensor] {
        guard let first = runs.first else { return [] }
        let (batch, steps, units) = (first.batch, first.steps, first.units)
        let zeroed = a.zeroOutputsAtMaskedSteps ? kept : nil
        let outputs: [RuntimeTensor] = runs.enumerated().map { direction, run in
            if a.returnSequences {
                var sequence = Kernels.sequence(of: run, flipped: direction == 1)
                if let zeroed {
                    // In time order here: the forward direction's `goBackwards` order is the one computed.
                    let readsBackwards = direction == 0 && a.goBackwards
                    for n in 0..<batch {
                        for position in 0..<steps where !zeroed[n * steps + (readsBackwards ? steps - 1 - position : position)] {
                            for j in 0..<units { sequence[(n * steps + position) * units + j] = 0 }
                        }
                    }
                }
                return RuntimeTensor(shape: [batch, steps, units], data: sequence)
            }
            var last = Array(run.state(after: steps - 1))
            if let zeroed {
                let lastRead = (direction == 0 ? a.goBackwards : !a.goBackwards) ? 0 : steps - 1
                for n in 0..<batch where !zeroed[n * steps + lastRead] { for j in 0..<units { last[n * units + j] = 0 } }
            }
            return RuntimeTensor(shape: [batch, units], data: last)
        }
        var merged: [RuntimeTensor]
        switch a.bidirectional {
        case nil, .separate?:
            merged = outputs
        case .concat?:
            let rows = outputs[0].count / units
            var data = [Float](repeating: 0, count: rows * 2 * units)
            for row in 0..<rows {
                for j in 0..<units {
                    data[row * 2 * units + j] = outputs[0].data[row * units + j]
                    data[row * 2 * units + units + j] = outputs[1].data[row * units + j]
                }
            }
            merged = [RuntimeTensor(shape: Array(outputs[0].shape.dropLast()) + [2 * units], data: data)]
        case .sum?, .mul?, .ave?:
            let combine: (Float, Float) -> Float = switch a.bidirectional {
            case .sum?: (+)
            case .mul?: (*)
            default: { ($0 + $1) / 2 }
            }
            merged = [RuntimeTensor(shape: outputs[0].shape, data: zip(outputs[0].data, outputs[1].data).map(combine))]
        }
        guard a.returnState else { return merged }
        for run in runs {
            merged.append(RuntimeTensor(shape: [batch, units], data: Array(run.state(after: steps - 1))))
            if a.cell == .lstm {
                let size = batch * units
                merged.append(RuntimeTensor(shape: [batch, units], data: Array(run.cells[(steps * size)..<((steps + 1) * size)])))
            }
        }
        return merged
    }
}

extension Trainer {
    /// Forward while training: every output, and the directions' runs for backprop through time.
    /// `inputs` are the node's (the sequence, then with a mask its source). While `training`, Keras's
    /// `dropout` and `recurrent_dropout` drop with masks drawn per batch and direction (Keras drops
    /// inside the cell while fitting even in a frozen layer, so such a layer is never cached).
    func recurrentForward(_ node: Node, _ a: RecurrentAttributes, _ inputs: [RuntimeTensor], training: Bool,
                          random: inout SplitMix64) throws -> ([RuntimeTensor], Saved) {
        guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
        if let geometry = try Executor.convolutionGeometry(node, x, a) {
            if training && (a.dropout > 0 || a.recurrentDropout > 0) {
                // Keras's ConvLSTM drops whole input and state channels per sample; not written yet.
                throw RuntimeError(node.name, "\(node.op.typeName) has dropout \(a.dropout) and recurrent_dropout \(a.recurrentDropout): "
                                   + "Scion does not train through a convolutional recurrent layer's dropout yet (set both to 0)")
            }
            if a.maskValue != nil {
                throw RuntimeError(node.name, "\(node.op.typeName) reads a Keras mask: Scion does not train a convolutional "
                                   + "recurrent layer through a mask yet")
            }
            let runs = try executor.recurrentRuns(node, geometry.unfoldInput(x), a, convolution: geometry)
            return (geometry.arrange(Executor.recurrentOutputs(runs, a)), .recurrentRuns(runs))
        }
        let batchMajor = a.timeMajor ? Kernels.transpose(x, [1, 0, 2]) : x
        guard batchMajor.rank == 3 else {
            throw RuntimeError(node.name, "\(node.op.typeName) needs a [batch, time, features] input, got \(x.shape)")
        }
        let kept = a.timeMajor ? nil : try Executor.keptSteps(node, batchMajor, source: inputs.count > 1 ? inputs[1] : nil, a)
        var dropout: [RecurrentDropout]?
        if training && (a.dropout > 0 || a.recurrentDropout > 0) {
            dropout = a.cellPaths.map { _ in
                RecurrentDropout.draw(a, batch: batchMajor.shape[0], features: batchMajor.shape[2], random: &random)
            }
        }
        let runs = try executor.recurrentRuns(node, batchMajor, a, kept: kept, dropout: dropout,
                                              initialStates: a.timeMajor ? Array(inputs.dropFirst())
                                                  : try Executor.kerasInitialStates(node, inputs, a))
        let outputs = a.timeMajor ? Executor.timeMajorOutputs(runs, a) : Executor.recurrentOutputs(runs, a, kept: kept)
        return (outputs, .recurrentRuns(runs))
    }

    /// Backprop through time: the outputs' gradients split per direction (undoing the merge, the
    /// backward direction's flip and ONNX's time-major layout), then each direction's VJP.
    func recurrentBackward(_ node: Node, _ a: RecurrentAttributes, _ input: RuntimeTensor, upstream: [RuntimeTensor?],
                           saved: Saved?) throws -> StepGradients {
        guard case .recurrentRuns(let runs)? = saved, let first = runs.first else {
            throw RuntimeError(node.name, "was not run forward for training")
        }
        // ConvLSTM: the dense cell's view, rows being each sample's positions (Kernels+ConvolutionalRecurrent).
        let geometry = try Executor.convolutionGeometry(node, input, a)
        let upstream = geometry?.unarrange(upstream) ?? upstream
        let x = geometry?.unfoldInput(input) ?? (a.timeMajor ? Kernels.transpose(input, [1, 0, 2]) : input)
        let (batch, steps, units) = (first.batch, first.steps, first.units)
        let size = batch * units, directions = runs.count
        let reads = (0..<directions).map { $0 == 0 ? a.goBackwards : !a.goBackwards }
        // Outputs Keras zeroes at skipped steps get no gradient (`kept` is in time order).
        let zeroed = a.zeroOutputsAtMaskedSteps ? first.kept : nil
        func isZeroed(_ d: Int, _ n: Int, step: Int) -> Bool {
            guard let zeroed else { return false }
            return !zeroed[n * steps + (reads[d] ? steps - 1 - step : step)]
        }
        // Per direction: each step's output gradient in processing order, the final states'.
        var stepGradients = Array(repeating: [Float](repeating: 0, count: steps * size), count: directions)
        var finalHidden = Array(repeating: [Float](repeating: 0, count: size), count: directions)
        var finalCell = finalHidden
        /// Adds a `[batch, time, units]` gradient (time order when `timeOrder`) to direction `d`'s steps.
        func addSequence(_ d: Int, _ g: (Int, Int, Int) -> Float, timeOrder: Bool) {
            for step in 0..<steps {
                let position = timeOrder && reads[d] ? steps - 1 - step : step
                for n in 0..<batch where !isZeroed(d, n, step: step) {
                    for j in 0..<units { stepGradients[d][step * size + n * units + j] += g(n, position, j) }
                }
            }
        }
        if a.timeMajor {
            if let dy = upstream[0] {
                for d in 0..<directions {
                    addSequence(d, { n, t, j in dy.data[((t * directions + d) * batch + n) * units + j] }, timeOrder: true)
                }
            }
            for (slot, target) in [(1, 0), (2, 1)] where slot < upstream.count {
                guard let dState = upstream[slot] else { continue }
                for d in 0..<directions {
                    let part = Array(dState.data[(d * size)..<((d + 1) * size)])
                    if target == 0 { finalHidden[d] = zip(finalHidden[d], part).map(+) } else { finalCell[d] = part }
                }
            }
        } else {
            let outputCount = a.bidirectional == .separate ? 2 : 1
            // The directions' own outputs, for mul's product rule.
            var separate = a
            (separate.bidirectional, separate.returnState) = (.separate, false)
            let own = a.bidirectional == .mul ? Executor.recurrentOutputs(runs, separate, kept: first.kept) : []
            for slot in 0..<outputCount {
                guard let dy = upstream[slot] else { continue }
                let width = dy.shape.last ?? units
                for d in 0..<directions {
                    if a.bidirectional == .separate && d != slot { continue }
                    let offset = a.bidirectional == .concat && d == 1 ? units : 0
                    let scale: Float = a.bidirectional == .ave ? 0.5 : 1
                    func g(_ row: Int, _ j: Int) -> Float {
                        let value = dy.data[row * width + offset + j] * scale
                        return a.bidirectional == .mul ? value * own[1 - d].data[row * units + j] : value
                    }
                    if a.returnSequences {
                        addSequence(d, { n, t, j in g(n * steps + t, j) }, timeOrder: d == 1)
                    } else {
                        for n in 0..<batch where !isZeroed(d, n, step: steps - 1) {
                            for j in 0..<units { finalHidden[d][n * units + j] += g(n, j) }
                        }
                    }
                }
            }
            if a.returnState {
                var slot = outputCount
                for d in 0..<directions {
                    if let dh = upstream[slot] { finalHidden[d] = zip(finalHidden[d], dh.data).map(+) }
                    slot += 1
                    if a.cell == .lstm {
                        if let dc = upstream[slot] { finalCell[d] = dc.data }
                        slot += 1
                    }
                }
            }
        }
        var dx = [Float](repeating: 0, count: x.count)
        var dInitialHidden: [Float] = [], dInitialCell: [Float] = []
        var parameters: [(String, [Float])] = []
        for (d, path) in a.cellPaths.enumerated() {
            let weights = try executor.recurrentWeights(node, a, path: path)
            let gradients = try Kernels.recurrentDirectionBackward(
                x, weights, a, run: runs[d], reversed: reads[d], stepGradients: stepGradients[d], finalHidden: finalHidden[d],
                finalCell: finalCell[d], convolution: geometry, node: node.name)
            for index in dx.indices { dx[index] += gradients.input[index] }
            dInitialHidden += gradients.initialHidden
            dInitialCell += gradients.initialCell
            for (role, values) in [(ParameterRole.kernel, gradients.kernel), (.recurrentKernel, gradients.recurrentKernel), (.bias, gradients.bias)] {
                if let parameter = graph.parameter(of: node, role: .sublayer(path, role)) { parameters.append((parameter.name, values)) }
            }
        }
        if let geometry { return StepGradients(inputs: [geometry.foldInput(dx)], parameters: parameters) }
        let inputGradient = RuntimeTensor(shape: x.shape, data: dx)
        if a.timeMajor && node.inputs.count > 1 {
            // ONNX's initial_h (and initial_c), [directions, batch, units]: what each direction's first state received.
            let states = [dInitialHidden, dInitialCell].prefix(node.inputs.count - 1).map {
                RuntimeTensor(shape: [directions, batch, units], data: $0)
            }
            return StepGradients(inputs: [Kernels.transpose(inputGradient, [1, 0, 2])] + states, parameters: parameters)
        }
        if a.initialStateCount > 0 {
            // Keras's initial_state, h (and c) per direction: what each direction's first states received.
            let kinds = a.cell.stateCount
            let states: [RuntimeTensor?] = (0..<a.initialStateCount).map { index in
                let (direction, kind) = (index / kinds, index % kinds)
                let received = kind == 0 ? dInitialHidden : dInitialCell
                return RuntimeTensor(shape: [batch, units], data: Array(received[(direction * size)..<((direction + 1) * size)]))
            }
            let others = node.inputs.count - 1 - a.initialStateCount  // the mask source: no gradient
            return StepGradients(inputs: [inputGradient] + Array(repeating: nil, count: others) + states, parameters: parameters)
        }
        // The mask source (token ids) gets no gradient.
        return StepGradients(inputs: [a.timeMajor ? Kernels.transpose(inputGradient, [1, 0, 2]) : inputGradient]
                                 + Array(repeating: nil, count: node.inputs.count - 1),
                             parameters: parameters)
    }
}
