import Foundation
@testable import Scion
import ScionIR
@testable import ScionKeras
import ScionRuntime
import ScionTestSupport
import XCTest

/// docs/keras-coverage.md is this test's output: one row per layer class Keras 3 exports
/// (fixtures/keras3_layer_classes.json, listed by fixtures/list_keras_layers.py), and what Scion does
/// with it on each path, found by doing it on every Keras 3 fixture that holds the class. A path
/// that works on a model says "yes" for each class in it; one that fails names a layer, and that
/// layer's class gets the refusal. The table cannot drift: a change in what Scion does changes the
/// computed table and fails this test until the page is regenerated with
/// `SCION_UPDATE_COVERAGE=1 swift test --filter KerasCoverageTests`.
final class KerasCoverageTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")
    static let page = fixtures.deletingLastPathComponent().appendingPathComponent("docs/keras-coverage.md")

    /// The paths a row reports, in column order.
    enum Path: String, CaseIterable {
        case read, write, onnx = "ONNX", run, train
    }

    /// What one path did with one class across the fixtures holding it.
    struct Evidence {
        var worked: Set<String> = []
        var refusals: [String: String] = [:]  // fixture -> reason

        var cell: String {
            let reason = refusals.values.sorted().first.map(Self.short)
            switch (worked.isEmpty, reason) {
            case (false, nil): return "yes"
            case (false, let reason?): return "partly: \(reason)"
            case (true, let reason?): return "no: \(reason)"
            case (true, nil): return "not shown"
            }
        }

        static func short(_ reason: String) -> String {
            let flat = reason.replacingOccurrences(of: "|", with: "/").replacingOccurrences(of: "\n", with: " ")
            return flat.count <= 110 ? flat : String(flat.prefix(107)) + "..."
        }
    }

    func testCoveragePageMatchesWhatScionDoes() throws {
        let listing = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("keras3_layer_classes.json")))
        let object = try XCTUnwrap(listing as? [String: Any])
        let listed = try XCTUnwrap(object["classes"] as? [String: [String: String]])
        let classes = listed.mapValues { Listing(family: $0["family"] ?? "?", aliasOf: $0["aliasOf"]) }
        let version = object["kerasVersion"] as? String ?? "?"
        var evidence: [String: [Path: Evidence]] = [:]
        var shownIn: [String: Set<String>] = [:]
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("scion-coverage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: scratch) }
        // Keras 2 files name the same classes: their fixtures are evidence too (tf.keras's
        // activation_zoo converts to ONNX whole, where Keras 3's stops at sparsemax).
        let models = try ["keras3", "keras2"].flatMap { version in
            let folder = Self.fixtures.appendingPathComponent(version)
            return try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }
                .map { (folder, String($0.dropLast(5)), "\(version)/\(String($0.dropLast(5)))") }
        }
        for (folder, file, name) in models.sorted(by: { $0.2 < $1.2 }) {
            let keras = folder.appendingPathComponent("\(file).keras"), h5 = folder.appendingPathComponent("\(file).h5")
            let path = FileManager.default.fileExists(atPath: keras.path) ? keras.path : h5.path
            guard FileManager.default.fileExists(atPath: path), let model = try? Model.load(path),
                  !model.graph.nodes.isEmpty else { continue }
            let typeOf = { (node: Node) in model.graph.info.nodeTypes[node.name] ?? node.op.typeName }
            let present = Set(model.graph.nodes.map(typeOf))
            for type in present { shownIn[type, default: []].insert(name) }
            func record(_ path: Path, _ outcome: Result<Void, Error>, only: Set<String>? = nil) {
                switch outcome {
                case .success:
                    for type in only ?? present { evidence[type, default: [:]][path, default: Evidence()].worked.insert(name) }
                case .failure(let error):
                    let message = "\(error)"
                    // The layer the refusal names; its class gets the refusal, the others stay unshown.
                    guard let node = model.graph.nodes.filter({ message.contains("\($0.name): ") })
                        .max(by: { $0.name.count < $1.name.count }) else { return }
                    let reason = message.components(separatedBy: "\(node.name): ").dropFirst().joined(separator: "\(node.name): ")
                    evidence[typeOf(node), default: [:]][path, default: Evidence()].refusals[name] = reason
                }
            }
            // Reading: interpreted as an IR op, or kept as read (weights and config) without meaning.
            for node in model.graph.nodes {
                if case .opaque = node.op {
                    evidence[typeOf(node), default: [:]][.read, default: Evidence()].refusals[name] =
                        "kept as read (config and weights), not interpreted"
                } else {
                    evidence[typeOf(node), default: [:]][.read, default: Evidence()].worked.insert(name)
                }
            }
            record(.write, Result { try model.write(to: scratch.appendingPathComponent("\(file).keras").path, options: .init(force: true)) })
            record(.onnx, Result { try model.write(to: scratch.appendingPathComponent("\(file).onnx").path, options: .init(force: true)) })
            let inputs = try FixtureArrays.read(folder, file, "input"), outputs = try FixtureArrays.read(folder, file, "output")
            guard !inputs.isEmpty, inputs.count == model.graph.inputs.count else { continue }
            record(.run, Result {
                let executor = try model.executor()
                _ = try executor.run(Dictionary(uniqueKeysWithValues: zip(executor.graph.inputs.map(\.name), inputs)))
            })
            guard inputs.count == 1, outputs.count == 1 else { continue }
            // A layer without a gradient stops the backward pass; freezing it and what feeds it lets
            // the layers after it show whether theirs work.
            var frozen = Set<String>()
            for _ in 0..<8 {
                let outcome = Result { try Self.trainOneStep(model.graph, frozen: frozen, x: inputs[0], y: outputs[0]) }
                record(.train, outcome, only: Set(model.graph.nodes.filter { !frozen.contains($0.name) }.map(typeOf)))
                guard case .failure(let error) = outcome,
                      let node = model.graph.nodes.filter({ "\(error)".contains("\($0.name): ") })
                        .max(by: { $0.name.count < $1.name.count }), !frozen.contains(node.name) else { break }
                frozen.formUnion(Self.ancestors(of: node, in: model.graph))
            }
        }
        let computed = Self.render(classes: classes, version: version, evidence: evidence, shownIn: shownIn)
        if ProcessInfo.processInfo.environment["SCION_UPDATE_COVERAGE"] != nil {
            try computed.write(to: Self.page, atomically: true, encoding: .utf8)
        }
        let written = (try? String(contentsOf: Self.page, encoding: .utf8)) ?? ""
        XCTAssertEqual(written, computed, "docs/keras-coverage.md is stale: regenerate it with SCION_UPDATE_COVERAGE=1 swift test --filter KerasCoverageTests")
    }

    /// One SGD step with every layer trainable and a mean-squared-error loss against Keras's own
    /// outputs: the backward pass must reach every node.
    static func trainOneStep(_ graph: Graph, frozen: Set<String>, x: RuntimeTensor, y: RuntimeTensor) throws {
        var thawed = graph
        for index in thawed.nodes.indices { thawed.nodes[index].trainable = !frozen.contains(thawed.nodes[index].name) }
        var trainer = try Trainer(graph: try Model.lowered(thawed).0)
        let features = try trainer.features(of: x)
        var options = Trainer.Options()
        options.epochs = 1
        options.batchSize = x.shape.first ?? 1
        options.loss = .meanSquaredError
        options.optimizer = .sgd(momentum: 0, nesterov: false)
        _ = try trainer.fit(features, targets: y, options: options)
    }

    /// A node and every node it reads from, directly or not.
    static func ancestors(of node: Node, in graph: Graph) -> Set<String> {
        var producers: [String: Node] = [:]
        for candidate in graph.nodes { for output in candidate.outputs { producers[output] = candidate } }
        var found: Set<String> = [node.name], pending = [node]
        while let current = pending.popLast() {
            for input in current.inputs {
                guard let producer = producers[input], found.insert(producer.name).inserted else { continue }
                pending.append(producer)
            }
        }
        return found
    }

    struct Listing {
        var family: String
        var aliasOf: String?
    }

    /// What the reader makes of a class no fixture holds: its table interprets the class (an op, or
    /// a refusal of the empty config's values) or keeps it as read.
    static func readerKnows(_ className: String) -> Bool {
        do {
            return try KerasLayerTable(kerasMajorVersion: 3).op(className: className, config: .object([:])) != nil
        } catch {
            return true
        }
    }

    static func render(classes: [String: Listing], version: String, evidence: [String: [Path: Evidence]],
                       shownIn: [String: Set<String>]) -> String {
        var lines = [
            "# Keras 3 layer coverage",
            "",
            "<!-- Generated by Tests/ScionTests/KerasCoverageTests.swift: do not edit by hand. -->",
            "",
            "Every layer class Keras \(version) exports in `keras.layers`, and what Scion does with it, found by doing",
            "it: each path is tried on every Keras 3 fixture in `fixtures/keras3` that holds the class.",
            "",
            "- **read**: `yes` when Scion reads the layer as an IR op it interprets; `no: kept as read` when it",
            "  keeps the layer's config and weights without meaning (inspect lists it, surgery can cut it away,",
            "  `.keras`/`.h5` output writes it back unchanged).",
            "- **write**: Scion writes the model holding it as `.keras` (Keras 3 loading each written fixture with",
            "  the same outputs is `Tests/Interop/check_keras.py`).",
            "- **ONNX**: the model converts to ONNX (onnxruntime matching Keras is `Tests/Interop/check_onnx.py`).",
            "- **run**: Scion's executor runs it (its outputs matching Keras's is `FixtureRunTests`).",
            "- **train**: one training step with every layer trainable reaches it (gradients are checked",
            "  against finite differences in `GradientCheckTests`).",
            "",
            "`no: reason` is Scion's own one-line refusal. `not shown`: no fixture settles it (the models holding",
            "the class stop earlier, at another layer). `partly`: works in some settings, refused in others.",
            "A class with no fixture says so; the table is regenerated with",
            "`SCION_UPDATE_COVERAGE=1 swift test --filter KerasCoverageTests`.",
            "",
            "| class | family | read | write | ONNX | run | train | fixtures |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for (name, listing) in classes.sorted(by: { $0.key < $1.key }) {
            if let canonical = listing.aliasOf {
                lines.append("| `\(name)` | \(listing.family) | another name for `\(canonical)` | | | | | |")
                continue
            }
            guard let paths = evidence[name] else {
                let read = readerKnows(name) ? "no fixture (the reader interprets it)" : "no fixture (kept as read)"
                lines.append("| `\(name)` | \(listing.family) | \(read) | | | | | |")
                continue
            }
            let cells = Path.allCases.map { (paths[$0] ?? Evidence()).cell }
            let fixtures = (shownIn[name] ?? []).sorted().prefix(4).joined(separator: ", ")
            lines.append("| `\(name)` | \(listing.family) | \(cells.joined(separator: " | ")) | \(fixtures) |")
        }
        let covered = classes.filter { evidence[$0.key] != nil || $0.value.aliasOf.map { evidence[$0] != nil } == true }.count
        lines += ["", "\(covered) of \(classes.count) classes appear in a fixture.", ""]
        return lines.joined(separator: "\n")
    }
}
