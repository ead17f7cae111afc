import Foundation
import ScionIR

/// The trainable part's forward pass, keeping what the backward pass needs (a tape).
extension Trainer {
    /// What a node's backward step needs beyond its inputs and output.
    enum Saved {
        /// A convolution's or Dense's value before its fused activation.
        case preActivation(RuntimeTensor)
        /// A training-mode BatchNormalization's normalized input and batch statistics.
        case batchStatistics(Kernels.BatchStatistics)
        /// Dropout's kept-and-scaled mask.
        case mask([Float])
        /// A recurrent layer's runs, one per direction (every step's gates and states).
        case recurrentRuns([RecurrentDirectionRun])
        /// A convolution chain's input as its kernel laid it out (the batch side by side, or
        /// channels innermost): Trainer+ConvolutionChains.swift.
        case chainInput([Float])
    }

    /// Every value of one batch's forward pass, and what each step saved.
    struct Tape {
        var values: [String: RuntimeTensor]
        var saved: [Int: Saved] = [:]
    }

    /// Runs the trainable part on one batch of frontier values. While `training`, Dropout drops
    /// and trainable BatchNormalizations normalize with the batch's statistics.
    func forward(_ frontierValues: [String: RuntimeTensor], training: Bool, random: inout SplitMix64) throws -> Tape {
        var tape = Tape(values: frontierValues)
        for index in steps where !absorbed.contains(index) {
            let node = graph.nodes[index]
            let inputs = try node.inputs.map { name -> RuntimeTensor in
                guard let value = tape.values[name] else { throw RuntimeError(node.name, "reads \(name), which is not computed") }
                return value
            }
            if let chain = chains[index], let x = inputs.first {
                // The convolution with its frozen BatchNormalization and ReLU (Trainer+ConvolutionChains.swift).
                let (result, saved) = try chainForward(chain, x)
                tape.values[chain.output] = result
                if let saved { tape.saved[index] = saved }
                continue
            }
            if case .onnx(.split(let a)) = node.op, let x = inputs.first {
                let parts = try executor.split(node, x, a)
                for (output, part) in zip(node.outputs, parts) { tape.values[output] = part }
                continue
            }
            if case .recurrent(let a) = node.op {
                // Several outputs, and the runs kept for backprop through time (Ops/Recurrent.swift).
                let (outputs, saved) = try recurrentForward(node, a, inputs, training: training, random: &random)
                for (output, value) in zip(node.outputs, outputs) { tape.values[output] = value }
                tape.saved[index] = saved
                continue
            }
            if case .onnx(.scaledDotProductAttention(let a)) = node.op, node.outputs.count > 1 {
                // Attention's present key and value, and its scores (Ops/ScaledDotProductAttention.swift).
                for (output, value) in zip(node.outputs, try executor.scaledDotProductAttention(node, inputs, a)) { tape.values[output] = value }
                continue
            }
            let (result, saved) = try forwardStep(node, inputs, training: training, random: &random)
            if let output = node.outputs.first { tape.values[output] = result }
            if let saved { tape.saved[index] = saved }
        }
        return tape
    }

    /// One node's forward step while training: one exhaustive switch with no `default:`, so a new op
    /// makes the compiler ask whether training runs it differently from inference (and what its VJP
    /// needs saved). The ops that do come first, under their conditions, each in its family's file
    /// (see `Executor.evaluate`); every op otherwise runs the executor's kernel and saves nothing.
    func forwardStep(_ node: Node, _ inputs: [RuntimeTensor], training: Bool,
                     random: inout SplitMix64) throws -> (RuntimeTensor, Saved?) {
        switch node.op {
        // A fused activation runs apart, so its input is kept (Ops/Activation.swift).
        case .conv(var a) where a.activation != .linear:
            let activation = a.activation
            a.activation = .linear
            return try forwardKeepingPreActivation(node, inputs, activation, linear: .conv(a))
        case .dense(var a) where a.activation != .linear:
            let activation = a.activation
            a.activation = .linear
            return try forwardKeepingPreActivation(node, inputs, activation, linear: .dense(a))
        case .einsumDense(var a) where a.activation != .linear:
            let activation = a.activation
            a.activation = .linear
            return try forwardKeepingPreActivation(node, inputs, activation, linear: .einsumDense(a))
        // Ops/Normalization.swift
        case .batchNormalization(let a) where training && trainingBatchNorms.contains(node.name):
            return try batchNormalizationTraining(node, a, inputs)
        // Ops/Regularization.swift
        case .dropout(let a) where training && a.rate > 0:
            return try dropoutTraining(node, a, inputs, random: &random)
        case .stochasticDepth(let a) where training && a.rate > 0:
            return try stochasticDepthTraining(node, a)
        // Ops/Augmentation.swift, Ops/Resizing.swift
        case .augmentation(let a) where training && augmenting:
            return try augmentationTraining(node, a, inputs, random: &random)
        case .resizing(let a) where training && augmenting && a.kind == .randomCrop:
            return try randomCropTraining(node, a, inputs, random: &random)
        // Ops/Attention.swift: Keras drops attention probabilities while training; not computed yet.
        case .multiHeadAttention(let a) where training && a.dropout > 0:
            throw RuntimeError(node.name, "MultiHeadAttention with dropout \(a.dropout) cannot be trained yet (its dropout "
                + "on the attention probabilities is not implemented); freeze it or set dropout to 0")
        case .attention(let a) where training && a.dropout > 0:
            throw RuntimeError(node.name, "\(a.kerasClass) with dropout \(a.dropout) cannot be trained yet (its dropout on the "
                + "attention distribution is not implemented); freeze it or set dropout to 0")
        // As at inference, by family.
        case .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .dense, .embedding, .masking, .recurrent,
             .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense, .unitNormalization,
             .attention, .groupNormalization, .normalization,
             .activation, .prelu, .elementwise, .scaledResidual, .layerScale, .rescaling, .resizing, .flatten, .reshape,
             .transpose, .permute,
             .identity, .augmentation, .concatenate, .zeroPadding, .cropping, .upSampling, .dropout, .stochasticDepth,
             .opaque, .onnx:
            return (try executor.evaluate(node, inputs), nil)
        }
    }
}
