import Foundation
import ScionImages
import ScionRuntime
import ScionZip

/// fixtures/images (fixtures/make_images.py): the digits folder and what Pillow, TensorFlow and
/// Keras read from it.
enum ImageFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let folder = root.appendingPathComponent("fixtures/images/digits").path
    static let reference = root.appendingPathComponent("fixtures/images/reference")

    /// An .npz's arrays by name; the per-file references are keyed by relative path with "/" as ":".
    static func arrays(_ name: String) throws -> [String: RuntimeTensor] {
        let path = reference.appendingPathComponent(name).path
        let archive = try ZipArchive(path: path)
        var result: [String: RuntimeTensor] = [:]
        for entry in archive.entries where entry.name.hasSuffix(".npy") {
            let bytes = try archive.contents(of: entry, limit: 64 << 20)
            result[String(entry.name.dropLast(4)).replacingOccurrences(of: ":", with: "/")] = try NumpyFile.decode(bytes, file: entry.name)
        }
        return result
    }

    struct Index: Decodable {
        struct Split: Decodable {
            var seed: UInt32
            var validation_split: Double
            var training: [String]
            var validation: [String]
        }
        struct Shuffle: Decodable {
            var seed: UInt32
            var length: Int
            var head: [Int]
            var tail: [Int]
            var weighted_sum: Int
        }
        var class_names: [String]
        var files: [String]
        var grayscale_excluded: [String]
        var splits: [Split]
        var shuffles: [Shuffle]
    }

    static func index() throws -> Index {
        try JSONDecoder().decode(Index.self, from: Data(contentsOf: reference.appendingPathComponent("keras_index.json")))
    }

    /// The largest difference between decoded samples and a reference array of the same shape.
    static func largestDifference(_ image: DecodedImage, _ expected: RuntimeTensor) -> Float? {
        let shape = expected.shape.count == 2 ? expected.shape + [1] : expected.shape
        guard shape == [image.height, image.width, image.channels] else { return nil }
        return zip(image.pixels, expected.data).map { abs(Float($0) - $1) }.max() ?? 0
    }
}
