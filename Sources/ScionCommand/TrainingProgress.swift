import Foundation
import Scion

/// Prints a fine-tuning run as Keras does: on a terminal, a bar redrawn in place as the batches
/// go (running loss and accuracy, ETA), then one line per epoch; when the output is a file or a
/// pipe, only the per-epoch lines (no carriage returns in logs). Numbers as people read them
/// (`loss 0.0278`), not fixed decimals that turn small losses into `0.0000`.
final class TrainingProgress {
    let quiet: Bool
    let terminal: Bool
    /// Where the text goes: standard output, unbuffered (the bar and the lines must arrive in order).
    let write: (String) -> Void
    private var lastDraw = Date.distantPast
    private var epochSeconds: [String: [Double]] = [:]

    init(quiet: Bool, terminal: Bool = isatty(STDOUT_FILENO) != 0,
         write: @escaping (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }) {
        self.quiet = quiet
        self.terminal = terminal
        self.write = write
    }

    /// Where the progress goes for a command's printing mode. Normally stdout. With `--json`, stdout
    /// carries the JSON object alone, so the progress goes to stderr when that is a terminal (a
    /// person is watching) and nowhere otherwise (a script capturing stderr gets only errors there).
    /// With `--quiet`, nowhere.
    static func forCommand(_ printing: ReportOptions) -> TrainingProgress {
        if printing.quiet { return TrainingProgress(quiet: true) }
        if printing.json {
            let terminal = isatty(STDERR_FILENO) != 0
            return TrainingProgress(quiet: !terminal, terminal: terminal, write: { FileHandle.standardError.write(Data($0.utf8)) })
        }
        return TrainingProgress(quiet: false)
    }

    func handle(_ event: FineTuning.Event) {
        guard !quiet else { return }
        switch event {
        case .planned(let plan):
            say(Self.describe(plan))
        case .batch(let phase, let progress):
            guard terminal, progress.batch == progress.batches || Date().timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = Date()
            let width = 24, done = width * progress.batch / max(progress.batches, 1)
            let bar = String(repeating: "=", count: max(done - 1, 0)) + (done > 0 ? (done == width ? "=" : ">") : "")
                + String(repeating: ".", count: width - done)
            let remaining = progress.seconds / Double(progress.batch) * Double(progress.batches - progress.batch)
            var line = "\(Self.label(phase)) \(progress.epoch) \(progress.batch)/\(progress.batches) [\(bar)]"
                + " ETA \(Readable.seconds(remaining)) - loss \(Readable.number(progress.loss))"
            if let accuracy = progress.accuracy { line += " - accuracy \(Readable.number(accuracy))" }
            write("\r\u{1B}[2K\(line)")
        case .epoch(let record):
            epochSeconds[record.phase, default: []].append(record.seconds)
            let spent = epochSeconds[record.phase] ?? []
            let remaining = spent.reduce(0, +) / Double(max(spent.count, 1)) * Double(record.epochs - record.epoch)
            var line = "\(Self.label(record.phase)) \(record.epoch)/\(record.epochs) - loss \(Readable.number(record.loss))"
            if let accuracy = record.accuracy { line += " - accuracy \(Readable.number(accuracy))" }
            if let loss = record.validationLoss { line += " - val_loss \(Readable.number(loss))" }
            if let accuracy = record.validationAccuracy { line += " - val_accuracy \(Readable.number(accuracy))" }
            line += " - \(Readable.seconds(record.seconds))"
            if record.epoch < record.epochs { line += " - ETA \(Readable.seconds(remaining))" }
            if terminal { write("\r\u{1B}[2K") }
            say(line)
        }
    }

    func say(_ line: String) {
        guard !quiet else { return }
        write(line + "\n")
    }

    static func label(_ phase: String) -> String { phase == "head" ? "Epoch" : "\(phase) epoch" }

    /// What a phase trains and how: "the frozen base ran once per sample" is the bottleneck trick.
    static func describe(_ plan: FineTuning.PhasePlan) -> String {
        var text = "\(plan.phase): training \(plan.trainableTensors) tensors (\(Readable.count(plan.trainableValues)) values) in \(plan.trainedNodes) node\(plan.trainedNodes == 1 ? "" : "s")"
        if !plan.unfrozen.isEmpty { text += "; unfrozen: \(plan.unfrozen.joined(separator: ", "))" }
        if !plan.batchNormKeptFrozen.isEmpty {
            text += "; BatchNormalization kept frozen (inference mode): \(plan.batchNormKeptFrozen.joined(separator: ", "))"
        }
        if plan.prefixNodes == 0 || !plan.prefixHasWeights {
            text += "; nothing frozen before them, every node runs each step"
        } else if plan.cached {
            text += "; features cached: the frozen prefix (\(plan.prefixNodes) nodes) ran once per sample in \(Readable.seconds(plan.prefixSeconds))"
        } else {
            text += "; the frozen prefix (\(plan.prefixNodes) nodes) reruns each batch (its outputs would not fit the 2 GiB cache)"
        }
        if plan.lossFromLogits {
            text += "; the model ends in logits (no softmax or sigmoid), so the loss reads them as logits (Keras's from_logits=True)"
        }
        return text + "."
    }
}
