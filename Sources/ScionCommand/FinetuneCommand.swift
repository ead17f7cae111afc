import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Train a model's trainable layers (backprop, Keras's optimizers), verify frozen weights did not move, write the result.",
        discussion: """
            Transfer learning's recipe: train the head on the frozen base, then optionally thaw the top of the base \
            (--unfreeze-top N or --unfreeze REGEX) and go on at a lower rate (--fine-tune-epochs, \
            --fine-tune-learning-rate). The frozen part before the trainable layers runs once per sample and training \
            reads its cached outputs (bottleneck features). Trainable BatchNormalization layers use batch statistics and \
            update their moving averages; frozen ones run in inference mode; Dropout is active only while training. \
            Data: an .npz with arrays x and y, an .npy pair, or a CSV (labels as class indices or one-hot rows).
            """)

    @Argument(help: "The model to train (.h5, .keras, .onnx): a frozen base with a trainable head (scion edit makes one).")
    var model: String

    @Option(help: "Training data: an .npz with arrays named by --x and --y, an .npy of inputs with --labels, or a numeric .csv.")
    var data: String

    @Option(help: "With an .npy of inputs: the .npy of targets.")
    var labels: String?

    @Option(help: "CSV: the label column (header name or 0-based index; default the last).")
    var labelColumn: String?

    @Option(help: "An .npz of validation data (same array names).")
    var validation: String?

    @Option(help: "Fraction of the training data (its last samples, as Keras takes them) held out for validation.")
    var validationSplit: Double = 0

    @Option(help: "Name of the input array in the .npz files.")
    var x = "x"

    @Option(help: "Name of the target array in the .npz files.")
    var y = "y"

    @OptionGroup(title: "Training") var training: TrainingOptions

    @OptionGroup(title: "Output") var destination: ModelOutputOptions

    var output: String { destination.output ?? "" }
    var force: Bool { destination.force }

    @Flag(help: "Print the per-epoch history and the verification as JSON.")
    var json = false

    @Option(help: "Write an HTML report (learning curves, verification table) to DIR/index.html.")
    var report: String?

    func run() throws {
        BLAS.reexecIfNeeded()
        try reportingErrors {
            _ = try destination.check()
            let source = try Model.load(model)
            var (inputs, targets) = try TrainingData.load(data, xName: x, yName: y, labels: labels, labelColumn: labelColumn)
            var validationPair = try validation.map { try TrainingData.load($0, xName: x, yName: y, labelColumn: labelColumn) }
            if validationSplit > 0 {
                guard validationSplit < 1, validationPair == nil else {
                    throw UsageError("--validation-split must be in (0, 1) and not combined with --validation")
                }
                let held = Int((Double(inputs.shape[0]) * validationSplit).rounded(.down))
                let kept = inputs.shape[0] - held
                validationPair = (inputs.rows(kept..<inputs.shape[0]), targets.rows(kept..<targets.shape[0]))
                (inputs, targets) = (inputs.rows(0..<kept), targets.rows(0..<kept))
            }
            let phases = try training.phases(samples: inputs.shape[0], targetRank: targets.rank)
            let loss = phases[0].options.loss
            let classes = try outputUnits(of: source)
            try TrainingOptions.checkInputs(inputs, model: source, file: data)
            try TrainingOptions.checkTargets(targets, loss: loss, classes: classes, file: data)
            if let validationPair {
                let file = validation ?? data
                try TrainingOptions.checkInputs(validationPair.0, model: source, file: file)
                try TrainingOptions.checkTargets(validationPair.1, loss: loss, classes: classes, file: file)
            }
            let progress = TrainingProgress(quiet: json)
            var tuning = FineTuning(model: source)
            for phase in phases {
                try tuning.run(phase, data: (inputs, targets), validation: validationPair, events: progress.handle)
            }
            try tuning.model.write(to: output, options: destination.writeOptions)
            // Verification against the file as written: only tensors some phase trained may differ.
            let written = try Model.load(output)
            let diff = try ModelDiff(source, written)
            let changed = diff.weightsChanged.map(\.name)
            let unexpected = changed.filter { !tuning.mutable.contains($0) }
            if let report {
                try writeReport(to: report, history: tuning.history, before: source, after: written, diff: diff, loss: loss)
            }
            if json {
                try printJSON(FinetuneResult(phases: tuning.plans, history: tuning.history, weightsCompared: diff.weightsCompared,
                                             weightsUnchanged: diff.weightsUnchanged, weightsChanged: changed, unexpectedlyChanged: unexpected))
            } else {
                progress.say("Verified in \(output): \(diff.weightsUnchanged) of \(diff.weightsCompared) tensors unchanged (every frozen one); "
                    + "\(changed.count) trained: \(changed.joined(separator: ", "))")
            }
            if !unexpected.isEmpty {
                throw ScionError(file: output, "tensors that were never trainable changed: \(unexpected.joined(separator: ", "))")
            }
        }
    }

    struct FinetuneResult: Encodable {
        var phases: [FineTuning.PhasePlan]
        var history: [FineTuning.EpochRecord]
        var weightsCompared: Int
        var weightsUnchanged: Int
        var weightsChanged: [String]
        var unexpectedlyChanged: [String]
    }

    /// Units of the model's output (the classes of a classifier), from its inferred shape.
    func outputUnits(of model: Model) throws -> Int? {
        var graph = model.graph
        try graph.inferShapes()
        return graph.outputs.first.flatMap { graph.values[$0]?.shape?.dimensions.last ?? nil }
    }

    func writeReport(to folder: String, history: [FineTuning.EpochRecord], before: Model, after: Model, diff: ModelDiff,
                     loss: Trainer.Loss) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent("index.html")
        if FileManager.default.fileExists(atPath: path) && !force {
            throw ScionError(file: path, "already exists; pass --force to replace it")
        }
        let rows = history.enumerated().map { index, entry in
            TrainingReport.EpochRow(epoch: index + 1, loss: entry.loss, accuracy: entry.accuracy, validationLoss: entry.validationLoss,
                                    validationAccuracy: entry.validationAccuracy, seconds: entry.seconds)
        }
        var settings = [("model", model), ("data", data), ("output", output), ("optimizer", training.optimizer),
                        ("learning rate", "\(training.learningRate)"), ("schedule", training.schedule), ("epochs", "\(training.epochs)"),
                        ("batch size", "\(training.batchSize)"), ("loss", loss.rawValue), ("seed", "\(training.seed)")]
        if training.hasSecondPhase {
            settings.append(("fine-tune", [training.unfreezeTop.map { "top \($0) layers" }, training.unfreeze.map { "layers matching \($0)" }]
                .compactMap { $0 }.joined(separator: ", ") + ", \(training.fineTuneEpochs ?? training.epochs) epochs at "
                + "\(training.fineTuneLearningRate ?? training.learningRate / 10)"))
        }
        let page = try TrainingReport(title: "scion finetune: \((model as NSString).lastPathComponent)", settings: settings,
                                      epochs: rows, before: before, after: after, diff: diff).html()
        try AtomicFile.write(to: path) { try Data(page.utf8).write(to: URL(fileURLWithPath: $0)) }
    }
}
