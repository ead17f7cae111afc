import ScionIR

/// Keras's ConvLSTM1D/2D/3D, which ONNX has no op for, unrolled over its time steps: per step a Conv
/// of the input frame (the layer's padding, strides and dilations, with the bias), from the second
/// step a Conv of the state ('same', stride 1) added to it, then the LSTM's gates as Slice and
/// elementwise nodes. Exact, but only for a time length known when the file is written.
///
/// The layer reads and writes Keras's channels-last order (`[batch, time, spatial..., channels]`):
/// the input is transposed once to `[time, batch, channels, spatial...]`, each step's frame gathered
/// from it, and the outputs transposed back. The kernels are converted once to ONNX's
/// `[4*filters, in, k...]` initializers, read by every step; the bias is the layer's own.
extension ONNXGraphBuilder {
    mutating func convolutionalRecurrent(_ node: Node, _ a: RecurrentAttributes, _ convolution: RecurrentConvolution,
                                         parameters: [Parameter], input: String, inputShape: Shape?) throws {
        let name = node.name, rank = convolution.rank, filters = a.units
        guard let shape = inputShape, shape.rank == rank + 3, let time = shape[1], time > 0 else {
            throw unsupported(node, "is a \(a.layerName) over an unknown number of time steps: ONNX has no ConvLSTM op, and "
                              + "Scion unrolls one only over a fixed time length (give the model's input a fixed length)")
        }
        guard a.cell == .lstm, a.bidirectional == nil, !a.timeMajor, a.maskValue == nil else {
            throw unsupported(node, "is a \(a.layerName) Scion writes to ONNX as one LSTM direction without a mask only")
        }
        // Keras's kernels [k..., in, out] as ONNX's [out, in, k...], converted once here (like the
        // LSTM's W and R), so every step's Conv reads an initializer.
        func kernel(_ role: ParameterRole) throws -> String {
            guard let parameter = parameters.first(where: { $0.role == .sublayer("cell", role) }), parameter.dtype == .float32,
                  parameter.shape.count == rank + 2 else {
                throw unsupported(node, "has no float32 'cell/\(role)' kernel of rank \(rank + 2)")
            }
            let values = try parameter.storage.bytes(keep: false).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let (inputs, outputs) = (parameter.shape[rank], parameter.shape[rank + 1])
            let taps = convolution.taps
            var converted = [Float](repeating: 0, count: values.count)
            for tap in 0..<taps {
                for i in 0..<inputs {
                    for o in 0..<outputs { converted[(o * inputs + i) * taps + tap] = values[(tap * inputs + i) * outputs + o] }
                }
            }
            let name = constant("\(parameter.name)/onnx", floats: converted,
                                dimensions: [Int64(outputs), Int64(inputs)] + convolution.kernelSize.map(Int64.init))
            if !parameter.trainable { frozenConstants.append(name) }
            return name
        }
        let spatialAxes = Array(2..<(rank + 2))
        let inputKernel = try kernel(.kernel), stateKernel = try kernel(.recurrentKernel)
        let bias = try a.useBias ? [parameters.first(where: { $0.role == .sublayer("cell", .bias) }).map(\.name)
            ?? { throw unsupported(node, "has no 'cell/bias' weights") }()] : []
        let frames = intermediate("Transpose", name: "\(name)/frames", inputs: [input],
                                  attributes: [.ints("perm", [1, 0, rank + 2] + spatialAxes)])
        // Channels-first input and output sizes, for the pads.
        let framesShape = Shape([shape[0], shape[rank + 2]] + (0..<rank).map { shape[2 + $0] })
        let stateShape = Shape([shape[0], Int?(filters)] + (0..<rank).map { convolution.outputLength(shape[2 + $0], axis: $0) })
        let ones = Array(repeating: 1, count: rank)
        let inputConvolution: [ONNXAttribute] = [
            .ints("kernel_shape", convolution.kernelSize), .ints("strides", convolution.strides), .ints("dilations", convolution.dilations),
        ] + (try padding(convolution.padding, node: node, input: framesShape, kernel: convolution.kernelSize,
                         strides: convolution.strides, dilations: convolution.dilations))
        let stateConvolution: [ONNXAttribute] = [.ints("kernel_shape", convolution.kernelSize)]
            + (try padding(.same, node: node, input: stateShape, kernel: convolution.kernelSize, strides: ones, dilations: ones))

        func activated(_ activation: Activation, _ value: String, _ label: String) throws -> String {
            let output = uniqueName("\(name)/\(label)")
            try self.activation(activation, node: node, input: value, output: output, rank: rank + 2)
            return output
        }
        var (hidden, cell) = ("", "")
        var sequence: [String] = []
        for step in 0..<time {
            // Keras reads a go_backwards layer from the last frame and returns the steps as computed.
            let position = a.goBackwards ? time - 1 - step : step
            let frame = intermediate("Gather", name: "\(name)/step\(step)", inputs: [
                frames, constant("\(name)/t\(position)", int64s: [Int64(position)], dimensions: [])], attributes: [.int("axis", 0)])
            var gates = intermediate("Conv", name: "\(name)/step\(step)/input_conv", inputs: [frame, inputKernel] + bias,
                                     attributes: inputConvolution)
            // The state starts at zero: the first step has no recurrent term, and c = i * g.
            if step > 0 {
                let recurrent = intermediate("Conv", name: "\(name)/step\(step)/recurrent_conv", inputs: [hidden, stateKernel],
                                             attributes: stateConvolution)
                gates = intermediate("Add", name: "\(name)/step\(step)", inputs: [gates, recurrent])
            }
            func gate(_ index: Int) -> String {
                intermediate("Slice", name: "\(name)/step\(step)/gate\(index)", inputs: [
                    gates, constant("\(name)/starts", int64s: [Int64(index * filters)]),
                    constant("\(name)/ends", int64s: [Int64((index + 1) * filters)]), constant("\(name)/axes", int64s: [1])])
            }
            // Keras's gate order: input, forget, candidate, output.
            let i = try activated(a.recurrentActivation, gate(0), "step\(step)/i")
            let g = try activated(a.activation, gate(2), "step\(step)/g")
            let o = try activated(a.recurrentActivation, gate(3), "step\(step)/o")
            let written = intermediate("Mul", name: "\(name)/step\(step)/ig", inputs: [i, g])
            if step == 0 {
                cell = written
            } else {
                let f = try activated(a.recurrentActivation, gate(1), "step\(step)/f")
                let kept = intermediate("Mul", name: "\(name)/step\(step)/fc", inputs: [f, cell])
                cell = intermediate("Add", name: "\(name)/step\(step)/c", inputs: [kept, written])
            }
            hidden = intermediate("Mul", name: "\(name)/step\(step)/h", inputs: [o, try activated(a.activation, cell, "step\(step)/tc")])
            if a.returnSequences {
                sequence.append(intermediate("Unsqueeze", name: "\(name)/step\(step)", inputs: [hidden, constant("\(name)/axis", int64s: [1])]))
            }
        }
        // [batch, filters, spatial...] -> Keras's [batch, spatial..., filters].
        let toKeras = [0] + spatialAxes + [1]
        var outputs = node.outputs.makeIterator()
        guard let first = outputs.next() else { throw unsupported(node, "has no output") }
        if a.returnSequences {
            let stacked = intermediate("Concat", name: "\(name)/sequence", inputs: sequence, attributes: [.int("axis", 1)])
            add("Transpose", name: name, inputs: [stacked], output: first, attributes: [.ints("perm", [0, 1] + spatialAxes.map { $0 + 1 } + [2])])
        } else {
            add("Transpose", name: name, inputs: [hidden], output: first, attributes: [.ints("perm", toKeras)])
        }
        guard a.returnState else { return }
        for state in [hidden, cell] {
            guard let output = outputs.next() else { throw unsupported(node, "has fewer outputs than its states") }
            add("Transpose", name: name, inputs: [state], output: output, attributes: [.ints("perm", toKeras)])
        }
    }
}
