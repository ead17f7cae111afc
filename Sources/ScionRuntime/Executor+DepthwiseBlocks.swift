import Foundation
import ScionIR

/// Which nodes run together as one depthwise block (`Kernels.depthwiseBlock`): a channels-last
/// depthwise convolution (one filter per channel), the 1x1 convolution that feeds it and the 1x1
/// convolution it feeds (either may be missing, not both), the folded BatchNormalizations and fused
/// activations between them, and a residual sum of the block's input after the projection.
///
/// ```
///  x → Conv 1x1 → [BN] → [act] → DepthwiseConv → [BN] → [act] → Conv 1x1 → [BN] → [act] → [Add(x) → [ReLU]]
/// ```
///
/// Found in two steps, because the kernels' forms are chosen before the weights are read and the
/// folds and fusions are only known after: `init` finds the shapes (its 1x1 convolutions are then
/// prepared as filter panels, `pointwiseNodes`); `confirmed` keeps the blocks whose every
/// BatchNormalization was folded and every activation fused into the convolution before it, so
/// that those nodes pass values through and the block computes what they would have.
/// Every value inside a block has one reader and is no graph output (nor a tap): nothing outside
/// the block can see that it is never made. `SCION_BLOCKS=off` runs the nodes one by one.
struct DepthwiseBlockPlan {
    struct Block {
        /// Node indices: the 1x1 convolutions and the depthwise one, the residual sum.
        var expand: Int?, depthwise: Int, project: Int?, residual: Int?
        /// Every node of the block, in the graph's order; the first runs the block, the others are skipped.
        var members: [Int]
        /// The BatchNormalizations and activations between (and after) the convolutions.
        var passing: [Int]
        /// The block's input (read by its first convolution and by the residual sum) and output.
        var input: String, output: String
    }

    /// By the index of the node that runs the block.
    let blocks: [Int: Block]
    /// The nodes whose work a block does (kept apart from `blocks`: the run loop asks for every node).
    let skipped: Set<Int>
    /// The names of the blocks' 1x1 convolutions: held as filter panels whatever their size.
    let pointwiseNodes: Set<String>

    /// No blocks.
    init() { (blocks, skipped, pointwiseNodes) = ([:], [], []) }

    /// `blocks`, and what follows from them.
    private init(blocks: [Int: Block], graph: Graph) {
        self.blocks = blocks
        skipped = Set(blocks.values.flatMap { $0.members.dropFirst() })
        pointwiseNodes = Set(blocks.values.flatMap { [$0.expand, $0.project].compactMap { $0 }.map { graph.nodes[$0].name } })
    }

