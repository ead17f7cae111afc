/// Finds runs of structurally identical blocks among the rows of one model level: the same layer
/// types and wiring, one block after another (the identity blocks of a ResNet stage, a
/// Transformer's layers, a DenseNet dense block's conv blocks). Each row becomes a token of its
/// type and where its inputs come from relative to it; a run is a block of tokens repeated back to
/// back. Widths may differ between the blocks (a dense block's concatenations grow), as the
/// folded picture says.
struct RepeatFolding {
    struct Run: Equatable {
        /// Index of the first row of the first block.
        var start: Int
        /// Rows per block.
        var length: Int
        /// Blocks in the run (2 or more).
        var count: Int
        var covered: Int { length * count }
    }

    let entries: [GraphPictureBuilder.Entry]
    let producer: (String) -> String?
    /// Longer blocks are not searched (a model repeating 200-layer blocks is rare; the search is
    /// quadratic in this).
    var longestBlock = 80

    func tokens() -> [Int] {
        var index: [String: Int] = [:]
        for (position, entry) in entries.enumerated() {
            for leaf in entry.leaves { index[leaf.name] = position }
        }
        var ids: [String: Int] = [:]
        return entries.enumerated().map { position, entry in
            var sources: [String] = []
            for leaf in entry.leaves {
                for input in leaf.row.inputs {
                    guard let source = producer(input), let at = index[source] else { sources.append("outside"); continue }
                    if at != position { sources.append(String(position - at)) }
                }
            }
            let inner = entry.children.map { "\($0.count)" } ?? ""
            let key = "\(entry.row.type)|\(inner)|\(sources.sorted().joined(separator: ","))"
            if let id = ids[key] { return id }
            ids[key] = ids.count
            return ids.count - 1
        }
    }

    /// The runs to fold, not overlapping: the ones covering the most rows first.
    func runs() -> [Run] {
        let tokens = tokens()
        let n = tokens.count
        var candidates: [Run] = []
        for start in 0..<n {
            var best: Run?
            for length in 1...max(1, min(longestBlock, (n - start) / 2)) where start + 2 * length <= n {
                var count = 1
                while start + (count + 1) * length <= n,
                      tokens[(start + count * length)..<(start + (count + 1) * length)] == tokens[start..<(start + length)] {
                    count += 1
                }
                // A single layer repeated twice is not worth a box.
                guard count >= 2, length * count >= 3 else { continue }
                let run = Run(start: start, length: length, count: count)
                if best == nil || run.covered > best!.covered { best = run }
            }
            if let best { candidates.append(best) }
        }
        candidates.sort { $0.covered != $1.covered ? $0.covered > $1.covered : $0.start < $1.start }
        var taken = [Bool](repeating: false, count: n)
        var chosen: [Run] = []
        for run in candidates where !taken[run.start..<(run.start + run.covered)].contains(true) {
            for index in run.start..<(run.start + run.covered) { taken[index] = true }
            chosen.append(run)
        }
        return chosen.sorted { $0.start < $1.start }
    }
}
