import ScionIR
@testable import ScionRuntime
import XCTest

/// MultiHeadAttention's VJP against finite differences: self-attention (one tensor as query and
/// value, so both gradients add up) with the causal mask; cross-attention with its own key, no
/// biases, value_dim ≠ key_dim and an output_shape; attention over two axes of a grid with a
/// constant mask and a two-axis output_shape.
extension GradientCheckTests {
    func attentionParameters(_ name: String, _ a: MultiHeadAttentionAttributes, query: Int, key: Int, value: Int,
                             output: [Int]) -> ([String], [Parameter]) {
        var shapes: [(String, [Int])] = [
            ("query_dense/kernel", [query, a.numHeads, a.keyDim]), ("query_dense/bias", [a.numHeads, a.keyDim]),
            ("key_dense/kernel", [key, a.numHeads, a.keyDim]), ("key_dense/bias", [a.numHeads, a.keyDim]),
            ("value_dense/kernel", [value, a.numHeads, a.valueDim]), ("value_dense/bias", [a.numHeads, a.valueDim]),
            ("output_dense/kernel", [a.numHeads, a.valueDim] + output), ("output_dense/bias", output)]
        if !a.useBias { shapes.removeAll { $0.0.hasSuffix("bias") } }
        let parameters = shapes.map { parameter("\(name)/\($0.0)", $0.0, $0.1, scale: 0.7) }
        return (parameters.map(\.name), parameters)
    }

    func testMultiHeadAttention() throws {
        try check("self-attention with the causal mask", input: [2, 4, 6]) { x in
            let a = MultiHeadAttentionAttributes(numHeads: 2, keyDim: 3, useCausalMask: true)
            let (names, parameters) = attentionParameters("mha", a, query: 6, key: 6, value: 6, output: [6])
            return ([node("mha", .multiHeadAttention(a), [x, x], parameters: names)], parameters, "mha")
        }
        try check("cross-attention with a key, no biases, value_dim 2, output_shape 5", input: [2, 3, 4]) { x in
            let a = MultiHeadAttentionAttributes(numHeads: 2, keyDim: 3, valueDim: 2, useBias: false, outputShape: [5], hasKey: true)
            let (names, parameters) = attentionParameters("mha", a, query: 4, key: 2, value: 3, output: [5])
            let projections = [parameter("v/kernel", "kernel", [4, 3]), parameter("v/bias", "bias", [3]),
                               parameter("k/kernel", "kernel", [4, 2]), parameter("k/bias", "bias", [2])]
            return ([node("v", .dense(DenseAttributes(units: 3)), [x], parameters: ["v/kernel", "v/bias"]),
                     node("k", .dense(DenseAttributes(units: 2)), [x], parameters: ["k/kernel", "k/bias"]),
                     node("mha", .multiHeadAttention(a), [x, "v", "k"], parameters: names)],
                    projections + parameters, "mha")
        }
        try check("attention over a 3x2 grid with a mask, output_shape [2, 3]", input: [2, 3, 2, 4]) { x in
            let a = MultiHeadAttentionAttributes(numHeads: 2, keyDim: 2, outputShape: [2, 3], attentionAxes: [1, 2],
                                                 hasAttentionMask: true)
            let (names, parameters) = attentionParameters("mha", a, query: 4, key: 4, value: 4, output: [2, 3])
            // [1, t1, t2, s1, s2]: Keras inserts the heads axis after the batch.
            let keep: [Float] = (0..<36).map { $0 % 5 == 0 ? 0 : 1 }
            let mask = Parameter(name: "mask/value", role: .value, shape: [1, 3, 2, 3, 2], dtype: .float32, trainable: false,
                                 storage: TensorStorage(bytes: keep.withUnsafeBytes { Array($0) }))
            return ([node("mask", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["mask/value"], trainable: false),
                     node("mha", .multiHeadAttention(a), [x, x, "mask"], parameters: names)],
                    [mask] + parameters, "mha")
        }
    }

