import ScionIR

extension KerasOperationReader {
    /// `keras.ops.take(x, i, axis=a)` with one constant index (what Scion writes for torch's
    /// `x[:, 0]`) is that axis's element: a Slice of one then a Squeeze, as `x[:, i]` reads. Other
    /// indices would need a constant tensor in the graph: refused (the node is kept as read).
    func take() throws -> [Op] {
        let rank = try knownRank()
        guard arguments.count == 2, let index = arguments[1].int else {
            throw Refusal(reason: "reads indices other than one constant integer (\(arguments.dropFirst().first?.serialized ?? "none"))")
        }
        guard let setting = config["axis"], let axis = setting.int else {
            throw Refusal(reason: "without an axis takes from the flattened tensor, which is not supported")
        }
        let resolved = axis < 0 ? axis + rank : axis
        guard (0..<rank).contains(resolved) else { throw Refusal(reason: "axis \(axis) is outside a rank-\(rank) tensor") }
        // -1 runs to the end: ONNX's "to the end" bound, as the GetItem reader spells it.
        let end = index == -1 ? Int.max : index + 1
        return [.onnx(.slice(SliceAttributes(starts: [index], ends: [end], axes: [resolved], steps: [1]))),
                .onnx(.squeeze(AxesAttributes(axes: [resolved])))]
    }
}
