/// A graph that is not well formed, or an op whose inputs or parameters do not fit it. Names the node
/// or value so a user can find it.
public struct IRError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of problem it is.
    public enum Kind: String, Sendable {
        /// Edges, names, cycles: the graph's structure.
        case structure
        /// A parameter is missing or its shape contradicts the op and its inputs.
        case parameter
        /// Input shapes the op cannot take.
        case shape
    }

    /// What kind of problem it is.
    public var kind: Kind
    /// Node, value or parameter the problem is about.
    public var subject: String
    /// What is wrong, in words.
    public var reason: String

    /// An error about `subject`.
    public init(_ subject: String, _ reason: String, kind: Kind = .structure) {
        self.kind = kind
        self.subject = subject
        self.reason = reason
    }

    /// `subject: reason`.
    public var description: String { "\(subject): \(reason)" }
}
