import ScionIR
@testable import ScionRuntime
import XCTest

/// The masked GlobalAveragePooling1D's VJP against finite differences. The mask source is the
/// raw input read as `[batch, time, features]` (as after Masking): x is `[2, 4, 4]`, so the pooled
/// `x + shift` is channels-first `[batch, 4 channels, 4 steps]` and the source's rows are its steps.
/// Steps whose source row is all zero are masked: one in the first sample, three in the second.
extension GradientCheckTests {
    func testMaskedGlobalAveragePooling() throws {
        var x = values(32)
        for step in [2, 4, 5, 7] { for feature in 0..<4 { x[step * 4 + feature] = 0 } }
        for keepDimensions in [false, true] {
            try check("masked average pooling (keepdims \(keepDimensions))", input: [2, 4, 4], inputValues: x) { input in
                let a = GlobalPoolAttributes(kind: .average, rank: 1, keepDimensions: keepDimensions, layout: .channelsFirst,
                                             maskValue: 0)
                return ([node("pool", .globalPool(a), [input, "x"])], [], "pool")
            }
        }
    }
}
