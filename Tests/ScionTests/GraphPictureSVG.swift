import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// What a test reads back from a rendered SVG: each node's and cluster's id, classes and <title>.
struct RenderedSVG {
    struct Group {
        var id: String
        var classes: Set<String>
        var title = ""
        var texts: [String] = []
    }

    var nodes: [Group] = []
    var clusters: [Group] = []
    var edges: [Group] = []

    /// Parses `data` with Foundation's XMLParser; nil when it is not well-formed XML.
    init?(_ data: Data) {
        let reader = Reader()
        let parser = XMLParser(data: data)
        parser.delegate = reader
        guard parser.parse() else { return nil }
        for group in reader.groups {
            if group.classes.contains("node") { nodes.append(group) }
            if group.classes.contains("cluster") { clusters.append(group) }
            if group.classes.contains("edge") { edges.append(group) }
        }
    }

    func node(_ id: String) -> Group? { nodes.first { $0.id == id } }

    private final class Reader: NSObject, XMLParserDelegate {
        var groups: [Group] = []
        private var open: [Int?] = []
        private var element = ""
        private var text = ""

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            element = name
            text = ""
            if name == "g" {
                let classes = Set((attributes["class"] ?? "").split(separator: " ").map(String.init))
                groups.append(Group(id: attributes["id"] ?? "", classes: classes))
                open.append(groups.count - 1)
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "g" { _ = open.popLast(); return }
            guard let index = open.last.flatMap({ $0 }) else { return }
            if name == "title", groups[index].title.isEmpty { groups[index].title = text }
            if name == "text" { groups[index].texts.append(text) }
            text = ""
        }
    }
}
