import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model forward on the CPU: .npy inputs in, .npy outputs out.")

    @OptionGroup var source: ModelArgument

    @Option(name: .customLong("input"), help: "A .npy array per model input, in the model's input order, or an .npz of them by name.",
            completion: .file(extensions: ["npy", "npz"]))
    var inputs: [String] = []

    @Option(name: [.customShort("o"), .long], help: "Where to write: OUT.npy for one array, OUT.npz for several outputs or --layer taps (by name).",
            completion: .file(extensions: ["npy", "npz"]))
    var output: String

    @Option(name: .customLong("layer"), help: "Also write this layer's output (repeatable).")
    var layers: [String] = []

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @Flag(help: "Also print the BLAS kernel in use and the time of each stage.")
    var verbose = false

    @Flag(help: "Also print where the forward pass spends its time: per op type and the slowest nodes.")
    var profile = false

    @Option(name: .customLong("weights-cache"), help: ArgumentHelp(
        "Keep the model's prepared weights (and the check of a Keras file's structure) in this folder and use them on the next run of the same unchanged file (also SCION_WEIGHTS_CACHE).",
        valueName: "dir"), completion: .directory)
    var weightsCache: String?

    @Option(name: .customLong("repeat"), parsing: .unconditional, help: "Run the forward pass this many times (benchmarks); the time reported is the fastest.")
    var repetitions: Int = 1

    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repeat must be 1 or more") }
    }

    struct Result: Encodable {
        struct Array: Encodable { var name: String; var shape: [Int] }
        var command = "run"
        var input: String
        var output: String
        var arrays: [Array]
        var readSeconds: Double
        var prepareSeconds: Double
        var runSeconds: Double
        /// CPU time of the process (all threads) during the pass with the least of it: the work a
        /// pass takes, which a machine shared with other jobs stretches far less than `runSeconds`.
        var runCPUSeconds: Double
        var repetitions: Int
        var blas: String
        /// With a weights cache: "used", "written" or "not written: why", and the cache file.
        var weightsCache: String?
        /// With --profile: each node's time per pass, in the order the nodes ran.
        var profile: [ProfiledNode]?
        struct ProfiledNode: Encodable { var node: String; var op: String; var milliseconds: Double }
    }

    func run() throws {
        BLAS.reexecIfNeeded()
        try reportingErrors {
            try OutputCheck.check(output, force: force, extensions: ["npy", "npz"], what: "arrays")
            ProcessMemory.prepareToRead(source.input)
            let start = Date()
            var loadedAt = start
            let (executor, modelOutputs) = try prepareExecutor(loadedAt: &loadedAt)
            var feeds: [String: RuntimeTensor]? = try readInputs(inputs, for: executor.graph.inputs.map(\.name), model: source.input)
            let batch = feeds?.values.first?.shape.first ?? 1
            ProcessMemory.settleBeforeThePass(largestValues: executor.twoLargestValueBytes(batch: batch))
            var results: [String: RuntimeTensor] = [:]
            let preparedAt = Date()
            var fastest = Double.infinity, leastCPU = Double.infinity
            let timings = profile ? ExecutorProfile() : nil
            for repetition in 0..<repetitions {
                let started = Date(), startedCPU = Self.processCPUSeconds()
                do {
                    // The last pass is given the arrays themselves: each input is freed once the
                    // first op that reads it is done, rather than held here for the whole pass.
                    results = try executor.run(repetition == repetitions - 1 ? feeds.take() ?? [:] : feeds ?? [:], profile: timings)
                } catch let error as RuntimeError {
                    throw ScionError(file: source.input, error.description)
                }
                fastest = min(fastest, Date().timeIntervalSince(started))
                leastCPU = min(leastCPU, Self.processCPUSeconds() - startedCPU)
                if repetition == 0 && repetitions > 1 { ProcessMemory.keepFreedBlocks() }
            }
            // Outputs under their value names, then each tap under the name it was asked by.
            let entries = modelOutputs.map { ($0, $0) } + layers.compactMap { layer in executor.taps[layer].map { (layer, $0) } }
            let names = entries.map(\.0)
            let arrays = try entries.map { name, value -> (name: String, tensor: RuntimeTensor) in
                guard let tensor = results[value] else { throw ScionError(file: source.input, "\(value): not computed") }
                return (name, tensor)
            }
            if output.lowercased().hasSuffix(".npz") {
                try AtomicFile.write(to: output) { try NumpyArchive.write(arrays, to: $0) }
            } else {
                guard arrays.count == 1 else {
                    throw ScionError(file: output, "\(arrays.count) arrays to write (\(names.joined(separator: ", "))); give -o OUT.npz")
                }
                try AtomicFile.write(to: output) { temporary in
                    try Data(NumpyFile.encode(arrays[0].tensor)).write(to: URL(fileURLWithPath: temporary))
                }
            }
            let result = Result(input: source.input, output: output, arrays: arrays.map { .init(name: $0.name, shape: $0.tensor.shape) },
                                readSeconds: loadedAt.timeIntervalSince(start), prepareSeconds: preparedAt.timeIntervalSince(loadedAt),
                                runSeconds: fastest, runCPUSeconds: leastCPU, repetitions: repetitions, blas: BLAS.kernelReport,
                                weightsCache: executor.weightsCacheOutcome.map(Self.describe),
                                profile: timings?.nodes.map { .init(node: $0.node, op: $0.op, milliseconds: $0.seconds * 1000 / Double(repetitions)) })
            if verbose && report.talks {
                for array in result.arrays { print("\(array.name): \(array.shape)") }
                print("read \(Readable.seconds(result.readSeconds)), prepare \(Readable.seconds(result.prepareSeconds)), run "
                      + "\(Readable.seconds(fastest))\(repetitions > 1 ? " (fastest of \(repetitions))" : ""), "
                      + "CPU \(Readable.seconds(leastCPU)) per pass (all threads)")
                print("BLAS: \(BLAS.kernelReport)")
                if let cache = result.weightsCache { print("weights cache: \(cache)") }
                print("plan: \(executor.planSummary)")
            }
            if let timings, report.talks { print(timings.table(passes: repetitions)) }
            let shapes = result.arrays.map { "\($0.name) \($0.shape)" }.joined(separator: ", ")
            try report.finish(result, line: "wrote \(output) (\(shapes)) in \(Readable.seconds(Date().timeIntervalSince(start)))")
        }
    }

    /// The executor for the model and the model's output names. The model itself lives only in
    /// here: once the executor has read the weights, nothing else holds them while it runs (an
    /// ONNX file's bytes, a `.keras` archive's mapped pages are freed when this returns). A model
    /// that holds no weight bytes is left to the process's exit instead: an `.h5` file's (its
    /// datasets are read into the executor's own arrays), and a `.keras` archive's whose prepared
    /// weights came from the cache (its mapped pages never touched). Closing an HDF5 file's
    /// hundreds of datasets took 10 ms of DenseNet121's preparation, work the exit does for nothing.
    func prepareExecutor(loadedAt: inout Date) throws -> (Executor, [String]) {
        let cache = weightsCache ?? ProcessInfo.processInfo.environment["SCION_WEIGHTS_CACHE"].flatMap { $0.isEmpty ? nil : $0 }
        let loaded = try Model.load(source.input, cache: cache)
        loadedAt = Date()
        do {
            let executor = try loaded.executor(taps: layers, weightsCache: cache)
            if loaded.format == .kerasHDF5 || (loaded.format == .kerasArchive && executor.weightsCacheOutcome?.isUsed == true) {
                ProcessMemory.leaveToExit(loaded)
            }
            return (executor, loaded.graph.outputs)
        } catch let error as RuntimeError {
            throw ScionError(file: source.input, error.description)
        }
    }

    /// The weights cache's outcome as `run` reports it.
    static func describe(_ outcome: WeightsCache.Outcome) -> String {
        switch outcome {
        case .used(let path): return "used \(path)"
        case .written(let path): return "written \(path)"
        case .notWritten(let reason): return "not written: \(reason)"
        }
    }

    /// CPU seconds this process has used so far, all threads together.
    static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
