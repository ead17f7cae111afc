import ScionIR

/// Turns a model's summary (the rows `scion inspect` prints, so the counts are the same) into a
/// `PictureGraph`: one box per layer, nested models as clusters (or one box with `collapseNested`),
/// runs of identical blocks folded, the part between `from` and `to` kept, diff marks applied.
struct GraphPictureBuilder {
    /// A row of the summary with its full name (scopes joined by `/`, as the graph's node names).
    final class Entry {
        let name: String
        let row: ModelSummary.Layer
        /// The row's own flag and every enclosing model's: a layer of a frozen base does not train.
        let trains: Bool
        var children: [Entry]?
        init(name: String, row: ModelSummary.Layer, trains: Bool) {
            self.name = name
            self.row = row
            self.trains = trains
        }
        var isNested: Bool { children != nil }
        /// The layers (leaves) inside, or the row itself.
        var leaves: [Entry] { children.map { $0.flatMap(\.leaves) } ?? [self] }
    }

    let summary: ModelSummary
    let options: GraphPictureOptions
    let file: String
    let entries: [Entry]
    /// Every leaf by full name.
    let leaves: [String: Entry]
    var marks: DiffMarks?

    init(model: Model, options: GraphPictureOptions) throws {
        summary = try ModelSummary(graph: model.graph, format: model.format.rawValue, includeWeights: false, checksums: false)
        guard model.graph.hasArchitecture else {
            throw ScionError(file: model.path, "holds weights only: there are no layers to draw")
        }
        self.options = options
        file = model.path
        func entries(_ rows: [ModelSummary.Layer], scope: String, trains: Bool) -> [Entry] {
            rows.map { row in
                let name = scope.isEmpty ? row.name : "\(scope)/\(row.name)"
                let entry = Entry(name: name, row: row, trains: trains && (row.trainable || row.isInput))
                if let nested = row.layers { entry.children = entries(nested, scope: name, trains: entry.trains) }
                return entry
            }
        }
        self.entries = entries(summary.layers, scope: "", trains: true)
        var leaves: [String: Entry] = [:]
        for leaf in self.entries.flatMap(\.leaves) { leaves[leaf.name] = leaf }
        self.leaves = leaves
    }

    /// The leaf producing `input` (a summary input is `name` or `name[k]` for output k).
    func producer(_ input: String) -> String? {
        if leaves[input] != nil { return input }
        if input.hasSuffix("]"), let open = input.lastIndex(of: "[") {
            let base = String(input[..<open])
            if leaves[base] != nil { return base }
        }
        return nil
    }

    func build() throws -> PictureGraph {
        let kept = try keptLeaves()
        var picture = PictureGraph(name: summary.name.isEmpty ? "model" : summary.name)
        picture.attributes = [("rankdir", options.direction.rawValue), ("fontname", "Helvetica"), ("fontsize", "11"),
                              ("nodesep", "0.25"), ("ranksep", "0.3")]
        picture.nodeDefaults = [("shape", "box"), ("style", "rounded,filled"), ("fontname", "Helvetica"), ("fontsize", "10"),
                                ("margin", "0.08,0.03"), ("height", "0.3")]
        picture.edgeDefaults = [("arrowsize", "0.6"), ("color", "#555555")]
        // Where each leaf is drawn: itself, its collapsed model's box, its block's twin in a fold.
        var drawnAs: [String: String] = [:]
        // Leaves of folded blocks after the first: their arrows inside the fold are not drawn.
        var foldOf: [String: Int] = [:]
        var folds = 0
        func items(_ entries: [Entry]) -> [PictureGraph.Item] {
            let visible = entries.filter { entry in entry.leaves.contains { kept.contains($0.name) } }
            var result: [PictureGraph.Item] = []
            var index = 0
            let runs = options.foldRepeats ? RepeatFolding(entries: visible, producer: producer).runs() : []
            while index < visible.count {
                if let run = runs.first(where: { $0.start == index }) {
                    folds += 1
                    let first = Array(visible[index..<index + run.length])
                    for copy in 0..<run.count {
                        for (offset, entry) in visible[(index + copy * run.length)..<(index + (copy + 1) * run.length)].enumerated() {
                            for (leaf, twin) in zip(entry.leaves, first[offset].leaves) {
                                foldOf[leaf.name] = folds
                                if copy > 0 { drawnAs[leaf.name] = twin.name }
                            }
                        }
                    }
                    let last = visible[index + run.count * run.length - 1]
                    let params = visible[index..<(index + run.count * run.length)].reduce(0) { $0 + $1.row.params }
                    let label = "<B>×\(run.count)</B> blocks wired alike (\(shortened(first[0].row.name)) … \(shortened(last.row.name)))"
                        + "<BR/>\(Readable.grouped(params)) params in all"
                    var cluster = PictureGraph.Cluster(name: "cluster_fold_\(folds)", label: label,
                                                       attributes: [("class", "fold"), ("style", "dashed,rounded"), ("color", "#7a5c00")])
                    cluster.items = items(first)
                    result.append(.cluster(cluster))
                    index += run.count * run.length
                    continue
                }
                let entry = visible[index]
                index += 1
                if let children = entry.children, !options.collapseNested {
                    var cluster = PictureGraph.Cluster(name: "cluster_\(entry.name)", label: clusterLabel(entry))
                    cluster.attributes = [("class", "model" + (entry.trains ? "" : " frozen")), ("style", "rounded"),
                                          ("color", entry.trains ? "#4a7f4a" : "#888888")]
                    cluster.items = items(children)
                    result.append(.cluster(cluster))
                } else {
                    for leaf in entry.leaves where drawnAs[leaf.name] == nil { drawnAs[leaf.name] = entry.name }
                    result.append(.node(node(entry)))
                }
            }
            return result
        }
        picture.items = items(entries)
        for name in kept where drawnAs[name] == nil { drawnAs[name] = name }
        picture.edges = edges(kept: kept, drawnAs: drawnAs, foldOf: foldOf)
        if let marks { marks.apply(to: &picture, drawnAs: drawnAs, builder: self) }
        picture.items.append(.node(legend()))
        return picture
    }