    /// The blocks of the channels-last `plan` in `graph` (shapes inferred, inference patterns fused).
    init(_ graph: Graph, plan: ChannelsLastPlan, order: [Int]) {
        guard Kernels.narrowProductsRun, ProcessInfo.processInfo.environment["SCION_BLOCKS"] != "off" else {
            self.init()
            return
        }
        var blocks: [Int: Block] = [:]
        var readers: [String: [Int]] = [:]
        for (index, node) in graph.nodes.enumerated() { for input in node.inputs { readers[input, default: []].append(index) } }
        let outputs = Set(graph.outputs), producers = graph.producers
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        // The one reader of `value` in the plan, when nothing else (no graph output) sees it.
        let soleReader = { (value: String) -> Int? in
            guard !outputs.contains(value), let next = readers[value], next.count == 1, plan.nodes.contains(next[0]) else { return nil }
            return next[0]
        }
        // Nodes that pass values through once folded or fused: BatchNormalization, an activation.
        let passes = { (index: Int) -> Bool in
            switch graph.nodes[index].op {
            case .batchNormalization: true
            case .activation(let activation): !activation.hasAxis
            default: false
            }
        }
        // A node joins one block at most: in MobileNet's chain depthwise → 1x1 → depthwise → 1x1, each
        // 1x1 convolution is the projection of the block before it, not the expansion of the next.
        var claimed = Set<Int>()
        for depthwise in order where plan.nodes.contains(depthwise) && Self.isDepthwise(graph, depthwise) {
            var block = Block(expand: nil, depthwise: depthwise, project: nil, residual: nil, members: [depthwise], passing: [],
                              input: "", output: "")
            // Back from the depthwise convolution to a 1x1 convolution feeding it alone.
            var value = graph.nodes[depthwise].inputs[0], between: [Int] = []
            while let producer = producers[value], soleReader(value) != nil, passes(producer), graph.nodes[producer].inputs.count == 1 {
                between.append(producer)
                value = graph.nodes[producer].inputs[0]
            }
            if let producer = producers[value], soleReader(value) != nil, Self.isPointwise(graph, producer), plan.nodes.contains(producer),
               !claimed.contains(producer), !between.contains(where: claimed.contains) {
                block.expand = producer
                block.passing += between
                value = graph.nodes[producer].inputs[0]
            } else {
                value = graph.nodes[depthwise].inputs[0]
            }
            block.input = value
            guard plan.values.contains(value) else { continue }
            // Forward to a 1x1 convolution, then a residual sum with the block's input.
            var tail = graph.nodes[depthwise].outputs[0], after: [Int] = []
            while let next = soleReader(tail), passes(next) { after.append(next); tail = graph.nodes[next].outputs[0] }
            if let next = soleReader(tail), Self.isPointwise(graph, next) {
                block.project = next
                block.passing += after
                tail = graph.nodes[next].outputs[0]
                after = []
                while let next = soleReader(tail), passes(next) { after.append(next); tail = graph.nodes[next].outputs[0] }
                if let add = soleReader(tail), case .elementwise(.add) = graph.nodes[add].op, graph.nodes[add].inputs.count == 2,
                   Set(graph.nodes[add].inputs) == [tail, block.input], graph.values[tail]?.shape == graph.values[block.input]?.shape {
                    block.residual = add
                    after.append(add)
                    tail = graph.nodes[add].outputs[0]
                    // A ReLU after the sum (fused into it).
                    if let next = soleReader(tail), case .activation(.relu(_, 0, 0)) = graph.nodes[next].op {
                        after.append(next)
                        tail = graph.nodes[next].outputs[0]
                    }
                }
                block.passing += after.filter { $0 != block.residual }
            } else {
                // No projection: the trailing activations stay with the depthwise convolution.
                block.passing += after
            }
            guard block.expand != nil || block.project != nil else { continue }
            block.output = tail
            let members = [block.expand, block.depthwise, block.project, block.residual].compactMap { $0 } + block.passing
            block.members = members.sorted { position[$0] ?? 0 < position[$1] ?? 0 }
            // The block runs at its first node: every other member must come after it.
            guard let head = block.members.first, head == (block.expand ?? block.depthwise) else { continue }
            blocks[head] = block
            claimed.formUnion(block.members)
        }
        self.init(blocks: blocks, graph: graph)
    }

    /// The blocks whose BatchNormalizations were all folded, whose activations were all fused into
    /// the node before them (`folded`, `passThrough`), and whose convolutions' activations
    /// (`fused` or their own) their epilogues apply.
    func confirmed(_ graph: Graph, folded: Set<String>, passThrough: Set<String>, fused: [String: Activation]) -> DepthwiseBlockPlan {
        var kept: [Int: Block] = [:]
        for (head, block) in blocks {
            let passed = block.passing.allSatisfy { index in
                let name = graph.nodes[index].name
                if case .batchNormalization = graph.nodes[index].op { return folded.contains(name) }
                return passThrough.contains(name)
            }
            let applied = [block.expand, block.depthwise, block.project].compactMap { $0 }.allSatisfy { index in
                guard case .conv(let a) = graph.nodes[index].op else { return false }
                let name = graph.nodes[index].name
                return ConvolutionEpilogue(bias: nil, activation: fused[name] ?? a.activation).remaining == .linear
            }
            guard passed, applied else { continue }
            kept[head] = block
        }
        return DepthwiseBlockPlan(blocks: kept, graph: graph)
    }

    /// A convolution with one filter per input channel (multiplier 1).
    static func isDepthwise(_ graph: Graph, _ index: Int) -> Bool {
        let node = graph.nodes[index]
        guard case .conv(let a) = node.op, a.rank == 2, node.inputs.count == 1,
              let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 4 else { return false }
        return kernel.shape[1] == 1 && a.groups == kernel.shape[0] && a.groups > 1
    }