    /// Keras drops attention probabilities while training; Scion refuses rather than train without it.
    func testMultiHeadAttentionWithDropoutRefusesTraining() throws {
        XCTAssertThrowsError(try check("dropout", input: [2, 3, 4]) { x in
            let a = MultiHeadAttentionAttributes(numHeads: 1, keyDim: 2, dropout: 0.1)
            let (names, parameters) = attentionParameters("mha", a, query: 4, key: 4, value: 4, output: [4])
            return ([node("mha", .multiHeadAttention(a), [x, x], parameters: names)], parameters, "mha")
        }) { error in
            XCTAssertTrue("\(error)".contains("dropout"), "\(error)")
        }
    }
}

/// EinsumDense's VJP in the equations of the fixture: on a sequence with relu, splitting into
/// heads, merging heads, with an ellipsis and no bias.
extension GradientCheckTests {
    func testEinsumDense() throws {
        let cases: [(String, [Int], [Int], String?, [Int]?, Activation)] = [
            ("abc,cd->abd", [2, 3, 4], [4, 5], "d", [5], .relu(maxValue: nil, negativeSlope: 0, threshold: 0)),
            ("abc,cde->abde", [2, 3, 4], [4, 2, 3], "de", [2, 3], .linear),
            ("abcd,cde->abe", [2, 3, 2, 3], [2, 3, 4], "e", [4], .tanh),
            ("...b,bc->...c", [2, 3, 4], [4, 3], nil, nil, .linear),
            ("abc,bd->acd", [2, 3, 4], [3, 2], "c", [4, 1], .linear),
        ]
        for (equation, input, kernel, biasAxes, biasShape, activation) in cases {
            try check("EinsumDense \(equation)", input: input) { x in
                let a = EinsumDenseAttributes(equation: equation, outputShape: [], biasAxes: biasAxes, activation: activation)
                var parameters = [parameter("e/kernel", "kernel", kernel, scale: 0.7)]
                if let biasShape { parameters.append(parameter("e/bias", "bias", biasShape)) }
                return ([node("e", .einsumDense(a), [x], parameters: parameters.map(\.name))], parameters, "e")
            }
        }
    }
}

/// UnitNormalization's VJP over the last axis and over two axes.
extension GradientCheckTests {
    func testUnitNormalization() throws {
        for axes in [[-1], [1, 2]] {
            try check("UnitNormalization over \(axes)", input: [2, 3, 4]) { x in
                ([node("u", .unitNormalization(UnitNormalizationAttributes(axes: axes)), [x])], [], "u")
            }
        }
    }
}

/// Attention and AdditiveAttention: each score rule, with its learned factors, self-attention
/// (the value is the key, so both gradients add) and the causal mask.
extension GradientCheckTests {
    func testDotAndAdditiveAttention() throws {
        let cases: [(AttentionAttributes, [(String, [Int])])] = [
            (AttentionAttributes(score: .dot, useScale: true, useCausalMask: true), [("scale", [])]),
            (AttentionAttributes(score: .concat, useScale: true), [("scale", []), ("concat_score_weight", [])]),
            (AttentionAttributes(score: .additive, useScale: true), [("scale", [4])]),
            (AttentionAttributes(score: .dot, useScale: false, hasKey: true), []),
        ]
        for (a, weights) in cases {
            try check("\(a.kerasClass) \(a.score) causal \(a.useCausalMask) key \(a.hasKey)", input: [2, 3, 4]) { x in
                let parameters = weights.map { parameter("att/\($0.0)", $0.0, $0.1, offset: 0.5) }
                var nodes: [Node] = []
                var inputs = [x, x]
                if a.hasKey {
                    nodes.append(node("key", .dense(DenseAttributes(units: 4)), [x], parameters: ["key/kernel", "key/bias"]))
                    inputs.append("key")
                }
                let keyParameters = a.hasKey ? [parameter("key/kernel", "kernel", [4, 4]), parameter("key/bias", "bias", [4])] : []
                nodes.append(node("att", .attention(a), inputs, parameters: parameters.map(\.name)))
                return (nodes, keyParameters + parameters, "att")
            }
        }
    }
}
