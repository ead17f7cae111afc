import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model forward on the CPU: .npy inputs in, .npy outputs out.")

    @Argument(help: "The model to run (.h5, .keras, .onnx).")
    var model: String

    @Option(name: .customLong("input"), help: "A .npy array per model input, in the model's input order.")
    var inputs: [String] = []

    @Option(help: "Where to write the output (.npy); with several outputs or taps, OUT_0.npy, OUT_1.npy... are written.")
    var output: String

    @Option(name: .customLong("layer"), help: "Also write this layer's output (repeatable).")
    var layers: [String] = []

    @Flag(help: "Replace existing output files.")
    var force = false

    @Flag(help: "Print the BLAS kernel in use and the time taken.")
    var verbose = false

    func run() throws {
        BLAS.reexecIfNeeded()
        try reportingErrors {
            let start = Date()
            let loaded = try Model.load(model)
            let loadedAt = Date()
            let executor: Executor
            do {
                executor = try Executor(graph: loaded.graph, taps: layers)
            } catch let error as RuntimeError {
                throw ScionError(file: model, error.description)
            }
            guard inputs.count == executor.graph.inputs.count else {
                throw ScionError(file: model, "takes \(executor.graph.inputs.count) input(s) (\(executor.graph.inputs.map(\.name).joined(separator: ", "))), \(inputs.count) --input given")
            }
            var feeds: [String: RuntimeTensor] = [:]
            for (input, path) in zip(executor.graph.inputs, inputs) { feeds[input.name] = try NumpyFile.read(path) }
            let results: [String: RuntimeTensor]
            let preparedAt = Date()
            do {
                results = try executor.run(feeds)
            } catch let error as RuntimeError {
                throw ScionError(file: model, error.description)
            }
            let ranAt = Date()
            let names = loaded.graph.outputs + layers.compactMap { executor.taps[$0] }.filter { !loaded.graph.outputs.contains($0) }
            let paths = names.count == 1 ? [output] : names.indices.map { output.replacingOccurrences(of: ".npy", with: "_\($0).npy") }
            for path in paths where FileManager.default.fileExists(atPath: path) && !force {
                throw ScionError(file: path, "already exists; pass --force to replace it")
            }
            for (name, path) in zip(names, paths) {
                guard let tensor = results[name] else { throw ScionError(file: model, "\(name): not computed") }
                try AtomicFile.write(to: path) { temporary in
                    try Data(NumpyFile.encode(tensor)).write(to: URL(fileURLWithPath: temporary))
                }
                if verbose || names.count > 1 { print("\(path): \(name) \(tensor.shape)") }
            }
            if verbose {
                print(String(format: "read %.3f s, prepare %.3f s, run %.3f s, total %.3f s", loadedAt.timeIntervalSince(start),
                             preparedAt.timeIntervalSince(loadedAt), ranAt.timeIntervalSince(preparedAt), Date().timeIntervalSince(start)))
                print("BLAS: \(BLAS.kernelReport)")
            }
        }
    }
}

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run two models on the same input and find the first layer whose outputs diverge.",
        discussion: "Exit status 0 when every shared layer and output agrees within the tolerance, 1 when they differ (the report says where) or on an error.")

    @Argument(help: "The reference model (.h5, .keras, .onnx).")
    var reference: String

    @Argument(help: "The model to check against it.")
    var candidate: String

    @Option(name: .customLong("input"), help: "A .npy array per model input.")
    var inputs: [String] = []

    @Option(help: "Largest max|a-b| / max|a| accepted.")
    var tolerance: Double = 1e-4

    @Flag(help: "Print one JSON object (layers, outputs, firstDivergence...).")
    var json = false

    func run() throws {
        BLAS.reexecIfNeeded()
        var agrees = true
        try reportingErrors {
            let arrays = try inputs.map(NumpyFile.read)
            let comparison: ModelComparison
            do {
                comparison = try ModelComparison(try Model.load(reference), try Model.load(candidate), inputs: arrays, tolerance: tolerance)
            } catch let error as RuntimeError {
                throw ScionError(file: reference, error.description)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
                print(String(decoding: try encoder.encode(comparison), as: UTF8.self))
            } else {
                print(comparison.text())
            }
            agrees = comparison.agrees
        }
        if !agrees { throw ExitCode(1) }
    }
}
