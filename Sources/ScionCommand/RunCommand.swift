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

    @Option(name: .customLong("input"), help: "A .npy array per model input, in the model's input order, or an .npz of them by name.")
    var inputs: [String] = []

    @Option(help: "Where to write: OUT.npy for one array, OUT.npz for several outputs or --layer taps (by name).")
    var output: String

    @Option(name: .customLong("layer"), help: "Also write this layer's output (repeatable).")
    var layers: [String] = []

    @Flag(help: "Replace existing output files.")
    var force = false

    @Flag(help: "Print the BLAS kernel in use and the time taken.")
    var verbose = false

    @Option(name: .customLong("repeat"), help: "Run the forward pass this many times (benchmarks); --verbose reports the fastest.")
    var repetitions: Int = 1

    func run() throws {
        BLAS.reexecIfNeeded()
        try reportingErrors {
            let start = Date()
            let loaded = try Model.load(model)
            let loadedAt = Date()
            let executor: Executor
            do {
                executor = try loaded.executor(taps: layers)
            } catch let error as RuntimeError {
                throw ScionError(file: model, error.description)
            }
            let feeds = try readInputs(inputs, for: executor.graph.inputs.map(\.name))
            var results: [String: RuntimeTensor] = [:]
            let preparedAt = Date()
            var fastest = Double.infinity
            for _ in 0..<max(repetitions, 1) {
                let started = Date()
                do {
                    results = try executor.run(feeds)
                } catch let error as RuntimeError {
                    throw ScionError(file: model, error.description)
                }
                fastest = min(fastest, Date().timeIntervalSince(started))
            }
            let ranAt = preparedAt.addingTimeInterval(fastest)
            // Outputs under their value names, then each tap under the name it was asked by.
            let entries = loaded.graph.outputs.map { ($0, $0) } + layers.compactMap { layer in executor.taps[layer].map { (layer, $0) } }
            let names = entries.map(\.0)
            if FileManager.default.fileExists(atPath: output) && !force {
                throw ScionError(file: output, "already exists; pass --force to replace it")
            }
            let arrays = try entries.map { name, value -> (name: String, tensor: RuntimeTensor) in
                guard let tensor = results[value] else { throw ScionError(file: model, "\(value): not computed") }
                return (name, tensor)
            }
            if output.hasSuffix(".npz") {
                try AtomicFile.write(to: output) { try NumpyArchive.write(arrays, to: $0) }
            } else {
                guard arrays.count == 1 else {
                    throw ScionError(file: output, "\(arrays.count) arrays to write (\(names.joined(separator: ", "))); give --output OUT.npz")
                }
                try AtomicFile.write(to: output) { temporary in
                    try Data(NumpyFile.encode(arrays[0].tensor)).write(to: URL(fileURLWithPath: temporary))
                }
            }
            if verbose {
                for (name, tensor) in arrays { print("\(name): \(tensor.shape)") }
            }
            if verbose {
                print(String(format: "read %.3f s, prepare %.3f s, run %.4f s%@, total %.3f s", loadedAt.timeIntervalSince(start),
                             preparedAt.timeIntervalSince(loadedAt), ranAt.timeIntervalSince(preparedAt),
                             repetitions > 1 ? " (fastest of \(repetitions))" : "", Date().timeIntervalSince(start)))
                print("BLAS: \(BLAS.kernelReport)")
            }
        }
    }
}

/// The arrays for a model's inputs: each `.npy` is the next input; an `.npz` gives its arrays by
/// name (or, when the names are not the model's, in order).
func readInputs(_ paths: [String], for names: [String]) throws -> [String: RuntimeTensor] {
    var ordered: [RuntimeTensor] = []
    var named: [String: RuntimeTensor] = [:]
    for path in paths {
        if path.hasSuffix(".npz") {
            for (name, tensor) in try NumpyArchive.read(path) {
                if names.contains(name) { named[name] = tensor } else { ordered.append(tensor) }
            }
        } else {
            ordered.append(try NumpyFile.read(path))
        }
    }
    let missing = names.filter { named[$0] == nil }
    guard ordered.count == missing.count else {
        throw ScionError(file: paths.first ?? "--input", "the model takes \(names.count) input(s) (\(names.joined(separator: ", "))); "
            + "\(ordered.count + named.count) array(s) given")
    }
    for (name, tensor) in zip(missing, ordered) { named[name] = tensor }
    return named
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
            let reference = try Model.load(self.reference)
            let named = try readInputs(inputs, for: reference.graph.inputs.map(\.name))
            let arrays = reference.graph.inputs.compactMap { named[$0.name] }
            let comparison: ModelComparison
            do {
                comparison = try ModelComparison(reference, try Model.load(candidate), inputs: arrays, tolerance: tolerance)
            } catch let error as RuntimeError {
                throw ScionError(file: self.reference, error.description)
            }
            if json {
                try printJSON(comparison, spellNonFinite: true)
            } else {
                print(comparison.text())
            }
            agrees = comparison.agrees
        }
        if !agrees { throw ExitCode(1) }
    }
}
