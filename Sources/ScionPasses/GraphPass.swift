import ScionIR

/// A transformation of a graph. One type per pass, one file each, with a doc comment showing the graph
/// before and after. Tests run `graph.verify()` after every pass.
public protocol GraphPass {
    /// A short name for messages and pipelines (`layout-channels-first`, `cut`).
    var name: String { get }
    func run(_ graph: inout Graph) throws
}

/// Why a pass could not do its job, naming the node or value.
public struct PassError: Error, CustomStringConvertible, Equatable, Sendable {
    public var pass: String
    public var subject: String
    public var reason: String

    public init(pass: String, subject: String, _ reason: String) {
        self.pass = pass; self.subject = subject; self.reason = reason
    }

    public var description: String { subject.isEmpty ? "\(pass): \(reason)" : "\(pass): \(subject): \(reason)" }
}