    private func edges(kept: Set<String>, drawnAs: [String: String], foldOf: [String: Int]) -> [PictureGraph.Edge] {
        var seen = Set<[String]>()
        var result: [PictureGraph.Edge] = []
        for entry in entries.flatMap(\.leaves) where kept.contains(entry.name) {
            guard let head = drawnAs[entry.name] else { continue }
            let folded = head != entry.name && foldOf[entry.name] != nil
            for input in entry.row.inputs {
                guard let source = producer(input), kept.contains(source), let tail = drawnAs[source], tail != head else { continue }
                // A later copy of a folded block: its arrows from inside the fold are the first copy's.
                if folded, foldOf[source] == foldOf[entry.name] { continue }
                if seen.insert([tail, head]).inserted { result.append(PictureGraph.Edge(tail: tail, head: head)) }
            }
        }
        return result
    }

    /// Names in boxes: whole up to `labelCharacters`, then cut with an ellipsis (escaped for HTML).
    func shortened(_ name: String) -> String {
        let limit = max(8, options.labelCharacters)
        return PictureGraph.html(name.count <= limit ? name : String(name.prefix(limit - 1)) + "…")
    }

    func details(_ row: ModelSummary.Layer) -> String {
        var parts = [PictureGraph.html(row.type), PictureGraph.html(summary.shapeText(row.outputShape, names: nil))]
        if row.params > 0 { parts.append("\(Readable.grouped(row.params)) params") }
        if let shared = row.sharedWith { parts.append("weights of " + shortened(shared)) }
        return parts.joined(separator: " · ")
    }

    func node(_ entry: Entry) -> PictureGraph.Node {
        var classes = ["layer"]
        let fill: String
        if entry.row.isInput {
            classes.append("input")
            fill = "#dde7f3"
        } else if entry.trains {
            classes.append("trainable")
            fill = "#d9f0d3"
        } else {
            classes.append("frozen")
            fill = "#e4e4e4"
        }
        if entry.isNested { classes.append("model") }
        var attributes = [("class", classes.joined(separator: " ")), ("fillcolor", fill)]
        if !entry.trains && !entry.row.isInput { attributes.append(("color", "#888888")) }
        if entry.isNested { attributes.append(("peripheries", "2")) }
        return PictureGraph.Node(name: entry.name, label: "<B>\(shortened(entry.row.name))</B><BR/><FONT POINT-SIZE=\"8\">\(details(entry.row))</FONT>",
                                 attributes: attributes)
    }

    func clusterLabel(_ entry: Entry) -> String {
        "<B>\(shortened(entry.row.name))</B> (\(PictureGraph.html(entry.row.type)), \(Readable.grouped(entry.row.params)) params"
            + (entry.trains ? ")" : ", frozen)")
    }

    /// The key: what the fills and outlines mean.
    func legend() -> PictureGraph.Node {
        var rows = [("#d9f0d3", "trainable"), ("#e4e4e4", "frozen"), ("#dde7f3", "input")]
        if options.foldRepeats { rows.append(("#ffffff", "×N: block drawn once")) }
        if let marks { rows += marks.legendRows }
        let cells = rows.map { "<TR><TD BGCOLOR=\"\($0.0)\" BORDER=\"1\" WIDTH=\"14\"> </TD><TD ALIGN=\"LEFT\">\(PictureGraph.html($0.1))</TD></TR>" }
        return PictureGraph.Node(name: "scion:legend",
                                 label: "<TABLE BORDER=\"0\" CELLSPACING=\"2\" CELLPADDING=\"1\">\(cells.joined())</TABLE>",
                                 attributes: [("class", "legend"), ("shape", "plaintext"), ("style", "")])
    }
}
