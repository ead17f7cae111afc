import ScionIR
import ScionPasses
import ScionRuntime

/// The executor for a loaded model: the graph lowered to the executor's form first. Every op it runs
/// is a case of `Op`, evaluated by the executor's kernels; layers the IR keeps opaque are refused by
/// name.
extension Model {
    /// An executor that runs this model forward. Each layer named in `taps` (full name, nested name
    /// or unique suffix) becomes an extra output; `taps` of the executor maps each name to the value
    /// that holds it.
    /// `weightsCache`: a folder where the executor keeps this model file's prepared weights
    /// between runs (`WeightsCache`); only for a model run as it was read from `path`.
    public func executor(taps: [String] = [], weightsCache: String? = nil) throws -> Executor {
        try Self.executor(for: graph, taps: taps, weightsCache: weightsCache.map { WeightsCache(directory: $0, source: path) })
    }

    /// An executor for any graph (a model's, or a view of it).
    static func executor(for graph: Graph, taps: [String], weightsCache: WeightsCache? = nil) throws -> Executor {
        let (lowered, tapped) = try lowered(graph, tapping: taps)
        return try Executor(graph: lowered, taps: tapped, weightsCache: weightsCache)
    }

    /// `graph` in the executor's form (`ExecutorLowering`), the layers named in `taps` made outputs
    /// first, so they come back in the model's own layout as its outputs do; with the value each
    /// tapped name now holds. Pass failures are the executor's errors (`RuntimeError`), as a user of
    /// the executor sees them.
    static func lowered(_ graph: Graph, tapping taps: [String] = []) throws -> (Graph, [String: String]) {
        var result = graph
        var tapped: [String: String] = [:]
        do {
            if !taps.isEmpty && !graph.hasArchitecture { throw RuntimeError(graph.name, "has no architecture (weights only); nothing to run") }
            for name in taps {
                let index = try NodeLookup(graph: result, pass: "run").index(of: name)
                guard let output = result.nodes[index].outputs.first else { throw RuntimeError(name, "has no output to tap") }
                tapped[name] = output
                if !result.outputs.contains(output) { result.outputs.append(output) }
            }
            // A weights-only graph has nothing to lower: the executor says so.
            if result.hasArchitecture { try ExecutorLowering().run(&result) }
        } catch let error as PassError {
            throw RuntimeError(error.subject, error.reason)
        }
        return (result, tapped)
    }
}
