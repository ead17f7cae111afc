@testable import Scion
import XCTest

/// Numbers as people read them, the same in every command and report.
final class ReadableTests: XCTestCase {
    func testMeasuredNumbersKeepThreeSignificantDigits() {
        XCTAssertEqual(Readable.number(0.027_812_3), "0.0278")
        XCTAssertEqual(Readable.number(1.490_116_1e-08), "1.49e-08")
        XCTAssertEqual(Readable.number(0), "0")
        XCTAssertEqual(Readable.number(.infinity), "inf")
        XCTAssertEqual(Readable.number(.nan), "nan")
    }

    func testSettingsReadBackAsTyped() {
        XCTAssertEqual(Readable.setting(Float(1e-3)), "0.001")
        XCTAssertEqual(Readable.setting(Float(0.9)), "0.9")
    }

    func testCountsSizesAndDurations() {
        XCTAssertEqual(Readable.count(812), "812")
        XCTAssertEqual(Readable.count(255_173), "255K")
        XCTAssertEqual(Readable.count(25_600_000), "25.6M")
        XCTAssertEqual(Readable.grouped(3_504_872), "3,504,872")
        XCTAssertEqual(Readable.bytes(812), "812 B")
        XCTAssertEqual(Readable.bytes(98_000_000), "98.0 MB")
        XCTAssertEqual(Readable.seconds(0), "0 s")
        XCTAssertEqual(Readable.seconds(0.0032), "3.2 ms")
        XCTAssertEqual(Readable.seconds(0.31), "0.31 s")
        XCTAssertEqual(Readable.seconds(12.44), "12.4 s")
        XCTAssertEqual(Readable.seconds(125), "2 min 05 s")
        XCTAssertEqual(Readable.percent(0.75), "75.0%")
    }
}
