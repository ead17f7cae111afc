import Foundation
import ScionIR

/// Residual sums done by the convolution before them: the convolution writes its result into the
/// buffer of the sum's other operand and adds that operand back block by block, while each block is
/// in the core's cache (`ResidualAddition`).
///
/// ```
///  r ───────────────────────────────────────┐
///  x → Conv (linear) → [BatchNormalization, folded] → [Dropout] → Add(·, r) → [ReLU]
///                   →  Conv(x) + r, ReLU, in r's buffer
/// ```
///
/// What it saves is a buffer more than a pass: at a ResNet's bottleneck the shortcut and the last
/// convolution's output were both alive at full width until the sum (ResNet50 at batch 32: two
/// 103 MB arrays, the run's peak), and the sum then read both and wrote one of them again.
///
/// A fusion keeps every value the nodes one by one give (the same additions in the same order):
/// the convolution runs channels-last as a matrix product or Winograd, is linear (nothing applied
/// between its bias and the sum but nodes that pass values through at inference), and every value
/// between it and the sum has one reader and is no graph output (nor a tap); the sum adds two values of one shape, both channels-last; the other
/// operand is computed before the convolution runs, is not its input, and nothing reads it after the
/// convolution but the sum. `SCION_RESIDUALS=off` runs the nodes one by one.
struct ResidualConvolutionPlan {
    struct Fusion {
        /// The sum's node index, and its output.
        let sum: Int
        let output: String
        /// The value in the run's table that holds the sum's other operand: the operand itself, or
        /// the value a folded BatchNormalization made after the convolution passes through.
        let residual: String
        /// Whether the other operand is the sum's first.
        let residualFirst: Bool
        /// The nodes whose work the convolution's step does: those passing values through, and the sum.
        let members: [Int]
    }

    /// By the convolution's node index.
    let fusions: [Int: Fusion]
    /// The members of every fusion (the run loop only ends their inputs' lifetimes).
    let skipped: Set<Int>

    /// No fusions.
    init() { self.init(fusions: [:]) }

    private init(fusions: [Int: Fusion]) {
        self.fusions = fusions
        skipped = Set(fusions.values.flatMap(\.members))
    }

    init(_ graph: Graph, order: [Int], plan: ChannelsLastPlan, forms: [String: Executor.KernelForm], folded: Set<String>,
         fusedActivations: [String: Activation], blocks: DepthwiseBlockPlan) {
        guard ProcessInfo.processInfo.environment["SCION_RESIDUALS"] != "off" else {
            self.init()
            return
        }
        var readers: [String: [Int]] = [:]
        for (index, node) in graph.nodes.enumerated() { for input in node.inputs { readers[input, default: []].append(index) } }
        let outputs = Set(graph.outputs), producers = graph.producers
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        let isPrivate = { (value: String) in readers[value]?.count == 1 && !outputs.contains(value) }
        let inBlock = { (index: Int) in blocks.skipped.contains(index) || blocks.blocks[index] != nil }
        // Nodes that give their input as it is at inference: folded BatchNormalizations, and
        // EfficientNet's Dropout before its sums (and stochastic depth, identities).
        let passes = { (node: Node) -> Bool in
            guard node.inputs.count == 1 else { return false }
            switch node.op {
            case .batchNormalization: return folded.contains(node.name)
            case .dropout, .stochasticDepth, .identity: return true
            default: return false
            }
        }
        var fusions: [Int: Fusion] = [:]
        for sum in order where plan.nodes.contains(sum) && !inBlock(sum) {
            let node = graph.nodes[sum]
            guard case .elementwise(.add) = node.op, node.inputs.count == 2, node.inputs[0] != node.inputs[1],
                  let output = node.outputs.first, node.outputs.count == 1,
                  node.inputs.allSatisfy({ plan.values.contains($0) }),
                  let shape = graph.values[node.inputs[0]]?.shape, shape == graph.values[node.inputs[1]]?.shape else { continue }
            for (product, residual) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
                // Back from the sum to the convolution, through folded BatchNormalizations.
                var value = product, members: [Int] = []
                var convolution: Int?
                while isPrivate(value), let index = producers[value] {
                    let producer = graph.nodes[index]
                    if passes(producer), let input = producer.inputs.first {
                        members.append(index)
                        value = input
                        continue
                    }
                    convolution = index
                    break
                }
                guard let convolution, plan.nodes.contains(convolution), !inBlock(convolution),
                      case .conv(let a) = graph.nodes[convolution].op, a.activation == .linear,
                      fusedActivations[graph.nodes[convolution].name] == nil,
                      graph.nodes[convolution].inputs.count == 1, graph.nodes[convolution].inputs[0] != residual,
                      let step = position[convolution] else { continue }
                switch forms[graph.nodes[convolution].name] {
                case .matrix, .winograd: break
                default: continue
                }
                // The other operand: read after the convolution's step by the sum alone, and made
                // before that step, or passed through folded BatchNormalizations after it (a
                // ResNet's shortcut convolution runs before the branch's last, its BatchNormalization after).
                let laterReaders = (readers[residual] ?? []).filter { $0 != sum && (position[$0] ?? .max) >= step }
                guard laterReaders.isEmpty, !outputs.contains(residual) else { continue }
                var source = residual, passing: [Int] = []
                while let index = producers[source], (position[index] ?? .max) > step {
                    let producer = graph.nodes[index]
                    guard passes(producer), let input = producer.inputs.first, isPrivate(input), plan.values.contains(input) else { break }
                    passing.append(index)
                    source = input
                }
                guard producers[source].map({ (position[$0] ?? .max) < step }) ?? true, source != graph.nodes[convolution].inputs[0] else { continue }
                fusions[convolution] = Fusion(sum: sum, output: output, residual: source, residualFirst: residual == node.inputs[0],
                                              members: members.reversed() + passing.reversed() + [sum])
                break
            }
        }
        self.init(fusions: fusions)
    }
}

