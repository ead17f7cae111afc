import ScionIR

/// A recurrent layer reading a Keras mask, in ONNX. ONNX's RNN/LSTM/GRU have no input for a mask
/// that skips any step (`sequence_lens` only cuts trailing ones), so each direction reads its kept
/// steps moved together, in time order, and its outputs are moved back to their time steps:
///
/// ```
///  time t                 0   1   2   3   4   5   6
///  kept                   0   1   1   0   1   0   0        count = 3
///  forward reads          x1  x2  x4  0   0   0   0        slot of t = (kept steps up to t) - 1
///  forward output at t    0   y0  y1  y1  y2  y2  y2       y[slot], zeros before the first kept step
///  reverse reads          0   0   0   0   x1  x2  x4       slot of t = T - count + (kept steps before t)
///  reverse output at t    y4  y4  y5  y6  y6  0   0        zeros after the last kept step
/// ```
/// The forward direction (or `go_backwards`'s reverse one) runs over the kept steps at the front
/// (the reverse over those at the back), so the padding is read only after (reverse: before) every
/// kept step, and the states are taken from the outputs, not from `Y_h`: the output at the last step
/// Keras reads is the final state, carried over masked steps as Keras carries it. Moving steps is a
/// product with 0/1 matrices `[batch, time, time]` (exact: one term of each sum is not zero), made
/// from `slot == position`; the slots are counts, made by a product with an upper triangle of ones.
/// Only arithmetic (no Equal, Not, Where) so that Scion's executor, which runs no bool logic, runs
/// the file read back. A masked step's output is zeros with `zeroOutputsAtMaskedSteps` (times `kept`). The steps
/// must have a fixed number; an LSTM's final cell state is not an output, so `return_state` of a
/// masked LSTM is refused.
extension ONNXGraphBuilder {
    mutating func maskedRecurrent(_ node: Node, _ a: RecurrentAttributes, _ weights: [ONNXRecurrentWeights], features: Int,
                                  inputShapes: [Shape?], frozen: Bool) throws {
        guard !a.timeMajor, let maskValue = a.maskValue, node.inputs.count == 2 else {
            throw unsupported(node, "reads a Keras mask but has no [batch, time, ...] mask source as its second input")
        }
        guard let inputShape = inputShapes.first ?? nil, inputShape.rank == 3, let steps = inputShape[1], steps > 0 else {
            throw unsupported(node, "reads a Keras mask, which ONNX needs a fixed number of time steps for "
                              + "(input \(inputShapes.first.flatMap { $0 }.map { "\($0)" } ?? "of unknown shape"))")
        }
        guard inputShapes.count == 2, let sourceShape = inputShapes[1], sourceShape.rank >= 2, sourceShape[1] ?? steps == steps else {
            throw unsupported(node, "reads a Keras mask whose source is not [batch, \(steps), ...] "
                              + "(\(inputShapes.count == 2 ? inputShapes[1].map { "\($0)" } ?? "unknown shape" : "none"))")
        }
        guard maskValue.isFinite else {
            // Sign(x - NaN) is NaN, not "differs"; no Keras layer masks on a non-finite value.
            throw unsupported(node, "reads a Keras mask of value \(maskValue), which its ONNX form does not compare")
        }
        if a.cell == .lstm && a.returnState {
            throw unsupported(node, "returns the final cell state of an LSTM reading a Keras mask, which its ONNX form does not compute")
        }
        let name = "\(node.name)/mask", t = Int64(steps)
        let kept = keptSteps(name, source: node.inputs[1], sourceRank: sourceShape.rank, maskValue: maskValue)
        // Kept steps up to each step: kept · (ones on and above the diagonal).
        var upper = [Float](repeating: 0, count: steps * steps)
        for row in 0..<steps { for column in row..<steps { upper[row * steps + column] = 1 } }
        let keptUpTo = intermediate("MatMul", name: name, inputs: [kept, fixed("\(name)/upper", upper, dimensions: [t, t])])
        let count = intermediate("Slice", name: name, inputs: [
            keptUpTo, constant("\(name)/starts", int64s: [t - 1]), constant("\(name)/ends", int64s: [t]),
            constant("\(name)/axes", int64s: [1])])
        let positions = fixed("\(name)/positions", (0..<steps).map(Float.init), dimensions: [1, 1, t])
        let keptAsRow = intermediate("Unsqueeze", name: name, inputs: [kept, constant("\(name)/axis", int64s: [1])])
        let keptAsColumn = intermediate("Unsqueeze", name: name, inputs: [kept, constant("\(name)/axis", int64s: [2])])
        let one = fixed("\(name)/one", [1])

        var outputs: [String] = [], finalStates: [String] = []
        for (direction, directionWeights) in weights.enumerated() {
            let reverse = direction == 1 || a.goBackwards
            let slot = reverse
                ? intermediate("Add", name: name, inputs: [
                    intermediate("Sub", name: name, inputs: [keptUpTo, kept]),
                    intermediate("Sub", name: name, inputs: [fixed("\(name)/steps", [Float(steps)]), count])])
                : intermediate("Sub", name: name, inputs: [keptUpTo, one])
            // [batch, t, slot]: 1 where the output at step t is the one computed at `slot`, as
            // Relu(1 - |slot - position|) on whole numbers.
            let distance = intermediate("Abs", name: name, inputs: [
                intermediate("Sub", name: name, inputs: [
                    intermediate("Unsqueeze", name: name, inputs: [slot, constant("\(name)/axis", int64s: [2])]), positions])])
            let reads = intermediate("Relu", name: name, inputs: [intermediate("Sub", name: name, inputs: [one, distance])])
            // [batch, slot, t]: which step each slot reads, its transpose times `kept` (a masked
            // step's slot is a kept neighbour's; only that neighbour is moved there).
            let moves = intermediate("Mul", name: name, inputs: [
                intermediate("Transpose", name: name, inputs: [reads], attributes: [.ints("perm", [0, 2, 1])]), keptAsRow])
            let moved = intermediate("MatMul", name: name, inputs: [moves, node.inputs[0]])
            let sequence = intermediate("Transpose", name: "\(node.name)/to_time_major", inputs: [moved],
                                        attributes: [.ints("perm", [1, 0, 2])])
            let y = uniqueName("\(node.name)/Y")
            try recurrentNode(node, a, [directionWeights], features: features, sequence: sequence, outputs: [y],
                              direction: reverse ? "reverse" : "forward", frozen: frozen)
            // Y [slot, 1, batch, units] -> [batch, slot, units] -> at each step t: [batch, t, units].
            let computed = intermediate("Transpose", name: name, inputs: [
                intermediate("Squeeze", name: name, inputs: [y, constant("\(name)/axis", int64s: [1])])], attributes: [.ints("perm", [1, 0, 2])])
            let carried = intermediate("MatMul", name: name, inputs: [reads, computed])
            // The step read last (t = 0 reading backwards) holds the final state.
            let lastRead = constant("\(name)/last_read", int64s: [reverse ? 0 : t - 1], dimensions: [])
            finalStates.append(intermediate("Gather", name: name, inputs: [carried, lastRead], attributes: [.int("axis", 1)]))
            let output = a.zeroOutputsAtMaskedSteps ? intermediate("Mul", name: name, inputs: [carried, keptAsColumn]) : carried
            outputs.append(a.returnSequences ? output
                           : intermediate("Gather", name: name, inputs: [output, lastRead], attributes: [.int("axis", 1)]))
        }

        // The directions stacked next to the units ([batch, (time,) directions, units]) as the
        // unmasked form has them, and merged the same way.
        let axis = a.returnSequences ? 2 : 1
        let stacked = outputs.map { intermediate("Unsqueeze", name: name, inputs: [$0, constant("\(name)/axis", int64s: [Int64(axis)])]) }
        var byBatch = stacked.count == 1 ? stacked[0] : intermediate("Concat", name: name, inputs: stacked, attributes: [.int("axis", axis)])
        if a.returnSequences && a.goBackwards {
            // Keras returns a backwards layer's outputs in the order it computed them.
            byBatch = intermediate("Slice", name: name, inputs: [
                byBatch, constant("\(name)/starts", int64s: [-1]), constant("\(name)/ends", int64s: [Int64.min]),
                constant("\(name)/axes", int64s: [1]), constant("\(name)/steps", int64s: [-1])])
        }
        var results = node.outputs.makeIterator()
        guard let first = results.next() else { throw unsupported(node, "has no output") }
        try mergeDirections(node, a, byBatch, axis: axis, shape: a.returnSequences ? [0, 0, -1] : [0, -1],
                            first: first, second: { results.next() })
        guard a.returnState else { return }
        for state in finalStates {
            guard let output = results.next() else { throw unsupported(node, "has fewer outputs than its states") }
            add("Identity", name: name, inputs: [state], output: output)
        }
    }

