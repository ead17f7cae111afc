import ScionIR
import ScionPasses

/// Transfer-learning surgery on a loaded model: passes run on its graph, each failure reported
/// against the model's file.
extension Model {
    /// Runs `pass` on the graph and checks the result; a `PassError` becomes a `ScionError` naming
    /// this model's file and the layer the pass could not handle.
    public mutating func apply(_ pass: some GraphPass) throws {
        var changed = graph
        try reportingPassErrors {
            try pass.run(&changed)
            try changed.verify()
        }
        graph = changed
    }

    /// Runs a question about the graph (which layer `--drop-top` cuts after), reporting a
    /// `PassError` against the model's file.
    package func resolving<T>(_ question: (Graph) throws -> T) throws -> T {
        try reportingPassErrors { try question(graph) }
    }

    private func reportingPassErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as PassError {
            let subject = error.subject.isEmpty || error.subject == graph.name ? "" : "\(error.subject): "
            throw ScionError(file: path, subject + error.reason)
        }
    }
}
