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
}
