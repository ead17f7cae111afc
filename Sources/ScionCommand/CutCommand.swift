import ArgumentParser
import Foundation
import Scion
import ScionPasses

struct CutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cut",
        abstract: "Keep a layer and all it depends on; its output becomes the model's output.")

    @OptionGroup var source: ModelArgument

    @Option(help: "The layer to cut after (full name, nested name, or a unique suffix).")
    var after: String?

    @Flag(help: "Drop the classifier, as keras.applications' include_top=False does.")
    var dropTop = false

    @OptionGroup(title: "Output") var destination: ModelOutputOptions

    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard (after != nil) != dropTop else { throw ValidationError("give exactly one of --after LAYER or --drop-top") }
    }

    func run() throws {
        try reportingErrors {
            let started = Date()
            let output = try destination.check()
            var model = try Model.load(source.input)
            try model.apply(CutPass(dropTop ? .dropTop : .after(after ?? "")))
            try destination.write(model, to: output, command: "cut", input: source.input, started: started, report: report)
        }
    }
}

/// Parses a head specification, reporting mistakes against the option.
func parseHead(_ text: String) throws -> HeadSpec {
    do {
        return try HeadSpec(parsing: text)
    } catch let error as HeadSpecError {
        throw UsageError("--head \(text): \(error)")
    }
}
