/// GELU as ONNX spells it with elementary ops (before opset 20's Gelu): torch's TorchScript exporter
/// writes `F.gelu` this way, as does Scion's own ONNX writer. Found in one place for the two that
/// need it: `ONNXSpellings` (ScionPasses) folds it back into a Keras `gelu` activation, and the
/// executor (ScionRuntime) runs it as one pass instead of five.
///
/// ```
///  Div(x, √2) or Mul(x, 1/√2) → Erf → Add 1 ─┐
///  Mul(x, 0.5) ──────────────────────────────┴ Mul   (or (x · (1 + erf)) · 0.5)
/// ```
public struct GeluSpelling {
    /// The GELU's input.
    public var input: String
    /// The spelling's nodes other than the last Mul (which becomes the activation).
    public var nodes: [Int]
}

extension Graph {
    /// The float32 scalar a constant node at `position` holds; nil for anything else.
    public func scalarConstant(at position: Int) -> Float? {
        guard case .onnx(.constant) = nodes[position].op, let name = nodes[position].parameters.first,
              let parameter = parameters[name], parameter.dtype == .float32, let value = parameter.scalarValue else { return nil }
        return Float(value)
    }

    /// The GELU whose last product is the Mul at `position`, its other nodes each read only within
    /// the spelling (`privateProducer`: the node producing a value no other node reads and the graph
    /// does not output); `scalar` gives a constant input's value.
    public func geluSpelling(at position: Int, privateProducer: (String) -> Int?, scalar: (String) -> Float?) -> GeluSpelling? {
        let node = nodes[position]
        guard case .elementwise(.multiply) = node.op, node.inputs.count == 2 else { return nil }
        // Of a binary node's two inputs, the one that is not the constant `value`, when the other is.
        func operand(_ node: Node, besides value: Float) -> String? {
            guard node.inputs.count == 2 else { return nil }
            if scalar(node.inputs[1]) == value { return node.inputs[0] }
            if scalar(node.inputs[0]) == value { return node.inputs[1] }
            return nil
        }
        // The nodes of `1 + erf(x / √2)` producing `value`, from the Add back.
        func erfChain(_ value: String, x: String) -> [Int]? {
            guard let add = privateProducer(value), case .elementwise(.add) = nodes[add].op,
                  let erfValue = operand(nodes[add], besides: 1), let erf = privateProducer(erfValue),
                  case .onnx(.unary(.errorFunction)) = nodes[erf].op, let scaledValue = nodes[erf].inputs.first,
                  let scaled = privateProducer(scaledValue) else { return nil }
            let scaling = nodes[scaled], root = Float(2.0.squareRoot())
            if case .elementwise(.divide) = scaling.op, scaling.inputs.count == 2, scaling.inputs[0] == x, scalar(scaling.inputs[1]) == root {
                return [add, erf, scaled]
            }
            if case .elementwise(.multiply) = scaling.op, operand(scaling, besides: 1 / root) == x { return [add, erf, scaled] }
            return nil
        }
        for (left, right) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
            // (x · 0.5) · (1 + erf(x/√2))
            if let half = privateProducer(left), case .elementwise(.multiply) = nodes[half].op,
               let x = operand(nodes[half], besides: 0.5), let chain = erfChain(right, x: x) {
                return GeluSpelling(input: x, nodes: [half] + chain)
            }
            // (x · (1 + erf(x/√2))) · 0.5
            if scalar(right) == 0.5, let product = privateProducer(left), case .elementwise(.multiply) = nodes[product].op,
               nodes[product].inputs.count == 2 {
                let inputs = nodes[product].inputs
                for (x, other) in [(inputs[0], inputs[1]), (inputs[1], inputs[0])] {
                    if let chain = erfChain(other, x: x) { return GeluSpelling(input: x, nodes: [product] + chain) }
                }
            }
        }
        return nil
    }
}
