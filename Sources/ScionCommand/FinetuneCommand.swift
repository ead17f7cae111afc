import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Train a model's head on its frozen base's features, verify the base did not move, write the result.",
        discussion: """
            The base (everything before the first layer with trainable weights) runs once per sample; the head \
            (Dense, activations, Dropout, Flatten) trains on those cached features. Data: an .npz with arrays \
            x and y (class indices, or one-hot rows). Not yet: training layers inside the base (issue #7).
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

    @Option(help: "Passes over the training data.")
    var epochs = 10

    @Option(help: "Samples per gradient step.")
    var batchSize = 32

    @Option(help: "Learning rate.")
    var learningRate: Float = 1e-3

    @Option(help: "adam, adamw or sgd (Keras 3's formulas and defaults).")
    var optimizer = "adam"

    @Option(help: "AdamW's weight decay (Keras's default 0.004).")
    var weightDecay: Float = 0.004

    @Option(help: "Learning-rate schedule: constant, cosine (to 0 over all steps) or step (see --decay-epochs, --decay-rate).")
    var schedule = "constant"

    @Option(help: "step schedule: multiply the rate by --decay-rate every this many epochs.")
    var decayEpochs = 1

    @Option(help: "step schedule: the factor.")
    var decayRate: Float = 0.1

    @Option(help: "SGD momentum.")
    var momentum: Float = 0

    @Option(help: "sparse_categorical_crossentropy, categorical_crossentropy or mse; by default from the targets' shape.")
    var loss: String?

    @Option(help: "Seed for shuffling and Dropout.")
    var seed: UInt64 = 0

    @OptionGroup var destination: OutputOptions

    var output: String { destination.output }
    var force: Bool { destination.force }

    @Flag(help: "Print the per-epoch history and the verification as JSON.")
    var json = false

    @Option(help: "Write an HTML report (learning curves, verification table) to DIR/index.html.")
    var report: String?

    func run() throws {
        BLAS.reexecIfNeeded()
        try reportingErrors {
            if FileManager.default.fileExists(atPath: output) && !force {
                throw ScionError(file: output, "already exists; pass --force to replace it")
            }
            var source = try Model.load(model)
            var trainer: HeadTrainer
            do { trainer = try HeadTrainer(graph: source.graph) } catch let error as RuntimeError {
                throw ScionError(file: model, error.description)
            }
            var (inputs, targets) = try TrainingData.load(data, xName: x, yName: y, labels: labels, labelColumn: labelColumn)
            var validationPair = try validation.map { try TrainingData.load($0, xName: x, yName: y, labelColumn: labelColumn) }
            if validationSplit > 0 {
                guard validationSplit < 1, validationPair == nil else {
                    throw UsageError("--validation-split must be in (0, 1) and not combined with --validation")
                }
                let held = Int((Double(inputs.shape[0]) * validationSplit).rounded(.down))
                let kept = inputs.shape[0] - held
                validationPair = (rows(inputs, kept..<inputs.shape[0]), rows(targets, kept..<targets.shape[0]))
                (inputs, targets) = (rows(inputs, 0..<kept), rows(targets, 0..<kept))
            }
            var options = HeadTrainer.Options()
            options.epochs = epochs
            options.batchSize = batchSize
            options.learningRate = learningRate
            options.seed = seed
            switch optimizer {
            case "adam": options.optimizer = .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7)
            case "adamw": options.optimizer = .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: weightDecay)
            case "sgd": options.optimizer = .sgd(momentum: momentum, nesterov: false)
            default: throw UsageError("--optimizer \(optimizer): adam, adamw or sgd")
            }
            let stepsPerEpoch = (inputs.shape[0] + batchSize - 1) / max(batchSize, 1)
            switch schedule {
            case "constant": options.schedule = .constant
            case "cosine": options.schedule = .cosine(decaySteps: stepsPerEpoch * epochs, alpha: 0)
            case "step": options.schedule = .step(decaySteps: stepsPerEpoch * decayEpochs, decayRate: decayRate)
            default: throw UsageError("--schedule \(schedule): constant, cosine or step")
            }
            if let loss {
                guard let chosen = HeadTrainer.Loss(rawValue: loss) else {
                    throw UsageError("--loss \(loss): one of \(HeadTrainer.Loss.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                options.loss = chosen
            } else {
                options.loss = targets.rank == 1 ? .sparseCategoricalCrossentropy : .categoricalCrossentropy
            }
            try checkTargets(targets, loss: options.loss, classes: trainer.outputUnits, file: data)
            let started = Date()
            let features: RuntimeTensor, validationFeatures: RuntimeTensor?
            do {
                features = try trainer.features(of: inputs)
                validationFeatures = try validationPair.map { try trainer.features(of: $0.0) }
            } catch let error as RuntimeError {
                throw ScionError(file: model, error.description)
            }
            if !json {
                print(String(format: "Features cached: the frozen base (%d layers) ran once per sample on %d samples in %.2f s; "
                    + "training the head (%d layers) on them.", trainer.baseLayerCount, inputs.shape[0],
                    Date().timeIntervalSince(started), trainer.headLayerCount))
            }
            var history: [[String: Double]] = []
            do {
                _ = try trainer.fit(features: features, targets: targets, options: options) { epoch, current in
                    var entry: [String: Double] = ["epoch": Double(epoch.epoch), "loss": epoch.loss, "seconds": epoch.seconds]
                    if let accuracy = epoch.accuracy { entry["accuracy"] = accuracy }
                    var line = String(format: "Epoch %d/%d - loss %.4f", epoch.epoch, epochs, epoch.loss)
                    if let accuracy = epoch.accuracy { line += String(format: " - accuracy %.4f", accuracy) }
                    if let validationFeatures, let pair = validationPair,
                       let result = try? current.evaluate(features: validationFeatures, targets: pair.1, loss: options.loss) {
                        entry["val_loss"] = result.loss
                        line += String(format: " - val_loss %.4f", result.loss)
                        if let accuracy = result.accuracy { entry["val_accuracy"] = accuracy; line += String(format: " - val_accuracy %.4f", accuracy) }
                    }
                    history.append(entry)
                    let elapsed = history.reduce(0) { $0 + ($1["seconds"] ?? 0) }
                    let remaining = elapsed / Double(epoch.epoch) * Double(epochs - epoch.epoch)
                    if !json { print(line + String(format: " - %.3f s", epoch.seconds) + (epoch.epoch < epochs ? String(format: " - ETA %.1f s", remaining) : "")) }
                }
            } catch let error as RuntimeError {
                throw ScionError(file: data, error.description)
            }
            let original = source
            source.graph = trainer.trainedGraph()
            try destination.write(source)
            // Verification against the file as written: only the head's tensors may differ.
            let diff = try ModelDiff(original, try Model.load(output))
            let changed = diff.weightsChanged.map(\.name)
            if let report {
                try writeReport(to: report, history: history, before: original, diff: diff, options: options)
            }
            if json {
                let report: [String: Any] = ["history": history, "weightsCompared": diff.weightsCompared,
                                             "weightsUnchanged": diff.weightsUnchanged, "weightsChanged": changed]
                let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("Verified in \(output): \(diff.weightsUnchanged) of \(diff.weightsCompared) tensors unchanged (the frozen base); "
                    + "\(changed.count) trained: \(changed.joined(separator: ", "))")
            }
        }
    }

    func writeReport(to folder: String, history: [[String: Double]], before: Model, diff: ModelDiff,
                     options: HeadTrainer.Options) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent("index.html")
        if FileManager.default.fileExists(atPath: path) && !force {
            throw ScionError(file: path, "already exists; pass --force to replace it")
        }
        let rows = history.map { entry in
            TrainingReport.EpochRow(epoch: Int(entry["epoch"] ?? 0), loss: entry["loss"] ?? 0, accuracy: entry["accuracy"],
                                    validationLoss: entry["val_loss"], validationAccuracy: entry["val_accuracy"], seconds: entry["seconds"] ?? 0)
        }
        let settings = [("model", model), ("data", data), ("output", output), ("optimizer", optimizer), ("learning rate", "\(learningRate)"),
                        ("schedule", schedule), ("epochs", "\(epochs)"), ("batch size", "\(batchSize)"),
                        ("loss", options.loss.rawValue), ("seed", "\(seed)")]
        let page = try TrainingReport(title: "scion finetune: \((model as NSString).lastPathComponent)", settings: settings,
                                      epochs: rows, before: before, after: try Model.load(output), diff: diff).html()
        try AtomicFile.write(to: path) { try Data(page.utf8).write(to: URL(fileURLWithPath: $0)) }
    }

    /// Labels must name one of the head's classes; one-hot rows must have one column per class.
    func checkTargets(_ targets: RuntimeTensor, loss: HeadTrainer.Loss, classes: Int?, file: String) throws {
        guard let classes else { return }
        switch loss {
        case .sparseCategoricalCrossentropy:
            if let bad = targets.data.first(where: { $0 != $0.rounded() || $0 < 0 || Int($0) >= classes }) {
                throw ScionError(file: file, "label \(bad) is not a class of the head's \(classes) (0 to \(classes - 1))")
            }
        case .categoricalCrossentropy, .meanSquaredError:
            if targets.count / max(targets.shape[0], 1) != classes {
                throw ScionError(file: file, "targets have \(targets.count / max(targets.shape[0], 1)) columns, the head \(classes) outputs")
            }
        }
    }

    func rows(_ tensor: RuntimeTensor, _ range: Range<Int>) -> RuntimeTensor {
        let width = tensor.count / max(tensor.shape[0], 1)
        return RuntimeTensor(shape: [range.count] + tensor.shape.dropFirst(), data: Array(tensor.data[(range.lowerBound * width)..<(range.upperBound * width)]))
    }
}
