import Foundation

/// What real Keras reported for a fixture (`fixtures/kerasN/NAME.json`, written by the fixture scripts).
struct KerasReference: Decodable {
    struct Layer: Decodable {
        var name: String
        var className: String
        var outputShapes: [[Int?]]?
        var params: Int
        var trainable: Bool
        var layers: [Layer]?
    }

    struct Weight: Decodable {
        var name: String
        var shape: [Int]
        var trainable: Bool?
    }

    var kerasVersion: String
    var totalParams: Int
    var trainableParams: Int?
    var layers: [Layer]?
    var weights: [Weight]?
}

/// The repository's folders, found from this file's place in it.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("fixtures")

    /// Every fixture model with its Keras reference: `.h5`, `.keras` and `.weights.h5` files next to
    /// a `NAME.json`.
    static func fixtureModels() throws -> [(model: URL, reference: KerasReference)] {
        var result: [(URL, KerasReference)] = []
        for folder in ["keras2", "keras3"] {
            let directory = fixtures.appendingPathComponent(folder)
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
            for file in files where file.hasSuffix(".json") {
                let base = String(file.dropLast(5))
                let reference = try JSONDecoder().decode(
                    KerasReference.self, from: Data(contentsOf: directory.appendingPathComponent(file)))
                for suffix in [".h5", ".keras", ".weights.h5"] where files.contains(base + suffix) {
                    result.append((directory.appendingPathComponent(base + suffix), reference))
                }
            }
        }
        return result
    }
}
