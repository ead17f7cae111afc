import Foundation
import ScionIR

/// Marks layers frozen (their weights not trained) or trainable, as Keras's `layer.trainable` does.
///
/// ```
///  freeze --up-to out_relu                       (a grafted MobileNetV2)
///
///  Conv1 ... block_16_project ... out_relu   trainable → frozen   (out_relu and all it depends on)
///  global_average_pooling2d, dense           unchanged (trainable)
/// ```
///
/// Selections, applied in this order: `all`; `upTo` a layer (that layer and every layer it depends
/// on: the base under a head); `layers` whose name matches a regular expression; then `unfreeze`
/// makes the layers matching its expression trainable again, and `unfreezeTop` the last N layers of
/// the base (the top of a base, for fine-tuning). The base is every layer, in the model's order,
/// before the first one with trainable weights (the head), so the top N are what Keras's
/// `base_model.layers[-N:]` are. With `keepBatchNormFrozen`, BatchNormalization layers stay frozen
/// when thawing, as Keras's transfer-learning guide advises (in inference mode, their statistics
/// are not disturbed by the small fine-tuning batches).
/// Moving statistics (BatchNormalization's moving mean and variance, Normalization's mean, variance
/// and count) are never trainable. A nested model is trainable when any of its layers is.
public struct FreezePass: GraphPass {
    /// `freeze`.
    public let name = "freeze"
    /// Freezes every layer.
    public var all: Bool
    /// Freezes this layer and every layer it depends on.
    public var upTo: String?
    /// Freezes the layers whose name matches this regular expression.
    public var layers: String?
    /// Makes the layers whose name matches this regular expression trainable again.
    public var unfreeze: String?
    /// Makes the last N layers of the base trainable again.
    public var unfreezeTop: Int?
    /// Keeps BatchNormalization layers frozen when `unfreeze` or `unfreezeTop` thaw them.
    public var keepBatchNormFrozen: Bool

    /// The selections, applied in the order the type's comment gives; at least one must be set.
    public init(all: Bool = false, upTo: String? = nil, layers: String? = nil, unfreeze: String? = nil,
                unfreezeTop: Int? = nil, keepBatchNormFrozen: Bool = false) {
        self.all = all; self.upTo = upTo; self.layers = layers; self.unfreeze = unfreeze
        self.unfreezeTop = unfreezeTop; self.keepBatchNormFrozen = keepBatchNormFrozen
    }

    /// Sets the trainable flags of the selected layers, their weights and their nested models.
    /// Throws when nothing is selected, a layer is unknown, or an expression is invalid or matches
    /// nothing.
    public func run(_ graph: inout Graph) throws {
        guard all || upTo != nil || layers != nil || unfreeze != nil || unfreezeTop != nil else {
            throw PassError(pass: name, subject: graph.name,
                            "says nothing to do; give --all, --up-to LAYER, --layers REGEX, --unfreeze REGEX or --unfreeze-top N")
        }
        var frozen = Set<Int>()
        if all { frozen.formUnion(graph.nodes.indices) }
        if let upTo {
            let index = try NodeLookup(graph: graph, pass: name).index(of: upTo)
            frozen.formUnion(Self.ancestors(of: index, in: graph))
        }
        if let layers { frozen.formUnion(try matching(layers, option: "--layers", in: graph)) }
        var thawed = try unfreeze.map { try matching($0, option: "--unfreeze", in: graph) } ?? []
        if let unfreezeTop { thawed.formUnion(try Self.baseTop(unfreezeTop, in: graph, pass: name)) }
        if keepBatchNormFrozen {
            thawed = thawed.filter { if case .batchNormalization = graph.nodes[$0].op { false } else { true } }
        }
        for index in graph.nodes.indices {
            let trainable: Bool
            if thawed.contains(index) { trainable = true } else if frozen.contains(index) { trainable = false } else { continue }
            graph.nodes[index].trainable = trainable
            for parameter in graph.nodes[index].parameters {
                guard var entry = graph.parameters[parameter] else { continue }
                entry.trainable = trainable && !entry.role.isStatistic
                graph.parameters[parameter] = entry
            }
        }
        for position in graph.submodels.indices {
            let path = graph.submodels[position].path
            let inside = graph.nodes.filter { $0.scope == path || $0.scope.hasPrefix(path + "/") }
            if !inside.isEmpty { graph.submodels[position].trainable = inside.contains(where: \.trainable) }
        }
    }

    /// The last `count` layers of the base: the layers before the first one with trainable weights.
    package static func baseTop(_ count: Int, in graph: Graph, pass: String = "freeze") throws -> Set<Int> {
        guard count > 0 else { throw PassError(pass: pass, subject: graph.name, "--unfreeze-top needs a positive count, not \(count)") }
        let head = graph.nodes.firstIndex { node in node.parameters.contains { graph.parameters[$0]?.trainable == true } }
        let baseEnd = head ?? graph.nodes.count
        guard baseEnd > 0 else {
            throw PassError(pass: pass, subject: graph.name, "--unfreeze-top: the first layer is trainable already, so there is no frozen base")
        }
        return Set(max(0, baseEnd - count)..<baseEnd)
    }

    /// `index` and every node it depends on.
    static func ancestors(of index: Int, in graph: Graph) -> Set<Int> {
        let producers = graph.producers
        var result = Set<Int>()
        var stack = [index]
        while let next = stack.popLast() {
            guard result.insert(next).inserted else { continue }
            stack.append(contentsOf: graph.nodes[next].inputs.compactMap { producers[$0] })
        }
        return result
    }

    /// Nodes whose name or layer name matches `pattern` somewhere; an expression matching nothing
    /// is an error (a typo would otherwise freeze nothing, silently).
    func matching(_ pattern: String, option: String, in graph: Graph) throws -> Set<Int> {
        let expression: NSRegularExpression
        do {
            expression = try NSRegularExpression(pattern: pattern)
        } catch {
            throw PassError(pass: name, subject: pattern, "\(option) is not a valid regular expression")
        }
        let found = graph.nodes.indices.filter { index in
            [graph.nodes[index].name, graph.nodes[index].layer].contains { text in
                expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
            }
        }
        if found.isEmpty {
            let hint = NodeLookup(graph: graph, pass: name).closestNames(to: pattern)
            throw PassError(pass: name, subject: pattern, "\(option) matches no layer"
                + (hint.isEmpty ? "" : "; closest names: \(hint.joined(separator: ", "))"))
        }
        return Set(found)
    }
}
