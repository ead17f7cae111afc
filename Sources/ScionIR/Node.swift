/// One application of an op: a Keras layer call or an ONNX node.
public struct Node: Equatable, Sendable {
    /// Unique in the graph. The Keras layer name (with its nested model's scope, `base/conv1`); a
    /// shared layer's later calls get `#1`, `#2`... appended.
    public var name: String
    /// What the node computes, with its attributes.
    public var op: Op
    /// Names of the values this node reads, in order.
    public var inputs: [String]
    /// Names of the values this node produces, in order.
    public var outputs: [String]
    /// Names of the parameters in the graph's table this node uses, in Keras's weight order. A shared
    /// layer's calls list the same names.
    public var parameters: [String]
    /// The layer this node is a call of (equal to `name` unless the layer is shared).
    public var layer: String
    /// Scope of the nested model the node sits in (`base`, `outer/inner`), empty at top level.
    public var scope: String
    /// The layer's own trainable flag (after its enclosing models'): a frozen BatchNormalization
    /// runs in inference mode even while training.
    public var trainable: Bool

    /// A node; `layer` defaults to `name`.
    public init(name: String, op: Op, inputs: [String], outputs: [String], parameters: [String] = [],
                layer: String? = nil, scope: String = "", trainable: Bool = true) {
        self.name = name; self.op = op; self.inputs = inputs; self.outputs = outputs
        self.parameters = parameters; self.layer = layer ?? name; self.scope = scope; self.trainable = trainable
    }

    /// Equal when every field is.
    public static func == (lhs: Node, rhs: Node) -> Bool {
        lhs.name == rhs.name && lhs.op == rhs.op && lhs.inputs == rhs.inputs && lhs.outputs == rhs.outputs
            && lhs.parameters == rhs.parameters && lhs.layer == rhs.layer && lhs.scope == rhs.scope
            && lhs.trainable == rhs.trainable
    }
}

/// A named value flowing between nodes: its shape (nil until inferred, or when unknowable) and type.
public struct ValueInfo: Equatable, Sendable {
    /// The value's name, unique in the graph.
    public var name: String
    /// Its shape; nil until inferred, or when unknowable.
    public var shape: Shape?
    /// Its element type.
    public var dtype: DType
    /// A value with this name, shape and type.
    public init(name: String, shape: Shape?, dtype: DType) {
        self.name = name; self.shape = shape; self.dtype = dtype
    }
}

/// A nested model kept as a scope: its nodes live in the graph with `scope` set to its path.
public struct Submodel: Equatable, Sendable {
    /// Scope path (`base`, `outer/inner`).
    public var path: String
    /// `Functional`, `Sequential`, `Model`...
    public var type: String
    /// The nested model's own trainable flag.
    public var trainable: Bool
    /// A nested model at `path`.
    public init(path: String, type: String, trainable: Bool) {
        self.path = path; self.type = type; self.trainable = trainable
    }
}
