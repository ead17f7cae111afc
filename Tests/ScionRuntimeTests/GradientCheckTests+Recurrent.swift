import ScionIR
@testable import ScionRuntime
import XCTest

/// Backprop through time against finite differences: SimpleRNN, LSTM, GRU (reset gate after and
/// before the recurrent product), reading backwards, Bidirectional with each merge mode, returned
/// states, and ONNX's time-major form.
extension GradientCheckTests {
    /// A recurrent node on `x` `[2, 4, 3]` with Keras-layout weights; its outputs concatenated
    /// along the last axis when it has several of the same rank (states with a last output).
    func recurrentCase(_ a: RecurrentAttributes, features: Int = 3) -> (String) -> ([Node], [Parameter], String) {
        { x in
            var parameters: [Parameter] = []
            let width = a.cell.gateCount * a.units
            for path in a.cellPaths {
                parameters.append(self.parameter("r/\(path)/kernel", "\(path)/kernel", [features, width], scale: 0.6))
                parameters.append(self.parameter("r/\(path)/recurrent_kernel", "\(path)/recurrent_kernel", [a.units, width], scale: 0.6))
                if a.useBias { parameters.append(self.parameter("r/\(path)/bias", "\(path)/bias", a.biasShape, scale: 0.3)) }
            }
            let outputs = ["r"] + (1..<a.outputCount).map { "r:\($0)" }
            var nodes = [Node(name: "r", op: .recurrent(a), inputs: [x], outputs: outputs, parameters: parameters.map(\.name))]
            guard outputs.count > 1 else { return (nodes, parameters, "r") }
            if a.timeMajor {
                // Y [T, D, N, H] and the states [D, N, H]: flattened to [T*D, N*H]-free sums would hide
                // them, so each is reshaped to [-1] per batch-free position and concatenated.
                let flat = outputs.map { "\($0)/flat" }
                for (value, name) in zip(outputs, flat) {
                    nodes.append(Node(name: name, op: .reshape(ReshapeAttributes(targetShape: [1, -1], includesBatch: true)),
                                      inputs: [value], outputs: [name]))
                }
                nodes.append(Node(name: "all", op: .concatenate(ConcatenateAttributes(axis: 1)), inputs: flat, outputs: ["all"]))
                return (nodes, parameters, "all")
            }
            nodes.append(Node(name: "all", op: .concatenate(ConcatenateAttributes(axis: -1)),
                              inputs: a.returnSequences ? Array(outputs.prefix(a.bidirectional == .separate ? 2 : 1)) : outputs,
                              outputs: ["all"]))
            return (nodes, parameters, "all")
        }
    }

    func testRecurrentCells() throws {
        let cases: [(String, RecurrentAttributes)] = [
            ("SimpleRNN, sequence", RecurrentAttributes(cell: .simpleRNN, units: 3, returnSequences: true)),
            ("SimpleRNN relu backwards, no bias", RecurrentAttributes(cell: .simpleRNN, units: 2, activation: .plainRelu, useBias: false,
                                                                      goBackwards: true)),
            ("LSTM, sequence", RecurrentAttributes(cell: .lstm, units: 3, returnSequences: true)),
            ("LSTM hard_sigmoid backwards, states", RecurrentAttributes(cell: .lstm, units: 2, recurrentActivation: .hardSigmoid(alpha: 0.2, beta: 0.5),
                                                                        returnState: true, goBackwards: true)),
            ("GRU reset after, sequence", RecurrentAttributes(cell: .gru, units: 3, returnSequences: true, resetAfter: true)),
            ("GRU reset before, states", RecurrentAttributes(cell: .gru, units: 3, returnState: true, resetAfter: false)),
            ("GRU reset before, sequence backwards", RecurrentAttributes(cell: .gru, units: 2, returnSequences: true, goBackwards: true,
                                                                         resetAfter: false)),
        ]
        for (name, attributes) in cases {
            try check(name, input: [2, 4, 3], recurrentCase(attributes))
        }
    }

    func testBidirectionalAndONNXForm() throws {
        var cases: [(String, RecurrentAttributes)] = []
        for merge in RecurrentAttributes.Merge.allCases {
            cases.append(("Bidirectional LSTM \(merge), sequence",
                          RecurrentAttributes(cell: .lstm, units: 2, returnSequences: true, bidirectional: merge)))
        }
        cases.append(("Bidirectional GRU concat, last and states",
                      RecurrentAttributes(cell: .gru, units: 2, returnState: true, bidirectional: .concat)))
        cases.append(("Bidirectional SimpleRNN mul, last", RecurrentAttributes(cell: .simpleRNN, units: 3, bidirectional: .mul)))
        var onnx = RecurrentAttributes(cell: .lstm, units: 2, bidirectional: .concat)
        onnx.timeMajor = true
        cases.append(("ONNX LSTM bidirectional, time-major", onnx))
        var reverse = RecurrentAttributes(cell: .gru, units: 2, goBackwards: true, resetAfter: true)
        reverse.timeMajor = true
        cases.append(("ONNX GRU reverse, time-major", reverse))
        for (name, attributes) in cases {
            try check(name, input: [2, 4, 3], recurrentCase(attributes))
        }
    }
}
