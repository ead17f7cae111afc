import ArgumentParser
import Foundation
import Scion
import ScionPasses
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
            The written file is read back and every tensor no phase trained must be byte-identical to the model \
            given, else the run fails (exit 1) and the file is removed. A NaN or infinite loss or weight stops training.

            Data: an .npz with arrays x and y (--x, --y for other names), an .npy of inputs with --labels Y.npy, or a \
            numeric .csv (--label-column); targets are class indices or one-hot rows, inputs in the model's layout. \
            Or a folder of JPEG and PNG images, one sub-folder per class (Keras's image_dataset_from_directory): \
            decoded and resized to the model's input as Keras does, pixel values 0 to 255, split by Keras's seeded \
            shuffle with --validation-split (--seed) or read from a --validation folder.

            Example: scion finetune grafted.keras --data train.npz --validation-split 0.2 --epochs 10 \
            --unfreeze-top 20 --fine-tune-epochs 10 -o trained.onnx --report report.html
            """)

    @Argument(help: ArgumentHelp("The model to train (.h5, .keras, .onnx): a frozen base with a trainable head (scion edit makes one).",
                                 valueName: "model"),
              completion: .file(extensions: ["h5", "keras", "onnx"]))
    var model: String

    @OptionGroup(title: "Data") var source: TrainingDataOptions

    @OptionGroup(title: "Image folders") var images: ImageFolderOptions

    @OptionGroup(title: "Training") var training: TrainingOptions

    @OptionGroup(title: "Augmentation") var augmentation: AugmentOptions

    @OptionGroup(title: "Output") var destination: ModelOutputOptions

    @Option(help: ArgumentHelp("Also write an HTML report (learning curves, the verification with each tensor's CRC-32) to this .html file.",
                               valueName: "file"),
            completion: .file(extensions: ["html"]))
    var report: String?

    @OptionGroup var printing: ReportOptions

    @OptionGroup(title: "Classes, preprocessing and testing") var extras: FinetuneExtras

    func run() throws {
        BLAS.reexecIfNeeded()
        ProcessMemory.runningBatchAfterBatch()
        try reportingErrors {
            let started = Date()
            // Every output is checked before anything is read: a run must not fail at its end for a
            // reason known at its start.
            let output = try destination.check()
            if let report { try OutputCheck.check(report, force: destination.force, extensions: ["html"], what: "a report") }
            try Self.refuseOverwritingTheInput(model: model, output: output)
            var given = try Model.load(model)
            // Before the data is read: a model of several inputs would otherwise fail on the data's array names.
            guard given.graph.inputs.count == 1 else {
                throw ScionError(file: model, "finetune trains a model with one input; this one has \(given.graph.inputs.count) "
                                 + "(\(given.graph.inputs.map(\.name).joined(separator: ", ")))")
            }
            // --augment's mistakes before the data is read (the layers go in after the class names).
            try augmentation.checkPixelValues(preprocessing: extras.preprocessing.resolve(for: given).mode)
            _ = try augmentation.prepared(given, noAugment: training.noAugment)
            let outputShape = try Self.outputShape(of: given)
            let classes = outputShape?.last ?? nil
            let test: FinetuneExtras.Prepared?
            let loss: Trainer.Loss, samples: TrainingSamples, validationSamples: TrainingSamples?, sampleCount: Int
            if ImageFolderOptions.isFolder(source.data) {
                // Streamed: batches decoded as training reads them; only the frozen prefix's features stay.
                let input = try images.inputGeometry(given, file: source.data)
                let lists = try images.lists(data: source.data, validation: source.validation, validationSplit: source.validationSplit,
                                             seed: training.seed, names: try extras.names.names())
                // The folders name the classes: the written model keeps them (unless --class-names says otherwise).
                if extras.names.classNames == nil, classes.map({ $0 == 1 ? 2 : $0 }) == lists.classNames.count {
                    given.graph.classNames = lists.classNames
                }
                let mode = try extras.prepareModel(&given, classes: classes)
                test = try extras.prepareTest(given, classes: classes, mode: mode, images: images)
                let stream = StreamedImages(folder: source.data, samples: lists.training, options: images, input: input, mode: mode, model: given)
                loss = training.chosenLoss(targets: stream.listedTargets, classes: classes)
                try TrainingOptions.checkTargets(stream.listedTargets, loss: loss, classes: classes, file: source.data)
                try Self.checkOutputPerSample(outputShape, loss: loss, targets: stream.listedTargets, file: source.data)
                (samples, sampleCount) = (.streamed(stream), lists.training.count)
                validationSamples = lists.validation.map {
                    .streamed(StreamedImages(folder: source.validation ?? source.data, samples: $0, options: images, input: input, mode: mode, model: given))
                }
            } else {
                var ((inputs, targets), validationPair) = try source.load()
                test = try extras.prepare(&given, classes: classes, inputs: &inputs, validation: &validationPair, file: source.data, images: images)
                loss = training.chosenLoss(targets: targets, classes: classes)
                try TrainingOptions.checkInputs(inputs, model: given, file: source.data)
                try TrainingOptions.checkTargets(targets, loss: loss, classes: classes, file: source.data)
                try Self.checkOutputPerSample(outputShape, loss: loss, targets: targets, file: source.data)
                if let validationPair {
                    let file = source.validation ?? source.data
                    try TrainingOptions.checkInputs(validationPair.x, model: given, file: file)
                    try TrainingOptions.checkTargets(validationPair.y, loss: loss, classes: classes, file: file)
                }
                (samples, sampleCount) = (.arrays(x: inputs, y: targets), inputs.shape[0])
                validationSamples = validationPair.map { .arrays(x: $0.x, y: $0.y) }
            }
            let progress = TrainingProgress.forCommand(printing)
            // --augment's layers are in the graph that trains, and in the one written only if asked.
            let augmented = try augmentation.prepared(given, noAugment: training.noAugment)
            let (augmenting, note) = try AugmentOptions.describe(augmented, noAugment: training.noAugment)
            if let augmenting { progress.say(augmenting) }
            if let note { FileHandle.standardError.write(Data((note + "\n").utf8)) }
            var tuning = FineTuning(model: augmented)
            for phase in training.phases(samples: sampleCount, loss: loss) {
                try tuning.run(phase, samples: samples, validation: validationSamples, events: progress.handle)
            }
            var trained = tuning.model
            trained.graph = augmentation.augmentIntoModel ? TrainingAugmentation.kept(in: trained.graph)
                : TrainingAugmentation.removed(from: trained.graph)
            try trained.write(to: output, options: destination.writeOptions)
            // The one verification: the file as written, read back, against the model given.
            let verification = try TrainingVerification(reference: given, written: try Model.load(output), trained: tuning.mutable)
            var outcome = Outcome(verification: verification, plans: tuning.plans, history: tuning.history, model: trained,
                                  output: output, loss: loss, started: started)
            if let test, verification.passed { outcome.test = try extras.evaluate(trained, on: test) }
            try finish(outcome, progress: progress)
        }
    }

    /// What a run produced, handed to `finish` (and to tests that feed it a failing verification).
    struct Outcome {
        var verification: TrainingVerification
        var plans: [FineTuning.PhasePlan]
        var history: [FineTuning.EpochRecord]
        var model: Model
        var output: String
        var loss: Trainer.Loss
        var started: Date
        /// `--test`'s evaluation of the trained model.
        var test: Evaluation?
    }

    /// Shows the verification everywhere from the one value: the report (written either way, it
    /// explains a failure), then the terminal lines or the JSON object, or the error. A failed
    /// verification removes the written model, so a file that broke the frozen-weights promise is
    /// never left looking like a result.
    func finish(_ outcome: Outcome, progress: TrainingProgress) throws {
        let verification = outcome.verification
        if let report {
            try writeReport(to: report, outcome)
        }
        guard verification.passed else {
            for path in [outcome.output, outcome.output + ".data"] where FileManager.default.fileExists(atPath: path) {
                try? FileManager.default.removeItem(atPath: path)
            }
            throw ScionError(file: outcome.output, "verification failed, the file was removed: \(verification.summary)"
                + (report.map { "; see \($0)" } ?? ""))
        }
        let written = WrittenModel(command: "finetune", input: model, output: outcome.output, model: outcome.model, started: outcome.started)
        if printing.json {
            try printJSON(FinetuneResult(written: written, data: source.data, report: report, phases: outcome.plans, history: outcome.history,
                                         verification: verification, test: outcome.test))
        } else if printing.talks {
            progress.say("Verified " + verification.summary)
            progress.say(written.line)
            if let report { progress.say("wrote \(report) (learning curves, verification)") }
            if let test = outcome.test, let file = extras.test { progress.say("Test on \(file):\n" + test.text()) }
        }
    }

    /// The `--json` object: what every writing command reports (`WrittenModel`'s keys, at the top
    /// level as for the other commands), plus the data, the phases, the history and the verification
    /// (each tensor with its CRC-32 before and after).
    struct FinetuneResult: Encodable {
        var written: WrittenModel
        var data: String
        var report: String?
        var phases: [FineTuning.PhasePlan]
        var history: [FineTuning.EpochRecord]
        var verification: TrainingVerification
        var test: Evaluation?

        enum CodingKeys: String, CodingKey { case data, report, phases, history, verification, test }

        func encode(to encoder: any Encoder) throws {
            try written.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(data, forKey: .data)
            try container.encodeIfPresent(report, forKey: .report)
            try container.encode(phases, forKey: .phases)
            try container.encode(history, forKey: .history)
            try container.encode(verification, forKey: .verification)
            try container.encodeIfPresent(test, forKey: .test)
        }
    }

    /// Writing over the model being trained would also make the verification compare the new file
    /// with itself (the input's frozen tensors are read lazily, after the write), so it is refused.
    static func refuseOverwritingTheInput(model: String, output: String) throws {
        let a = URL(fileURLWithPath: model).standardizedFileURL.resolvingSymlinksInPath().path
        let b = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
        if a == b { throw UsageError("-o \(output) is the model being trained; write the result to another file") }
    }

    /// The lengths of the model's output, from its inferred shape (the last: the classes of a
    /// classifier); nil when its rank is unknown.
    static func outputShape(of model: Model) throws -> [Int?]? {
        var graph = model.graph
        try graph.inferShapes()
        return graph.outputs.first.flatMap { graph.values[$0]?.shape?.dimensions }
    }

    /// An output of more than one axis per sample (a value per step or position: a Dense on a
    /// sequence) is scored as one flat row: right for mse and binary cross-entropy with a target per
    /// value (Keras's mean over every axis), wrong for cross-entropy's one class per sample, which
    /// would score the first step's columns. Refused then, before training, rather than trained on
    /// the wrong columns.
    static func checkOutputPerSample(_ output: [Int?]?, loss: Trainer.Loss, targets: RuntimeTensor, file: String) throws {
        guard let sample = output?.dropFirst(), sample.count > 1 else { return }
        let described = "[" + sample.map { $0.map(String.init) ?? "?" }.joined(separator: ", ") + "]"
        switch loss {
        case .sparseCategoricalCrossentropy, .categoricalCrossentropy:
            throw ScionError(file: file, "the model outputs \(described) per sample (a value per step or position); \(loss.rawValue) "
                             + "scores one class per sample, and per-step targets are not supported yet (pool the steps first: --head gap,...)")
        case .meanSquaredError, .binaryCrossentropy:
            let perSample = targets.count / max(targets.shape.first ?? 1, 1)
            if let elements = Shape.product(Array(sample)), elements != perSample {
                throw ScionError(file: file, "targets hold \(perSample) values per sample; the model outputs \(described) (\(elements)) per sample")
            }
        }
    }

    func writeReport(to path: String, _ outcome: Outcome) throws {
        var settings = [("model", model), ("data", source.description), ("output", outcome.output)]
        settings += training.settings(loss: outcome.loss)
        if let augment = augmentation.augment { settings.append(("augment (training only)", augment)) }
        if let last = outcome.history.last {
            var metrics = "loss \(Readable.number(last.loss))" + (last.accuracy.map { ", accuracy \(Readable.number($0))" } ?? "")
            if let loss = last.validationLoss { metrics += ", val_loss \(Readable.number(loss))" }
            if let accuracy = last.validationAccuracy { metrics += ", val_accuracy \(Readable.number(accuracy))" }
            settings.append(("final metrics", metrics))
        }
        var report = TrainingReport(title: "scion finetune: \((model as NSString).lastPathComponent)", settings: settings,
                                    runs: [TrainingReport.Run(name: "", history: outcome.history)],
                                    verifications: [outcome.verification])
        report.addModelPictures(source: model, trained: outcome.output)
        let page = report.html()
        try AtomicFile.write(to: path) { try Data(page.utf8).write(to: URL(fileURLWithPath: $0)) }
    }
}
