import ScionIR

/// Keras's masked GlobalAveragePooling1D (`GlobalPoolAttributes.maskValue`) as ONNX, the way Keras
/// computes it: `ReduceSum(Where(kept, x, 0)) / ReduceSum(kept)` over the time axis, so a row with
/// no kept step is 0/0 (NaN) as in Keras. A step is kept where some value of the mask source
/// `[batch, time, ...]` differs from the mask value; the source is compared as float32, so token
/// ids (exact below 2^24) and Masking's float inputs take the same path.
extension ONNXGraphBuilder {
    mutating func emitMaskedGlobalAverage(_ node: Node, _ a: GlobalPoolAttributes, sourceRank: Int?, output: String) throws {
        try requireChannelsFirst(a.layout, node)
        guard let value = a.maskValue, a.rank == 1, a.kind == .average, node.inputs.count == 2 else {
            throw unsupported(node, "a Keras mask is read only by a GlobalAveragePooling1D with its mask source as second input")
        }
        guard let sourceRank, sourceRank >= 2 else {
            throw unsupported(node, "its mask source needs a known rank of at least 2 ([batch, time, ...])")
        }
        let name = node.name
        let float = Int(ONNXDataType.float.rawValue)
        let kept = keptSteps(source: node.inputs[1], sourceRank: sourceRank, value: value, name: name)
        // [batch, time] -> [batch, 1, time], against x's [batch, channels, time].
        let keep = intermediate("Unsqueeze", name: "\(name)/keep", inputs: [kept, constant("\(name)/channel_axis", int64s: [1])])
        let zeroed = intermediate("Where", name: "\(name)/zeroed", inputs: [keep, node.inputs[0], maskConstant("\(name)/zero", 0)])
        let timeAxis = constant("\(name)/time_axis", int64s: [2])
        let keepDimensions: ONNXAttribute = .int("keepdims", a.keepDimensions ? 1 : 0)
        let sum = intermediate("ReduceSum", name: "\(name)/sum", inputs: [zeroed, timeAxis], attributes: [keepDimensions])
        let keptFloat = intermediate("Cast", name: "\(name)/kept_float", inputs: [keep], attributes: [.int("to", float)])
        let count = intermediate("ReduceSum", name: "\(name)/count", inputs: [keptFloat, timeAxis], attributes: [keepDimensions])
        add("Div", name: name, inputs: [sum, count], output: output)
    }

    /// A scalar of the mask's encoding (not a weight): listed with the frozen parameters, so the file
    /// read back does not train it.
    mutating func maskConstant(_ name: String, _ value: Float) -> String {
        scalar(name, value)  // scalars are listed frozen
    }

    /// Keras's mask as a bool `[batch, time]`: where some value of the source `[batch, time, ...]` at
    /// that step differs from `value`.
    mutating func keptSteps(source: String, sourceRank: Int, value: Float, name: String) -> String {
        let float = Int(ONNXDataType.float.rawValue)
        let source = intermediate("Cast", name: "\(name)/mask_source", inputs: [source], attributes: [.int("to", float)])
        let masked = intermediate("Equal", name: "\(name)/masked", inputs: [source, maskConstant("\(name)/mask_value", value)])
        let kept = intermediate("Not", name: "\(name)/kept", inputs: [masked])
        guard sourceRank > 2 else { return kept }
        // A step is kept where any of its values differs: more than zero differing values.
        let differing = intermediate("Cast", name: "\(name)/differing", inputs: [kept], attributes: [.int("to", float)])
        let axes = constant("\(name)/value_axes", int64s: (2..<sourceRank).map { Int64($0) })
        let count = intermediate("ReduceSum", name: "\(name)/differing_count", inputs: [differing, axes],
                                 attributes: [.int("keepdims", 0)])
        return intermediate("Greater", name: "\(name)/kept_steps", inputs: [count, maskConstant("\(name)/none", 0)])
    }
}
