import Foundation
import ScionIR
import ScionPasses
import ScionRuntime

/// `scion demo`: the whole transfer-learning recipe on a task small enough to run in seconds.
///
/// A CNN pretrained by Keras on the digits 0-4 of scikit-learn's 8x8 digits (the scion command's
/// resources, Sources/ScionCommand/Resources/digits, made by fixtures/make_digits.py) learns the digits 5-9 from a few labelled images per class: its
/// classifier is cut, a new head grafted and trained on the frozen base, then the top of the base
/// is thawed and fine-tuned at a tenth of the rate. The same network trained from scratch on the
/// same images (Keras's initial weights, `digits_scratch.keras`) is the baseline. The result is
/// written as .keras and .onnx, each read back and checked: frozen tensors byte for byte against the
/// grafted model, and each file's predictions against the trained model's.
package struct TransferDemo {
    package struct Settings: Sendable {
        package var perClass = 5
        package var headEpochs = 30
        package var fineTuneEpochs = 20
        package var batchSize = 16
        package var learningRate: Float = 0.01
        package var unfreezeTop = 4
        package var seed: UInt64 = 0
        /// The baseline is scored on the test images every this many epochs (see `run`).
        package var scratchValidationInterval = 10
        package init() {}
    }

    /// One trained model's score on the held-out images.
    package struct Outcome: Sendable, Encodable {
        package var name: String
        package var labelledImages: Int
        package var testAccuracy: Double
        package var trainedValues: Int
        /// Time spent training: the frozen prefix run once per sample plus the epochs' batches
        /// (validation after each epoch is not training, so it is left out).
        package var seconds: Double
    }

    /// What was checked on one written file, computed once: its tensors against the grafted model,
    /// and its predictions on the test images against the trained model's.
    package struct FileCheck: Sendable, Encodable {
        package var file: String
        package var verification: TrainingVerification
        /// Largest difference between the file's class scores and the trained model's (infinity when
        /// the shapes differ), and the most allowed (a written format may round differently).
        package var predictionDifference: Double
        package var predictionTolerance: Double
        package var testImages: Int

        package var predictionsAgree: Bool { predictionDifference <= predictionTolerance }
        package var passed: Bool { verification.passed && predictionsAgree }

        /// The prediction half of the check in words.
        package var predictionSummary: String {
            let agreement = predictionDifference == 0 ? "identical to"
                : predictionsAgree ? "within \(Readable.number(predictionDifference)) of"
                : "DIFFERENT from (max difference \(Readable.number(predictionDifference)), allowed \(Readable.number(predictionTolerance)))"
            return "predictions on the \(testImages) test images \(agreement) the trained model's"
        }

        package var summary: String { verification.summary + "; " + predictionSummary }

        enum CodingKeys: String, CodingKey { case file, verification, predictionDifference, predictionTolerance, predictionsAgree, passed }

        package func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(file, forKey: .file)
            try container.encode(verification, forKey: .verification)
            // null when the shapes differ (JSON has no infinity).
            try container.encode(predictionDifference.isFinite ? predictionDifference : nil as Double?, forKey: .predictionDifference)
            try container.encode(predictionTolerance, forKey: .predictionTolerance)
            try container.encode(predictionsAgree, forKey: .predictionsAgree)
            try container.encode(passed, forKey: .passed)
        }
    }

    package struct Result: Sendable {
        /// The settings the run used (the report states them).
        package var settings: Settings
        package var outcomes: [Outcome]
        package var testImages: Int
        /// One check per written model file (.keras, .onnx), each read back.
        package var checks: [FileCheck]
        /// The transfer run (head, then fine-tune) and the from-scratch baseline, epoch by epoch.
        package var history: [FineTuning.EpochRecord]
        package var scratchHistory: [FineTuning.EpochRecord]
        package var passed: Bool { checks.allSatisfy(\.passed) }
    }

    package let fixtures: String
    package let outputDirectory: String
    package var settings = Settings()
    package var force = false

    package init(fixtures: String, outputDirectory: String) {
        self.fixtures = fixtures
        self.outputDirectory = outputDirectory
    }

    /// The fixture files the demo reads, in the order it reads them.
    package static let fixtureFiles = ["digits_cnn.keras", "fewshot.npz", "test.npz", "digits_scratch.keras"]
    /// The files it writes into its output folder (the report is the command's).
    package static let modelFiles = ["digits_5_9.keras", "digits_5_9.onnx"]

    func fixture(_ name: String) -> String { (fixtures as NSString).appendingPathComponent(name) }
    func output(_ name: String) -> String { (outputDirectory as NSString).appendingPathComponent(name) }

    package func run(events: (FineTuning.Event) -> Void = { _ in }, say: (String) -> Void = { _ in }) throws -> Result {
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
        try tuning.run(FineTuning.Phase(name: "head", options: options), data: (x, y), validation: test, events: events)
        outcomes.append(try score("transfer: head on the frozen base", tuning, x.shape[0], test))
        var second = options
        second.epochs = settings.fineTuneEpochs
        second.learningRate = FineTuning.tenth(of: settings.learningRate)
        second.seed = settings.seed &+ 1
        let thaw = FreezePass(unfreezeTop: settings.unfreezeTop, keepBatchNormFrozen: true)
        try tuning.run(FineTuning.Phase(name: "fine-tune", options: second, unfreeze: thaw), data: (x, y), validation: test, events: events)
        // The fine-tuned model's predictions: its score, and what its written files must predict.
        let transferPredictions = try Self.predict(tuning.model, test.x)
        outcomes.append(score("transfer: + top \(settings.unfreezeTop) layers fine-tuned", tuning, transferPredictions, x.shape[0], test))

        // The baseline: the same network from Keras's initial weights, every layer training, same budget,
        // scored on the same images every few epochs so its curves sit beside the transfer run's (every
        // epoch would triple the demo's time: nothing is cached when every layer trains).
        var scratchOptions = options
        scratchOptions.epochs = settings.headEpochs + settings.fineTuneEpochs
        var scratch = FineTuning(model: try Model.load(fixture("digits_scratch.keras")))
        try scratch.run(FineTuning.Phase(name: "scratch", options: scratchOptions, validationInterval: settings.scratchValidationInterval),
                        data: (x, y), validation: test,
                        events: events)
        outcomes.append(try score("from scratch, same images and epochs", scratch, x.shape[0], test))

        let checks = try writeAndVerify(tuning, grafted: grafted, test: test.x, expected: transferPredictions)
        return Result(settings: settings, outcomes: outcomes, testImages: test.x.shape[0], checks: checks, history: tuning.history,
                      scratchHistory: scratch.history)
    }

    func score(_ name: String, _ tuning: FineTuning, _ labelled: Int, _ test: (x: RuntimeTensor, y: RuntimeTensor)) throws -> Outcome {
        score(name, tuning, try Self.predict(tuning.model, test.x), labelled, test)
    }

    /// Accuracy of `predictions` (class scores per test image) against the test labels; the time and
    /// the values trained are those of the phase just run.
    func score(_ name: String, _ tuning: FineTuning, _ predictions: RuntimeTensor, _ labelled: Int,
               _ test: (x: RuntimeTensor, y: RuntimeTensor)) -> Outcome {
        let classes = predictions.count / max(test.x.shape[0], 1)
        var correct = 0
        for row in 0..<test.x.shape[0] {
            let scores = predictions.data[(row * classes)..<((row + 1) * classes)]
            if let best = scores.indices.max(by: { scores[$0] < scores[$1] }), best - row * classes == Int(test.y.data[row]) { correct += 1 }
        }
        let plan = tuning.plans.last
        let seconds = (plan?.prefixSeconds ?? 0) + tuning.history.filter { $0.phase == plan?.phase }.map(\.seconds).reduce(0, +)
        return Outcome(name: name, labelledImages: labelled, testAccuracy: Double(correct) / Double(max(test.x.shape[0], 1)),
                       trainedValues: plan?.trainableValues ?? 0, seconds: seconds)
    }

    static func predict(_ model: Model, _ x: RuntimeTensor) throws -> RuntimeTensor {
        let executor = try model.executor()
        guard let input = executor.graph.inputs.first?.name, let output = executor.graph.outputs.first,
              let result = try executor.run([input: x])[output] else {
            throw ScionError(file: model.path, "gave no output")
        }
        return result
    }

    /// Writes the fine-tuned model as .keras and .onnx and checks each file as read back. A failed
    /// check is returned, not thrown: the command shows it (terminal, report) and then fails.
    func writeAndVerify(_ tuning: FineTuning, grafted: Model, test: RuntimeTensor, expected: RuntimeTensor) throws -> [FileCheck] {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: outputDirectory, isDirectory: &isDirectory) {
            // Its parent was checked before training; only the folder itself is made.
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: false)
        }
        let scale = Double(expected.data.map(abs).max() ?? 1)
        var checks: [FileCheck] = []
        for name in Self.modelFiles {
            let path = output(name)
            try tuning.model.write(to: path, options: Model.WriteOptions(force: force))
            let back = try Model.load(path)
            let verification = try TrainingVerification(reference: grafted, written: back, trained: tuning.mutable,
                                                        referenceName: "the grafted model")
            let predictions = try Self.predict(back, test)
            let difference = predictions.shape == expected.shape
                ? Double(zip(predictions.data, expected.data).map { abs($0 - $1) }.max() ?? 0) : .infinity
            checks.append(FileCheck(file: path, verification: verification, predictionDifference: difference,
                                    predictionTolerance: 1e-4 * scale, testImages: test.shape[0]))
        }
        return checks
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
