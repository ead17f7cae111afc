import ArgumentParser
import Foundation
import Scion

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's layers, shapes, parameter counts and trainability."
    )

    @Argument(help: "The model file (.h5, .keras).")
    var model: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Flag(help: "List every weight tensor with its shape, bytes and CRC-32 (reads the weights).")
    var weights = false

    func run() throws {
        try reportingErrors {
            let loaded = try Model.load(model)
            let summary = try ModelSummary(graph: loaded.graph, format: loaded.format.rawValue,
                                           includeWeights: weights, checksums: weights)
            if json {
                try printJSON(summary)
            } else {
                print(summary.table())
            }
        }
    }
}
