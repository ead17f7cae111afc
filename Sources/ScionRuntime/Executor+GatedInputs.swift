import Foundation
import ScionIR

/// Squeeze-and-excitation gates applied by the 1x1 convolution after them as it reads its input
/// (`SampleGate`), instead of as a pass that writes the gated copy of the whole input.
///
/// ```
///  x ─────────────┐
///                 Multiply → Conv 1x1   →   Conv 1x1 reading x, with the gate on its input rows or its filters
///  gate [N,C,1,1] ┘
/// ```
///
/// EfficientNet's and MobileNetV3's blocks end so: the depthwise convolution's output, times each
/// channel's weight from the block's squeeze-and-excitation, projected by a 1x1 convolution. The
/// multiplication was its own pass over the block's widest value (EfficientNetB0 at batch 1: 2.3
/// million values a pass), and on two cores a slower one than on one: the depthwise block before
/// it shares its channels between the cores, the multiplication its pixels, so each core read half
/// its values from the other's cache (0.65 against 0.30 ms a pass, `--profile`).
///
/// The convolution runs channels-last as a matrix product with stride 1 and no padding; the
/// product has one reader and is no graph output (nor a tap). `SCION_GATED_INPUTS=off` runs the
/// nodes one by one.
struct GatedInputPlan {
    struct Gate {
        /// The Multiply whose work the convolution does.
        let multiply: Int
        /// The gate's value (`[N, C, 1, 1]`, or `[N, 1, 1, C]` as stored channels-last).
        let value: String
    }

    /// A gate's values at run time, with the fusion that applies them.
    typealias Input = (values: RuntimeTensor, gate: Gate)

    /// By the convolution's node index.
    let gates: [Int: Gate]
    /// The Multiplies whose work the convolutions do.
    let skipped: Set<Int>

    /// No fusions.
    init() { self.init(gates: [:]) }

    private init(gates: [Int: Gate]) { (self.gates, self.skipped) = (gates, Set(gates.values.map(\.multiply))) }

    /// The fusions in `graph`, whose convolutions are changed to read the gated value's input.
    init(_ graph: inout Graph, plan: ChannelsLastPlan, forms: [String: Executor.KernelForm], blocks: DepthwiseBlockPlan,
         normalized: NormalizedInputPlan) {
        guard ProcessInfo.processInfo.environment["SCION_GATED_INPUTS"] != "off" else {
            self.init()
            return
        }
        let readers = graph.readerCounts
        let outputs = Set(graph.outputs), producers = graph.producers
        var gates: [Int: Gate] = [:]
        for index in graph.nodes.indices where plan.nodes.contains(index) && DepthwiseBlockPlan.isPointwise(graph, index) {
            let node = graph.nodes[index]
            guard case .conv = node.op, blocks.blocks[index] == nil, !blocks.skipped.contains(index),
                  normalized.normalizations[node.name] == nil, case .matrix? = forms[node.name],
                  let product = node.inputs.first, readers[product] == 1, !outputs.contains(product),
                  let multiply = producers[product], plan.nodes.contains(multiply),
                  case .elementwise(.multiply) = graph.nodes[multiply].op, graph.nodes[multiply].inputs.count == 2,
                  let shape = graph.values[product]?.shape?.dimensions, shape.count == 4 else { continue }
            // One operand the product's shape and channels-last, the other one weight per sample and channel.
            let operands = graph.nodes[multiply].inputs
            let shapes = operands.map { graph.values[$0]?.shape?.dimensions }
            guard let full = (0..<2).first(where: { shapes[$0] == shape && plan.values.contains(operands[$0]) }),
                  let gate = shapes[1 - full], gate.count == 4, gate[0] == shape[0], gate[1] == shape[1], shape[1] != nil,
                  gate[2] == 1, gate[3] == 1, operands[0] != operands[1] else { continue }
            gates[index] = Gate(multiply: multiply, value: operands[1 - full])
            graph.nodes[index].inputs[0] = operands[full]
        }
        self.init(gates: gates)
    }
}

extension Executor {
    /// What the 1x1 convolution `node` does to its input `x` (channels-last) as it reads it: the
    /// squeeze-and-excitation `gate` the plan gave it (`GatedInputPlan`), or the BatchNormalization
    /// of `NormalizedInputPlan`, or nothing. A gate that is not one weight per sample and channel
    /// of `x` (shapes the plan saw only in part) is multiplied here as its own node, and the result
    /// is the input then.
    func convolutionInput(_ node: Node, _ x: RuntimeTensor, gate input: GatedInputPlan.Input?) throws -> (RuntimeTensor, InputPrologue?) {
        guard let (gate, fusion) = input else { return (x, try inputAffine(of: node, channels: x.shape.last ?? 0).map { .affine($0) }) }
        if x.rank == 4, gate.rank == 4, gate.shape[0] == x.shape[0], gate.count == x.shape[0] * x.shape[3],
           gate.shape[1] * gate.shape[2] * gate.shape[3] == x.shape[3] {
            return (x, .gate(SampleGate(weights: gate.data, pixelsPerSample: x.shape[1] * x.shape[2])))
        }
        let multiply = graph.nodes[fusion.multiply]
        var operands = multiply.inputs.map { $0 == fusion.value ? gate : x }
        return (try evaluateChannelsLast(multiply, &operands), nil)
    }
}