    /// A 1x1 convolution with stride 1, no padding, one group.
    static func isPointwise(_ graph: Graph, _ index: Int) -> Bool {
        let node = graph.nodes[index]
        guard case .conv(let a) = node.op, a.rank == 2, a.groups == 1, node.inputs.count == 1,
              a.kernelSize == [1, 1], a.strides == [1, 1] else { return false }
        switch a.padding {
        case .valid, .same: return true
        case .explicit(let pads): return pads.allSatisfy { $0 == 0 }
        default: return false
        }
    }
}

extension Executor {
    /// Runs `block` on its channels-last input `x`: the value of the block's last node.
    func evaluateDepthwiseBlock(_ block: DepthwiseBlockPlan.Block, _ x: RuntimeTensor) throws -> RuntimeTensor {
        let depthwise = graph.nodes[block.depthwise]
        guard case .conv(let attributes) = depthwise.op, x.rank == 4 else {
            throw RuntimeError(depthwise.name, "is not a depthwise convolution on a rank-4 value (internal: the block plan placed it)")
        }
        let expand = try block.expand.map { try pointwiseStage(graph.nodes[$0], depth: x.shape[3]) }
        let channels = expand?.filters ?? x.shape[3]
        let logical = [x.shape[0], channels, x.shape[1], x.shape[2]]
        let g = try Kernels.ConvGeometry(input: logical, kernelShape: parameterShape(depthwise, .kernel) ?? [], attributes, node: depthwise.name)
        let depthwiseEpilogue = try epilogue(of: depthwise, attributes)
        let project = try block.project.map { try pointwiseStage(graph.nodes[$0], depth: channels) }
        var residualCap: Float?
        if let residual = block.residual {
            let sum = graph.nodes[residual]
            guard g.oh == g.height, g.ow == g.width, project?.filters == x.shape[3] else {
                throw RuntimeError(sum.name, "adds \(x.shape) to a block output of \(g.oh)x\(g.ow)x\(project?.filters ?? channels) (internal: the block plan placed it)")
            }
            residualCap = fusedReLUCap(of: sum.name)
        }
        guard convolutionForms[depthwise.name] == .depthwise else {
            throw RuntimeError(depthwise.name, "has no depthwise kernel (internal: its weights were not prepared for the block)")
        }
        let kernels = Kernels.DepthwiseBlock(expand: expand, depthwise: try preparedKernel(depthwise), depthwiseEpilogue: depthwiseEpilogue,
                                             project: project, residual: block.residual != nil, residualCap: residualCap)
        return Kernels.depthwiseBlock(x, kernels, g)
    }

    /// A block's 1x1 convolution: its panels, and its bias and fused activation as an epilogue.
    private func pointwiseStage(_ node: Node, depth: Int) throws -> Kernels.PointwiseStage {
        guard case .conv(let a) = node.op, convolutionForms[node.name] == .matrix(.panels),
              let shape = parameterShape(node, .kernel), shape.count == 4, shape[1] == depth else {
            throw RuntimeError(node.name, "is not a 1x1 convolution held as panels of depth \(depth) (internal: the block plan placed it)")
        }
        return Kernels.PointwiseStage(panels: try preparedKernel(node), depth: depth, filters: shape[0], epilogue: try epilogue(of: node, a))
    }

    /// The convolution's bias (its own, or a folded BatchNormalization's) and the activation fused
    /// into it; every part of which the epilogue must apply (the block has no pass after it).
    private func epilogue(of node: Node, _ a: ConvAttributes) throws -> ConvolutionEpilogue {
        let bias = try foldedBiases[node.name] ?? (a.useBias ? require(node, .bias) : nil)
        let epilogue = ConvolutionEpilogue(bias: bias, activation: fusedActivations[node.name] ?? a.activation)
        guard epilogue.remaining == .linear else {
            throw RuntimeError(node.name, "ends in \(epilogue.remaining), which a depthwise block cannot apply (internal: the block plan placed it)")
        }
        return epilogue
    }
}
