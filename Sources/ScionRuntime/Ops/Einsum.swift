import ScionIR

/// ONNX Einsum of one or two operands, the equations exporters write: batched matrix products
/// (`bhid,bhjd->bhij`, `bij,bjk->bik`), transposes (`ij->ji`) and sums over a letter. Two operands
/// become one batched GEMM: each operand's own letters summed away, then both permuted to
/// `[batch, free, contracted]` / `[batch, contracted, free]`. Ellipses, repeated letters (diagonals)
/// and more than two operands are refused by name. VJP: each operand's gradient is the einsum of dy
/// with the other operand (`c,b->a`), broadcast over the letters only that operand had.
extension Executor {
    func einsum(_ node: Node, _ inputs: [RuntimeTensor], _ a: EinsumAttributes) throws -> RuntimeTensor {
        let terms = try Self.einsumTerms(node, a, inputs)
        return try Self.einsum(node.name, Array(zip(inputs, terms.operands)), output: terms.output)
    }

    static func einsumTerms(_ node: Node, _ a: EinsumAttributes, _ inputs: [RuntimeTensor]) throws -> (operands: [[Character]], output: [Character]) {
        guard let terms = a.terms else {
            throw RuntimeError(node.name, "Einsum '\(a.equation)' is not supported: one or two operands of distinct letters, an explicit "
                               + "output, no ellipsis")
        }
        guard terms.operands.count == inputs.count, zip(terms.operands, inputs).allSatisfy({ $0.count == $1.rank }) else {
            throw RuntimeError(node.name, "Einsum '\(a.equation)' does not fit operands of shapes \(inputs.map(\.shape))")
        }
        return terms
    }

    /// The einsum of operands labelled by letters, each letter of `output` found in some operand.
    static func einsum(_ node: String, _ operands: [(RuntimeTensor, [Character])], output: [Character]) throws -> RuntimeTensor {
        var lengths: [Character: Int] = [:]
        for (tensor, letters) in operands {
            for (letter, length) in zip(letters, tensor.shape) {
                if let known = lengths[letter], known != length {
                    throw RuntimeError(node, "Einsum letter '\(letter)' has lengths \(known) and \(length)")
                }
                lengths[letter] = length
            }
        }
        // Letters only one operand has and the output drops are summed first.
        let reduced = try operands.enumerated().map { index, operand -> (RuntimeTensor, [Character]) in
            let others = operands.enumerated().filter { $0.offset != index }.flatMap(\.element.1) + output
            return try sumAway(node, operand.0, operand.1, keeping: Set(others))
        }
        guard reduced.count == 2 else {
            let (tensor, letters) = reduced[0]
            return Kernels.transpose(tensor, output.map { letter in letters.firstIndex(of: letter) ?? 0 })
        }
        let (left, leftLetters) = reduced[0], (right, rightLetters) = reduced[1]
        let batch = leftLetters.filter { rightLetters.contains($0) && output.contains($0) }
        let contracted = leftLetters.filter { rightLetters.contains($0) && !output.contains($0) }
        let leftFree = leftLetters.filter { !rightLetters.contains($0) }
        let rightFree = rightLetters.filter { !leftLetters.contains($0) }
        func size(_ letters: [Character]) -> Int { letters.reduce(1) { $0 * (lengths[$1] ?? 1) } }
        func arranged(_ tensor: RuntimeTensor, _ letters: [Character], _ order: [Character], _ shape: [Int]) -> RuntimeTensor {
            let permuted = Kernels.transpose(tensor, order.map { letter in letters.firstIndex(of: letter) ?? 0 })
            return RuntimeTensor(shape: shape, data: permuted.data)
        }
        let (b, m, k, n) = (size(batch), size(leftFree), size(contracted), size(rightFree))
        let product = try Kernels.batchedMatmul(arranged(left, leftLetters, batch + leftFree + contracted, [b, m, k]),
                                                arranged(right, rightLetters, batch + contracted + rightFree, [b, k, n]), node: node)
        let letters = batch + leftFree + rightFree
        let result = RuntimeTensor(shape: letters.map { lengths[$0] ?? 1 }, data: product.data)
        return Kernels.transpose(result, output.map { letter in letters.firstIndex(of: letter) ?? 0 })
    }

    /// `tensor` with the axes of letters outside `keeping` summed away.
    static func sumAway(_ node: String, _ tensor: RuntimeTensor, _ letters: [Character], keeping: Set<Character>) throws
        -> (RuntimeTensor, [Character])
    {
        let dropped = letters.indices.filter { !keeping.contains(letters[$0]) }
        guard !dropped.isEmpty else { return (tensor, letters) }
        let sum = try Kernels.reduce(tensor, ReduceAttributes(kind: .sum, axes: dropped, keepDimensions: false), node: node)
        return (sum, letters.filter { keeping.contains($0) })
    }
}

extension Trainer {
    /// Each operand's gradient: the einsum of dy with the other operands, written in the operand's
    /// letters it shares with them, then broadcast over the letters it summed alone.
    func einsumBackward(_ node: Node, _ a: EinsumAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        let terms = try Executor.einsumTerms(node, a, inputs)
        let gradients = try inputs.indices.map { index -> RuntimeTensor in
            let letters = terms.operands[index]
            let others = inputs.indices.filter { $0 != index }.map { (inputs[$0], terms.operands[$0]) }
            let reachable = Set(terms.output + others.flatMap(\.1))
            let kept = letters.filter(reachable.contains)
            let partial = try Executor.einsum(node.name, [(dy, terms.output)] + others, output: kept)
            let withOnes = RuntimeTensor(shape: letters.enumerated().map { kept.contains($0.element) ? inputs[index].shape[$0.offset] : 1 },
                                         data: partial.data)
            return try withOnes.expanded(to: inputs[index].shape, node: node.name)
        }
        return StepGradients(inputs: gradients)
    }
}
