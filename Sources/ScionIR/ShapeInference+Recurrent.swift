/// Shape rule of the recurrent op: `[batch, time, features]` in, the output sequence or last output
/// and the final states out, each direction's kernels checked against Keras's layout.
extension Context {
    func recurrent(_ a: RecurrentAttributes) throws -> [Shape?] {
        // With Keras's mask, the second input is the mask source `[batch, time, ...]` (the tokens);
        // ONNX's form may read initial states after the sequence (`h0`, and LSTM's `c0`).
        if a.timeMajor && a.maskValue == nil && inputs.count > 1 {
            try requireInputs(1 + a.cell.stateCount)
        } else if inputs.count != (a.maskValue == nil ? 1 : 2) + a.initialStateCount {
            // Keras's initial_state: the states after the sequence (and the mask source).
            let states = a.initialStateCount > 0 ? " and \(a.initialStateCount) initial states" : ""
            throw fail("needs the sequence\(a.maskValue == nil ? "" : ", the mask source")\(states) as inputs, got \(inputs.count) "
                       + "(an initial_state of \(a.cell.stateCount * a.cellPaths.count) states: \(a.cell == .lstm ? "h and c" : "h") per direction)")
        }
        if let convolution = a.convolution { return try convolutionalRecurrent(a, convolution) }
        let shape = try firstShape()
        if let shape, shape.rank != 3 {
            throw fail("\(node.op.typeName) needs a [batch, time, features] input, got shape \(shape)")
        }
        // Unknown lengths (nil) match anything.
        func differ(_ x: Int?, _ y: Int?) -> Bool { x != nil && y != nil && x != y }
        if a.maskValue != nil, let shape, let source = inputs[1].shape,
           source.rank < 2 || differ(source[0], shape[0]) || differ(source[1], shape[1]) {
            throw fail("\(node.op.typeName)'s mask source \(source) does not match its input \(shape) in batch and time")
        }
        guard a.units > 0 else { throw fail("\(node.op.typeName) has \(a.units) units") }
        let features = shape?[2]
        // ONNX's form: [time, batch, features] in, Y [time, directions, batch, units] and the states out.
        let (time, batch) = a.timeMajor ? (shape?[0], shape?[1]) : (shape?[1], shape?[0])
        let width = a.cell.gateCount * a.units
        for path in a.cellPaths {
            try expectParameter(.sublayer(path, .kernel), [features, width])
            try expectParameter(.sublayer(path, .recurrentKernel), [a.units, width])
            if a.useBias { try expectParameter(.sublayer(path, .bias), a.biasShape) }
        }
        if a.timeMajor {
            let directions = a.cellPaths.count
            let state = Shape([directions, batch, a.units])
            for initial in inputs.dropFirst() {
                if let given = initial.shape, given.rank != 3 || differ(given[0], directions) || differ(given[1], batch)
                    || differ(given[2], a.units) {
                    throw fail("\(node.op.typeName)'s initial state \(given) is not [\(directions), batch, \(a.units)]")
                }
            }
            return [Shape([time, directions, batch, a.units]), state] + (a.cell == .lstm ? [state] : [])
        }
        for initial in inputs.suffix(a.initialStateCount) {
            if let given = initial.shape, given.rank != 2 || differ(given[0], batch) || differ(given[1], a.units) {
                throw fail("\(node.op.typeName)'s initial state \(given) is not [batch, \(a.units)]")
            }
        }
        let directionOutput: Int = a.bidirectional == .concat ? 2 * a.units : a.units
        let output = a.returnSequences ? Shape([batch, time, directionOutput]) : Shape([batch, directionOutput])
        let outputs: [Shape?] = a.bidirectional == .separate ? [output, output] : [output]
        let stateCount = a.returnState ? a.cell.stateCount * a.cellPaths.count : 0
        let states: [Shape?] = Array(repeating: Shape([batch, a.units]), count: stateCount)
        return outputs + states
    }

    /// ConvLSTM: `[batch, time, spatial..., channels]` in; the sequence `[batch, time, spatial'..., units]`
    /// or the last output `[batch, spatial'..., units]` out, then with `returnState` h and c like the
    /// last output; spatial' is the input convolution's output size.
    private func convolutionalRecurrent(_ a: RecurrentAttributes, _ convolution: RecurrentConvolution) throws -> [Shape?] {
        let name = node.op.typeName
        guard a.cell == .lstm, a.bidirectional == nil, !a.timeMajor, a.maskValue == nil else {
            throw fail("\(name) is an LSTM over one direction without a mask in Keras's form")
        }
        let rank = convolution.rank
        guard (1...3).contains(rank), convolution.strides.count == rank, convolution.dilations.count == rank,
              (convolution.kernelSize + convolution.strides + convolution.dilations).allSatisfy({ $0 > 0 }),
              convolution.padding == .valid || convolution.padding == .same else {
            throw fail("\(name) has kernel \(convolution.kernelSize), strides \(convolution.strides), dilations "
                       + "\(convolution.dilations) and padding \(convolution.padding): not a ConvLSTM of rank 1 to 3")
        }
        guard a.units > 0 else { throw fail("\(name) has \(a.units) filters") }
        let shape = try firstShape()
        if let shape, shape.rank != rank + 3 {
            throw fail("\(name) needs a [batch, time, \(rank) spatial axes, channels] input, got shape \(shape)")
        }
        let channels = shape?[rank + 2]
        let width = 4 * a.units
        try expectParameter(.sublayer("cell", .kernel), convolution.kernelSize.map { Int?($0) } + [channels, width])
        try expectParameter(.sublayer("cell", .recurrentKernel), convolution.kernelSize.map { Int?($0) } + [a.units, width])
        if a.useBias { try expectParameter(.sublayer("cell", .bias), [width]) }
        let spatial = (0..<rank).map { convolution.outputLength(shape?[2 + $0], axis: $0) }
        if spatial.contains(0) { throw fail("\(name)'s kernel does not fit its input \(shape.map { "\($0)" } ?? "")") }
        let state = Shape([shape?[0]] + spatial + [Int?(a.units)])
        let output = a.returnSequences ? Shape([shape?[0], shape?[1]] + spatial + [Int?(a.units)]) : state
        return [output] + (a.returnState ? [state, state] : [])
    }
}
