import ArgumentParser
import Foundation
import Scion
import ScionPasses

struct EditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "The transfer-learning recipe in one step: cut, graft a head, freeze the base.",
        discussion: "The options mean what they mean in cut, graft and freeze: --after/--drop-top cut, --head grafts, --up-to/--freeze-base freeze.")

    @OptionGroup var source: ModelArgument

    @Option(help: "Cut after this layer.")
    var after: String?

    @Flag(help: "Drop the classifier, as keras.applications' include_top=False does.")
    var dropTop = false

    @Option(help: "The layers to append, comma-separated (see `scion graft --help`).")
    var head: String?

    @Option(help: "Freeze this layer and every layer it depends on.")
    var upTo: String?

    @Flag(help: "Freeze everything but the new head.")
    var freezeBase = false

    @Option(help: "Seed for the new weights (the same seed gives the same weights).")
    var seed: UInt64 = 0

    @OptionGroup(title: "Output") var destination: ModelOutputOptions

    @OptionGroup var report: ReportOptions

    func validate() throws {
        if after != nil && dropTop { throw ValidationError("give at most one of --after LAYER and --drop-top") }
        if upTo != nil && freezeBase { throw ValidationError("give at most one of --up-to LAYER and --freeze-base") }
        if after == nil && !dropTop && head == nil && upTo == nil && !freezeBase {
            throw ValidationError("nothing to do; give --after/--drop-top, --head and/or --up-to/--freeze-base")
        }
    }

    func run() throws {
        try reportingErrors {
            let started = Date()
            let spec = try head.map(parseHead)
            let output = try destination.check()
            var model = try Model.load(source.input)
            var cutPoint = after
            if dropTop { cutPoint = try model.resolving { try CutPass.dropTopLayer(in: $0) } }
            // The base ends where the head starts: the cut point, or the producer of the output.
            let baseEnd = cutPoint ?? (model.graph.outputs.count == 1
                ? model.graph.nodes.first { $0.outputs.contains(model.graph.outputs[0]) }?.name : nil)
            if let spec {
                // Cutting and grafting in one pass keeps the removed classifier's names out of the head.
                try model.apply(GraftPass(head: spec, at: cutPoint, seed: seed))
            } else if let cutPoint {
                try model.apply(CutPass(.after(cutPoint)))
            }
            if let upTo { try model.apply(FreezePass(upTo: upTo)) }
            if freezeBase {
                guard let baseEnd else { throw ScionError(file: source.input, "--freeze-base needs a model with one output") }
                try model.apply(FreezePass(upTo: baseEnd))
            }
            try destination.write(model, to: output, command: "edit", input: source.input, started: started, report: report)
        }
    }
}
