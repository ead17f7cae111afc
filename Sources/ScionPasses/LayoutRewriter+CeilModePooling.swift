import ScionIR

/// ONNX pooling with `ceil_mode` (torch's `MaxPool2d(ceil_mode=True)`, which GoogLeNet uses) where
/// rounding up adds an output position: Keras pooling rounds down, so the input is padded at the
/// end until the last window, which ONNX lets run past the input, fits.
///
/// ```
///  MaxPool k 3, s 2, ceil_mode, 112 long    →  ZeroPadding2D ((0,1),(0,1)) → MaxPooling2D 3/2 "valid": 56 long
///  ceil(((112 - 3) / 2) + 1 = 56, floor gives 55; one more column lets the 56th window fit.
/// ```
///
/// ONNX pads a max with -inf. Over values that cannot be negative (`isNonNegative`: after a ReLU, a
/// concatenation of such...) zeros are exact, a ZeroPadding layer; otherwise a keras.ops Pad with
/// float32's lowest value: every window still holds a real element, which the padding never
/// exceeds. An
/// average would divide the last window by its clipped size (ONNX and torch do), which Keras's
/// average over the padded input does not: refused.
extension LayoutRewriter {
    /// The `(before, after)` padding per spatial axis that makes floor-mode pooling give ONNX's
    /// ceil-mode lengths, the node's own pads included; nil when rounding up changes nothing.
    func ceilModePadding(_ node: Node, _ a: PoolAttributes, lengths: [Int?]) throws -> [[Int]]? {
        let rank = a.rank
        var pairs: [[Int]]
        switch a.padding {
        case .valid: pairs = Array(repeating: [0, 0], count: rank)
        case .explicit(let pads):
            guard pads.count == 2 * rank else { return nil }
            pairs = (0..<rank).map { [pads[$0], pads[rank + $0]] }
        // SAME's lengths are ceil(n / s) in both modes; `causal` is not a pooling padding.
        case .same, .causal: return nil
        }
        var extended = false
        for axis in 0..<rank {
            let kernel = a.poolSize[axis], stride = a.strides[axis]
            let dilation = a.dilations.indices.contains(axis) ? a.dilations[axis] : 1
            let window = (kernel - 1) * dilation + 1
            guard let length = lengths[axis] else {
                throw failure(node.name, "ceil_mode with unknown input lengths has no Keras equivalent")
            }
            let padded = length + pairs[axis][0] + pairs[axis][1]
            guard padded >= window else { continue }
            var outputs = (padded - window + stride - 1) / stride + 1
            // ONNX and torch drop a last window that would start in the end padding.
            if (outputs - 1) * stride >= length + pairs[axis][0] { outputs -= 1 }
            let needed = (outputs - 1) * stride + window - padded
            if needed > 0 {
                pairs[axis][1] += needed
                extended = true
            }
        }
        return extended ? pairs : nil
    }

    /// Padding in front of a max pooling: zeros (a ZeroPadding layer) where the input cannot be
    /// negative, otherwise a keras.ops Pad with float32's lowest value, which no window's largest
    /// real element is below (every window holds one), so it never wins, as ONNX's -inf never does.
    /// (JSON has no -inf for the call's constant.)
    mutating func emitMaxPoolPadding(_ pairs: [[Int]], for node: Node, input: String, converted: String) throws -> String {
        if isNonNegative(input) { return try emitZeroPadding(pairs, for: node, input: converted) }
        let output = uniqueValueName("\(node.outputs.first ?? node.name)/padded")
        // Channels-last: batch, the spatial axes, channels; ONNX's order of all begins, then all ends.
        let pads = [0] + pairs.map { $0[0] } + [0, 0] + pairs.map { $0[1] } + [0]
        nodes.append(Node(name: uniqueNodeName("\(node.name)/pad"),
                          op: .onnx(.pad(PadAttributes(pads: pads, mode: .constant, value: -Float.greatestFiniteMagnitude))),
                          inputs: [converted], outputs: [output], scope: node.scope, trainable: node.trainable))
        return output
    }

    /// A ceil-mode pooling that rounding up lengthens: its Keras form, valid pooling after a
    /// ZeroPadding of `pairs`; throws where zeros are not exact.
    mutating func padForCeilMode(_ node: Node, _ a: inout PoolAttributes, pairs: [[Int]], input: String, converted: inout String) throws {
        switch a.kind {
        case .max:
            converted = try emitMaxPoolPadding(pairs, for: node, input: input, converted: converted)
        case .average:
            throw failure(node.name, "ceil_mode AveragePool divides its last window by the part inside the input, "
                + "which Keras's average over a padded input does not")
        }
        a.padding = .valid
        a.ceilMode = false
        a.countIncludePad = false
    }
}
