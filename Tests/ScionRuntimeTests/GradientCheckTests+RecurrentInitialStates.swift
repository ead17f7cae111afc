import ScionIR
@testable import ScionRuntime
import XCTest

/// Backprop through ONNX's recurrent form reading initial states (`initial_h`, LSTM's `initial_c`)
/// computed from the input, so the states' gradients reach it: against finite differences.
extension GradientCheckTests {
    /// `x` `[time 2, batch 4, features 3]`; `h0` = its first step (`[1, 4, 3]`, repeated per
    /// direction), LSTM's `c0` = tanh of it; the node's outputs flattened and concatenated.
    func initialStateCase(_ a: RecurrentAttributes) -> (String) -> ([Node], [Parameter], String) {
        { x in
            let (base, parameters, _) = self.recurrentCase(a)(x)
            let directions = a.cellPaths.count
            var nodes: [Node] = [
                Node(name: "first_step", op: .onnx(.slice(SliceAttributes(starts: [0], ends: [1], axes: [0], steps: [1]))),
                     inputs: [x], outputs: ["first_step"]),
            ]
            var hidden = "first_step"
            if directions == 2 {
                nodes.append(Node(name: "h0", op: .concatenate(ConcatenateAttributes(axis: 0)), inputs: ["first_step", "first_step"],
                                  outputs: ["h0"]))
                hidden = "h0"
            }
            var states = [hidden]
            if a.cell == .lstm {
                nodes.append(Node(name: "c0", op: .activation(.tanh), inputs: [hidden], outputs: ["c0"]))
                states.append("c0")
            }
            var recurrent = base
            recurrent[0].inputs = [x] + states
            return (nodes + recurrent, parameters, recurrent.last?.outputs.first ?? "r")
        }
    }

    func testONNXFormThroughItsInitialStates() throws {
        var cases: [(String, RecurrentAttributes)] = []
        var lstm = RecurrentAttributes(cell: .lstm, units: 3, bidirectional: .concat)
        lstm.timeMajor = true
        cases.append(("ONNX LSTM bidirectional from initial states", lstm))
        var gru = RecurrentAttributes(cell: .gru, units: 3, goBackwards: true, resetAfter: false)
        gru.timeMajor = true
        cases.append(("ONNX GRU reverse from an initial state", gru))
        var rnn = RecurrentAttributes(cell: .simpleRNN, units: 3)
        rnn.timeMajor = true
        cases.append(("ONNX RNN from an initial state", rnn))
        for (name, attributes) in cases {
            try check(name, input: [2, 4, 3], initialStateCase(attributes))
        }
    }

    /// Keras's form with `initial_state`: `x` `[batch 4, time 2, features 3]`; `h0` = its first step
    /// `[4, 3]`, `c0` = tanh of it; a backward direction starts from them swapped, so a mix-up of
    /// directions or of h and c changes the result.
    func kerasInitialStateCase(_ a: RecurrentAttributes) -> (String) -> ([Node], [Parameter], String) {
        { x in
            var a = a
            a.readsInitialStates = true
            let (base, parameters, output) = self.recurrentCase(a)(x)
            let nodes = [
                Node(name: "first_step", op: .onnx(.slice(SliceAttributes(starts: [0], ends: [1], axes: [1], steps: [1]))),
                     inputs: [x], outputs: ["first_step"]),
                Node(name: "h0", op: .reshape(ReshapeAttributes(targetShape: [3])), inputs: ["first_step"], outputs: ["h0"]),
                Node(name: "c0", op: .activation(.tanh), inputs: ["h0"], outputs: ["c0"]),
            ]
            let forward = a.cell == .lstm ? ["h0", "c0"] : ["h0"], backward = a.cell == .lstm ? ["c0", "h0"] : ["c0"]
            var recurrent = base
            recurrent[0].inputs = [x] + forward + (a.bidirectional == nil ? [] : backward)
            return (nodes + recurrent, parameters, output)
        }
    }

    func testKerasFormThroughItsInitialStates() throws {
        let cases: [(String, RecurrentAttributes)] = [
            ("Keras LSTM from initial_state, sequences and states", RecurrentAttributes(cell: .lstm, units: 3, returnSequences: true, returnState: true)),
            ("Keras LSTM bidirectional from initial_state", RecurrentAttributes(cell: .lstm, units: 3, bidirectional: .concat)),
            ("Keras GRU backwards from initial_state", RecurrentAttributes(cell: .gru, units: 3, returnSequences: true, goBackwards: true)),
            ("Keras GRU bidirectional sum from initial_state", RecurrentAttributes(cell: .gru, units: 3, returnSequences: true, bidirectional: .sum)),
            ("Keras SimpleRNN from initial_state", RecurrentAttributes(cell: .simpleRNN, units: 3)),
        ]
        for (name, attributes) in cases {
            try check(name, input: [4, 2, 3], kerasInitialStateCase(attributes))
        }
    }
}
