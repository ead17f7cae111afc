import ScionIR
@testable import ScionRuntime
import XCTest

/// MultiHeadAttention with Keras's query and value masks against finite differences. The mask
/// source is the raw input `[batch, time, features]` (as after Masking, value 0): time steps whose
/// features are all zero are masked, as query positions (their rows attend uniformly, every key
/// masked) and as key positions (never attended). The shifted input is what attends.
extension GradientCheckTests {
    func testMultiHeadAttentionWithKerasMasks() throws {
        var x = values(2 * 5 * 4)
        // Sample 0 masks steps 0 and 3; sample 1 masks steps 2, 3 and 4.
        for step in [0, 3, 7, 8, 9] { for feature in 0..<4 { x[step * 4 + feature] = 0 } }
        try check("self-attention with query and value masks and the causal mask", input: [2, 5, 4], inputValues: x) { input in
            var a = MultiHeadAttentionAttributes(numHeads: 2, keyDim: 3, useCausalMask: true)
            a.queryMaskValue = 0
            a.valueMaskValue = 0
            let (names, parameters) = attentionParameters("mha", a, query: 4, key: 4, value: 4, output: [4])
            return ([node("mha", .multiHeadAttention(a), [input, input, "x", "x"], parameters: names)], parameters, "mha")
        }
    }
}
