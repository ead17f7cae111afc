@testable import ScionImages
import XCTest

/// The resizer's fast loops against the plain reading of TensorFlow's kernels (one output value at a
/// time, as resize_bilinear_op.cc and resize_nearest_neighbor_op.cc spell it): the same bits, for
/// shrinking (phone photos to 224x224), enlarging, crops and every channel count.
final class ResizeTests: XCTestCase {
    /// (source height, width, target height, width, crop)
    static let shapes: [(Int, Int, Int, Int, Bool)] = [
        (480, 640, 224, 224, false), (768, 1024, 224, 224, true), (17, 31, 224, 224, false),
        (3, 5, 7, 11, false), (1, 1, 3, 3, false), (9, 4, 4, 9, true), (6, 6, 1, 1, false),
    ]

    static func image(height: Int, width: Int, channels: Int, seed: UInt64) -> DecodedImage {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        let pixels = (0..<(height * width * channels)).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The box the resize reads: the whole image, or Keras's centered crop.
    static func box(_ image: DecodedImage, _ options: ResizeOptions) -> (top: Int, left: Int, height: Int, width: Int) {
        options.cropToAspectRatio
            ? ImageResizer.cropBox(height: image.height, width: image.width, targetHeight: options.height, targetWidth: options.width)
            : (0, 0, image.height, image.width)
    }

    static func referenceBilinear(_ image: DecodedImage, _ options: ResizeOptions) -> [Float] {
        let box = box(image, options), channels = image.channels
        func value(_ y: Int, _ x: Int, _ c: Int) -> Float {
            Float(image.pixels[((box.top + y) * image.width + box.left + x) * channels + c])
        }
        func taps(_ outSize: Int, _ inSize: Int) -> [(Int, Int, Float)] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { i in
                let position = (Float(i) + 0.5) * scale - 0.5
                let low = position.rounded(.down)
                return (max(Int(low), 0), min(Int(position.rounded(.up)), inSize - 1), position - low)
            }
        }
        var out: [Float] = []
        for (top, bottom, yLerp) in taps(options.height, box.height) {
            for (left, right, xLerp) in taps(options.width, box.width) {
                for c in 0..<channels {
                    let upper = value(top, left, c) + (value(top, right, c) - value(top, left, c)) * xLerp
                    let lower = value(bottom, left, c) + (value(bottom, right, c) - value(bottom, left, c)) * xLerp
                    out.append(upper + (lower - upper) * yLerp)
                }
            }
        }
        return out
    }

    static func referenceNearest(_ image: DecodedImage, _ options: ResizeOptions) -> [Float] {
        let box = box(image, options), channels = image.channels
        func indices(_ outSize: Int, _ inSize: Int) -> [Int] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { max(0, min(Int(((Float($0) + 0.5) * scale).rounded(.down)), inSize - 1)) }
        }
        var out: [Float] = []
        for y in indices(options.height, box.height) {
            for x in indices(options.width, box.width) {
                for c in 0..<channels { out.append(Float(image.pixels[((box.top + y) * image.width + box.left + x) * channels + c])) }
            }
        }
        return out
    }

    func testBilinearAndNearestEqualTensorFlowsKernelsBitForBit() {
        for (index, (height, width, targetHeight, targetWidth, crop)) in Self.shapes.enumerated() {
            for channels in [1, 3, 4] {
                let image = Self.image(height: height, width: width, channels: channels, seed: UInt64(index * 10 + channels))
                let bilinear = ResizeOptions(height: targetHeight, width: targetWidth, interpolation: .bilinear, cropToAspectRatio: crop)
                let nearest = ResizeOptions(height: targetHeight, width: targetWidth, interpolation: .nearest, cropToAspectRatio: crop)
                let what = "\(height)x\(width)x\(channels) to \(targetHeight)x\(targetWidth)\(crop ? " cropped" : "")"
                XCTAssertEqual(ImageResizer.resize(image, bilinear).map(\.bitPattern), Self.referenceBilinear(image, bilinear).map(\.bitPattern), what)
                XCTAssertEqual(ImageResizer.resize(image, nearest), Self.referenceNearest(image, nearest), what)
            }
        }
    }

    /// The pipeline's transform runs once on each channels-last image, before the channels-first
    /// gather; a batch's values are each image's.
    func testPipelineTransformsThenLaysOutChannelsFirst() {
        let image = Self.image(height: 40, width: 30, channels: 3, seed: 7)
        let resize = ResizeOptions(height: 5, width: 4)
        let plain = ImageResizer.resize(image, resize)
        let halve: PixelTransform = { pixels in
            for index in pixels.indices { pixels[index] = pixels[index] / 2 + Float(index % 3) * 1000 }
        }
        let transformed = plain.enumerated().map { $0.element / 2 + Float($0.offset % 3) * 1000 }
        func finished(_ pipeline: ImagePipeline) -> [Float] {
            [Float](unsafeUninitializedCapacity: pipeline.valuesPerImage) { buffer, count in
                pipeline.finish(image, into: buffer)
                count = buffer.count
            }
        }
        XCTAssertEqual(finished(ImagePipeline(resize: resize, transform: halve)), transformed)
        let planes = finished(ImagePipeline(resize: resize, transform: halve, channelsFirst: true))
        XCTAssertEqual(planes, (0..<3).flatMap { channel in (0..<20).map { transformed[$0 * 3 + channel] } })
    }
}
