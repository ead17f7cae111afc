import ArgumentParser
import Foundation
import Scion
import ScionPasses
import ScionRuntime

/// `--optimizer`: Keras 3's optimizers Scion implements, with their formulas and defaults.
enum OptimizerChoice: String, CaseIterable, ExpressibleByArgument {
    case adam, adamw, sgd
}

/// `--schedule`: how the learning rate moves during a phase.
enum ScheduleChoice: String, CaseIterable, ExpressibleByArgument {
    case constant, cosine, step
}

/// `--loss` takes Keras's names (`sparse_categorical_crossentropy`, ...), which are the raw values.
extension Trainer.Loss: ExpressibleByArgument {}

/// The training settings of `scion finetune`, with Keras's names and defaults, and the second
/// phase of the recipe (thaw the top of the base, train on at a lower rate).
///
/// Settings that belong to one optimizer, schedule or phase are optionals, so a flag given where it
/// does nothing (`--momentum` with Adam) is refused instead of silently ignored; numbers parse even
/// when negative (`parsing: .unconditional`) so that `validate()` can say what range they need.
struct TrainingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Passes over the training data in the first (head) phase; 0 or more.", valueName: "n"))
    var epochs = 10

    @Option(parsing: .unconditional, help: ArgumentHelp("Samples per gradient step; 1 or more.", valueName: "n"))
    var batchSize = 32

    @Option(parsing: .unconditional, help: ArgumentHelp("The learning rate (positive).", valueName: "rate"))
    var learningRate: Float = 1e-3

    @Option(help: ArgumentHelp("The optimizer, with Keras 3's formulas and defaults.", valueName: "name"),
            completion: .list(OptimizerChoice.allValueStrings))
    var optimizer: OptimizerChoice = .adam

    @Option(parsing: .unconditional, help: ArgumentHelp("adamw: the weight decay, 0 or more (default 0.004, Keras's).", valueName: "decay"))
    var weightDecay: Float?

    @Option(parsing: .unconditional, help: ArgumentHelp("sgd: the momentum, in [0, 1) (default 0).", valueName: "m"))
    var momentum: Float?

    @Flag(help: "sgd: Nesterov momentum.")
    var nesterov = false

    @Option(help: ArgumentHelp("The learning-rate schedule of each phase: constant, cosine (to 0 over "
                               + "the phase) or step (--decay-rate every --decay-epochs).", valueName: "name"),
            completion: .list(ScheduleChoice.allValueStrings))
    var schedule: ScheduleChoice = .constant

    @Option(parsing: .unconditional, help: ArgumentHelp("step schedule: multiply the rate by --decay-rate every this many "
                                                        + "epochs (1 or more; default 1).", valueName: "n"))
    var decayEpochs: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("step schedule: the factor (positive; default 0.1).", valueName: "factor"))
    var decayRate: Float?

    @Option(help: ArgumentHelp("The loss (default: sparse_categorical_crossentropy for class indices, "
                               + "categorical_crossentropy for one-hot rows).", valueName: "name"),
            completion: .list(Trainer.Loss.allValueStrings))
    var loss: Trainer.Loss?

    @Option(parsing: .unconditional, help: ArgumentHelp("Seed for shuffling, Dropout and the augmentation layers' random transforms.", valueName: "n"))
    var seed: UInt64 = 0

    @Flag(help: ArgumentHelp("Train with the augmentation layers (RandomFlip, RandomRotation, ..., GaussianNoise, RandomCrop) as the "
                             + "identity, as at inference; by default they transform each batch, as Keras's fit does."))
    var noAugment = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Second phase: make the last N layers of the base trainable (Keras's "
                                                        + "base_model.layers[-N:]).", valueName: "n"))
    var unfreezeTop: Int?

    @Option(help: ArgumentHelp("Second phase: make the layers whose name matches this regular expression trainable.", valueName: "regex"))
    var unfreeze: String?

    @Flag(help: "Second phase: train thawed BatchNormalization layers too (batch statistics); by default they stay frozen, as Keras's guide advises.")
    var trainBatchNorm = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Second phase: epochs, 0 or more (default: --epochs).", valueName: "n"))
    var fineTuneEpochs: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Second phase: the learning rate (default: --learning-rate / 10).", valueName: "rate"))
    var fineTuneLearningRate: Float?

    var hasSecondPhase: Bool { unfreezeTop != nil || unfreeze != nil }

    /// Every range and every combination, before anything is read: a run must not fail (or train to
    /// NaN) an hour in for a reason the command line already shows.
    func validate() throws {
        guard epochs >= 0 else { throw ValidationError("--epochs \(epochs): must be 0 or more") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): must be 1 or more") }
        try Self.checkRate(learningRate, "--learning-rate")
        if let fineTuneLearningRate { try Self.checkRate(fineTuneLearningRate, "--fine-tune-learning-rate") }
        if let fineTuneEpochs, fineTuneEpochs < 0 { throw ValidationError("--fine-tune-epochs \(fineTuneEpochs): must be 0 or more") }
        if let unfreezeTop, unfreezeTop < 1 { throw ValidationError("--unfreeze-top \(unfreezeTop): must be 1 or more") }
        if !hasSecondPhase, let flag = [fineTuneEpochs.map { _ in "--fine-tune-epochs" }, fineTuneLearningRate.map { _ in "--fine-tune-learning-rate" },
                                        trainBatchNorm ? "--train-batch-norm" : nil].compactMap({ $0 }).first {
            throw ValidationError("\(flag) applies to the second phase: give --unfreeze-top N or --unfreeze REGEX too")
        }
        if optimizer != .sgd {
            if momentum != nil { throw ValidationError("--momentum applies to --optimizer sgd, not \(optimizer.rawValue)") }
            if nesterov { throw ValidationError("--nesterov applies to --optimizer sgd, not \(optimizer.rawValue)") }
        }
        if optimizer != .adamw, weightDecay != nil { throw ValidationError("--weight-decay applies to --optimizer adamw, not \(optimizer.rawValue)") }
        if let momentum, !(momentum >= 0 && momentum < 1) {
            throw ValidationError("--momentum \(Readable.setting(momentum)): must be at least 0 and below 1")
        }
        if let weightDecay, !(weightDecay >= 0 && weightDecay.isFinite) {
            throw ValidationError("--weight-decay \(Readable.setting(weightDecay)): must be a finite number, 0 or more")
        }
        if schedule != .step {
            if decayEpochs != nil { throw ValidationError("--decay-epochs applies to --schedule step, not \(schedule.rawValue)") }
            if decayRate != nil { throw ValidationError("--decay-rate applies to --schedule step, not \(schedule.rawValue)") }
        }
        if let decayEpochs, decayEpochs < 1 { throw ValidationError("--decay-epochs \(decayEpochs): must be 1 or more") }
        if let decayRate, !(decayRate > 0 && decayRate.isFinite) {
            throw ValidationError("--decay-rate \(Readable.setting(decayRate)): must be a positive number")
        }
    }

    /// NaN fails every comparison, so the test is written to pass only for positive finite rates.
    static func checkRate(_ rate: Float, _ flag: String) throws {
        guard rate > 0 && rate.isFinite else {
            throw ValidationError("\(flag) \(Readable.setting(rate)): the learning rate must be a positive number")
        }
    }

    var fineTuneRate: Float { fineTuneLearningRate ?? FineTuning.tenth(of: learningRate) }

    /// The phases: the head, then (with --unfreeze-top or --unfreeze) the fine-tune phase.
    func phases(samples: Int, loss: Trainer.Loss) -> [FineTuning.Phase] {
        var options = Trainer.Options()
        options.epochs = epochs
        options.batchSize = batchSize
        options.learningRate = learningRate
        options.seed = seed
        options.augment = !noAugment
        switch optimizer {
        case .adam: options.optimizer = .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7)
        case .adamw: options.optimizer = .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: weightDecay ?? 0.004)
        case .sgd: options.optimizer = .sgd(momentum: momentum ?? 0, nesterov: nesterov)
        }
        options.loss = loss
        let stepsPerEpoch = (samples + batchSize - 1) / batchSize
        func withSchedule(_ options: Trainer.Options) -> Trainer.Options {
            var options = options
            switch schedule {
            case .constant: options.schedule = .constant
            case .cosine: options.schedule = .cosine(decaySteps: stepsPerEpoch * options.epochs, alpha: 0)
            case .step: options.schedule = .step(decaySteps: stepsPerEpoch * (decayEpochs ?? 1), decayRate: decayRate ?? 0.1)
            }
            return options
        }
        var phases = [FineTuning.Phase(name: "head", options: withSchedule(options))]
        if hasSecondPhase {
            var second = options
            second.epochs = fineTuneEpochs ?? epochs
            second.learningRate = fineTuneRate
            second.seed = seed &+ 1
            let thaw = FreezePass(unfreeze: unfreeze, unfreezeTop: unfreezeTop, keepBatchNormFrozen: !trainBatchNorm)
            phases.append(FineTuning.Phase(name: "fine-tune", options: withSchedule(second), unfreeze: thaw))
        }
        return phases
    }

    /// The settings as the report lists them, numbers as the user would type them.
    func settings(loss: Trainer.Loss) -> [(String, String)] {
        var optimizer = self.optimizer.rawValue
        switch self.optimizer {
        case .adam: break
        case .adamw: optimizer += ", weight decay \(Readable.setting(weightDecay ?? 0.004))"
        case .sgd: optimizer += ", momentum \(Readable.setting(momentum ?? 0))" + (nesterov ? " (Nesterov)" : "")
        }
        var schedule = self.schedule.rawValue
        if self.schedule == .step {
            schedule += ": × \(Readable.setting(decayRate ?? 0.1)) every \(decayEpochs ?? 1) epoch\((decayEpochs ?? 1) == 1 ? "" : "s")"
        }
        var settings = [("optimizer", optimizer), ("learning rate", Readable.setting(learningRate)), ("schedule", schedule),
                        (hasSecondPhase ? "head epochs" : "epochs", "\(epochs)"), ("batch size", "\(batchSize)"), ("loss", loss.rawValue),
                        ("seed", "\(seed)"), ("augmentation", noAugment ? "off" : "on")]
        if hasSecondPhase {
            let thawed = [unfreezeTop.map { "the top \($0) layers of the base" }, unfreeze.map { "the layers matching \($0)" }].compactMap { $0 }
            settings.append(("fine-tune", thawed.joined(separator: " and ") + " thawed"
                + (trainBatchNorm ? " (BatchNormalization training)" : " (BatchNormalization kept frozen)")
                + ", \(fineTuneEpochs ?? epochs) epochs at \(Readable.setting(fineTuneRate))"))
        }
        return settings
    }

    /// The loss given, else Keras's usual pairing: class indices (`[N]`, or `[N, 1]` for a model with
    /// several outputs) take sparse categorical cross-entropy, rows of scores categorical.
    func chosenLoss(targets: RuntimeTensor, classes: Int?) -> Trainer.Loss {
        if let loss { return loss }
        let indices = targets.rank == 1 || (targets.rank == 2 && targets.shape[1] == 1 && (classes ?? 1) > 1)
        return indices ? .sparseCategoricalCrossentropy : .categoricalCrossentropy
    }

    /// Labels must name one of the model's classes; one-hot or binary rows need one column per output.
    static func checkTargets(_ targets: RuntimeTensor, loss: Trainer.Loss, classes: Int?, file: String) throws {
        guard let classes else { return }
        let columns = targets.count / max(targets.shape[0], 1)
        switch loss {
        case .sparseCategoricalCrossentropy:
            guard columns == 1 else {
                throw ScionError(file: file, "targets have shape \(targets.shape); sparse_categorical_crossentropy takes one class index per sample "
                    + "(for one-hot rows use --loss categorical_crossentropy)")
            }
            if let bad = targets.data.first(where: { $0 != $0.rounded() || $0 < 0 || Int($0) >= classes }) {
                throw ScionError(file: file, "label \(Readable.setting(bad)) is not a class of the model's \(classes) (0 to \(classes - 1))")
            }
        case .binaryCrossentropy:
            if columns != classes { throw ScionError(file: file, "targets have \(columns) columns, the model \(classes) outputs") }
            if let bad = targets.data.first(where: { $0 < 0 || $0 > 1 }) {
                throw ScionError(file: file, "binary target \(Readable.setting(bad)) is outside [0, 1]")
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
            let wanted = expected.map { $0.map(String.init) ?? "?" }.joined(separator: ", ")
            // A CSV row is a flat sample: when only the arrangement differs, say so.
            let known = expected.compactMap { $0 }
            let sameCount = known.count == expected.count && known.reduce(1, *) == sample.reduce(1, *)
            throw ScionError(file: file, "samples have shape \(sample); the model's input '\(input.name)' takes [\(wanted)]"
                + (sameCount ? " (the same \(sample.reduce(1, *)) values per sample: reshape them, e.g. into an .npz)" : ""))
        }
    }
}
