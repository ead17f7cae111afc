import ArgumentParser
import Foundation
import Scion

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What changed between two models: layers removed, added, changed; weights; trainability.",
        discussion: """
            Compares what the models compute, not how a format writes it: a Keras model and its ONNX \
            conversion (or an ONNX model and its Keras conversion) diff empty. Layers are matched by name, \
            then by position and type where names differ; each changed setting is one line in Keras's words \
            (units, filters, kernel_size, activation...); weights are compared by layer and role.

            Exit status 0 when the models are the same, 3 when they differ, 1 on an error.
            """)

    @Argument(help: "The model before (.h5, .keras, .onnx).", completion: .file(extensions: ["h5", "keras", "onnx"]))
    var before: String

    @Argument(help: "The model after.", completion: .file(extensions: ["h5", "keras", "onnx"]))
    var after: String

    @OptionGroup var report: ReportOptions

    func run() throws {
        var same = true
        try reportingErrors {
            let diff = try ModelDiff(try Model.load(before), try Model.load(after))
            try report.finish(diff, line: diff.text(), spellNonFinite: true)
            same = diff.isEmpty
        }
        if !same { throw ExitStatus.differ }
    }
}
