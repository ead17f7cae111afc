import Foundation

/// Where a forward pass spends its time, node by node (`scion run --profile`): each node's wall
/// time as `Executor.run` measures it around the node's kernel, summed over the passes it was
/// given to. A depthwise block counts under the node that runs it, as `DepthwiseBlock`; the nodes
/// whose work it did take no time of their own.
public final class ExecutorProfile: @unchecked Sendable {
    public struct Entry: Sendable {
        public var node: String
        public var op: String
        public var seconds: Double
        public var calls: Int
    }

    private var entries: [String: Entry] = [:]
    private var order: [String] = []

    public init() {}

    func record(node: String, op: String, since start: DispatchTime) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        if entries[node] == nil { order.append(node) }
        entries[node, default: Entry(node: node, op: op, seconds: 0, calls: 0)].seconds += seconds
        entries[node]?.calls += 1
    }

    /// Every node measured, in the order it first ran.
    public var nodes: [Entry] { order.compactMap { entries[$0] } }

    /// Time per op type, largest first.
    public var byOp: [(op: String, seconds: Double, nodes: Int)] {
        var totals: [String: (Double, Int)] = [:]
        for entry in entries.values {
            let (seconds, count) = totals[entry.op] ?? (0, 0)
            totals[entry.op] = (seconds + entry.seconds, count + 1)
        }
        return totals.map { (op: $0.key, seconds: $0.value.0, nodes: $0.value.1) }.sorted { $0.seconds > $1.seconds }
    }

    /// A text table: time per op type, then the `top` slowest nodes, each per pass (`passes`).
    public func table(passes: Int, top: Int = 12) -> String {
        let total = entries.values.reduce(0) { $0 + $1.seconds }
        let per = { (seconds: Double) in String(format: "%8.3f ms %5.1f%%", seconds * 1000 / Double(max(passes, 1)), 100 * seconds / max(total, 1e-12)) }
        var lines = ["time per pass by op (\(passes) pass\(passes == 1 ? "" : "es")):"]
        for row in byOp { lines.append("  \(per(row.seconds))  \(row.op) (\(row.nodes) node\(row.nodes == 1 ? "" : "s"))") }
        lines.append("slowest nodes:")
        for entry in entries.values.sorted(by: { $0.seconds > $1.seconds }).prefix(top) {
            lines.append("  \(per(entry.seconds))  \(entry.node) (\(entry.op))")
        }
        return lines.joined(separator: "\n")
    }
}

extension Executor {
    /// What the executor chose for this graph, in one line (`scion run --verbose`): nodes run
    /// channels-last, convolutions by kernel, depthwise blocks, dense products on packed weights.
    public var planSummary: String {
        var kinds: [String: Int] = [:], products = 0
        for form in convolutionForms.values {
            switch form {
            case .productPanels: products += 1
            case .channelsFirst: kinds["channels-first", default: 0] += 1
            case .matrix(.panels): kinds["panels", default: 0] += 1
            case .matrix: kinds["GEMM", default: 0] += 1
            case .depthwise: kinds["depthwise", default: 0] += 1
            case .winograd: kinds["Winograd", default: 0] += 1
            }
        }
        let convolutions = kinds.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return "\(channelsLast.nodes.count) of \(graph.nodes.count) nodes channels-last; convolutions: "
            + "\(convolutions.isEmpty ? "none" : convolutions); \(depthwiseBlocks.blocks.count) depthwise blocks; "
            + "\(residualConvolutions.fusions.count) residual sums, \(normalizedInputs.normalizations.count) input normalizations and "
            + "\(gatedInputs.gates.count) squeeze-and-excitation gates in convolutions"
            + (products > 0 ? "; \(products) dense products on packed panels" : "")
    }
}
