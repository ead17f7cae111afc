/// `scion graph A --diff B`: the marks `ModelDiff` finds, drawn on the second model. Layers only
/// the first model has are drawn from it, struck through, wired to the layers they touched.
final class DiffMarks {
    let diff: ModelDiff
    /// The first model's layers, for drawing the removed ones.
    let before: GraphPictureBuilder

    init(diff: ModelDiff, before model: Model) throws {
        self.diff = diff
        before = try GraphPictureBuilder(model: model, options: GraphPictureOptions())
    }

    static let addedFill = "#cfe3ff", removedFill = "#fbd5d5", changedColor = "#d97706", refrozenColor = "#7c3aed"

    var legendRows: [(String, String)] {
        [(Self.addedFill, "added"), (Self.removedFill, "removed (struck through)"),
         (Self.changedColor, "changed settings (orange outline)"), (Self.refrozenColor, "trainability changed (purple outline)")]
    }

    /// `diff` names layers as its normal form does (Keras names, `/` or `_` between scopes): the
    /// leaf of `builder` with that name, or with the same name spelled as Keras spells it.
    static func locate(_ name: String, in builder: GraphPictureBuilder) -> String? {
        if builder.leaves[name] != nil { return name }
        let wanted = LayerMatching.kerasName(name)
        let matches = builder.leaves.values.filter {
            LayerMatching.kerasName($0.name) == wanted || LayerMatching.kerasName($0.row.name) == wanted
        }
        return matches.count == 1 ? matches[0].name : matches.map(\.name).sorted().first
    }

    func apply(to picture: inout PictureGraph, drawnAs: [String: String], builder: GraphPictureBuilder) {
        var extraClasses: [String: [String]] = [:]
        var extraAttributes: [String: [(String, String)]] = [:]
        var notes: [String: [String]] = [:]
        func mark(_ name: String?, _ kind: String, _ attributes: [(String, String)], note: String? = nil) {
            guard let name, let drawn = drawnAs[name] else { return }
            if !(extraClasses[drawn]?.contains(kind) ?? false) { extraClasses[drawn, default: []].append(kind) }
            extraAttributes[drawn, default: []] += attributes
            if let note { notes[drawn, default: []].append(note) }
        }
        for layer in diff.added {
            mark(Self.locate(layer.name, in: builder), "added", [("fillcolor", Self.addedFill), ("color", "#1f6feb"), ("penwidth", "2")])
        }
        // A layer matched under another name: its `name` change says what the second model calls it.
        var renamed: [String: String] = [:]
        for change in diff.changed where change.field == "name" { renamed[change.layer] = change.after }
        for change in diff.changed where change.layer != "(model)" {
            let name = Self.locate(renamed[change.layer] ?? change.layer, in: builder)
            mark(name, "changed", [("color", Self.changedColor), ("penwidth", "2.5")],
                 note: "\(change.field): \(change.before) → \(change.after)")
        }
        for change in diff.trainabilityChanged {
            let name = Self.locate(renamed[change.name] ?? change.name, in: builder)
            mark(name, "refrozen", [("color", Self.refrozenColor), ("penwidth", "2.5")],
                 note: change.after ? "was frozen, now trains" : "trained, now frozen")
        }
        func update(_ items: inout [PictureGraph.Item]) {
            for index in items.indices {
                switch items[index] {
                case .node(var node):
                    guard let classes = extraClasses[node.name] else { continue }
                    var attributes = node.attributes.filter { key, _ in !(extraAttributes[node.name] ?? []).contains { $0.0 == key } }
                    let own = node.attributes.first { $0.0 == "class" }?.1 ?? ""
                    attributes.removeAll { $0.0 == "class" }
                    attributes.append(("class", ([own] + classes).joined(separator: " ")))
                    attributes += extraAttributes[node.name] ?? []
                    if let lines = notes[node.name] { attributes.append(("tooltip", lines.joined(separator: "\n"))) }
                    node.attributes = attributes
                    items[index] = .node(node)
                case .cluster(var cluster):
                    update(&cluster.items)
                    items[index] = .cluster(cluster)
                }
            }
        }
        update(&picture.items)
        addRemoved(to: &picture, drawnAs: drawnAs, builder: builder)
    }

    /// The first model's layers the second lacks, drawn from the first: struck through, with the
    /// arrows they had to layers both models have (or to other removed layers).
    private func addRemoved(to picture: inout PictureGraph, drawnAs: [String: String], builder: GraphPictureBuilder) {
        var removedNames: [String: String] = [:]
        for layer in diff.removed {
            guard let name = Self.locate(layer.name, in: before) else { continue }
            removedNames[name] = "removed:" + name
        }
        func drawn(_ name: String) -> String? {
            if let removed = removedNames[name] { return removed }
            return Self.locate(name, in: builder).flatMap { drawnAs[$0] }
        }
        var edges = Set<[String]>()
        for (name, drawnName) in removedNames.sorted(by: { $0.key < $1.key }) {
            guard let entry = before.leaves[name] else { continue }
            let label = "<S><B>\(before.shortened(entry.row.name))</B></S><BR/><FONT POINT-SIZE=\"8\"><S>\(before.details(entry.row))</S></FONT>"
            picture.items.append(.node(PictureGraph.Node(
                name: drawnName, label: label,
                attributes: [("class", "layer removed"), ("fillcolor", Self.removedFill), ("color", "#c62828"), ("style", "rounded,filled,dashed"),
                             ("fontcolor", "#7f1d1d"), ("tooltip", "only in \(before.file): \(entry.name)")])))
            for input in entry.row.inputs {
                if let source = before.producer(input), let tail = drawn(source) { edges.insert([tail, drawnName]) }
            }
            for consumer in before.leaves.values where consumer.row.inputs.contains(where: { before.producer($0) == name }) {
                if removedNames[consumer.name] == nil, let head = drawn(consumer.name) { edges.insert([drawnName, head]) }
            }
        }
        for edge in edges.sorted(by: { $0.joined(separator: "\n") < $1.joined(separator: "\n") }) {
            picture.edges.append(PictureGraph.Edge(tail: edge[0], head: edge[1],
                                                   attributes: [("class", "removed"), ("style", "dashed"), ("color", "#c62828")]))
        }
    }
}
