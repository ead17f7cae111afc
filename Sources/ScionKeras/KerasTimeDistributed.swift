import Foundation
import ScionIR

/// Keras's `TimeDistributed(layer)`: the inner layer applied to every step of axis 1
/// (`[batch, time, ...]`). The reader expands it into ops Scion already runs, trains and exports,
/// grouped as one layer (every node's `layer` is the wrapper's name, and `graph.info.nodeTypes`
/// says `TimeDistributed`), which the Keras writers fold back into the wrapper
/// (`KerasTimeDistributedGroup`).
///
/// ```
///  TimeDistributed(Conv2D(8, 3))  (N, 4, 16, 16, 3) ->
///     frames_fold  Reshape [-1, 16, 16, 3]      (N*4, 16, 16, 3)   batch and time folded together
///     frames_step  Conv2D(8, 3)                 (N*4, 14, 14, 8)
///     frames       Reshape [-1, 4, 14, 14, 8]   (N, 4, 14, 14, 8)
///  TimeDistributed(Dense(5))  (N, T, 6) -> one Dense node reading (N, T, 6): Dense works on the last
///     axis whatever the rank, so no reshape is needed and T may be unknown.
/// ```
///
/// The inner layer's weights keep their names (Keras 3's `td/layer/kernel`, Keras 2's `td/kernel`)
/// and take the inner layer's own roles (`kernel`), which the kernels and exporters look up.
/// What stays opaque, with the reason `run` and ONNX give: inner layers Scion does not read, nested
/// models, layers computed differently per step (BatchNormalization normalises each step's batch
/// on its own while Keras 3 trains; recurrent and random layers), and shapes the reshapes cannot
/// express (unknown lengths after the time axis, or an unknown batch and number of steps).
enum KerasTimeDistributed {
    static let className = "TimeDistributed"

    /// Ops of inner layers Scion runs per step by folding time into the batch. Not listed: layers
    /// whose training differs per step (BatchNormalization's statistics, augmentation's randomness),
    /// several inputs, recurrent layers.
    static func isDistributable(_ op: Op) -> Bool {
        switch op {
        case .dense, .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .layerNormalization,
             .groupNormalization, .unitNormalization, .activation, .prelu, .dropout, .flatten, .reshape, .permute,
             .zeroPadding, .cropping, .upSampling, .rescaling, .embedding, .einsumDense, .identity:
            return true
        case .batchNormalization, .multiHeadAttention, .attention, .elementwise, .concatenate, .resizing,
             .normalization, .masking, .recurrent, .scaledResidual, .layerScale, .transpose, .stochasticDepth,
             .augmentation, .onnx, .opaque:
            return false
        }
    }

    /// Ops that compute each position of the last axis from that position alone or along the last
    /// axis only, whatever the rank: applied to `[batch, time, ...]` directly, they are the wrapper.
    static func actsOnLastAxis(_ op: Op) -> Bool {
        switch op {
        case .dense, .identity: return true
        case .activation(let a): return (a.axis ?? -1) == -1
        case .dropout(let a): return !a.spatial
        default: return false
        }
    }

    /// The inner layer's class and config, from the wrapper's config.
    static func innerLayer(_ config: JSON) -> (className: String, config: JSON)? {
        guard let inner = config["layer"], let className = inner["class_name"]?.string, let innerConfig = inner["config"] else {
            return nil
        }
        return (className.split(separator: ">").last.map(String.init) ?? className, innerConfig)
    }

    /// Expands every TimeDistributed node whose inner layer and shapes allow it; the others are left
    /// opaque with the reason. Weights must be bound (the inner op's shape rule reads them).
    static func expand(_ graph: inout Graph, table: KerasLayerTable) throws {
        var tried = Set<String>()
        let layerCalls = Dictionary(graph.nodes.map { ($0.layer, 1) }, uniquingKeysWith: +)
        while true {
            guard let position = graph.nodes.firstIndex(where: { node in
                guard !tried.contains(node.name), case .opaque(let a) = node.op else { return false }
                return a.domain == "keras" && a.type == className && a.unreadReason == nil
            }) else { return }
            let node = graph.nodes[position]
            tried.insert(node.name)
            try graph.inferShapes()
            let replacement: [Node]
            do {
                guard layerCalls[node.layer] == 1 else { throw Refusal("a TimeDistributed layer called more than once") }
                replacement = try expansion(of: node, graph: graph, table: table)
            } catch let refusal as Refusal {
                guard case .opaque(var a) = node.op else { continue }
                a.unreadReason = "TimeDistributed: \(refusal.reason)"
                graph.nodes[position].op = .opaque(a)
                continue
            }
            for parameterName in node.parameters {
                guard var parameter = graph.parameters[parameterName] else { continue }
                parameter.role = innerRole(parameter.role)
                graph.parameters[parameterName] = parameter
            }
            graph.nodes.replaceSubrange(position...position, with: replacement)
            for member in replacement { graph.info.nodeTypes[member.name] = className }
        }
    }

