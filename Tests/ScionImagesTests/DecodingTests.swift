import ScionImages
import XCTest

/// Every fixture file decoded by Scion against TensorFlow's decode_image (what Keras feeds a model)
/// and Pillow's convert("RGB") (what a Python user looks at), fixtures/images/reference.
final class DecodingTests: XCTestCase {
    func file(_ relative: String) -> String { ImageFixtures.folder + "/" + relative }

    func testDecodingEqualsTensorFlowDecodeImageInRGBAndGray() throws {
        for (channels, name) in [(3, "tf_rgb.npz"), (1, "tf_gray.npz")] {
            let expected = try ImageFixtures.arrays(name)
            XCTAssertGreaterThanOrEqual(expected.count, channels == 3 ? 42 : 37)
            for (relative, reference) in expected {
                let image = try ImageDecoder.decode(file: file(relative), options: DecodeOptions(channels: channels))
                let difference = try XCTUnwrap(ImageFixtures.largestDifference(image, reference), "\(relative): shape")
                XCTAssertLessThanOrEqual(difference, 1, "\(relative), \(channels) channels")
            }
        }
    }

    /// Pillow decodes JPEG with the accurate DCT; two conventions differ from TensorFlow's on purpose
    /// and Scion follows TensorFlow's (Keras parity): a 16-bit gray PNG keeps its high byte (Pillow's
    /// convert clips values over 255 to white), and a CMYK JPEG without an Adobe segment is read as
    /// not inverted (Pillow assumes every CMYK JPEG is Adobe-inverted).
    func testDecodingEqualsPillowWithinOneUnit() throws {
        let pillow = try ImageFixtures.arrays("pillow.npz")
        let tensorFlow = try ImageFixtures.arrays("tf_rgb.npz")
        var compared = 0, divergent: [String] = []
        for (relative, reference) in pillow.sorted(by: { $0.key < $1.key }) {
            let image = try ImageDecoder.decode(file: file(relative), options: DecodeOptions(jpegDCT: .accurate))
            let difference = try XCTUnwrap(ImageFixtures.largestDifference(image, reference), "\(relative): shape")
            if difference <= 1 {
                compared += 1
                continue
            }
            divergent.append(relative)
            // Where Pillow disagrees, TensorFlow must agree with Scion.
            let fast = try ImageDecoder.decode(file: file(relative))
            XCTAssertEqual(ImageFixtures.largestDifference(fast, try XCTUnwrap(tensorFlow[relative])), 0, relative)
        }
        XCTAssertGreaterThanOrEqual(compared, 37)
        // The 16-bit gray PNGs and the plain-CMYK JPEGs, nothing else.
        XCTAssertEqual(divergent, ["one/nested/one_13.jpg", "one/one_12.png", "seven/seven_07.png", "seven/seven_08.jpg"])
    }

    func testEXIFOrientationIgnoredByDefaultAndAppliedOnRequestAsPillowExifTranspose() throws {
        let transposed = try ImageFixtures.arrays("pillow_exif.npz")
        let stored = try ImageFixtures.arrays("pillow.npz")
        XCTAssertGreaterThanOrEqual(transposed.count, 5)
        for (relative, reference) in transposed {
            let oriented = try ImageDecoder.decode(file: file(relative), options: DecodeOptions(applyEXIFOrientation: true, jpegDCT: .accurate))
            XCTAssertLessThanOrEqual(try XCTUnwrap(ImageFixtures.largestDifference(oriented, reference), relative), 1, relative)
            let asStored = try ImageDecoder.decode(file: file(relative), options: DecodeOptions(jpegDCT: .accurate))
            XCTAssertLessThanOrEqual(try XCTUnwrap(ImageFixtures.largestDifference(asStored, try XCTUnwrap(stored[relative])), relative), 1)
        }
    }

    func testRGBAAddsAnOpaqueAlphaToJPEGAndKeepsPNGAlpha() throws {
        let jpeg = try ImageDecoder.decode(file: file("one/one_01.jpg"), options: DecodeOptions(channels: 4))
        XCTAssertEqual(jpeg.channels, 4)
        XCTAssertTrue(stride(from: 3, to: jpeg.pixels.count, by: 4).allSatisfy { jpeg.pixels[$0] == 255 })
        let png = try ImageDecoder.decode(file: file("one/one_08.png"), options: DecodeOptions(channels: 4))
        XCTAssertFalse(stride(from: 3, to: png.pixels.count, by: 4).allSatisfy { png.pixels[$0] == 255 })
    }
}
