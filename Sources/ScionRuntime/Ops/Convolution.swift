import ScionIR

/// The convolution family: `conv` (grouped, channels-first), `convTranspose`, and the depthwise and
/// separable convolutions, which never run as such: lowering rewrites them as grouped convolutions
/// (`Executor.requireLowered` refuses them first). The im2col/GEMM kernels and their gradient are in
/// Kernels+Convolution.swift and Kernels+Gradients.swift; ConvTranspose has no VJP yet.
extension Executor {
    /// A grouped convolution, with the bias a folded BatchNormalization gave it and the ReLU fused
    /// into it (`fuseActivations`) applied as it writes its result.
    func convolution(_ node: Node, _ x: RuntimeTensor, _ a: ConvAttributes) throws -> RuntimeTensor {
        guard a.layout == .channelsFirst else { throw RuntimeError(node.name, "a channels-last convolution is left after the layout pass") }
        let bias = try foldedBiases[node.name] ?? (a.useBias ? require(node, .bias) : nil)
        let activation = fusedActivations[node.name] ?? a.activation
        // A plain or capped ReLU goes into the kernel's epilogue, with the bias; others after it.
        var reluCap: Float?
        if case .relu(let cap, 0, 0) = activation { reluCap = cap ?? .infinity }
        let y = try Kernels.convolution(x, kernel: try require(node, .kernel), kernelShape: parameterShape(node, .kernel) ?? [],
                                        bias: bias, attributes: a, node: node.name, samplesSideBySide: training, reluCap: reluCap)
        return reluCap == nil ? try Kernels.activate(y, activation, node: node.name) : y
    }

    /// ONNX ConvTranspose of rank 2, one group: kernel `[in, out, kh, kw]`. Each input pixel spreads
    /// `W[i, :, :, :]` over the output (one GEMM per sample, then a scatter); the output window starts
    /// `before` cells into that full result, its length from shape inference.
    func convolutionTranspose(_ node: Node, _ x: RuntimeTensor, _ a: ConvTransposeAttributes) throws -> RuntimeTensor {
        guard a.rank == 2, a.groups == 1, x.rank == 4, let shape = parameterShape(node, .kernel), shape.count == 4,
              shape[0] == x.shape[1] else {
            throw RuntimeError(node.name, "only 2-D, one-group transposed convolutions are supported")
        }
        let kernel = try require(node, .kernel)
        let (batch, inputs, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (filters, kh, kw) = (shape[1], shape[2], shape[3])
        let effective = [(kh - 1) * a.dilations[0] + 1, (kw - 1) * a.dilations[1] + 1]
        let lengths = [height, width]
        var before = [0, 0], output = [0, 0]
        for axis in 0..<2 {
            let full = (lengths[axis] - 1) * a.strides[axis] + effective[axis]
            let extra = a.outputPadding?[axis] ?? 0
            switch a.padding {
            case .explicit(let pads):
                before[axis] = pads[axis]
                output[axis] = full + extra - pads[axis] - pads[2 + axis]
            case .same:
                before[axis] = max(effective[axis] - a.strides[axis], 0) / 2
                output[axis] = lengths[axis] * a.strides[axis] + extra
            default:
                output[axis] = full + extra
            }
        }
        let plane = height * width, outPlane = output[0] * output[1]
        var columns = [Float](repeating: 0, count: filters * kh * kw * plane)
        var result = [Float](repeating: 0, count: batch * filters * outPlane)
        let bias = a.useBias ? try require(node, .bias) : nil
        for n in 0..<batch {
            x.data.withUnsafeBufferPointer { input in
                kernel.withUnsafeBufferPointer { w in
                    columns.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(m: filters * kh * kw, n: plane, k: inputs, a: w.baseAddress!, transposeA: true,
                                  b: input.baseAddress! + n * inputs * plane, c: c.baseAddress!)
                    }
                }
            }
            for o in 0..<filters {
                let target = (n * filters + o) * outPlane
                for ky in 0..<kh {
                    for kx in 0..<kw {
                        let row = ((o * kh + ky) * kw + kx) * plane
                        for iy in 0..<height {
                            let y = iy * a.strides[0] + ky * a.dilations[0] - before[0]
                            if y < 0 || y >= output[0] { continue }
                            for ix in 0..<width {
                                let xx = ix * a.strides[1] + kx * a.dilations[1] - before[1]
                                if xx < 0 || xx >= output[1] { continue }
                                result[target + y * output[1] + xx] += columns[row + iy * width + ix]
                            }
                        }
                    }
                }
                if let bias { for i in target..<(target + outPlane) { result[i] += bias[o] } }
            }
        }
        return RuntimeTensor(shape: [batch, filters, output[0], output[1]], data: result)
    }
}

extension Trainer {
    /// A grouped convolution's VJP, given dL/dz at its input side of the fused activation
    /// (`throughActivation`): the input's gradient only when wanted, the kernel's and bias's always.
    func convolutionBackward(_ node: Node, _ a: ConvAttributes, _ x: RuntimeTensor, dz: RuntimeTensor,
                             inputGradient: Bool) throws -> StepGradients {
        guard let kernel = graph.parameter(of: node, role: .kernel), let weights = executor.weights[kernel.name] else {
            throw RuntimeError(node.name, "is missing its 'kernel' weights")
        }
        let (dx, dKernel, dBias) = try Kernels.convolutionBackward(x, kernel: weights, kernelShape: kernel.shape, dz: dz, attributes: a,
                                                                   inputGradient: inputGradient, node: node.name)
        var step = StepGradients(inputs: [dx], parameters: [(kernel.name, dKernel)])
        if a.useBias, let bias = graph.parameter(of: node, role: .bias) { step.parameters.append((bias.name, dBias)) }
        return step
    }
}