extension Executor {
    /// The convolution at `node` and the residual sum `fusion`: `x` (the convolution's input, as
    /// stored) and `residual` (the sum's other operand, taken from the table: its buffer becomes the result).
    func evaluateResidualConvolution(_ node: Node, _ fusion: ResidualConvolutionPlan.Fusion, _ x: RuntimeTensor,
                                     residual: consuming RuntimeTensor, gate: GatedInputPlan.Input? = nil) throws -> RuntimeTensor {
        guard case .conv(let a) = node.op, let name = node.inputs.first else { throw RuntimeError(node.name, "is not a convolution") }
        let input = channelsLast.values.contains(name) || x.rank != 4 ? x : Kernels.relayout(x, toChannelsLast: true)
        let (g, bias) = try channelsLastConvolution(node, a, input: input)
        var sum = consume residual
        let sumNode = graph.nodes[fusion.sum]
        guard sum.shape == [g.batch, g.oh, g.ow, g.filters] else {
            // Not the shape the plan saw (a batch the shapes left open): the nodes one by one.
            var arguments = [x]  // as stored: evaluateChannelsLast reorders what it needs
            var operands = [try evaluateChannelsLast(node, &arguments, gate: gate), sum]
            if fusion.residualFirst { operands.reverse() }
            return try evaluateChannelsLast(sumNode, &operands)
        }
        let epilogue = ConvolutionEpilogue(bias: bias, activation: .linear)
        let addition = ResidualAddition(reluCap: fusedReLUCap(of: sumNode.name))
        let kernel = try preparedKernel(node)
        switch convolutionForms[node.name] {
        case .winograd(let tile):
            try Kernels.winogradConvolution(input, weights: kernel, tile: tile, g, epilogue: epilogue, adding: addition,
                                            into: &sum, node: node.name)
        case .matrix(let order):
            let (gated, prologue) = try convolutionInput(node, input, gate: gate)
            Kernels.convolutionChannelsLast(gated, kernel: kernel, order: order, g, prologue: prologue, epilogue: epilogue,
                                            adding: addition, into: &sum)
        case .channelsFirst, .depthwise, .productPanels, nil:
            throw RuntimeError(node.name, "has no residual kernel (internal: the plan fused a convolution of another form)")
        }
        return sum
    }
}
