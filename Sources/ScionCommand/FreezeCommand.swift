import ArgumentParser
import Foundation
import Scion
import ScionPasses

struct FreezeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "freeze",
        abstract: "Mark layers frozen or trainable (moving statistics are never trainable).",
        discussion: """
            Applied in order: --all, --up-to, --layers freeze; then --unfreeze and --unfreeze-top make layers trainable. \
            Thawed BatchNormalization layers stay frozen (inference mode), as Keras's transfer-learning guide advises, \
            unless --train-batch-norm; scion finetune follows the same rule.
            """)

    @OptionGroup var source: ModelArgument

    @Option(help: "Freeze this layer and every layer it depends on.")
    var upTo: String?

    @Option(help: "Freeze the layers whose name matches this regular expression.")
    var layers: String?

    @Flag(help: "Freeze every layer.")
    var all = false

    @Option(help: "Make the layers matching this regular expression trainable (applied last).")
    var unfreeze: String?

    @Option(parsing: .unconditional, help: "Make the last N layers of the base trainable (the base: every layer before the first trainable one).")
    var unfreezeTop: Int?

    @Flag(help: "With --unfreeze or --unfreeze-top, make thawed BatchNormalization layers trainable too.")
    var trainBatchNorm = false

    @OptionGroup(title: "Output") var destination: ModelOutputOptions

    @OptionGroup var report: ReportOptions

    func validate() throws {
        if let unfreezeTop, unfreezeTop < 1 { throw ValidationError("--unfreeze-top must be 1 or more") }
        if trainBatchNorm && unfreeze == nil && unfreezeTop == nil {
            throw ValidationError("--train-batch-norm applies with --unfreeze or --unfreeze-top")
        }
    }

    func run() throws {
        try reportingErrors {
            let started = Date()
            let output = try destination.check()
            var model = try Model.load(source.input)
            try model.apply(FreezePass(all: all, upTo: upTo, layers: layers, unfreeze: unfreeze, unfreezeTop: unfreezeTop,
                                       keepBatchNormFrozen: !trainBatchNorm))
            try destination.write(model, to: output, command: "freeze", input: source.input, started: started, report: report)
        }
    }
}
