/// Shape rule of the recurrent op: `[batch, time, features]` in, the output sequence or last output
/// and the final states out, each direction's kernels checked against Keras's layout.
extension Context {
    func recurrent(_ a: RecurrentAttributes) throws -> [Shape?] {
        try requireInputs(1)
        let shape = try firstShape()
        if let shape, shape.rank != 3 {
            throw fail("\(node.op.typeName) needs a [batch, time, features] input, got shape \(shape)")
        }
        guard a.units > 0 else { throw fail("\(node.op.typeName) has \(a.units) units") }
        let features = shape?[2]
        let width = a.cell.gateCount * a.units
        for path in a.cellPaths {
            try expectParameter(.sublayer(path, .kernel), [features, width])
            try expectParameter(.sublayer(path, .recurrentKernel), [a.units, width])
            if a.useBias { try expectParameter(.sublayer(path, .bias), a.biasShape) }
        }
        let batch = shape?[0]
        let directionOutput: Int = a.bidirectional == .concat ? 2 * a.units : a.units
        let output = a.returnSequences ? Shape([batch, shape?[1], directionOutput]) : Shape([batch, directionOutput])
        let outputs: [Shape?] = a.bidirectional == .separate ? [output, output] : [output]
        let stateCount = a.returnState ? a.cell.stateCount * a.cellPaths.count : 0
        let states: [Shape?] = Array(repeating: Shape([batch, a.units]), count: stateCount)
        return outputs + states
    }
}
