import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Show a classifier's top classes and their probabilities for each input sample.",
        discussion: """
            Inputs: an .npy of samples, or an .npz (array x, or its only array), in the model's layout; or images: \
            a .jpg/.png file, a folder of them, or a folder of class sub-folders, decoded and resized to the model's \
            input as finetune --data DIR reads them (docs/images.md). Softmax is \
            applied when the model ends in logits (its last layer applies no softmax or sigmoid); a one-unit output is \
            a binary classifier (sigmoid). Class names come from --class-names, else from the model (finetune \
            --class-names stores them), else indices are shown.

            Example: scion predict trained.keras samples.npy --top 3 --output predictions.csv
            """)

    @OptionGroup var source: ModelArgument

    @Argument(help: ArgumentHelp("The samples: an .npy, an .npz with array x, an image, or a folder of images.", valueName: "inputs"),
              completion: .file(extensions: ["npy", "npz", "jpg", "jpeg", "png"]))
    var inputs: String

    @Option(help: "How many classes to show per sample, most probable first.")
    var top: Int = 5

    @OptionGroup var reading: ClassifierInputOptions

    @Option(help: ArgumentHelp("Also write the predictions to this .csv file (file, rank, class, index, probability).", valueName: "file"),
            completion: .file(extensions: ["csv"]))
    var output: String?

    @Flag(help: "Replace the --output file if it exists.")
    var force = false

    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard top >= 1 else { throw ValidationError("--top must be 1 or more") }
    }

    /// One sample's answer: the `--json` list holds one per input sample.
    struct SamplePrediction: Encodable {
        struct Ranked: Encodable {
            var `class`: String
            var index: Int
            var probability: Double
        }
        var file: String
        var predictions: [Ranked]
    }

    func run() throws {
        BLAS.reexecIfNeeded()
        ProcessMemory.runningBatchAfterBatch()
        try reportingErrors {
            if let output { try OutputCheck.check(output, force: force, extensions: ["csv"], what: "predictions") }
            let model = try Model.load(source.input)
            let classifier = try Classifier(model)
            let (classes, named) = try reading.names.resolve(for: classifier)
            let (mode, note) = reading.preprocessing.resolve(for: model)
            let samples: any SampleSource = ImageSamples.isImageInput(inputs)
                ? try reading.images.samples(at: inputs, model: model, classNames: nil, requireLabels: false)
                : try ArraySamples(path: inputs)
            try classifier.checkSamples(shape: samples.sampleShape, file: inputs)
            var results: [SamplePrediction] = []
            try samples.forEachBatch(size: reading.batchSize) { batch in
                let x = try PreprocessOptions.apply(mode, to: batch.inputs, model: model, file: inputs)
                let probabilities = classifier.probabilities(fromScores: try classifier.scores(x))
                for (name, row) in zip(batch.names, probabilities) {
                    let ranked = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(top)
                    results.append(SamplePrediction(file: name, predictions: ranked.map {
                        .init(class: classes[$0], index: $0, probability: row[$0])
                    }))
                }
            }
            if let output {
                try AtomicFile.write(to: output) { try Data(Self.csv(results).utf8).write(to: URL(fileURLWithPath: $0)) }
            }
            if report.json {
                try printJSON(results)
            } else if report.talks {
                print("\(source.input): output \(classifier.kind.describe(layer: classifier.lastLayer, units: classifier.units))")
                if let note { print(note) }
                for result in results {
                    let ranked = result.predictions.map { (named ? "\($0.class) (\($0.index))" : "\($0.index)")
                        + " " + String(format: "%.4f", $0.probability) }
                    print("\(result.file): \(ranked.joined(separator: ", "))")
                }
                if let output { print("wrote \(output) (\(results.count) samples, top \(min(top, classes.count)))") }
            }
        }
    }

    /// One row per sample and rank; names with commas or quotes quoted as RFC 4180 says.
    static func csv(_ results: [SamplePrediction]) -> String {
        func field(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var text = "file,rank,class,index,probability\n"
        for result in results {
            for (rank, prediction) in result.predictions.enumerated() {
                text += "\(field(result.file)),\(rank + 1),\(field(prediction.class)),\(prediction.index),\(prediction.probability)\n"
            }
        }
        return text
    }
}
