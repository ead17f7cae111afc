import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import XCTest

/// Scion's augmentation transforms with their random parameters fixed, against the output of Keras 3's
/// own layers (`transform_images`, JAX backend) with the same parameters:
/// fixtures/images/reference/keras_augmentation.npz, made by fixtures/make_augmentation.py. Each within
/// `1e-4 * max|keras|`. (Which parameters are drawn, and how, is each tool's own: only the
/// distributions match, see AugmentationTrainingTests and Tests/Interop/finetune_augmentation.py.)
final class AugmentationKerasTests: XCTestCase {
    static let reference = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/images/reference/keras_augmentation.npz").path

    var arrays: [String: RuntimeTensor] = [:]

    override func setUpWithError() throws {
        arrays = Dictionary(uniqueKeysWithValues: try NumpyArchive.read(Self.reference).map { ($0.name, $0.tensor) })
    }

    func array(_ name: String) throws -> RuntimeTensor { try XCTUnwrap(arrays[name], "\(name) missing from the reference") }

    /// The two reference images, NHWC [2, 9, 11, 3].
    func images() throws -> (RuntimeTensor, ImageAxes) {
        let x = try array("images")
        return (x, try ImageAxes(x, .channelsLast, node: "test"))
    }

    func assertClose(_ scion: RuntimeTensor, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let keras = try array(name)
        XCTAssertEqual(scion.shape, keras.shape, name, file: file, line: line)
        let scale = keras.data.map(abs).max() ?? 0
        let worst = zip(scion.data, keras.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name): max |scion - keras| \(worst)", file: file, line: line)
    }

    /// Each image resampled through its own map by a sampler with these settings.
    func resampled(_ settings: String, maps: [[Float]]) throws -> RuntimeTensor {
        let (x, image) = try images()
        let attributes = AugmentationAttributes(kind: .randomRotation, configuration: settings)
        let sampler = try AffineSampler(try AugmentationSettings(attributes, node: "test"), node: "test")
        var y = x
        for (n, map) in maps.enumerated() { sampler.resample(x, into: &y, image: image, sample: n, map: map) }
        return y
    }

    func testRotationInEachFillModeAndInterpolation() throws {
        let (_, image) = try images()
        let degrees = try array("rotation_degrees").data
        let maps = degrees.map { AffineSampler.rotation(angle: $0 * Float.pi / 180, height: image.height, width: image.width) }
        for fill in ["reflect", "constant", "nearest", "wrap"] {
            for interpolation in ["bilinear", "nearest"] {
                let settings = #"{"factor": 0.1, "fill_mode": "\#(fill)", "interpolation": "\#(interpolation)", "fill_value": 7.0}"#
                try assertClose(try resampled(settings, maps: maps), "rotation_\(fill)_\(interpolation)")
            }
        }
    }

    func testZoomAndTranslation() throws {
        let (_, image) = try images()
        let zooms = try array("zoom_factors").data
        let zoomMaps = (0..<2).map { AffineSampler.zoom(x: zooms[2 * $0], y: zooms[2 * $0 + 1], height: image.height, width: image.width) }
        try assertClose(try resampled(#"{"fill_mode": "reflect"}"#, maps: zoomMaps), "zoom_reflect_bilinear")
        let shifts = try array("translation_pixels").data
        let shiftMaps = (0..<2).map { AffineSampler.translation(x: shifts[2 * $0], y: shifts[2 * $0 + 1]) }
        try assertClose(try resampled(#"{"fill_mode": "reflect"}"#, maps: shiftMaps), "translation_reflect_bilinear")
    }

    /// `--augment crop`: Keras's Resizing (bilinear) to 1.14 times the size, then RandomCrop's window,
    /// as one resampling of the original.
    func testCropIsKerasResizingThenRandomCrop() throws {
        let (_, image) = try images()
        let size = try array("crop_resized_size").data.map { Int($0) }
        let resized = AffineSampler.resizedSize(height: image.height, width: image.width, scale: 1.14)
        XCTAssertEqual([resized.height, resized.width], size)
        let offsets = try array("crop_offsets").data.map { Int($0) }
        let maps = (0..<2).map { AffineSampler.crop(top: offsets[2 * $0], left: offsets[2 * $0 + 1], resized: resized,
                                                     height: image.height, width: image.width) }
        try assertClose(try resampled(#"{"fill_mode": "nearest", "interpolation": "bilinear"}"#, maps: maps), "crop")
    }

    func testFlipContrastAndBrightness() throws {
        let (x, image) = try images()
        for (mode, horizontal, vertical) in [("horizontal", true, false), ("vertical", false, true), ("horizontal_and_vertical", true, true)] {
            var y = x
            PixelTransforms.flip(x, into: &y, image: image, sample: 0, horizontal: horizontal, vertical: vertical)
            try assertClose(y, "flip_\(mode)")
        }
        var contrasted = x, brightened = x
        let factors = try array("contrast_factors").data, deltas = try array("brightness_deltas").data
        for n in 0..<2 {
            PixelTransforms.contrast(x, into: &contrasted, image: image, sample: n, factor: factors[n], range: (0, 255))
            PixelTransforms.brighten(x, into: &brightened, image: image, sample: n, delta: deltas[n], range: (0, 255))
        }
        try assertClose(contrasted, "contrast")
        try assertClose(brightened, "brightness")
    }
}
