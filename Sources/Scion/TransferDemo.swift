import Foundation
import ScionIR
import ScionPasses
import ScionRuntime

/// `scion demo`: the whole transfer-learning recipe on a task small enough to run in seconds.
///
/// A CNN pretrained by Keras on the digits 0-4 of scikit-learn's 8x8 digits (fixtures/digits, with
/// the script that made it) learns the digits 5-9 from a few labelled images per class: its
/// classifier is cut, a new head grafted and trained on the frozen base, then the top of the base
/// is thawed and fine-tuned at a tenth of the rate. The same network trained from scratch on the
/// same images (Keras's initial weights, `digits_scratch.keras`) is the baseline. The result is
/// written as .keras and .onnx, each read back and checked: frozen tensors byte for byte, and the
/// .onnx file's predictions against the trained model's.
public struct TransferDemo {
    public struct Settings: Sendable {
        public var perClass = 5
        public var headEpochs = 30
        public var fineTuneEpochs = 20
        public var batchSize = 16
        public var learningRate: Float = 0.01
        public var unfreezeTop = 4
        public var seed: UInt64 = 0
        public init() {}
    }

    /// One trained model's score on the held-out images.
    public struct Outcome: Sendable, Encodable {
        public var name: String
        public var labelledImages: Int
        public var testAccuracy: Double
        public var trainedValues: Int
        public var seconds: Double
    }

    public struct Result: Sendable {
        public var outcomes: [Outcome]
        public var testImages: Int
        public var written: [String]
        /// One line per check made on the written files.
        public var checks: [String]
        public var history: [FineTuning.EpochRecord]
    }

    public let fixtures: String
    public let outputDirectory: String
    public var settings = Settings()
    public var force = false

    public init(fixtures: String, outputDirectory: String) {
        self.fixtures = fixtures
        self.outputDirectory = outputDirectory
    }

    func fixture(_ name: String) -> String { (fixtures as NSString).appendingPathComponent(name) }
    func output(_ name: String) -> String { (outputDirectory as NSString).appendingPathComponent(name) }

    public func run(events: (FineTuning.Event) -> Void = { _ in }, say: (String) -> Void = { _ in }) throws -> Result {
        let pretrained = try Model.load(fixture("digits_cnn.keras"))
        let (allX, allY) = try TrainingData.load(fixture("fewshot.npz"))
        let test = try TrainingData.load(fixture("test.npz"))
        let (x, y) = try Self.firstOfEachClass(allX, allY, count: settings.perClass, classes: 5, file: fixture("fewshot.npz"))
        say("Task: digits 5-9 from \(settings.perClass) labelled images per class (\(x.shape[0]) in all), "
            + "scored on \(test.x.shape[0]) others; the base was pretrained by Keras on digits 0-4.")

        // The recipe: cut the 0-4 classifier, graft a 5-9 head, freeze the base.
        var grafted = pretrained
        try grafted.apply(GraftPass(head: try HeadSpec(parsing: "dense:5:softmax"), at: "gap", seed: settings.seed))
        try grafted.apply(FreezePass(upTo: "gap"))
        say("Surgery: cut after 'gap' (dropping 'digits_0_4'), grafted Dense(5, softmax), froze conv1 ... gap.")

        var options = Trainer.Options()
        options.epochs = settings.headEpochs
        options.batchSize = settings.batchSize
        options.learningRate = settings.learningRate
        options.seed = settings.seed
        var tuning = FineTuning(model: grafted)
        var outcomes: [Outcome] = []
        var started = Date()
        try tuning.run(FineTuning.Phase(name: "head", options: options), data: (x, y), validation: test, events: events)
        outcomes.append(try score("transfer: head on the frozen base", tuning, x.shape[0], test, since: started))
        var second = options
        second.epochs = settings.fineTuneEpochs
        second.learningRate = settings.learningRate / 10
        second.seed = settings.seed &+ 1
        let thaw = FreezePass(unfreezeTop: settings.unfreezeTop, keepBatchNormFrozen: true)
        started = Date()
        try tuning.run(FineTuning.Phase(name: "fine-tune", options: second, unfreeze: thaw), data: (x, y), validation: test, events: events)
        let transferSeconds = Date().timeIntervalSince(started)
        // The fine-tuned model's predictions: its score, and what its written files must predict.
        let transferPredictions = try Self.predict(tuning.model, test.x)
        outcomes.append(score("transfer: + top \(settings.unfreezeTop) layers fine-tuned", tuning, transferPredictions, x.shape[0], test,
                              seconds: transferSeconds))

        // The baseline: the same network from Keras's initial weights, every layer training, same budget.
        var scratchOptions = options
        scratchOptions.epochs = settings.headEpochs + settings.fineTuneEpochs
        var scratch = FineTuning(model: try Model.load(fixture("digits_scratch.keras")))
        started = Date()
        try scratch.run(FineTuning.Phase(name: "scratch", options: scratchOptions), data: (x, y), validation: nil, events: events)
        outcomes.append(try score("from scratch, same images and epochs", scratch, x.shape[0], test, since: started))

        let (written, checks) = try writeAndVerify(tuning, grafted: grafted, test: test.x, expected: transferPredictions)
        return Result(outcomes: outcomes, testImages: test.x.shape[0], written: written, checks: checks, history: tuning.history)
    }

