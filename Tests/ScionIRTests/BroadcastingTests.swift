import XCTest
@testable import ScionIR

/// Numpy's broadcasting rule, as every folder and kernel now takes it from `Broadcasting`.
final class BroadcastingTests: XCTestCase {
    func testShapesAlignAtTheLastAxisAndLengthOneStretches() {
        XCTAssertEqual(Broadcasting.shape([[2, 1, 4], [3, 1]]), [2, 3, 4])
        XCTAssertEqual(Broadcasting.shape([[], [5]]), [5])
        XCTAssertEqual(Broadcasting.shape([[0, 3], [1, 3]]), [0, 3])
        XCTAssertNil(Broadcasting.shape([[2, 3], [4, 3]]))
        XCTAssertNil(Broadcasting.shape([[-1, 3], [1, 3]]))
    }

    func testSourcesNameTheElementEachOperandGives() throws {
        // numpy: np.broadcast_to(np.arange(3).reshape(3, 1), (3, 2)) and np.arange(2) tiled down.
        let (shape, sources) = try XCTUnwrap(Broadcasting.sources([[3, 1], [2]], limit: 100))
        XCTAssertEqual(shape, [3, 2])
        XCTAssertEqual(sources[0], [0, 0, 1, 1, 2, 2])
        XCTAssertEqual(sources[1], [0, 1, 0, 1, 0, 1])
        XCTAssertNil(Broadcasting.sources([[3, 1], [2]], limit: 5))
        XCTAssertEqual(Broadcasting.strides([2, 3, 4]), [12, 4, 1])
    }
}
