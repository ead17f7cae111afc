import ScionImages
import XCTest

/// The whole fixture folder read as Keras 3's image_dataset_from_directory reads it (TensorFlow
/// backend), compared with the arrays it produced: fixtures/images/reference/keras_*.npz.
final class KerasFolderTests: XCTestCase {
    func testIndexOrderAndClassNamesMatchKeras() throws {
        let expected = try ImageFixtures.index()
        let index = try ImageFolderIndex(folder: ImageFixtures.folder)
        XCTAssertEqual(index.classNames, expected.class_names)
        XCTAssertEqual(index.samples.map(\.relativePath), expected.files)
        XCTAssertEqual(index.skipped, [])
    }

    func testValidationSplitsMatchKerasFilePaths() throws {
        let index = try ImageFolderIndex(folder: ImageFixtures.folder)
        for split in try ImageFixtures.index().splits {
            let (training, validation) = try index.split(validationFraction: split.validation_split, seed: split.seed)
            XCTAssertEqual(training.map(\.relativePath), split.training, "seed \(split.seed)")
            XCTAssertEqual(validation.map(\.relativePath), split.validation, "seed \(split.seed)")
            XCTAssertEqual(validation.map(\.label), validation.map { index.classNames.firstIndex(of: String($0.relativePath.prefix { $0 != "/" })) })
        }
    }

    func testShuffleEqualsNumpyRandomStateShuffle() throws {
        for expected in try ImageFixtures.index().shuffles {
            var values = Array(0..<expected.length)
            var random = NumpyRandomState(seed: expected.seed)
            random.shuffle(&values)
            XCTAssertEqual(Array(values.prefix(50)), expected.head, "seed \(expected.seed), \(expected.length) values")
            XCTAssertEqual(Array(values.suffix(50)), expected.tail, "seed \(expected.seed)")
            XCTAssertEqual(values.enumerated().reduce(0) { $0 + $1.offset * $1.element }, expected.weighted_sum, "seed \(expected.seed)")
        }
    }

    /// (reference, size, interpolation, crop, channels)
    static let configurations: [(String, Int, Int, Interpolation, Bool, Int)] = [
        ("keras_bilinear.npz", 12, 12, .bilinear, false, 3),
        ("keras_nearest.npz", 10, 14, .nearest, false, 3),
        ("keras_area.npz", 9, 11, .area, false, 3),
        ("keras_bilinear_crop.npz", 12, 10, .bilinear, true, 3),
        ("keras_bilinear_gray.npz", 12, 12, .bilinear, false, 1),
        ("keras_bicubic.npz", 13, 9, .bicubic, false, 3),
    ]

    func testFolderArraysEqualKerasImageDatasetFromDirectory() throws {
        let excludedFromGray = Set(try ImageFixtures.index().grayscale_excluded)
        for (name, height, width, interpolation, crop, channels) in Self.configurations {
            let reference = try ImageFixtures.arrays(name)
            let x = try XCTUnwrap(reference["x"]), y = try XCTUnwrap(reference["y"])
            var samples = try ImageFolderIndex(folder: ImageFixtures.folder).samples
            if channels == 1 { samples.removeAll { excludedFromGray.contains($0.relativePath) } }
            let pipeline = ImagePipeline(decode: DecodeOptions(channels: channels),
                                         resize: ResizeOptions(height: height, width: width, interpolation: interpolation, cropToAspectRatio: crop))
            let batches = ImageBatches(samples: samples, batchSize: 16, pipeline: pipeline, policy: .fail)
            var pixels: [Float] = [], labels: [Int] = []
            let stream = batches.makeStream()
            while let batch = try stream.next() {
                pixels += batch.pixels
                labels += batch.labels
            }
            XCTAssertEqual(x.shape, [samples.count, height, width, channels], name)
            XCTAssertEqual(labels.map(Float.init), y.data, name)
            let largest = x.data.map(abs).max() ?? 0
            let difference = zip(pixels, x.data).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(difference, 1e-4 * largest, "\(name): largest difference \(difference)")
        }
    }
}
