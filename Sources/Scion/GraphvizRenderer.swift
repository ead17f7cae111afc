import CGraphviz
import Foundation
import ScionIR

/// Lays out and renders a `PictureGraph` with Graphviz's library, in this process. The graph is
/// built through libcgraph's calls (no DOT text is parsed), so a name reaches Graphviz exactly as
/// it is. Graphviz keeps global state (its error buffer, plugin tables): every call is made under
/// one lock.
enum GraphvizRenderer {
    private static let lock = NSLock()
    /// Graphviz's context: loads the plugins its config file (`dot -c`) lists, once.
    nonisolated(unsafe) private static var context: OpaquePointer?

    static func render(_ picture: PictureGraph, format: String, file: String) throws -> Data {
        lock.lock()
        defer { lock.unlock() }
        // Runs last: after the graph is closed.
        defer { CStringPool.shared.drain() }
        if context == nil {
            // Warnings (a label too wide...) would go to stderr: Scion reports failures itself.
            agseterr(AGMAX)
            context = gvContext()
        }
        guard let context else { throw ScionError(file: file, "Graphviz could not start (gvContext failed)") }
        guard let graph = build(picture) else { throw ScionError(file: file, "Graphviz could not build the graph drawn") }
        defer { agclose(graph) }
        guard gvLayout(context, graph, "dot") == 0 else {
            throw ScionError(file: file, "Graphviz could not lay out the picture: its dot layout plugin is missing (libgvc6's config: run `dot -c` as root)")
        }
        defer { gvFreeLayout(context, graph) }
        var bytes: UnsafeMutablePointer<CChar>?
        var length: UInt32 = 0
        guard gvRenderData(context, graph, format, &bytes, &length) == 0, let bytes else {
            let plugin = format == "svg" ? "its core plugin" : "its cairo plugin (libgvplugin_pango, in Debian's libgvc6)"
            throw ScionError(file: file, "Graphviz has no \(format) renderer here: \(plugin) is missing or not registered (run `dot -c` as root)")
        }
        defer { gvFreeRenderData(bytes) }
        return Data(bytes: bytes, count: Int(length))
    }

    /// Graphviz's SVG writer escapes `<`, `>`, `"` but leaves `&` alone where it starts what looks
    /// like an entity (`&amp;`): a name with `&` written `&amp;` comes out exactly as it was.
    private static func svgSafe(_ name: String) -> String {
        PictureGraph.printable(name).replacingOccurrences(of: "&", with: "&amp;")
    }

    private static func build(_ picture: PictureGraph) -> UnsafeMutablePointer<Agraph_t>? {
        guard let graph = agopen(mutating(picture.name), scion_directed_graph(), nil) else { return nil }
        for (key, value) in picture.attributes { _ = agattr(graph, AGRAPH, mutating(key), mutating(value)) }
        for (key, value) in picture.nodeDefaults { _ = agattr(graph, AGNODE, mutating(key), mutating(value)) }
        for (key, value) in picture.edgeDefaults { _ = agattr(graph, AGEDGE, mutating(key), mutating(value)) }
        // Every attribute an object sets must be declared on the root first, with an empty default.
        var declared: [Int32: Set<String>] = [:]
        func declare(_ kind: Int32, _ key: String) {
            if declared[kind, default: []].insert(key).inserted, agattr(graph, kind, mutating(key), nil) == nil {
                _ = agattr(graph, kind, mutating(key), mutating(""))
            }
        }
        declare(AGNODE, "label")
        declare(AGNODE, "id")
        declare(AGRAPH, "label")
        var nodes: [String: UnsafeMutablePointer<Agnode_t>] = [:]
        func set(_ object: UnsafeMutableRawPointer, _ kind: Int32, _ key: String, _ value: String, html: Bool = false) {
            declare(kind, key)
            guard let symbol = agattr(graph, kind, mutating(key), nil) else { return }
            if html {
                let text = agstrdup_html(graph, mutating(value))
                agxset(object, symbol, text)
                agstrfree(graph, text)
            } else {
                agxset(object, symbol, mutating(value))
            }
        }
        func add(_ items: [PictureGraph.Item], to parent: UnsafeMutablePointer<Agraph_t>) {
            for item in items {
                switch item {
                case .node(let node):
                    let name = svgSafe(node.name)
                    guard let handle = agnode(parent, mutating(name), 1) else { continue }
                    nodes[node.name] = handle
                    set(handle, AGNODE, "label", node.label, html: true)
                    // `id` is an escString (`\N` would expand): backslashes doubled keep it literal.
                    set(handle, AGNODE, "id", name.replacingOccurrences(of: "\\", with: "\\\\"))
                    for (key, value) in node.attributes { set(handle, AGNODE, key, value) }
                case .cluster(let cluster):
                    guard let subgraph = agsubg(parent, mutating(svgSafe(cluster.name)), 1) else { continue }
                    set(subgraph, AGRAPH, "label", cluster.label, html: true)
                    for (key, value) in cluster.attributes { set(subgraph, AGRAPH, key, value) }
                    add(cluster.items, to: subgraph)
                }
            }
        }
        add(picture.items, to: graph)
        for edge in picture.edges {
            guard let tail = nodes[edge.tail], let head = nodes[edge.head],
                  let handle = agedge(graph, tail, head, nil, 1) else { continue }
            for (key, value) in edge.attributes { set(handle, AGEDGE, key, value) }
        }
        return graph
    }

    /// Graphviz's calls take `char *` they do not change; the strings live in its own string pool
    /// once passed (agstrdup), so a temporary C string is enough.
    private static func mutating(_ text: String) -> UnsafeMutablePointer<CChar> {
        CStringPool.shared.keep(text)
    }
}

/// C strings handed to Graphviz during one render, freed when it ends. Used only under the
/// renderer's lock.
private final class CStringPool: @unchecked Sendable {
    static let shared = CStringPool()
    private var strings: [UnsafeMutablePointer<CChar>] = []

    func keep(_ text: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(text)!
        strings.append(pointer)
        return pointer
    }

    func drain() {
        strings.forEach { free($0) }
        strings.removeAll()
    }
}