    func score(_ name: String, _ tuning: FineTuning, _ labelled: Int, _ test: (x: RuntimeTensor, y: RuntimeTensor),
               since: Date) throws -> Outcome {
        let seconds = Date().timeIntervalSince(since)
        return score(name, tuning, try Self.predict(tuning.model, test.x), labelled, test, seconds: seconds)
    }

    /// Accuracy of `predictions` (class scores per test image) against the test labels.
    func score(_ name: String, _ tuning: FineTuning, _ predictions: RuntimeTensor, _ labelled: Int,
               _ test: (x: RuntimeTensor, y: RuntimeTensor), seconds: Double) -> Outcome {
        let classes = predictions.count / max(test.x.shape[0], 1)
        var correct = 0
        for row in 0..<test.x.shape[0] {
            let scores = predictions.data[(row * classes)..<((row + 1) * classes)]
            if let best = scores.indices.max(by: { scores[$0] < scores[$1] }), best - row * classes == Int(test.y.data[row]) { correct += 1 }
        }
        let trained = tuning.plans.last.map(\.trainableValues) ?? 0
        return Outcome(name: name, labelledImages: labelled, testAccuracy: Double(correct) / Double(max(test.x.shape[0], 1)),
                       trainedValues: trained, seconds: seconds)
    }

    static func predict(_ model: Model, _ x: RuntimeTensor) throws -> RuntimeTensor {
        let executor = try model.executor()
        guard let input = executor.graph.inputs.first?.name, let output = executor.graph.outputs.first,
              let result = try executor.run([input: x])[output] else {
            throw ScionError(file: model.path, "gave no output")
        }
        return result
    }

    /// Writes the fine-tuned model as .keras and .onnx and checks each file as read back.
    func writeAndVerify(_ tuning: FineTuning, grafted: Model, test: RuntimeTensor, expected: RuntimeTensor) throws -> ([String], [String]) {
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let scale = expected.data.map(abs).max() ?? 1
        var written: [String] = [], checks: [String] = []
        for name in ["digits_5_9.keras", "digits_5_9.onnx"] {
            let path = output(name)
            try tuning.model.write(to: path, options: Model.WriteOptions(force: force))
            written.append(path)
            let back = try Model.load(path)
            let diff = try ModelDiff(grafted, back)
            let changed = diff.weightsChanged.map(\.name)
            let unexpected = changed.filter { !tuning.mutable.contains($0) }
            guard unexpected.isEmpty else { throw ScionError(file: path, "frozen tensors changed: \(unexpected.joined(separator: ", "))") }
            let predictions = try Self.predict(back, test)
            let difference = zip(predictions.data, expected.data).map { abs($0 - $1) }.max() ?? .infinity
            guard predictions.shape == expected.shape, difference <= 1e-4 * scale else {
                throw ScionError(file: path, "predicts differently from the trained model (max difference \(difference))")
            }
            let agreement = difference == 0 ? "identical to" : "within " + String(format: "%.1g", Double(difference)) + " of"
            checks.append("\(name): \(diff.weightsUnchanged) of \(diff.weightsCompared) tensors byte-identical to the grafted model "
                + "(every frozen one), \(changed.count) trained; predictions on the \(test.shape[0]) test images \(agreement) the trained model's")
        }
        return (written, checks)
    }

    /// The first `count` samples of each class, in file order.
    static func firstOfEachClass(_ x: RuntimeTensor, _ y: RuntimeTensor, count: Int, classes: Int,
                                 file: String) throws -> (RuntimeTensor, RuntimeTensor) {
        var chosen: [Int] = [], taken = [Int](repeating: 0, count: classes)
        for (row, label) in y.data.enumerated() {
            let k = Int(label)
            guard (0..<classes).contains(k) else { throw ScionError(file: file, "label \(label) is not one of 0 to \(classes - 1)") }
            if taken[k] < count { taken[k] += 1; chosen.append(row) }
        }
        guard taken.allSatisfy({ $0 == count }) else {
            throw ScionError(file: file, "has fewer than \(count) images of some class (\(taken))")
        }
        return (x.rows(chosen), y.rows(chosen))
    }
}
