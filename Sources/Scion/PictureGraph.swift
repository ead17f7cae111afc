/// A picture before layout: boxes, clusters and arrows with their Graphviz attributes. Both the
/// DOT writer and the in-process renderer read it, so the two always draw the same graph.
struct PictureGraph {
    /// One box: a layer, a collapsed nested model, or the legend.
    struct Node {
        /// The layer's full name: the node's Graphviz name, SVG id and `<title>`.
        var name: String
        /// An HTML-like label, its text already escaped (`PictureGraph.html`).
        var label: String
        /// Graphviz attributes other than the label (`class`, `fillcolor`...).
        var attributes: [(String, String)] = []
    }

    /// A box around a nested model or a folded run of blocks.
    struct Cluster {
        /// Graphviz requires the `cluster` prefix for a subgraph drawn as a box.
        var name: String
        var label: String
        var attributes: [(String, String)] = []
        var items: [Item] = []
    }

    enum Item {
        case node(Node)
        case cluster(Cluster)
    }

    struct Edge {
        var tail: String
        var head: String
        var attributes: [(String, String)] = []
    }

    var name: String
    /// Attributes of the whole graph (`rankdir`...).
    var attributes: [(String, String)] = []
    /// Defaults of every node.
    var nodeDefaults: [(String, String)] = []
    var edgeDefaults: [(String, String)] = []
    var items: [Item] = []
    var edges: [Edge] = []

    /// Text for an HTML-like label: markup characters escaped, control characters (which neither
    /// Graphviz's label parser nor XML accepts) replaced.
    static func html(_ text: String) -> String {
        Markup.escaped(text, keeping: isPrintable)
    }

    /// XML 1.0 allows no control character but tab, newline and carriage return; an SVG id or
    /// title with one would not parse, so such characters are shown as U+FFFD.
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0xFFFE || scalar.value == 0xFFFF)
    }

    /// A name as Graphviz and XML can carry it: control characters replaced (see `isPrintable`).
    static func printable(_ name: String) -> String {
        name.unicodeScalars.allSatisfy(isPrintable) ? name
            : String(String.UnicodeScalarView(name.unicodeScalars.map { isPrintable($0) ? $0 : "\u{FFFD}" }))
    }
}

extension PictureGraph {
    /// The graph in the DOT language. Names and values are quoted with `"` and `\` escaped; labels
    /// are HTML-like strings (`<...>`) whose text `html` escaped, so no name can end a string early.
    func dot() -> String {
        var lines = ["digraph \(Self.quote(name)) {"]
        func attributeList(_ attributes: [(String, String)]) -> String {
            attributes.map { "\(Self.quote($0.0))=\(Self.quote($0.1))" }.joined(separator: ", ")
        }
        for (key, value) in attributes { lines.append("  \(Self.quote(key))=\(Self.quote(value));") }
        if !nodeDefaults.isEmpty { lines.append("  node [\(attributeList(nodeDefaults))];") }
        if !edgeDefaults.isEmpty { lines.append("  edge [\(attributeList(edgeDefaults))];") }
        func emit(_ items: [Item], indent: String) {
            for item in items {
                switch item {
                case .node(let node):
                    let rest = node.attributes.isEmpty ? "" : ", " + attributeList(node.attributes)
                    lines.append("\(indent)\(Self.quote(node.name)) [label=<\(node.label)>\(rest)];")
                case .cluster(let cluster):
                    lines.append("\(indent)subgraph \(Self.quote(cluster.name)) {")
                    lines.append("\(indent)  label=<\(cluster.label)>;")
                    for (key, value) in cluster.attributes { lines.append("\(indent)  \(Self.quote(key))=\(Self.quote(value));") }
                    emit(cluster.items, indent: indent + "  ")
                    lines.append("\(indent)}")
                }
            }
        }
        emit(items, indent: "  ")
        for edge in edges {
            let rest = edge.attributes.isEmpty ? "" : " [\(attributeList(edge.attributes))]"
            lines.append("  \(Self.quote(edge.tail)) -> \(Self.quote(edge.head))\(rest);")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A DOT double-quoted string. Graphviz's scanner (2.43) reads `\"` as a quote and keeps every
    /// other backslash, in pairs, as it is; so an odd run of backslashes right before a quote or at
    /// the end cannot be spelled: it is written one longer (and reads back one longer). Nothing a
    /// name holds can end the string early.
    static func quote(_ text: String) -> String {
        var result = "\""
        var pendingBackslashes = 0
        func flush(beforeQuote: Bool) {
            let count = beforeQuote && pendingBackslashes % 2 == 1 ? pendingBackslashes + 1 : pendingBackslashes
            result += String(repeating: "\\", count: count)
            pendingBackslashes = 0
        }
        for scalar in printable(text).unicodeScalars {
            if scalar == "\\" { pendingBackslashes += 1; continue }
            flush(beforeQuote: scalar == "\"")
            if scalar == "\"" { result += "\\" }
            result.unicodeScalars.append(scalar)
        }
        flush(beforeQuote: true)
        return result + "\""
    }
}
