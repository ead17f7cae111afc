import ArgumentParser
import Foundation
import Scion
import ScionPasses
import ScionRuntime

/// The training settings of `scion finetune`, with Keras's names and defaults, and the second
/// phase of the recipe (thaw the top of the base, train on at a lower rate).
struct TrainingOptions: ParsableArguments {
    @Option(help: "Passes over the training data (the head phase).")
    var epochs = 10

    @Option(help: "Samples per gradient step.")
    var batchSize = 32

    @Option(help: "Learning rate.")
    var learningRate: Float = 1e-3

    @Option(help: "adam, adamw or sgd (Keras 3's formulas and defaults).")
    var optimizer = "adam"

    @Option(help: "AdamW's weight decay (Keras's default 0.004).")
    var weightDecay: Float = 0.004

    @Option(help: "SGD momentum.")
    var momentum: Float = 0

    @Flag(help: "SGD with Nesterov momentum.")
    var nesterov = false

    @Option(help: "Learning-rate schedule: constant, cosine (to 0 over the phase) or step (see --decay-epochs, --decay-rate).")
    var schedule = "constant"

    @Option(help: "step schedule: multiply the rate by --decay-rate every this many epochs.")
    var decayEpochs = 1

    @Option(help: "step schedule: the factor.")
    var decayRate: Float = 0.1

    @Option(help: "sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy or mse; by default from the targets' shape.")
    var loss: String?

    @Option(help: "Seed for shuffling and Dropout.")
    var seed: UInt64 = 0

    @Option(help: "Second phase: make the last N layers of the base trainable (Keras's base_model.layers[-N:]).")
    var unfreezeTop: Int?

    @Option(help: "Second phase: make the layers matching this regular expression trainable.")
    var unfreeze: String?

    @Flag(help: "Second phase: train thawed BatchNormalization layers too (batch statistics); by default they stay frozen, as Keras's guide advises.")
    var trainBatchNorm = false

    @Option(help: "Second phase: epochs (default: --epochs).")
    var fineTuneEpochs: Int?

    @Option(help: "Second phase: learning rate (default: --learning-rate / 10).")
    var fineTuneLearningRate: Float?

    var hasSecondPhase: Bool { unfreezeTop != nil || unfreeze != nil }

    /// The phases: the head, then (with --unfreeze-top or --unfreeze) the fine-tune phase.
    func phases(samples: Int, targetRank: Int) throws -> [FineTuning.Phase] {
        guard epochs >= 0, batchSize > 0 else { throw UsageError("--epochs must be 0 or more and --batch-size positive") }
        if !hasSecondPhase && (fineTuneEpochs != nil || fineTuneLearningRate != nil || trainBatchNorm) {
            throw UsageError("--fine-tune-epochs, --fine-tune-learning-rate and --train-batch-norm need --unfreeze-top N or --unfreeze REGEX")
        }
        var options = Trainer.Options()
        options.epochs = epochs
        options.batchSize = batchSize
        options.learningRate = learningRate
        options.seed = seed
        switch optimizer {
        case "adam": options.optimizer = .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7)
        case "adamw": options.optimizer = .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: weightDecay)
        case "sgd": options.optimizer = .sgd(momentum: momentum, nesterov: nesterov)
        default: throw UsageError("--optimizer \(optimizer): adam, adamw or sgd")
        }
        if let loss {
            guard let chosen = Trainer.Loss(rawValue: loss) else {
                throw UsageError("--loss \(loss): one of \(Trainer.Loss.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            options.loss = chosen
        } else {
            options.loss = targetRank == 1 ? .sparseCategoricalCrossentropy : .categoricalCrossentropy
        }
        let stepsPerEpoch = (samples + batchSize - 1) / batchSize
        func withSchedule(_ options: Trainer.Options) throws -> Trainer.Options {
            var options = options
            switch schedule {
            case "constant": options.schedule = .constant
            case "cosine": options.schedule = .cosine(decaySteps: stepsPerEpoch * options.epochs, alpha: 0)
            case "step": options.schedule = .step(decaySteps: stepsPerEpoch * decayEpochs, decayRate: decayRate)
            default: throw UsageError("--schedule \(schedule): constant, cosine or step")
            }
            return options
        }
        var phases = [FineTuning.Phase(name: "head", options: try withSchedule(options))]
        if hasSecondPhase {
            var second = options
            second.epochs = fineTuneEpochs ?? epochs
            second.learningRate = fineTuneLearningRate ?? learningRate / 10
            second.seed = seed &+ 1
            let thaw = FreezePass(unfreeze: unfreeze, unfreezeTop: unfreezeTop, keepBatchNormFrozen: !trainBatchNorm)
            phases.append(FineTuning.Phase(name: "fine-tune", options: try withSchedule(second), unfreeze: thaw))
        }
        return phases
    }

    /// Labels must name one of the model's classes; one-hot or binary rows need one column per output.
    static func checkTargets(_ targets: RuntimeTensor, loss: Trainer.Loss, classes: Int?, file: String) throws {
        guard let classes else { return }
        let columns = targets.count / max(targets.shape[0], 1)
        switch loss {
        case .sparseCategoricalCrossentropy:
            if let bad = targets.data.first(where: { $0 != $0.rounded() || $0 < 0 || Int($0) >= classes }) {
                throw ScionError(file: file, "label \(bad) is not a class of the model's \(classes) (0 to \(classes - 1))")
            }
        case .binaryCrossentropy:
            if columns != classes { throw ScionError(file: file, "targets have \(columns) columns, the model \(classes) outputs") }
            if let bad = targets.data.first(where: { $0 < 0 || $0 > 1 }) {
                throw ScionError(file: file, "binary target \(bad) is outside [0, 1]")
            }
        case .categoricalCrossentropy, .meanSquaredError:
            if columns != classes { throw ScionError(file: file, "targets have \(columns) columns, the model \(classes) outputs") }
        }
    }

    /// Samples must have the model input's shape (its known dimensions).
    static func checkInputs(_ x: RuntimeTensor, model: Model, file: String) throws {
        guard let input = model.graph.inputs.first, let shape = input.shape else { return }
        let sample = Array(x.shape.dropFirst()), expected = Array(shape.dimensions.dropFirst())
        let fits = sample.count == expected.count && zip(sample, expected).allSatisfy { $1 == nil || $0 == $1 }
        guard fits else {
            throw ScionError(file: file, "samples have shape \(sample); the model's input '\(input.name)' takes [\(expected.map { $0.map(String.init) ?? "?" }.joined(separator: ", "))]")
        }
    }
}
