import ArgumentParser
import Foundation
import Scion
import ScionPasses

struct GraftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graft",
        abstract: "Append new layers with Keras's default initialisers, e.g. --head gap,dropout:0.2,dense:5:softmax.",
        discussion: "Head items: gap, gmp, flatten, dense:UNITS[:ACTIVATION], dropout:RATE, bn, relu, sigmoid, softmax, tanh, swish, gelu (docs/surgery.md).")

    @OptionGroup var source: ModelArgument

    @Option(help: "The layers to append, comma-separated.")
    var head: String

    @Option(help: "Graft onto this layer's output instead of the model's output (the layers after it are cut).")
    var after: String?

    @Option(help: "Seed for the new weights (the same seed gives the same weights).")
    var seed: UInt64 = 0

    @OptionGroup(title: "Output") var destination: ModelOutputOptions

    @OptionGroup var report: ReportOptions

    func run() throws {
        try reportingErrors {
            let started = Date()
            let spec = try parseHead(head)
            let output = try destination.check()
            var model = try Model.load(source.input)
            try model.apply(GraftPass(head: spec, at: after, seed: seed))
            try destination.write(model, to: output, command: "graft", input: source.input, started: started, report: report)
        }
    }
}
