import Foundation
import ScionIR

/// BatchNormalizations (and the ReLU fused into them) applied by the 1x1 convolution after them as
/// it reads its input, a block of rows at a time in the core's cache (`InputAffine`), instead of
/// as a pass that writes a normalized copy of the whole input.
///
/// ```
///  x → BatchNormalization (not folded) → [ReLU] → Conv 1x1   →   Conv 1x1 reading x, normalizing each block
/// ```
///
/// DenseNet's layers (and pre-activation ResNets) normalize their input before each convolution,
/// and that input, the block's growing concatenation, stays alive for the next concatenation: the
/// normalized copy was a second buffer of its size (DenseNet121 at batch 32: 90 MB beside the
/// 90 MB concatenation, the run's peak). No BatchNormalization can be folded there (the ReLU is
/// between it and the convolution).
///
/// The convolution runs channels-last as a matrix product with stride 1 and no padding (padding
/// would have to stay zeros after normalizing); the values between it and `x` have one reader and
/// are no graph output (nor a tap). The arithmetic is the BatchNormalization's own
/// (`scion_affine_rows`), so every value stays the same. `SCION_NORMALIZED_INPUTS=off` runs the nodes one by one.
struct NormalizedInputPlan {
    /// The BatchNormalization's node index, by the convolution's name.
    let normalizations: [String: Int]
    /// The BatchNormalizations and ReLUs whose work the convolutions do.
    let skipped: Set<Int>

    /// No fusions.
    init() { self.init(normalizations: [:], skipped: []) }

    private init(normalizations: [String: Int], skipped: Set<Int>) {
        (self.normalizations, self.skipped) = (normalizations, skipped)
    }

    /// The fusions in `graph`, whose convolutions are changed to read the normalization's input.
    init(_ graph: inout Graph, plan: ChannelsLastPlan, forms: [String: Executor.KernelForm], folded: Set<String>,
         passThrough: Set<String>, blocks: DepthwiseBlockPlan) {
        guard ProcessInfo.processInfo.environment["SCION_NORMALIZED_INPUTS"] != "off" else {
            self.init()
            return
        }
        let readers = graph.readerCounts
        let outputs = Set(graph.outputs), producers = graph.producers
        let isPrivate = { (value: String) in readers[value] == 1 && !outputs.contains(value) }
        var normalizations: [String: Int] = [:], skipped = Set<Int>()
        for index in graph.nodes.indices where plan.nodes.contains(index) && DepthwiseBlockPlan.isPointwise(graph, index) {
            let node = graph.nodes[index]
            guard case .conv = node.op, blocks.blocks[index] == nil, !blocks.skipped.contains(index),
                  case .matrix? = forms[node.name], var value = node.inputs.first else { continue }
            // Back through a ReLU fused into the BatchNormalization (it passes values through).
            var members: [Int] = []
            if isPrivate(value), let relu = producers[value], passThrough.contains(graph.nodes[relu].name),
               case .activation = graph.nodes[relu].op, let input = graph.nodes[relu].inputs.first {
                members.append(relu)
                value = input
            }
            guard isPrivate(value), let normalization = producers[value], plan.nodes.contains(normalization),
                  case .batchNormalization = graph.nodes[normalization].op, !folded.contains(graph.nodes[normalization].name),
                  let source = graph.nodes[normalization].inputs.first, plan.values.contains(source) else { continue }
            normalizations[node.name] = normalization
            skipped.formUnion(members + [normalization])
            graph.nodes[index].inputs[0] = source
        }
        self.init(normalizations: normalizations, skipped: skipped)
    }
}

extension Executor {
    /// The input normalization the convolution `node` applies as it reads (`NormalizedInputPlan`),
    /// for `channels` channels; nil for none.
    func inputAffine(of node: Node, channels: Int) throws -> InputAffine? {
        guard let index = normalizedInputs.normalizations[node.name] else { return nil }
        let normalization = graph.nodes[index]
        guard case .batchNormalization(let a) = normalization.op else { return nil }
        let (scale, shift) = try batchNormalizationAffine(normalization, a, channels: channels)
        return InputAffine(scale: scale, shift: shift, reluCap: fusedReLUCap(of: normalization.name))
    }
}
