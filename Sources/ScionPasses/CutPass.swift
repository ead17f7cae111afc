import ScionIR

/// Cuts a model after a layer: that layer's output becomes the model's only output, and everything
/// nothing needs any more goes (nodes, their weights, unused inputs, emptied nested-model scopes).
///
/// ```
///  before                                   after `--after avg_pool`      after `--drop-top`
///
///  input (N,224,224,3)                      input                         input
///  ... conv5_block3_out (N,7,7,2048)        ... conv5_block3_out          ... conv5_block3_out  ◀ output
///  avg_pool   GAP2D    (N,2048)             avg_pool  ◀ output
///  predictions Dense   (N,1000)  ◀ output
/// ```
///
/// `dropTop` does what keras.applications' `include_top=False` does: it removes the trailing
/// classifier (global pooling or Flatten of the features, then Dense, Dropout, activations, Reshape,
/// normalisation, 1x1 convolutions on the pooled map) and keeps everything up to the last layer that
/// produces features. `ClassifierHead` finds it, and refuses when it cannot tell.
public struct CutPass: GraphPass {
    /// Where to cut.
    public enum Point: Equatable, Sendable {
        /// After the named layer (full scoped name, layer name or a unique suffix), which becomes the
        /// output.
        case after(String)
        /// Before the trailing classifier, as `include_top=False` would build the model.
        case dropTop
    }

    /// `cut`.
    public let name = "cut"
    /// Where the pass cuts.
    public var point: Point

    /// A cut at `point`.
    public init(_ point: Point) { self.point = point }

    /// Makes the layer at `point` the only output and prunes what no longer leads to it. Throws on a
    /// weights-only graph, a layer with several outputs, or when another model output would be lost.
    public func run(_ graph: inout Graph) throws {
        guard graph.hasArchitecture else {
            throw PassError(pass: name, subject: graph.name, "has no architecture (weights only); nothing to cut")
        }
        try graph.inferShapes()
        let index = try cutIndex(in: graph)
        let node = graph.nodes[index]
        guard node.outputs.count == 1, let output = node.outputs.first else {
            throw PassError(pass: name, subject: node.name, "has \(node.outputs.count) outputs; cut after a layer with one")
        }
        try requireNoDanglingOutput(graph, keeping: output)
        try graph.prune(keepingOutputs: [output])
    }

    func cutIndex(in graph: Graph) throws -> Int {
        switch point {
        case .after(let layer):
            return try NodeLookup(graph: graph, pass: name).index(of: layer)
        case .dropTop:
            return try topStart(in: graph)
        }
    }

    /// The name of the layer `--drop-top` cuts after.
    public static func dropTopLayer(in graph: Graph) throws -> String {
        var copy = graph
        try copy.inferShapes()
        return copy.nodes[try CutPass(.dropTop).topStart(in: copy)].name
    }

    /// The layer the trailing classifier starts after.
    func topStart(in graph: Graph) throws -> Int {
        try ClassifierHead(graph: graph, pass: name).cutPoint()
    }

    /// A multi-output model keeps only the cut's output: refuse when that silently drops another
    /// output the cut layer does not lead to.
    func requireNoDanglingOutput(_ graph: Graph, keeping output: String) throws {
        let others = graph.outputs.filter { $0 != output }
        guard !others.isEmpty else { return }
        let producers = graph.producers
        let dropped = others.filter { other in
            // An output computed from the cut point is replaced by the cut itself; any other is lost.
            var stack = [other]
            var seen = Set<String>()
            while let value = stack.popLast() {
                if value == output { return false }
                guard seen.insert(value).inserted, let index = producers[value] else { continue }
                stack.append(contentsOf: graph.nodes[index].inputs)
            }
            return true
        }
        if !dropped.isEmpty {
            throw PassError(pass: name, subject: graph.name,
                            "the cut keeps one output, which would leave output(s) \(dropped.joined(separator: ", ")) dangling; "
                                + "cut a single-output model, or cut after a layer every output depends on")
        }
    }
}
