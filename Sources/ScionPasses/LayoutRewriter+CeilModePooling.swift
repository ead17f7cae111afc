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
/// The padding is zeros (Keras's only padding layer) where ONNX's is -inf, so a max is exact only
/// over values that cannot be negative (`isNonNegative`: after a ReLU, a concatenation of such...):
/// every window still holds a real element, and a zero never exceeds the largest of them. An
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

    /// A ceil-mode pooling that rounding up lengthens: its Keras form, valid pooling after a
    /// ZeroPadding of `pairs`; throws where zeros are not exact.
    mutating func padForCeilMode(_ node: Node, _ a: inout PoolAttributes, pairs: [[Int]], input: String, converted: inout String) throws {
        switch a.kind {
        case .max:
            guard isNonNegative(input) else {
                throw failure(node.name, "ceil_mode MaxPool needs padding at the end and its input may be negative "
                    + "(Keras pads with zeros only; ONNX's padding is -inf)")
            }
        case .average:
            throw failure(node.name, "ceil_mode AveragePool divides its last window by the part inside the input, "
                + "which Keras's average over a padded input does not")
        }
        converted = try emitZeroPadding(pairs, for: node, input: converted)
        a.padding = .valid
        a.ceilMode = false
        a.countIncludePad = false
    }
}
