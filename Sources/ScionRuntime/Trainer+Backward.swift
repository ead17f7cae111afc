import Foundation
import ScionIR

/// The backward pass: one vector-Jacobian product per op, from the loss back to the trainable
/// tensors. Gradients flow only into values that depend on trainable weights, so the frontier and
/// frozen side branches cost nothing. Each op's VJP is in its family's file, Ops/<Family>.swift
/// (see `Executor.evaluate`); `backwardStep` dispatches to them.
extension Trainer {
    /// One step's gradients: per input (nil where not needed) and per parameter name.
    struct StepGradients {
        var inputs: [RuntimeTensor?]
        var parameters: [(String, [Float])] = []
    }

    /// dL/dw for every trainable tensor, given dL/d(output) for the batch in `tape`. With
    /// `skipOutputActivation`, the gradient given is already at the input of the output's activation
    /// (cross-entropy through softmax, or through sigmoid: `p - y`, exact and stable).
    func backward(_ tape: Tape, outputGradient: RuntimeTensor, skipOutputActivation: Bool) throws -> [String: [Float]] {
        var gradients: [String: RuntimeTensor] = [output: outputGradient]
        var result: [String: [Float]] = [:]
        for index in steps.reversed() where !absorbed.contains(index) {
            let node = graph.nodes[index]
            let chain = chains[index]
            let upstream = (chain.map { [$0.output] } ?? node.outputs).map { gradients.removeValue(forKey: $0) }
            guard upstream.contains(where: { $0 != nil }) else { continue }
            let wanted = node.inputs.map { needsGradient.contains($0) }
            let ownsTrainable = node.parameters.contains(where: trainable.contains)
            guard wanted.contains(true) || ownsTrainable else { continue }
            let inputs = try node.inputs.map { name -> RuntimeTensor in
                guard let value = tape.values[name] else { throw RuntimeError(node.name, "reads \(name), which is not computed") }
                return value
            }
            let step: StepGradients
            if let chain, let x = inputs.first, let dy = upstream[0], let y = tape.values[chain.output] {
                step = try chainBackward(chain, x, y: y, dy: dy, saved: tape.saved[index], inputGradient: wanted.first ?? false)
            } else if case .onnx(.split(let a)) = node.op, let x = inputs.first {
                // The one op with several outputs: its VJP takes every output's gradient.
                step = try splitBackward(node, a, x, upstream: upstream)
            } else if case .recurrent(let a) = node.op, let x = inputs.first {
                // Several outputs too: backprop through time takes each one's gradient.
                step = try recurrentBackward(node, a, x, upstream: upstream, saved: tape.saved[index])
            } else if case .onnx(.scaledDotProductAttention(let a)) = node.op {
                // Y and the present key and value: each one's gradient (Ops/ScaledDotProductAttention+Backward.swift).
                step = try scaledAttentionBackward(node, a, inputs, upstream: upstream)
            } else {
                guard let dy = upstream[0], let output = node.outputs.first, let y = tape.values[output] else { continue }
                let skip = skipOutputActivation && output == self.output
                step = try backwardStep(node, inputs, y: y, dy: dy, saved: tape.saved[index], wanted: wanted, skipActivation: skip)
            }
            for (position, input) in node.inputs.enumerated() where wanted[position] {
                guard let d = step.inputs[position] else { continue }
                if let existing = gradients[input] {
                    gradients[input] = RuntimeTensor(shape: existing.shape, data: zip(existing.data, d.data).map(+))
                } else {
                    gradients[input] = d
                }
            }
            for (name, d) in step.parameters where trainable.contains(name) {
                if let existing = result[name] { result[name] = zip(existing, d).map(+) } else { result[name] = d }
            }
        }
        return result
    }

