import ScionIR
@testable import ScionRuntime
import XCTest

/// Backprop through time through ConvLSTM's convolutions against finite differences: the input's
/// convolution (padding, strides, dilation), the state's ('same'), reading backwards, returned states,
/// ranks 1 to 3.
extension GradientCheckTests {
    /// A ConvLSTM node on `x` with `channels` channels and Keras-layout weights `[k..., in, 4*filters]`;
    /// its outputs concatenated along the last axis when it returns its states.
    func convolutionalRecurrentCase(_ a: RecurrentAttributes, channels: Int) -> (String) -> ([Node], [Parameter], String) {
        { x in
            let kernel = a.convolution?.kernelSize ?? [], width = 4 * a.units
            var parameters = [self.parameter("r/cell/kernel", "cell/kernel", kernel + [channels, width], scale: 0.4),
                              self.parameter("r/cell/recurrent_kernel", "cell/recurrent_kernel", kernel + [a.units, width], scale: 0.4)]
            if a.useBias { parameters.append(self.parameter("r/cell/bias", "cell/bias", [width], scale: 0.3)) }
            let outputs = ["r"] + (1..<a.outputCount).map { "r:\($0)" }
            var nodes = [Node(name: "r", op: .recurrent(a), inputs: [x], outputs: outputs, parameters: parameters.map(\.name))]
            guard outputs.count > 1 else { return (nodes, parameters, "r") }
            nodes.append(Node(name: "all", op: .concatenate(ConcatenateAttributes(axis: -1)), inputs: outputs, outputs: ["all"]))
            return (nodes, parameters, "all")
        }
    }

    func convolutionalLSTM(filters: Int, kernel: [Int], strides: [Int]? = nil, dilations: [Int]? = nil, padding: Padding,
                           useBias: Bool = true, returnSequences: Bool = false, returnState: Bool = false,
                           goBackwards: Bool = false) -> RecurrentAttributes {
        var a = RecurrentAttributes(cell: .lstm, units: filters, useBias: useBias, returnSequences: returnSequences,
                                    returnState: returnState, goBackwards: goBackwards)
        let ones = Array(repeating: 1, count: kernel.count)
        a.convolution = RecurrentConvolution(kernelSize: kernel, strides: strides ?? ones, dilations: dilations ?? ones, padding: padding)
        return a
    }

    func testConvolutionalLSTM() throws {
        let cases: [(String, [Int], RecurrentAttributes)] = [
            ("ConvLSTM2D same, sequence", [2, 3, 4, 5, 2], convolutionalLSTM(filters: 2, kernel: [3, 3], padding: .same, returnSequences: true)),
            ("ConvLSTM2D strided valid backwards, states", [2, 3, 5, 4, 2],
             convolutionalLSTM(filters: 2, kernel: [2, 2], strides: [2, 1], padding: .valid, returnState: true, goBackwards: true)),
            ("ConvLSTM2D dilated same without bias, last", [1, 3, 4, 5, 1],
             convolutionalLSTM(filters: 3, kernel: [2, 3], dilations: [1, 2], padding: .same, useBias: false)),
            ("ConvLSTM1D valid, sequence", [2, 3, 6, 2], convolutionalLSTM(filters: 2, kernel: [3], padding: .valid, returnSequences: true)),
            ("ConvLSTM3D same, last", [1, 2, 3, 2, 3, 1], convolutionalLSTM(filters: 2, kernel: [2, 2, 2], padding: .same)),
        ]
        for (name, input, attributes) in cases {
            try check(name, input: input, convolutionalRecurrentCase(attributes, channels: input[input.count - 1]))
        }
    }
}
