import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Transfer learning end to end in seconds: re-use a CNN pretrained on digits 0-4 for digits 5-9.",
        discussion: """
            A small CNN pretrained by Keras on scikit-learn's 8x8 digits 0-4 (shipped with scion, made by \
            fixtures/make_digits.py) is cut, grafted with a new head for the digits 5-9, frozen, trained on a few \
            labelled images per class, then its top layers are fine-tuned at a lower rate. The same network trained \
            from scratch on the same images is the baseline. The result is written as digits_5_9.keras and \
            digits_5_9.onnx, each read back and verified (frozen tensors byte-identical to the grafted model, the \
            same predictions), with report.html beside them.
            """)

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The folder to write into (its parent must exist).", valueName: "folder"),
            completion: .directory)
    var output = "scion-demo"

    @Flag(help: "Replace the demo's files in the folder if they exist.")
    var force = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Labelled images per class (1 to 20).", valueName: "n"))
    var perClass = 5

    @Option(parsing: .unconditional, help: ArgumentHelp("Seed for the new head's weights, shuffling and Dropout.", valueName: "n"))
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Read the model and data from this folder instead of the copies shipped with scion.", valueName: "folder"),
            completion: .directory)
    var fixtures: String?

    @OptionGroup var printing: ReportOptions

    func validate() throws {
        guard (1...20).contains(perClass) else { throw ValidationError("--per-class \(perClass): must be 1 to 20 (the data has 20 per class)") }
    }

    /// The files the demo writes, full paths: a person can open them from anywhere.
    var files: [String] {
        let folder = URL(fileURLWithPath: output).standardizedFileURL
        return (TransferDemo.modelFiles + ["report.html"]).map { folder.appendingPathComponent($0).path }
    }

    func run() throws {
        BLAS.reexecIfNeeded()
        try reportingErrors {
            let started = Date()
            // The folder and every file in it are checked before the run, never after 10 s of training.
            try OutputCheck.checkFolder(output)
            for path in files {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
                if isDirectory.boolValue { throw ScionError(file: path, "is a folder, not a file") }
                if !force { throw ScionError(file: path, "already exists; pass --force to replace it") }
            }
            var demo = TransferDemo(fixtures: try locateFixtures(), outputDirectory: output)
            demo.settings.perClass = perClass
            demo.settings.seed = seed
            demo.force = force
            let progress = TrainingProgress.forCommand(printing)
            let result = try demo.run(events: { event in
                // Every 10th epoch line: 100 lines would bury the outcome.
                if case .epoch(let record) = event, record.epoch % 10 != 0 && record.epoch != record.epochs { return }
                progress.handle(event)
            }, say: progress.say)
            try finish(result, progress: progress, started: started)
        }
    }

    /// The outcome from the checks computed once in `TransferDemo`: the report first (it explains a
    /// failure too), then the terminal lines or the JSON object, or one error and exit 1. Model files
    /// that failed their check are removed.
    func finish(_ result: TransferDemo.Result, progress: TrainingProgress, started: Date) throws {
        let report = files[2]
        try writeReport(result, to: report)
        guard result.passed else {
            let failed = result.checks.filter { !$0.passed }
            for check in failed { try? FileManager.default.removeItem(atPath: check.file) }
            throw ScionError(file: failed[0].file, "verification failed, the file was removed: \(failed[0].summary); see \(report)")
        }
        if printing.json {
            try printJSON(DemoSummary(outcomes: result.outcomes, testImages: result.testImages, written: files, checks: result.checks,
                                      history: result.history, scratchHistory: result.scratchHistory, seconds: Date().timeIntervalSince(started)))
            return
        }
        guard printing.talks else { return }
        progress.say("")
        progress.say("Test accuracy on \(result.testImages) images of digits 5-9 never seen in training:")
        let width = result.outcomes.map(\.name.count).max() ?? 0
        for outcome in result.outcomes {
            let name = outcome.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let accuracy = Readable.percent(outcome.testAccuracy)
            let trained = "\(Readable.count(outcome.trainedValues)) values trained in \(Readable.seconds(outcome.seconds))"
            progress.say("  \(name)  \(String(repeating: " ", count: max(6 - accuracy.count, 0)))\(accuracy)   "
                + "(\(outcome.labelledImages) labelled images, \(trained))")
        }
        progress.say("")
        for check in result.checks { progress.say("Verified \(check.summary)") }
        for path in files { progress.say("wrote \(path)") }
        progress.say("Done in \(Readable.seconds(Date().timeIntervalSince(started))); open \(report) for the learning curves.")
    }

    struct DemoSummary: Encodable {
        var command = "demo"
        var outcomes: [TransferDemo.Outcome]
        var testImages: Int
        var written: [String]
        var checks: [TransferDemo.FileCheck]
        var history: [FineTuning.EpochRecord]
        var scratchHistory: [FineTuning.EpochRecord]
        var seconds: Double
    }

    /// `--fixtures`, else the copies shipped with the binary: SwiftPM's resource bundle, which `swift
    /// build` puts next to it and which must travel with it. The bundle is looked for before
    /// `Bundle.module` is touched, because SwiftPM's accessor stops the process when it finds none.
    func locateFixtures() throws -> String {
        func complete(_ folder: String) -> Bool {
            TransferDemo.fixtureFiles.allSatisfy { FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0)) }
        }
        if let fixtures {
            guard complete(fixtures) else {
                throw ScionError(file: fixtures, "does not hold the demo's files (\(TransferDemo.fixtureFiles.joined(separator: ", ")))")
            }
            return fixtures
        }
        let bundle = Bundle.main.bundleURL.appendingPathComponent("Scion_ScionCommand.resources")
        guard FileManager.default.fileExists(atPath: bundle.path), let folder = Bundle.module.url(forResource: "digits", withExtension: nil),
              complete(folder.path) else {
            throw ScionError(file: bundle.path, "not found: the demo's model and data travel with scion in this folder; copy it next to "
                + "the scion binary, or pass --fixtures DIR")
        }
        return folder.path
    }

    func writeReport(_ result: TransferDemo.Result, to path: String) throws {
        let run = result.settings
        let total = run.headEpochs + run.fineTuneEpochs
        var settings = [("task", "digits 5-9 from \(run.perClass) labelled images per class, on a CNN pretrained by Keras on digits 0-4"),
                        ("recipe", "cut after gap, graft Dense(5, softmax), freeze the base; head: Adam \(Readable.setting(run.learningRate)), "
                            + "\(run.headEpochs) epochs, batch \(run.batchSize); fine-tune: top \(run.unfreezeTop) layers thawed "
                            + "(BatchNormalization kept frozen), \(run.fineTuneEpochs) epochs at "
                            + Readable.setting(FineTuning.tenth(of: run.learningRate))),
                        ("baseline", "the same network from Keras's initial weights, every layer trained, the same \(total) epochs"),
                        ("validation", "the \(result.testImages) held-out test images (solid curves): after every epoch of the transfer run, "
                            + "every \(run.scratchValidationInterval) epochs of the baseline"),
                        ("seed", "\(run.seed)")]
        for outcome in result.outcomes {
            settings.append((outcome.name, "\(Readable.percent(outcome.testAccuracy)) test accuracy, "
                + "\(Readable.count(outcome.trainedValues)) values trained in \(Readable.seconds(outcome.seconds))"))
        }
        var page = TrainingReport(title: "scion demo: transfer learning on digits", settings: settings,
                                  runs: [TrainingReport.Run(name: "transfer", history: result.history),
                                         TrainingReport.Run(name: "from scratch", history: result.scratchHistory)],
                                  verifications: result.checks.map(\.verification), validationName: "test images")
        page.verdicts = result.checks.map { ($0.summary, $0.passed) }
        page.addModelPictures(source: (try locateFixtures() as NSString).appendingPathComponent("digits_cnn.keras"), trained: files[0])
        try AtomicFile.write(to: path) { try Data(page.html().utf8).write(to: URL(fileURLWithPath: $0)) }
    }
}
