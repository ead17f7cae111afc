import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score a classifier on labelled samples: loss, accuracy, top-5 accuracy, per-class scores, confusion matrix.",
        discussion: """
            The loss is the cross-entropy Keras's model.evaluate computes for the model: sparse categorical (binary for \
            a one-unit output), from logits when the model ends in them. Data: an .npz with arrays x and y (class \
            indices or one-hot rows), or an .npy of inputs with --labels Y.npy.

            Example: scion evaluate trained.keras --data test.npz --report evaluation
            """)

    @OptionGroup var source: ModelArgument

    @Option(help: ArgumentHelp("Labelled samples: an .npz with arrays x and y, or an .npy of inputs (with --labels).", valueName: "file"),
            completion: .file(extensions: ["npz", "npy"]))
    var data: String

    @Option(help: ArgumentHelp("With an .npy of inputs: the .npy of labels.", valueName: "file"), completion: .file(extensions: ["npy"]))
    var labels: String?

    @OptionGroup var reading: ClassifierInputOptions

    @Option(help: ArgumentHelp("Also write an HTML report (index.html, with the confusion matrix as an SVG heat map, also in "
                               + "confusion_matrix.svg) into this folder.", valueName: "folder"),
            completion: .directory)
    var report: String?

    @Flag(help: "Replace the report's files if they exist.")
    var force = false

    @OptionGroup var printing: ReportOptions

    /// The `--json` object: the evaluation's keys, plus what was evaluated.
    struct Result: Encodable {
        var evaluation: Evaluation
        var model: String
        var data: String
        var output: Classifier.OutputKind
        var preprocess: String
        var report: String?

        enum CodingKeys: String, CodingKey { case model, data, output, preprocess, report }

        func encode(to encoder: any Encoder) throws {
            try evaluation.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(model, forKey: .model)
            try container.encode(data, forKey: .data)
            try container.encode(output, forKey: .output)
            try container.encode(preprocess, forKey: .preprocess)
            try container.encodeIfPresent(report, forKey: .report)
        }
    }

    func run() throws {
        BLAS.reexecIfNeeded()
        ProcessMemory.runningBatchAfterBatch()
        try reportingErrors {
            if let report { try Self.checkReportFolder(report, force: force) }
            let model = try Model.load(source.input)
            // A folder of class folders: labelled in the order of the names given or stored in the model,
            // else of its sorted sub-folders (which then name the classes).
            var given = try reading.names.names()
            let samples: any SampleSource
            if ImageFolderOptions.isFolder(data) {
                let folder = try reading.images.samples(at: data, model: model, classNames: given ?? model.graph.classNames, requireLabels: true)
                if given == nil, model.graph.classNames == nil, let classes = try? Classifier(model).classCount,
                   folder.classNames?.count == classes {
                    given = folder.classNames
                }
                samples = folder
            } else {
                samples = try ArraySamples(path: data, labelsPath: labels)
            }
            let (mode, note) = reading.preprocessing.resolve(for: model)
            let evaluation = try Self.evaluate(model, on: samples, mode: mode, names: given, batchSize: reading.batchSize)
            if let report {
                let settings = [("model", source.input), ("data", data), ("preprocessing", mode.rawValue)]
                try Self.writeReport(evaluation.evaluation, to: report, title: "scion evaluate: \((source.input as NSString).lastPathComponent)",
                                     settings: settings)
            }
            if printing.json {
                try printJSON(Result(evaluation: evaluation.evaluation, model: source.input, data: data, output: evaluation.classifier.kind,
                                     preprocess: mode.rawValue, report: report))
            } else if printing.talks {
                let classifier = evaluation.classifier
                print("\(source.input): output \(classifier.kind.describe(layer: classifier.lastLayer, units: classifier.units))")
                if let note { print(note) }
                print(evaluation.evaluation.text())
                if let report { print("wrote \((report as NSString).appendingPathComponent("index.html"))") }
            }
        }
    }

    /// `model` scored on `samples` (which must have labels), batch by batch after `mode`.
    static func evaluate(_ model: Model, on samples: any SampleSource, mode: InputPreprocessing, names: [String]?,
                         batchSize: Int) throws -> (evaluation: Evaluation, classifier: Classifier) {
        let classifier = try Classifier(model)
        if classifier.kind == .sigmoid && !classifier.isBinary {
            throw ScionError(file: model.path, "ends in \(classifier.units) independent sigmoid units (multi-label); evaluate scores "
                + "single-label classifiers (softmax, logits, or one sigmoid unit)")
        }
        // The confusion matrix holds classes² counts: ImageNet's 1,000 classes make 8 MB, 21,000 would make 3.5 GB.
        guard classifier.classCount <= Evaluation.largestClassCount else {
            throw ScionError(file: model.path, "has \(classifier.classCount) classes; evaluate's confusion matrix takes at most "
                + "\(Evaluation.largestClassCount)")
        }
        guard samples.hasLabels else {
            throw ScionError(file: samples.origin, "has no labels (an .npz needs an array y; an .npy of inputs needs --labels)")
        }
        let (classes, _) = try ClassNamesOption.resolve(names, for: classifier)
        try classifier.checkSamples(shape: samples.sampleShape, file: samples.origin)
        var accumulator = Evaluation.Accumulator(classifier: classifier, classes: classes)
        try samples.forEachBatch(size: batchSize) { batch in
            let x = try PreprocessOptions.apply(mode, to: batch.inputs, model: model, file: samples.origin)
            try accumulator.add(scores: try classifier.scores(x), labels: batch.labels ?? [], names: batch.names, file: samples.origin)
        }
        return (accumulator.finish(skipped: samples.skipped.count), classifier)
    }

    /// The report folder may exist (its parent must); its files are replaced only with `force`.
    static func checkReportFolder(_ folder: String, force: Bool) throws {
        try OutputCheck.checkFolder(folder)
        for name in ["index.html", "confusion_matrix.svg"] {
            let path = (folder as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) && !force {
                throw ScionError(file: path, "already exists; pass --force to replace it")
            }
        }
    }

    static func writeReport(_ evaluation: Evaluation, to folder: String, title: String, settings: [(String, String)]) throws {
        if !FileManager.default.fileExists(atPath: folder) {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false, attributes: nil)
        }
        let pages = [("confusion_matrix.svg", evaluation.confusionMatrixSVG() + "\n"), ("index.html", evaluation.html(title: title, settings: settings))]
        for (name, text) in pages {
            try AtomicFile.write(to: (folder as NSString).appendingPathComponent(name)) { try Data(text.utf8).write(to: URL(fileURLWithPath: $0)) }
        }
    }
}
