import Foundation
@testable import ScionRuntime
import XCTest

final class NumpyFileTests: XCTestCase {
    func testRoundTripAndNumpyWrittenFile() throws {
        let tensor = RuntimeTensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try NumpyFile.decode(NumpyFile.encode(tensor), file: "t"), tensor)
        let bytes = NumpyFile.encode(tensor)
        XCTAssertEqual((bytes.count - 6 * 4) % 64, 0, "header padded to 64 bytes as NumPy does")
        // A file NumPy wrote (fixtures), float32.
        let fixture = FixtureRunTests.fixtures.appendingPathComponent("keras2/mobilenet_v2.input.npy").path
        XCTAssertEqual(try NumpyFile.read(fixture).shape, [2, 32, 32, 3])
    }

    func testHostileHeadersFailCleanly() {
        let good = NumpyFile.encode(RuntimeTensor(shape: [4], data: [1, 2, 3, 4]))
        var huge = good
        let header = String(decoding: good[10..<good.count - 16], as: UTF8.self).replacingOccurrences(of: "(4,)", with: "(99999999999,)")
        huge.replaceSubrange(10..<(good.count - 16), with: Array(header.utf8))
        let cases: [([UInt8], String)] = [
            ([], "not a NumPy"), (Array("hello world".utf8), "not a NumPy"), (Array(good.prefix(20)), "truncated"),
            (Array(good.dropLast(4)), "holds 12 data bytes"), (huge, "declares shape"),
        ]
        for (bytes, expected) in cases {
            XCTAssertThrowsError(try NumpyFile.decode(bytes, file: "x.npy")) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
    }

    /// One-byte types as NumPy writes them: a bool mask (a Keras attention mask input), uint8 pixels
    /// and int8, read as the numbers they hold.
    func testBoolAndByteArraysAreRead() throws {
        let float32 = NumpyFile.encode(RuntimeTensor(shape: [4], data: [0, 0, 0, 0]))
        let headerEnd = float32.count - 16
        for (descr, data, want) in [("|b1", [UInt8]([1, 0, 0, 1]), [Float(1), 0, 0, 1]), ("|u1", [0, 7, 200, 255], [0, 7, 200, 255]),
                                    ("|i1", [0, 7, 200, 255], [0, 7, -56, -1])] {
            let header = String(decoding: float32[10..<headerEnd], as: UTF8.self).replacingOccurrences(of: "<f4", with: descr)
            let bytes = Array(float32[0..<10]) + Array(header.utf8) + data
            XCTAssertEqual(try NumpyFile.decode(bytes, file: "mask.npy"), RuntimeTensor(shape: [4], data: want), descr)
        }
    }
}
