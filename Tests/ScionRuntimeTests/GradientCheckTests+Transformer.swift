import ScionIR
@testable import ScionRuntime
import XCTest

/// VJPs of ONNX's opset-23 transformer ops (Attention, RMSNormalization, RotaryEmbedding), CumSum,
/// DepthToSpace/SpaceToDepth and the inverse and hyperbolic trigonometric functions, against finite
/// differences. Q is the shifted
/// input; K, V, an additive mask and the key/value cache are trainable constants, so every value
/// operand's gradient is checked; bool masks and position ids are frozen.
extension GradientCheckTests {
    func attentionNode(_ name: String, _ a: ScaledDotProductAttentionAttributes, _ inputs: [String], outputs: Int = 1) -> Node {
        Node(name: name, op: .onnx(.scaledDotProductAttention(a)), inputs: inputs,
             outputs: [name] + (1..<max(outputs, 1)).map { "\(name)/output\($0)" }, trainable: true)
    }

    func testScaledDotProductAttention() throws {
        try check("Attention 4-D, grouped-query (4 of 2 heads), causal over a cache, additive mask, softcap", input: [2, 4, 3, 4]) { x in
            let parts = [operand("k", [2, 2, 5, 4]), operand("v", [2, 2, 5, 3]), operand("mask", [3, 7]),
                         operand("past_k", [2, 2, 2, 4]), operand("past_v", [2, 2, 2, 3])]
            let a = ScaledDotProductAttentionAttributes(mask: .additive, isCausal: true, softcap: 2, hasPast: true)
            // Y and the present key and value: only Y is the graph's output.
            return (parts.map(\.0) + [attentionNode("att", a, [x, "k", "v", "mask", "past_k", "past_v"], outputs: 3)], parts.map(\.1), "att")
        }
        try check("Attention 3-D, 2 query heads on 1 key/value head, bool mask padded to the keys, explicit scale", input: [2, 3, 8]) { x in
            let parts = [operand("k", [2, 4, 4]), operand("v", [2, 4, 6])]
            // Keys 0-2 of the 4 (the fourth is padding), key 1 hidden from query 0.
            let (maskNode, mask) = fixed("mask", [3, 3], [1, 0, 1, 1, 1, 1, 1, 1, 0])
            let a = ScaledDotProductAttentionAttributes(queryHeads: 2, keyValueHeads: 1, mask: .boolean, scale: 0.3)
            return (parts.map(\.0) + [maskNode, attentionNode("att", a, [x, "k", "v", "mask"])], parts.map(\.1) + [mask], "att")
        }
        try check("Attention's present key as the output (a cache read by the next step)", input: [2, 2, 3, 4]) { x in
            let parts = [operand("v", [2, 2, 3, 4]), operand("past_k", [2, 2, 1, 4]), operand("past_v", [2, 2, 1, 4])]
            let a = ScaledDotProductAttentionAttributes(isCausal: true, hasPast: true)
            let attention = attentionNode("att", a, [x, x, "v", "past_k", "past_v"], outputs: 3)
            return (parts.map(\.0) + [attention, node("sum", .elementwise(.add), ["att/output1", "att/output2"])], parts.map(\.1), "sum")
        }
    }

    func testRMSNormalizationAndRotaryEmbedding() throws {
        try check("RMSNormalization over the last two axes, scale a parameter", input: [2, 3, 4]) { x in
            ([node("n", .onnx(.rmsNormalization(RMSNormalizationAttributes(axis: -2, epsilon: 1e-3))), [x], parameters: ["n/scale"])],
             [parameter("n/scale", "scale", [3, 4], offset: 1)], "n")
        }
        try check("RMSNormalization with a computed scale", input: [2, 5]) { x in
            let (scaleNode, scale) = operand("scale", [5], offset: 1)
            return ([scaleNode, node("n", .onnx(.rmsNormalization(RMSNormalizationAttributes(axis: 1))), [x, "scale"])], [scale], "n")
        }
        let angles = (0..<12).map { Float($0) * 0.37 }
        try check("RotaryEmbedding 4-D, interleaved, position ids into a cache", input: [2, 2, 3, 4]) { x in
            let (cosineNode, cosine) = fixed("cos", [6, 2], angles.map { Foundation.cos($0) })
            let (sineNode, sine) = fixed("sin", [6, 2], angles.map { Foundation.sin($0) })
            let (idsNode, ids) = fixed("ids", [2, 3], [0, 1, 2, 5, 3, 4])
            let a = RotaryEmbeddingAttributes(interleaved: true)
            return ([cosineNode, sineNode, idsNode, node("r", .onnx(.rotaryEmbedding(a)), [x, "cos", "sin", "ids"])], [cosine, sine, ids], "r")
        }
        try check("RotaryEmbedding 3-D, halves, 4 of 6 features rotated, per-batch caches", input: [2, 3, 12]) { x in
            let (cosineNode, cosine) = fixed("cos", [2, 3, 2], angles.map { Foundation.cos($0) })
            let (sineNode, sine) = fixed("sin", [2, 3, 2], angles.map { Foundation.sin($0) })
            let a = RotaryEmbeddingAttributes(rotaryDimensions: 4, heads: 2, hasPositionIDs: false)
            return ([cosineNode, sineNode, node("r", .onnx(.rotaryEmbedding(a)), [x, "cos", "sin"])], [cosine, sine], "r")
        }
    }

    func testDepthToSpaceAndBack() throws {
        for (toDepth, crd, input) in [(false, false, [2, 8, 2, 3]), (false, true, [2, 8, 2, 3]), (true, false, [2, 2, 4, 6])] {
            try check("\(toDepth ? "SpaceToDepth" : "DepthToSpace") blocksize 2\(crd ? " CRD" : "")", input: input) { x in
                ([node("d", .onnx(.depthSpace(DepthSpaceAttributes(toDepth: toDepth, blockSize: 2, columnRowDepth: crd))), [x])], [], "d")
            }
        }
    }

    func testCumulativeSumAndTrigonometry() throws {
        for (exclusive, reverse) in [(false, false), (true, false), (false, true), (true, true)] {
            try check("CumSum exclusive \(exclusive), reverse \(reverse)", input: [2, 3, 4]) { x in
                ([node("c", .onnx(.cumulativeSum(CumulativeSumAttributes(axis: -2, exclusive: exclusive, reverse: reverse))), [x])], [], "c")
            }
        }
        // Arguments inside each function's domain: tanh · 0.8 in (-0.8, 0.8); exp + 1 above 1 for acosh.
        let bounded = RescalingAttributes(scale: [0.8], offset: [0])
        for operation in [UnaryOperation.tangent, .arcsine, .arccosine, .arctangent, .hyperbolicSine, .hyperbolicCosine,
                          .inverseHyperbolicSine, .inverseHyperbolicTangent] {
            try check("unary \(operation) (of a value in (-0.8, 0.8))", input: [2, 5]) { x in
                ([node("t", .activation(.tanh), [x]), node("b", .rescaling(bounded), ["t"]), node("u", .onnx(.unary(operation)), ["b"])], [], "u")
            }
        }
        try check("unary inverseHyperbolicCosine (of a value above 1)", input: [2, 5]) { x in
            ([node("e", .activation(.exponential), [x]), node("b", .rescaling(RescalingAttributes(scale: [1], offset: [1])), ["e"]),
              node("u", .onnx(.unary(.inverseHyperbolicCosine)), ["b"])], [], "u")
        }
    }
}
