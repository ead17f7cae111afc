import ScionIR

/// A transformation of a graph. One type per pass, one file each, with a doc comment showing the graph
/// before and after. Tests run `graph.verify()` after every pass.
public protocol GraphPass {
    /// A short name for messages and pipelines (`layout-channels-first`, `cut`).
    var name: String { get }
    /// Transforms `graph` in place, or throws saying why (a `PassError` naming the node for the
    /// pass's own refusals).
    func run(_ graph: inout Graph) throws
}

/// Why a pass could not do its job, naming the node or value.
public struct PassError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The pass that refused: its `name`, or the step (`write-back`).
    public var pass: String
    /// The node, value or graph at fault; empty when the reason says it all.
    public var subject: String
    /// What is wrong, and what to do instead when there is a fix.
    public var reason: String

    /// An error of pass `pass` about `subject`.
    public init(pass: String, subject: String, _ reason: String) {
        self.pass = pass; self.subject = subject; self.reason = reason
    }

    /// `pass: subject: reason`, as the command line prints it.
    public var description: String { subject.isEmpty ? "\(pass): \(reason)" : "\(pass): \(subject): \(reason)" }
}
