import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Transfer learning end to end in seconds: re-use a CNN pretrained on digits 0-4 for digits 5-9.",
        discussion: """
            A small CNN pretrained by Keras on scikit-learn's 8x8 digits 0-4 (fixtures/digits, with the script that \
            made it) is cut, grafted with a new head for the digits 5-9, frozen, trained on a few labelled images per \
            class, then its top layers are fine-tuned at a lower rate. The same network trained from scratch on the \
            same images is the baseline. The result is written as .keras and .onnx, read back and verified (frozen \
            tensors byte-identical, the same predictions), with an HTML report.
            """)

    @Option(help: "Folder of the digits fixtures (default: fixtures/digits here or next to the scion checkout).")
    var fixtures: String?

    @Option(help: "Folder for the trained model (.keras, .onnx) and the report.")
    var outputDir = "scion-demo"

    @Option(help: "Labelled images per class (1 to 20).")
    var perClass = 5

    @Option(help: "Seed for the new head's weights, shuffling and Dropout.")
    var seed: UInt64 = 0

    @Flag(help: "Replace files in the output folder.")
    var force = false

    @Flag(help: "Print the outcomes, checks and history as JSON.")
    var json = false

    func run() throws {
        BLAS.reexecIfNeeded()
        try reportingErrors {
            guard (1...20).contains(perClass) else { throw UsageError("--per-class must be 1 to 20 (the fixture has 20 per class)") }
            var demo = TransferDemo(fixtures: try locateFixtures(), outputDirectory: outputDir)
            demo.settings.perClass = perClass
            demo.settings.seed = seed
            demo.force = force
            let report = (outputDir as NSString).appendingPathComponent("report.html")
            for name in ["digits_5_9.keras", "digits_5_9.onnx", "report.html"] {
                let path = (outputDir as NSString).appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: path) && !force {
                    throw ScionError(file: path, "already exists; pass --force to replace it")
                }
            }
            let progress = TrainingProgress(quiet: json)
            let started = Date()
            let result = try demo.run(events: { event in
                // Epoch lines of the transfer phases only: the baseline's would double the output.
                if case .epoch(let record) = event, record.phase == "scratch" || record.epoch % 10 != 0 { return }
                if case .batch(let phase, _) = event, phase == "scratch" { return }
                progress.handle(event)
            }, say: progress.say)
            try writeReport(result, to: report, fixtures: demo.fixtures)
            if json {
                try printJSON(DemoSummary(outcomes: result.outcomes, testImages: result.testImages, written: result.written + [report],
                                          checks: result.checks, history: result.history))
                return
            }
            progress.say("")
            progress.say("Test accuracy on \(result.testImages) images of digits 5-9 never seen in training:")
            let width = result.outcomes.map(\.name.count).max() ?? 0
            for outcome in result.outcomes {
                let name = outcome.name.padding(toLength: width, withPad: " ", startingAt: 0)
                progress.say("  \(name)  " + String(format: "%5.1f%%   (%d labelled images, %d values trained in %.1f s)",
                                                     100 * outcome.testAccuracy, outcome.labelledImages, outcome.trainedValues, outcome.seconds))
            }
            progress.say("")
            for check in result.checks { progress.say("Verified \(check)") }
            progress.say("Wrote \((result.written + [report]).joined(separator: ", ")) in " + String(format: "%.1f s.", Date().timeIntervalSince(started)))
        }
    }

    struct DemoSummary: Encodable {
        var outcomes: [TransferDemo.Outcome]
        var testImages: Int
        var written: [String]
        var checks: [String]
        var history: [FineTuning.EpochRecord]
    }

    /// fixtures/digits in the current folder, else in the checkout the binary was built in
    /// (.build/<configuration>/scion → ../../fixtures/digits).
    func locateFixtures() throws -> String {
        if let fixtures { return fixtures }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = ["fixtures/digits",
                          executable.deletingLastPathComponent().appendingPathComponent("../../fixtures/digits").standardized.path,
                          executable.deletingLastPathComponent().appendingPathComponent("../../../fixtures/digits").standardized.path]
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent("digits_cnn.keras")) }) else {
            throw ScionError(file: "fixtures/digits", "not found (looked in \(candidates.joined(separator: ", "))); pass --fixtures DIR")
        }
        return found
    }

    func writeReport(_ result: TransferDemo.Result, to path: String, fixtures: String) throws {
        let before = try Model.load((fixtures as NSString).appendingPathComponent("digits_cnn.keras"))
        guard let keras = result.written.first(where: { $0.hasSuffix(".keras") }) else { return }
        let after = try Model.load(keras)
        let rows = result.history.enumerated().map { index, entry in
            TrainingReport.EpochRow(epoch: index + 1, loss: entry.loss, accuracy: entry.accuracy, validationLoss: entry.validationLoss,
                                    validationAccuracy: entry.validationAccuracy, seconds: entry.seconds)
        }
        var settings = [("task", "digits 5-9 from \(perClass) labelled images per class, on a CNN pretrained by Keras on digits 0-4"),
                        ("validation", "\(result.testImages) held-out images (val_* curves)")]
        for outcome in result.outcomes {
            settings.append((outcome.name, String(format: "%.1f%% test accuracy, %d values trained", 100 * outcome.testAccuracy, outcome.trainedValues)))
        }
        for check in result.checks { settings.append(("verified", check)) }
        let page = try TrainingReport(title: "scion demo: transfer learning on digits", settings: settings, epochs: rows,
                                      before: before, after: after, diff: try ModelDiff(before, after)).html()
        try AtomicFile.write(to: path) { try Data(page.utf8).write(to: URL(fileURLWithPath: $0)) }
    }
}