    /// One node's VJP: one exhaustive switch with no `default:`, grouped by family as
    /// `Executor.evaluate` is, each family's VJPs in Ops/<Family>.swift. A new op makes the compiler
    /// ask for its gradient here; ops without one go in the last case. A VJP that returns nil has no
    /// gradient for this node's particular form (a MatMul of two computed values, Floor...), which
    /// is the same error.
    func backwardStep(_ node: Node, _ inputs: [RuntimeTensor], y: RuntimeTensor, dy: RuntimeTensor, saved: Saved?,
                      wanted: [Bool], skipActivation: Bool) throws -> StepGradients {
        // Only a Constant has no input (`Executor.evaluate` refuses any other op without one).
        let x = inputs.first ?? y
        let step: StepGradients? = switch node.op {
        // Ops/Convolution.swift
        case .conv(let a):
            try convolutionBackward(node, a, x, dz: throughActivation(a.activation, node, y: y, dy: dy, saved: saved, skip: skipActivation),
                                    inputGradient: wanted.first ?? false)
        // Ops/Pooling.swift
        case .pool(let a): try poolBackward(node, a, x, dy: dy)
        case .globalPool(let a): try globalPoolBackward(node, a, inputs, dy: dy)
        case .onnx(.reduce(let a)): try reduceBackward(a, x, y: y, dy: dy, node: node.name)
        // Ops/Dense.swift
        case .dense(let a):
            try denseBackward(node, x, dz: throughActivation(a.activation, node, y: y, dy: dy, saved: saved, skip: skipActivation),
                              bias: a.useBias)
        case .onnx(.gemm(let a)): try gemmBackward(node, a, inputs, x, dy: dy)
        case .onnx(.matMul): try matMulBackward(node, inputs, x, dy: dy)
        case .embedding(let a): embeddingBackward(node, a, x, dy: dy)
        // Ops/Masking.swift
        case .masking(let a): try maskingBackward(node, a, x, dy: dy)
        // Ops/Recurrent.swift
        case .recurrent:
            // `backward` differentiates it itself: it may have several outputs.
            throw RuntimeError(node.name, "\(node.op.typeName) is differentiated by the backward loop, not one output at a time")
        // Ops/Normalization.swift
        case .batchNormalization(let a): try batchNormalizationBackward(node, a, x, dy: dy, saved: saved)
        case .layerNormalization(let a): try layerNormalizationBackward(node, a, x, dy: dy)
        // Ops/Attention+Backward.swift
        case .multiHeadAttention(let a): try multiHeadAttentionBackward(node, a, inputs, dy: dy)
        // Ops/DotAttention.swift
        case .attention(let a): try dotAttentionBackward(node, a, inputs, dy: dy)
        // Ops/UnitNormalization.swift
        case .unitNormalization(let a): try unitNormalizationBackward(node, a, x, dy: dy)
        // Ops/EinsumDense.swift
        case .einsumDense(let a):
            try einsumDenseBackward(node, a, x, dz: throughActivation(a.activation, node, y: y, dy: dy, saved: saved, skip: skipActivation))
        case .groupNormalization(let a): try groupNormalizationBackward(node, a, x, dy: dy)
        case .onnx(.computedBatchNormalization(let a)): try computedBatchNormalizationBackward(node, a, inputs, dy: dy)
        case .onnx(.computedInstanceNormalization(let a)): try computedInstanceNormalizationBackward(node, a, inputs, dy: dy)
        case .normalization: try normalizationBackward(node, x, dy: dy)
        // Ops/Activation.swift
        case .activation(let activation): try activationBackward(node, activation, x, y: y, dy: dy, skip: skipActivation)
        case .prelu: try preluBackward(node, x, dy: dy)
        case .onnx(.clip(let a)): clipBackward(a, x, dy: dy)
        case .onnx(.unary(let operation)): unaryBackward(operation, x, y: y, dy: dy)
        // Ops/Elementwise.swift
        case .elementwise(let operation): StepGradients(inputs: try elementwiseBackward(operation, inputs, dy: dy, node: node.name))
        case .scaledResidual(let a): try scaledResidualBackward(a, inputs, dy: dy)
        case .layerScale(let a): try layerScaleBackward(node, a, x, dy: dy)
        case .rescaling(let a): rescalingBackward(a, dy: dy)
        // Ops/Resizing.swift
        case .resizing(let a) where augmenting && a.kind == .randomCrop && (wanted.first ?? false):
            throw RuntimeError(node.name, "a trainable layer comes before this RandomCrop, and Scion stops the gradient at "
                               + "augmentation layers while augmenting: freeze the layers before it, or train with augmentation off")
        case .resizing(let a) where augmenting && a.kind == .randomCrop: StepGradients(inputs: [nil])
        case .resizing(let a): try resizingBackward(node, a, x, dy: dy)
        // Ops/Shape.swift
        case .augmentation(let a) where augmenting:
            try augmentationBackward(node, a, x, dy: dy, saved: saved, wanted: wanted.first ?? false)
        case .flatten, .reshape, .onnx(.squeeze), .onnx(.unsqueeze), .identity, .augmentation,
             .onnx(.cast): reshapeBackward(x, dy: dy)
        case .transpose(let a): transposeBackward(a.permutation, dy: dy)
        case .permute(let a): transposeBackward([0] + a.dimensions, dy: dy)
        // Ops/Movement.swift
        case .concatenate(let a): try concatenateBackward(node, a, inputs, x, dy: dy)
        case .onnx(.split):
            // `backward` differentiates a Split itself: it is the one op with several outputs.
            throw RuntimeError(node.name, "Split is differentiated by the backward loop, not one output at a time")
        case .zeroPadding(let a): zeroPaddingBackward(a, crop: false, dy: dy)
        case .cropping(let a): zeroPaddingBackward(a, crop: true, dy: dy)
        case .onnx(.pad(let a)): try padBackward(node, a, inputs, dy: dy)
        case .onnx(.resize(let a)) where executor.resizeByCopying(x, a) == nil:
            if let resampling = Executor.kerasResampling(of: a, x.shape) {
                try resizingBackward(node, resampling, x, dy: dy)
            } else {
                nil
            }
        case .upSampling(let a) where Executor.bilinearUpSampling(a, x.shape) != nil:
            try resizingBackward(node, Executor.bilinearUpSampling(a, x.shape)!, x, dy: dy)
        case .onnx(.slice), .onnx(.gather), .upSampling, .onnx(.resize): try movementBackward(node, inputs, dy: dy)
        // Ops/ComputedShape.swift
        case .onnx(.shape): StepGradients(inputs: [nil])
        case .onnx(.expand), .onnx(.tile), .onnx(.computedReshape): try movementBackward(node, inputs, dy: dy)
        case .onnx(.mod(let a)): try modBackward(node, a, inputs, dy: dy)
        // Ops/Indexing.swift: Range and ConstantOfShape make values from lengths.
        case .onnx(.range), .onnx(.constantOfShape): StepGradients(inputs: inputs.map { _ in nil })
        case .onnx(.trilu(let a)): try triluBackward(node, a, inputs, dy: dy)
        case .onnx(.computedSlice): try movementBackward(node, inputs, dy: dy)
        case .onnx(.computedPad(let a)): try computedPadBackward(node, a, inputs, dy: dy)
        // Ops/Scatter.swift
        case .onnx(.scatterND(let a)): try scatterNDBackward(node, a, inputs, dy: dy)
        case .onnx(.gatherND(let a)): try gatherNDBackward(node, a, inputs, dy: dy)
        case .onnx(.gatherElements): try movementBackward(node, inputs, dy: dy)
        // Ops/Einsum.swift
        case .onnx(.einsum(let a)): try einsumBackward(node, a, inputs, dy: dy)
        // Ops/ScaledDotProductAttention+Backward.swift, Ops/TransformerOps.swift
        case .onnx(.scaledDotProductAttention(let a)): try scaledAttentionBackward(node, a, inputs, upstream: [dy])
        case .onnx(.rmsNormalization(let a)): try rmsNormalizationBackward(node, a, inputs, dy: dy)
        case .onnx(.rotaryEmbedding(let a)): try rotaryEmbeddingBackward(node, a, inputs, dy: dy)
        case .onnx(.cumulativeSum(let a)): try cumulativeSumBackward(node, a, inputs, dy: dy)
        case .onnx(.depthSpace(let a)): try depthSpaceBackward(node, a, x, dy: dy)
        // An index is piecewise constant, as a comparison is.
        case .onnx(.argExtreme): StepGradients(inputs: [nil])
        // Ops/Logic.swift: comparisons are piecewise constant.
        case .onnx(.comparison): StepGradients(inputs: inputs.map { _ in nil })
        case .onnx(.select): try selectBackward(node, inputs, dy: dy)
        // Ops/Regularization.swift
        case .dropout: dropoutBackward(x, dy: dy, saved: saved)
        case .stochasticDepth: stochasticDepthBackward(x, dy: dy)
        // Ops/Constant.swift
        case .onnx(.constant): constantBackward(node, dy: dy)
        // No gradient yet, whatever the family.
        case .depthwiseConv, .separableConv, .convTranspose, .onnx(.localResponseNormalization), .onnx(.coercedSoftmax),
             .opaque:
            throw noGradient(node)
        }
        guard let step else { throw noGradient(node) }
        return step
    }

    func noGradient(_ node: Node) -> RuntimeError {
        RuntimeError(node.name, "\(node.op.typeName) has no gradient yet, and it lies between the loss and trainable "
            + "weights (freeze the layers before it, or cut it away)")
    }
}

extension Trainer.StepGradients {
    /// dL/dx of an op whose gradient has the input's shape, from the values in order.
    init(like x: RuntimeTensor, _ gradient: [Float]) {
        self.init(inputs: [RuntimeTensor(shape: x.shape, data: gradient)])
    }
}
