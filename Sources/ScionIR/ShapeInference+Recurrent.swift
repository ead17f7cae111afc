/// Shape rule of the recurrent op: `[batch, time, features]` in, the output sequence or last output
/// and the final states out, each direction's kernels checked against Keras's layout.
extension Context {
    func recurrent(_ a: RecurrentAttributes) throws -> [Shape?] {
        // With Keras's mask, the second input is the mask source `[batch, time, ...]` (the tokens).
        try requireInputs(a.maskValue == nil ? 1 : 2)
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
            return [Shape([time, directions, batch, a.units]), state] + (a.cell == .lstm ? [state] : [])
        }
        let directionOutput: Int = a.bidirectional == .concat ? 2 * a.units : a.units
        let output = a.returnSequences ? Shape([batch, time, directionOutput]) : Shape([batch, directionOutput])
        let outputs: [Shape?] = a.bidirectional == .separate ? [output, output] : [output]
        let stateCount = a.returnState ? a.cell.stateCount * a.cellPaths.count : 0
        let states: [Shape?] = Array(repeating: Shape([batch, a.units]), count: stateCount)
        return outputs + states
    }
}
