import ScionIR

/// A Gemm whose second operand is computed at run time (tf2onnx writes Keras's attention output
/// einsum this way): Keras has no layer for it, but keras.ops does: transposes where the Gemm
/// transposes, a matmul, and the third operand added.
///
///     Gemm(A, B, C; transB=1)   →   Transpose(B) ─┐
///                                   A ────────────┴ MatMul ── Add(·, C)
extension KerasPatternRewriter {
    mutating func runtimeGemmsAsMatMul() {
        var nodes: [Node] = []
        for node in graph.nodes {
            guard case .onnx(.gemm(let a)) = node.op, node.inputs.count >= 2, node.parameters.isEmpty, a.alpha == 1,
                  node.inputs.count == 2 || a.beta == 1, let output = node.outputs.first else {
                nodes.append(node)
                continue
            }
            var operands = Array(node.inputs.prefix(2))
            for (slot, transposed) in [(0, a.transposeA), (1, a.transposeB)] where transposed {
                let name = "\(node.name)#transposed\(slot)"
                nodes.append(Node(name: name, op: .transpose(TransposeAttributes(permutation: [1, 0])), inputs: [operands[slot]], outputs: [name]))
                operands[slot] = name
            }
            if node.inputs.count == 3 {
                let product = "\(node.name)#product"
                nodes.append(Node(name: product, op: .onnx(.matMul), inputs: operands, outputs: [product]))
                nodes.append(Node(name: node.name, op: .elementwise(.add), inputs: [product, node.inputs[2]], outputs: [output]))
            } else {
                nodes.append(Node(name: node.name, op: .onnx(.matMul), inputs: operands, outputs: [output]))
            }
        }
        graph.nodes = nodes
    }
}