    /// Keras 3 names the inner layer's variables under the attribute `layer` (`layer/kernel`); Keras 2
    /// gives them the inner roles directly.
    static func innerRole(_ role: ParameterRole) -> ParameterRole {
        if case .sublayer(let path, let leaf) = role, path == "layer" { return leaf }
        return role
    }

    struct Refusal: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private static func expansion(of node: Node, graph: Graph, table: KerasLayerTable) throws -> [Node] {
        guard case .opaque(let a) = node.op, let config = try? JSON.parse(Data(a.configuration.utf8)),
              let (innerClass, innerConfig) = innerLayer(config) else { throw Refusal("no inner layer in the config") }
        if kerasModelClassNames.contains(innerClass) {
            throw Refusal("a nested \(innerClass) model as the inner layer is not read yet")
        }
        let innerOp: Op?
        do { innerOp = try table.op(className: innerClass, config: innerConfig) } catch let error as KerasLayerTable.Unsupported {
            throw Refusal("inner \(innerClass): \(error.reason)")
        }
        guard let innerOp, isDistributable(innerOp) else {
            throw Refusal("the inner layer \(innerClass) is not run per step by Scion")
        }
        guard node.inputs.count == 1, node.outputs.count == 1 else { throw Refusal("one input and one output expected") }
        guard let input = graph.values[node.inputs[0]], let shape = input.shape, shape.rank >= 3 else {
            throw Refusal("the input's shape is unknown or has no time axis")
        }
        if actsOnLastAxis(innerOp) {
            var direct = node
            direct.op = innerOp
            return [direct]
        }
        let stepLengths = Array(shape.dimensions.dropFirst(2))
        guard stepLengths.allSatisfy({ $0 != nil }) else { throw Refusal("a step's shape \(Shape(stepLengths)) is not fully known") }
        var fold = Node(name: "\(node.name)_fold", op: .reshape(ReshapeAttributes(
            targetShape: [-1] + stepLengths.compactMap { $0 }, includesBatch: true)),
            inputs: node.inputs, outputs: ["\(node.name)_fold"], layer: node.layer, scope: node.scope, trainable: node.trainable)
        var step = Node(name: "\(node.name)_step", op: innerOp, inputs: fold.outputs, outputs: ["\(node.name)_step"],
                        parameters: node.parameters, layer: node.layer, scope: node.scope, trainable: node.trainable)
        guard graph.values[fold.name] == nil, graph.values[step.name] == nil else {
            throw Refusal("the names \(fold.name) or \(step.name) are taken")
        }
        // The step's output shape from the inner op's rule, with its weights' shapes.
        let foldedShape = Shape([nil] + stepLengths)
        let parameterShapes = Dictionary(graph.parameters(of: node).map { (innerRole($0.role), $0.shape) }, uniquingKeysWith: { f, _ in f })
        let stepOutput: Shape?
        do {
            stepOutput = try ShapeInference.outputs(
                of: step, inputs: [ValueInfo(name: fold.name, shape: foldedShape, dtype: input.dtype)],
                parameterShapes: parameterShapes).first?.shape
        } catch let error as IRError {
            throw Refusal("inner \(innerClass): \(error.reason)")
        }
        guard let stepOutput, stepOutput.rank >= 1 else { throw Refusal("the inner layer's output shape is unknown") }
        let outputLengths = Array(stepOutput.dimensions.dropFirst())
        guard outputLengths.allSatisfy({ $0 != nil }) else { throw Refusal("a step's output shape \(stepOutput) is not fully known") }
        let leading: [Int]
        if let steps = shape[1] {
            leading = [-1, steps]
        } else if let batch = shape[0] {
            leading = [batch, -1]
        } else {
            throw Refusal("both the batch and the number of steps are unknown")
        }
        let unfold = Node(name: node.name, op: .reshape(ReshapeAttributes(
            targetShape: leading + outputLengths.compactMap { $0 }, includesBatch: true)),
            inputs: step.outputs, outputs: node.outputs, layer: node.layer, scope: node.scope, trainable: node.trainable)
        fold.parameters = []
        step.parameters = node.parameters
        return [fold, step, unfold]
    }
}
