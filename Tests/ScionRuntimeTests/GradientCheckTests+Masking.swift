import ScionIR
@testable import ScionRuntime
import XCTest

/// Masking's VJP. Finite differences see it where the output is smooth: a step whose features are
/// all the mask value stays masked only if no perturbation moves them, so the difference-checked
/// case gates an input with zero steps by a trainable factor (mask value 0: `0 · g` stays masked),
/// and a second test reads the gradient at steps of a nonzero mask value directly: the incoming
/// gradient where a step is kept, zero where it is masked (Keras's `where` with the mask constant).
extension GradientCheckTests {
    func testMaskingByFiniteDifferences() throws {
        // [2, 4, 3]: sample 0's step 1 and sample 1's steps 0 and 3 are all zeros (masked); sample
        // 1's step 2 is zero in two features only (kept).
        var input = values(2 * 4 * 3)
        for step in [1, 4, 7] { for feature in 0..<3 { input[step * 3 + feature] = 0 } }
        input[6 * 3] = 0; input[6 * 3 + 1] = 0
        try check("Masking(0) after a trainable gate", input: [2, 4, 3], shift: false, inputValues: input) { x in
            let gate = parameter("gate", "value", [1, 4, 3], offset: 1.5)
            return ([node("gate", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["gate"]),
                     node("gated", .elementwise(.multiply), [x, "gate"]),
                     node("m", .masking(MaskingAttributes(maskValue: 0)), ["gated"]),
                     node("d", .dense(DenseAttributes(units: 2, activation: .tanh)), ["m"], parameters: ["d/kernel", "d/bias"])],
                    [gate, parameter("d/kernel", "kernel", [3, 2]), parameter("d/bias", "bias", [2])], "d")
        }
    }

    func testMaskingGradientIsZeroAtMaskedSteps() throws {
        let maskValue: Float = -0.5
        // One sample, 3 steps of 2 features: masked, kept (one feature differs), kept.
        let x: [Float] = [maskValue, maskValue, maskValue, 0.25, 1, 2]
        var table = ParameterTable()
        table.add(Parameter(name: "shift", role: ParameterRole(rawValue: "value"), shape: [1, 3, 2], dtype: .float32, trainable: true,
                            storage: TensorStorage(bytes: [Float](repeating: 0, count: 6).withUnsafeBytes { Array($0) })))
        var graph = Graph(name: "masking", inputs: [ValueInfo(name: "x", shape: Shape([nil, 3, 2]), dtype: .float32)], outputs: ["m"],
                          nodes: [node("shift", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["shift"]),
                                  node("shifted", .elementwise(.add), ["x", "shift"]),
                                  node("m", .masking(MaskingAttributes(maskValue: maskValue)), ["shifted"])],
                          parameters: table)
        graph.layout = .channelsFirst
        let trainer = try Trainer(graph: graph)
        let batch = try trainer.frontierBatch(try trainer.features(of: RuntimeTensor(shape: [1, 3, 2], data: x)), rows: [0])
        var generator = SplitMix64(seed: 1)
        let tape = try trainer.forward(batch, training: true, random: &generator)
        XCTAssertEqual(try XCTUnwrap(tape.values["m"]).data, [0, 0, maskValue, 0.25, 1, 2])
        let dy: [Float] = [1, 2, 3, 4, 5, 6]
        let gradients = try trainer.backward(tape, outputGradient: RuntimeTensor(shape: [1, 3, 2], data: dy), skipOutputActivation: false)
        XCTAssertEqual(gradients["shift"], [0, 0, 3, 4, 5, 6])
    }
}
