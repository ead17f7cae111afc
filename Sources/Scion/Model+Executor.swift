import ScionIR
import ScionONNX
import ScionPasses
import ScionRuntime

/// The executor for a loaded model: the graph lowered to the executor's form first, with the ONNX
/// ops the IR keeps opaque in forms its typed ops do not hold: BatchNormalization with statistics
/// computed at run time (tf2onnx's LayerNormalization), MaxPool with dilations, InstanceNormalization
/// with a computed scale, and Gemm with old opsets' `broadcast`.
extension Model {
    /// An executor that runs this model forward. Each layer named in `taps` (full name, nested name
    /// or unique suffix) becomes an extra output; `taps` of the executor maps each name to the value
    /// that holds it.
    public func executor(taps: [String] = []) throws -> Executor {
        try Self.executor(for: graph, taps: taps)
    }

    /// An executor for any graph (a model's, or a view of it), with the opaque ONNX ops wired in.
    static func executor(for graph: Graph, taps: [String]) throws -> Executor {
        let (lowered, tapped) = try lowered(graph, tapping: taps)
        var executor = try Executor(graph: lowered, taps: tapped)
        executor.opaqueEvaluator = { node, inputs in try evaluateOpaque(node, inputs) }
        return executor
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

    @Sendable static func evaluateOpaque(_ node: Node, _ inputs: [RuntimeTensor]) throws -> RuntimeTensor? {
        guard case .opaque(let a) = node.op, a.domain.isEmpty || a.domain == "ai.onnx", let x = inputs.first,
              let attributes = ONNXOpaqueNode.numericAttributes(a.configuration) else { return nil }
        switch a.type {
        case "BatchNormalization" where inputs.count == 5 && (attributes["training_mode"] ?? 0) == 0:
            // Statistics computed at run time (tf2onnx's LayerNormalization): y = (x - mean) / sqrt(var + eps) · scale + bias
            // along axis 1.
            let epsilon = Float(attributes["epsilon"] ?? 1e-5)
            let channels = x.rank > 1 ? x.shape[1] : 1
            guard inputs[1...].allSatisfy({ $0.count == channels }) else { return nil }
            let (scale, bias, mean, variance) = (inputs[1].data, inputs[2].data, inputs[3].data, inputs[4].data)
            let inner = x.shape.dropFirst(2).reduce(1, *)
            var data = x.data
            for index in data.indices {
                let c = (index / inner) % channels
                data[index] = (data[index] - mean[c]) / (variance[c] + epsilon).squareRoot() * scale[c] + bias[c]
            }
            return RuntimeTensor(shape: x.shape, data: data)
        case "MaxPool" where (3...4).contains(x.rank):
            guard let lists = ONNXOpaqueNode.integerListAttributes(a.configuration), let kernel = lists["kernel_shape"],
                  (attributes["storage_order"] ?? 0) == 0, node.outputs.count == 1 else { return nil }
            let spatial = x.rank - 2
            return x.maxPool2D(kernel: kernel, strides: lists["strides"] ?? Array(repeating: 1, count: spatial),
                               pads: lists["pads"] ?? Array(repeating: 0, count: 2 * spatial),
                               dilations: lists["dilations"] ?? Array(repeating: 1, count: spatial),
                               ceilMode: (attributes["ceil_mode"] ?? 0) == 1)
        case "InstanceNormalization" where inputs.count == 3 && x.rank >= 3:
            // Per sample and channel over the spatial axes: (x - mean) / sqrt(var + eps) · scale + bias.
            let epsilon = Float(attributes["epsilon"] ?? 1e-5)
            let area = x.shape.dropFirst(2).reduce(1, *), channels = x.shape[1]
            var data = x.data
            for plane in 0..<(x.shape[0] * channels) {
                let c = plane % channels, range = (plane * area)..<((plane + 1) * area)
                let mean = data[range].reduce(0, +) / Float(area)
                let variance = data[range].reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(area)
                let scale = inputs[1].data[c] / (variance + epsilon).squareRoot()
                for index in range { data[index] = (data[index] - mean) * scale + inputs[2].data[c] }
            }
            return RuntimeTensor(shape: x.shape, data: data)
        case "Gemm" where inputs.count >= 2:
            // Old opsets' Gemm with `broadcast`, which the IR keeps opaque.
            return try RuntimeTensor.gemm(x, inputs[1], inputs.count > 2 ? inputs[2] : nil, alpha: Float(attributes["alpha"] ?? 1),
                                          beta: Float(attributes["beta"] ?? 1), transposeA: attributes["transA"] == 1,
                                          transposeB: attributes["transB"] == 1, node: node.name)
        default:
            return nil
        }
    }
}
