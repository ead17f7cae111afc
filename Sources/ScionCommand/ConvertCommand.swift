import ArgumentParser
import Foundation
import Scion

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a model between formats (.h5, .keras, .onnx), chosen by the output's extension.",
        discussion: "Give the output as the second argument or with -o (scion convert in.h5 out.onnx, scion convert in.h5 -o out.onnx).")

    @OptionGroup var source: ModelArgument

    @Argument(help: ArgumentHelp("The file to write (or give -o); its extension picks the format.", valueName: "output"),
              completion: .file(extensions: ["onnx", "h5", "keras"]))
    var positionalOutput: String?

    @OptionGroup(title: "Output") var destination: ModelOutputOptions

    @OptionGroup var report: ReportOptions

    func run() throws {
        try reportingErrors {
            let started = Date()
            let output = try destination.check(positional: positionalOutput)
            let model = try Model.load(source.input)
            try destination.write(model, to: output, command: "convert", input: source.input, started: started, report: report)
        }
    }
}