    /// Keras's mask as `[batch, time]` floats, 1 where a step is kept: some value of the source at
    /// that step (`[batch, time, ...]`, compared as floats like the executor does) differs from
    /// `maskValue`.
    private mutating func keptSteps(_ name: String, source: String, sourceRank: Int, maskValue: Float) -> String {
        let values = intermediate("Cast", name: name, inputs: [source], attributes: [.int("to", Int(ONNXDataType.float.rawValue))])
        // |Sign(value - maskValue)|: 0 exactly where equal (gradual underflow keeps a difference of
        // two floats nonzero), 1 elsewhere.
        let differs = intermediate("Abs", name: name, inputs: [
            intermediate("Sign", name: name, inputs: [intermediate("Sub", name: name, inputs: [values, fixed("\(name)/value", [maskValue])])])])
        guard sourceRank > 2 else { return differs }
        // A step's values flattened, then any of them: their sum, at most 1.
        let flat = intermediate("Reshape", name: name, inputs: [differs, constant("\(name)/shape", int64s: [0, 0, -1])])
        let sum = intermediate("ReduceSum", name: name, inputs: [flat, constant("\(name)/axis", int64s: [2])],
                               attributes: [.int("keepdims", 0)])
        return intermediate("Min", name: name, inputs: [sum, fixed("\(name)/one", [1])])
    }

    /// A float constant of the encoding (not a weight): listed with the frozen parameters, so the
    /// file read back does not train it.
    private mutating func fixed(_ name: String, _ values: [Float], dimensions: [Int64] = []) -> String {
        let constant = constant(name, floats: values, dimensions: dimensions)
        frozenConstants.append(constant)
        return constant
    }
}
