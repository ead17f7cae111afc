import ScionIR
@testable import ScionRuntime
import XCTest

/// Backprop through time through Keras's mask and through `dropout` / `recurrent_dropout`, against
/// finite differences. `check` draws the same dropout masks on every pass (a fixed seed), so the
/// gradient of the dropped layer is checked exactly.
extension GradientCheckTests {
    /// Mask sources for `[2, 4]` sequences (0 is padding): padding at the start, in the middle, at
    /// the end, and a row that is all padding.
    static let maskedTokens: [(String, [Float])] = [
        ("start", [0, 0, 3, 4, 0, 5, 6, 7]), ("middle", [1, 0, 0, 4, 2, 3, 0, 5]),
        ("end", [1, 2, 0, 0, 3, 4, 5, 0]), ("all-masked row", [0, 0, 0, 0, 1, 0, 2, 3]),
    ]

    /// `recurrentCase` with the mask source as a second input: a frozen constant of tokens `[2, 4]`.
    func maskedRecurrentCase(_ a: RecurrentAttributes, tokens: [Float]) -> (String) -> ([Node], [Parameter], String) {
        var masked = a
        masked.maskValue = 0
        let build = recurrentCase(masked)
        return { x in
            var (nodes, parameters, output) = build(x)
            let source = Parameter(name: "tokens", role: ParameterRole(rawValue: "value"), shape: [2, 4], dtype: .float32, trainable: false,
                                   storage: TensorStorage(bytes: tokens.withUnsafeBytes { Array($0) }))
            nodes[0].inputs.append("tokens")
            nodes.insert(self.node("tokens", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["tokens"],
                                   trainable: false), at: 0)
            parameters.append(source)
            return (nodes, parameters, output)
        }
    }

    func testRecurrentCellsThroughAMask() throws {
        var zeroing = RecurrentAttributes(cell: .lstm, units: 2, returnSequences: true)
        zeroing.zeroOutputForMask = true
        var zeroingLast = RecurrentAttributes(cell: .gru, units: 2, goBackwards: true, resetAfter: true)
        zeroingLast.zeroOutputForMask = true
        let layers: [(String, RecurrentAttributes)] = [
            ("SimpleRNN sequence", RecurrentAttributes(cell: .simpleRNN, units: 3, returnSequences: true)),
            ("SimpleRNN last backwards", RecurrentAttributes(cell: .simpleRNN, units: 2, goBackwards: true)),
            ("LSTM last", RecurrentAttributes(cell: .lstm, units: 3)),
            ("LSTM sequence, zero outputs", zeroing),
            ("LSTM backwards sequence, states", RecurrentAttributes(cell: .lstm, units: 2, returnSequences: true, returnState: true,
                                                                    goBackwards: true)),
            ("GRU reset after, states", RecurrentAttributes(cell: .gru, units: 3, returnState: true, resetAfter: true)),
            ("GRU reset before, sequence backwards", RecurrentAttributes(cell: .gru, units: 2, returnSequences: true, goBackwards: true,
                                                                         resetAfter: false)),
            ("GRU backwards last, zero outputs", zeroingLast),
        ]
        for (name, attributes) in layers {
            for (placement, tokens) in Self.maskedTokens {
                try check("\(name), mask \(placement)", input: [2, 4, 3], maskedRecurrentCase(attributes, tokens: tokens))
            }
        }
    }

    func testBidirectionalThroughAMask() throws {
        let layers: [(String, RecurrentAttributes)] = [
            ("Bidirectional LSTM concat, sequence", RecurrentAttributes(cell: .lstm, units: 2, returnSequences: true, bidirectional: .concat)),
            ("Bidirectional GRU sum, last and states", RecurrentAttributes(cell: .gru, units: 2, returnState: true, bidirectional: .sum)),
            ("Bidirectional SimpleRNN mul, sequence", RecurrentAttributes(cell: .simpleRNN, units: 2, returnSequences: true,
                                                                          bidirectional: .mul)),
            ("Bidirectional LSTM ave, last", RecurrentAttributes(cell: .lstm, units: 2, bidirectional: .ave)),
        ]
        for (name, attributes) in layers {
            for (placement, tokens) in Self.maskedTokens {
                try check("\(name), mask \(placement)", input: [2, 4, 3], maskedRecurrentCase(attributes, tokens: tokens))
            }
        }
    }

    func testRecurrentCellsWithDropout() throws {
        func dropped(_ a: RecurrentAttributes, _ dropout: Float, _ recurrentDropout: Float) -> RecurrentAttributes {
            var a = a
            (a.dropout, a.recurrentDropout) = (dropout, recurrentDropout)
            return a
        }
        let cases: [(String, RecurrentAttributes)] = [
            ("SimpleRNN, both", dropped(RecurrentAttributes(cell: .simpleRNN, units: 3, returnSequences: true), 0.3, 0.3)),
            ("LSTM, input only (one shared mask)", dropped(RecurrentAttributes(cell: .lstm, units: 3, returnSequences: true), 0.3, 0)),
            ("LSTM, both (a mask per gate)", dropped(RecurrentAttributes(cell: .lstm, units: 3, returnState: true), 0.3, 0.3)),
            ("LSTM, state only", dropped(RecurrentAttributes(cell: .lstm, units: 2, returnSequences: true, goBackwards: true), 0, 0.4)),
            ("GRU reset after, both", dropped(RecurrentAttributes(cell: .gru, units: 3, returnSequences: true, resetAfter: true), 0.3, 0.3)),
            ("GRU reset before, both", dropped(RecurrentAttributes(cell: .gru, units: 3, returnSequences: true, resetAfter: false), 0.3, 0.3)),
            ("Bidirectional GRU concat, both", dropped(RecurrentAttributes(cell: .gru, units: 2, returnSequences: true,
                                                                           bidirectional: .concat), 0.3, 0.3)),
        ]
        for (name, attributes) in cases {
            try check(name, input: [2, 4, 3], recurrentCase(attributes))
        }
        // Dropout and a mask together: Keras's text classifier.
        try check("LSTM, both, mask middle", input: [2, 4, 3],
                  maskedRecurrentCase(dropped(RecurrentAttributes(cell: .lstm, units: 3), 0.2, 0.2), tokens: Self.maskedTokens[1].1))
        try check("Bidirectional LSTM concat, both, all-masked row", input: [2, 4, 3],
                  maskedRecurrentCase(dropped(RecurrentAttributes(cell: .lstm, units: 2, returnSequences: true, bidirectional: .concat),
                                              0.2, 0.2), tokens: Self.maskedTokens[3].1))
    }
}
