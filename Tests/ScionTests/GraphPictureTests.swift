import CGraphviz
import Foundation
import Scion
import Synchronization
import ScionImages
import ScionIR
import ScionPasses
import XCTest

/// `Model.graphPicture`: the SVG read back with XMLParser, a PNG decoded, the DOT parsed by libcgraph.
final class GraphPictureTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func fixture(_ path: String) -> String { Self.fixtures.appendingPathComponent(path).path }

    /// The layers `scion inspect` lists, by full name, with whether they train (a nested model's
    /// flag included).
    func layers(of model: Model) throws -> [String: Bool] {
        let summary = try ModelSummary(graph: model.graph, format: model.format.rawValue, includeWeights: false, checksums: false)
        var result: [String: Bool] = [:]
        func walk(_ rows: [ModelSummary.Layer], scope: String, trains: Bool) {
            for row in rows {
                let name = scope.isEmpty ? row.name : "\(scope)/\(row.name)"
                if let nested = row.layers { walk(nested, scope: name, trains: trains && row.trainable) } else {
                    result[name] = trains && row.trainable
                }
            }
        }
        walk(summary.layers, scope: "", trains: true)
        return result
    }

    func testEveryLayerOnceWithItsNameClustersAndTrainability() throws {
        let model = try Model.load(fixture("keras3/nested_transfer.keras"))
        let svg = try XCTUnwrap(RenderedSVG(try model.graphPicture(format: .svg)), "the SVG is not well-formed XML")
        let expected = try layers(of: model)
        let drawn = svg.nodes.filter { $0.classes.contains("layer") }
        XCTAssertEqual(drawn.map(\.id).sorted(), expected.keys.sorted())
        XCTAssertEqual(Set(drawn.map(\.id)).count, drawn.count, "a layer drawn twice")
        for node in drawn {
            XCTAssertEqual(node.title, node.id)
            let isInput = node.classes.contains("input")
            if !isInput {
                XCTAssertEqual(node.classes.contains("trainable"), expected[node.id], node.id)
                XCTAssertEqual(node.classes.contains("frozen"), !(expected[node.id] ?? true), node.id)
            }
        }
        XCTAssertEqual(svg.node("base/base_conv1")?.classes.contains("frozen"), true)
        XCTAssertEqual(svg.node("head")?.classes.contains("trainable"), true)
        let cluster = try XCTUnwrap(svg.clusters.first { $0.classes.contains("model") })
        XCTAssertEqual(cluster.title, "cluster_base")
        XCTAssertTrue(cluster.classes.contains("frozen"))
        // The box shows the count inspect prints.
        XCTAssertTrue(svg.node("base/base_conv2")?.texts.contains { $0.contains("876 params") } ?? false)

        var options = GraphPictureOptions()
        options.collapseNested = true
        let collapsed = try XCTUnwrap(RenderedSVG(try model.graphPicture(format: .svg, options: options)))
        XCTAssertTrue(collapsed.clusters.isEmpty)
        XCTAssertEqual(collapsed.node("base")?.classes.contains("frozen"), true)
        XCTAssertNil(collapsed.node("base/base_conv1"))
    }

    /// Graphviz keeps global state: renders from several threads at once are serialized, each whole.
    func testRendersFromSeveralThreadsAtOnce() throws {
        let model = try Model.load(fixture("keras3/nested_transfer.keras"))
        let expected = try model.graphPicture(format: .svg)
        let results = Mutex<[Data?]>(Array(repeating: nil, count: 4))
        DispatchQueue.concurrentPerform(iterations: 4) { index in
            let picture = try? model.graphPicture(format: index % 2 == 0 ? .svg : .png)
            results.withLock { $0[index] = picture }
        }
        let pictures = results.withLock { $0 }
        XCTAssertEqual(pictures[0], expected)
        XCTAssertEqual(pictures[2], expected)
        XCTAssertEqual(pictures[1].map { Array($0.prefix(4)) }, [0x89, 0x50, 0x4E, 0x47])
        XCTAssertEqual(pictures[3]?.count, pictures[1]?.count)
    }

    func testFromToKeepsThePathBetween() throws {
        let model = try Model.load(fixture("keras3/nested_transfer.keras"))
        var options = GraphPictureOptions()
        options.from = "base_pool"
        options.to = "gap"
        options.direction = .leftToRight
        let svg = try XCTUnwrap(RenderedSVG(try model.graphPicture(format: .svg, options: options)))
        XCTAssertEqual(svg.nodes.filter { $0.classes.contains("layer") }.map(\.id),
                       ["base/base_pool", "base/base_conv2", "base/base_bn2", "base/base_relu2", "gap"])
        options.to = "nope"
        XCTAssertThrowsError(try model.graphPicture(format: .svg, options: options)) { error in
            XCTAssertTrue("\(error)".contains("--to nope: no such layer"), "\(error)")
        }
    }

    func testPNGDecodes() throws {
        let model = try Model.load(fixture("keras3/nested_transfer.keras"))
        let png = try model.graphPicture(format: .png)
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let image = try png.withUnsafeBytes { try ImageDecoder.decode($0, file: "picture.png") }
        XCTAssertGreaterThan(image.width, 100)
        XCTAssertGreaterThan(image.height, 300, "nine layers top to bottom")
    }

    /// libcgraph reads the DOT back: the same node names, the edges the SVG draws.
    func testDOTParsesBackWithTheSameNames() throws {
        let model = hostileModel()
        let dot = try model.graphPicture(format: .dot)
        let names = try parsedNodeNames(dot)
        // Graphviz's DOT cannot spell an odd run of backslashes before a quote or at the end: those
        // read back one backslash longer (docs/graph.md); every other name reads back exactly.
        let spelled = hostileNames.map(printable).map { name in
            name == "back\\" ? "back\\\\" : name == "back\\\"slash" ? "back\\\\\"slash" : name
        }
        XCTAssertEqual(names.subtracting(["scion:legend"]), Set(spelled + ["x"]))
    }

    func parsedNodeNames(_ dot: Data) throws -> Set<String> {
        var text = [CChar](dot.map { CChar(bitPattern: $0) })
        text.append(0)
        let graph = try XCTUnwrap(agmemread(&text), "libcgraph did not parse the DOT")
        defer { agclose(graph) }
        var names = Set<String>()
        var node = agfstnode(graph)
        while let current = node {
            names.insert(String(cString: agnameof(UnsafeMutableRawPointer(current))))
            node = agnxtnode(graph, current)
        }
        return names
    }

    let hostileNames = ["say \"hi\"", "<script>alert(1)</script>", "a & b &amp; c", "\"]; evil [label=\"x", "ñandú 日本 🙂",
                        String(repeating: "long", count: 2_500), "back\\", "back\\\"slash", "\\N\\G", "tab\tnew\nline"]

    func printable(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.map { $0.value < 0x20 ? "\u{FFFD}" : $0 }))
    }

    /// A chain of ReLUs named to break a careless writer, written as ONNX and read back.
    func hostileModel() -> Model {
        var nodes: [Node] = []
        var previous = "x"
        for name in hostileNames {
            nodes.append(Node(name: name, op: .activation(.plainRelu), inputs: [previous], outputs: [name]))
            previous = name
        }
        let graph = Graph(name: "hostile \"graph\"", inputs: [ValueInfo(name: "x", shape: Shape([nil, 4]), dtype: .float32)],
                          outputs: [previous], nodes: nodes, parameters: ParameterTable(), metadata: ["format": "test"])
        return Model(graph: graph, format: .onnx, path: "hostile.onnx")
    }

    /// Four residual blocks wired alike after a stem: drawn once in a ×4 box, the arrows out of the
    /// fold leaving its one copy.
    func testFoldRepeatsDrawsIdenticalBlocksOnce() throws {
        var nodes = [Node(name: "stem", op: .activation(.plainRelu), inputs: ["x"], outputs: ["stem"])]
        var previous = "stem"
        for block in 1...4 {
            nodes.append(Node(name: "b\(block)_a", op: .activation(.plainRelu), inputs: [previous], outputs: ["b\(block)_a"]))
            nodes.append(Node(name: "b\(block)_b", op: .activation(.plainRelu), inputs: ["b\(block)_a"], outputs: ["b\(block)_b"]))
            nodes.append(Node(name: "b\(block)_add", op: .elementwise(.add), inputs: [previous, "b\(block)_b"], outputs: ["b\(block)_add"]))
            previous = "b\(block)_add"
        }
        nodes.append(Node(name: "out", op: .activation(.sigmoid), inputs: [previous], outputs: ["out"]))
        let graph = Graph(name: "residual", inputs: [ValueInfo(name: "x", shape: Shape([nil, 4]), dtype: .float32)],
                          outputs: ["out"], nodes: nodes, parameters: ParameterTable(), metadata: ["format": "test"])
        let model = Model(graph: graph, format: .kerasArchive, path: "residual.keras")
        var options = GraphPictureOptions()
        options.foldRepeats = true
        let svg = try XCTUnwrap(RenderedSVG(try model.graphPicture(format: .svg, options: options)))
        XCTAssertEqual(svg.nodes.filter { $0.classes.contains("layer") }.map(\.id).sorted(), ["b1_a", "b1_add", "b1_b", "out", "stem", "x"])
        let fold = try XCTUnwrap(svg.clusters.first { $0.classes.contains("fold") })
        XCTAssertTrue(fold.texts.contains("×4"), "\(fold.texts)")
        let arrows = Set(svg.edges.map(\.title))
        XCTAssertTrue(arrows.contains("b1_add&#45;&gt;out") || arrows.contains("b1_add->out"), "\(arrows)")
        XCTAssertEqual(svg.edges.count, 6, "x→stem, stem→a, a→b, b→add, stem→add, add→out: \(arrows)")
    }

    func testHostileNamesAreEscapedNeverInjected() throws {
        // Written as an ONNX file and read back: the names as a hostile file would carry them.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString).onnx").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try hostileModel().write(to: file)
        let model = try Model.load(file)
        let data = try model.graphPicture(format: .svg)
        let svg = try XCTUnwrap(RenderedSVG(data), "hostile names broke the SVG")
        let drawn = svg.nodes.filter { $0.classes.contains("layer") }
        XCTAssertEqual(drawn.count, hostileNames.count + 1, "the input and each layer")
        for name in hostileNames.map(printable) {
            let node = try XCTUnwrap(svg.node(name), "no node with id \(name.prefix(40))")
            XCTAssertEqual(node.title, name)
        }
        XCTAssertFalse(String(decoding: data, as: UTF8.self).contains("<script>"))
        // No name became an attribute: every node carries only the classes Scion gives.
        XCTAssertTrue(drawn.allSatisfy { $0.classes.isSubset(of: ["node", "layer", "trainable", "input"]) })
    }

    /// A model cut and grafted: the old head struck through, the new one added.
    func testDiffMarksOnACutAndGraftedModel() throws {
        let source = try Model.load(fixture("keras3/nested_transfer.keras"))
        var edited = source
        try edited.apply(CutPass(.after("gap")))
        try edited.apply(GraftPass(head: try HeadSpec(parsing: "dense:5:softmax"), seed: 1))
        edited.graph.nodes = edited.graph.nodes.map { node in
            var node = node
            if node.name == "base/base_conv2" { node.trainable = true }
            return node
        }
        let svg = try XCTUnwrap(RenderedSVG(try edited.graphPicture(diffFrom: source, format: .svg)))
        let removed = svg.nodes.filter { $0.classes.contains("removed") }
        XCTAssertEqual(removed.map(\.title), ["removed:head"])
        let added = svg.nodes.filter { $0.classes.contains("added") }.map(\.id)
        XCTAssertEqual(added.count, 1, "\(added)")
        XCTAssertEqual(svg.nodes.filter { $0.classes.contains("refrozen") }.map(\.id), ["base/base_conv2"])
        XCTAssertTrue(svg.nodes.filter { $0.classes.contains("layer") && !$0.classes.contains("removed") }
            .allSatisfy { !$0.classes.contains("removed") })
        XCTAssertTrue(svg.edges.contains { $0.classes.contains("removed") }, "the removed head is wired to gap")
    }
}

/// The finetune and demo reports embed the pictures inline (no XML prolog inside the HTML).
final class TrainingReportPictureTests: XCTestCase {
    func testReportEmbedsTheTrainedModelAndTheDiff() throws {
        let model = GraphPictureTests.fixtures.appendingPathComponent("keras3/nested_transfer.keras").path
        var report = TrainingReport(title: "t", settings: [], runs: [], verifications: [])
        report.addModelPictures(source: model, trained: model)
        let page = report.html()
        XCTAssertEqual(page.components(separatedBy: "<svg").count - 1, 2, "the trained model and the diff")
        XCTAssertFalse(page.contains("<?xml"))
        XCTAssertTrue(page.contains("<title>base/base_conv1</title>"))
        report = TrainingReport(title: "t", settings: [], runs: [], verifications: [])
        report.addModelPictures(source: model, trained: "/nonexistent/model.keras")
        XCTAssertTrue(report.html().contains("No picture: /nonexistent/model.keras"), "a missing file is a line, not a failed report")
    }
}
