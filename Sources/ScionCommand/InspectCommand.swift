import ArgumentParser
import Foundation
import Scion

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's layers, shapes, parameter counts and trainability.")

    @OptionGroup var source: ModelArgument

    @Flag(help: "List every weight tensor with its shape, bytes and CRC-32 (reads the weights).")
    var weights = false

    @OptionGroup var report: ReportOptions

    func run() throws {
        try reportingErrors {
            let loaded = try Model.load(source.input)
            let summary = try ModelSummary(graph: loaded.graph, format: loaded.format.rawValue,
                                           includeWeights: weights, checksums: weights)
            try report.finish(summary, line: summary.table())
        }
    }
}
