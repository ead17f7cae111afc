import Foundation
import Scion
import ScionRuntime
import XCTest

final class TrainingDataTests: XCTestCase {
    func temporary(_ name: String, _ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString)-\(name)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testCSVWithHeaderAndNamedLabelColumn() throws {
        let path = try temporary("a.csv", "a,label,b\n1,0,2\n3,1,4\n5,2,6\n")
        let (x, y) = try TrainingData.load(path, labelColumn: "label")
        XCTAssertEqual(x.shape, [3, 2])
        XCTAssertEqual(x.data, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(y.data, [0, 1, 2])
        let headerless = try temporary("b.csv", "1,2,0\n3,4,1\n")
        XCTAssertEqual(try TrainingData.load(headerless).y.data, [0, 1], "the last column by default")
    }

    func testMistakesNameTheRowColumnOrArray() throws {
        let cases: [(String, String, String?, String)] = [
            ("c.csv", "a,b\n1,2\n3,x\n", nil, "line 3, column 1 (b): 'x' is not a number"),
            ("d.csv", "a,b\r\n1,2\r\n\r\n3\r\n", nil, "line 4 has 1 cells, the first row 2"),
            ("e.csv", "a,b\n1,nan\n", nil, "NaN or infinity"),
            ("f.csv", "a,b\n", nil, "has a header but no data rows"),
            ("g.csv", "1,2\n", "2", "has no column '2' (2 columns, indices 0 to 1)"),
            ("h.csv", "a,b\n1,2\n", "c", "has no column 'c' (2 columns, indices 0 to 1: a, b)"),
        ]
        for (name, text, column, expected) in cases {
            XCTAssertThrowsError(try TrainingData.load(try temporary(name, text), labelColumn: column)) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(name): \(error)")
            }
        }
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString)-missing.npz").path
        XCTAssertThrowsError(try TrainingData.load(missing)) { XCTAssertEqual("\($0)", "\(missing): does not exist") }
        let npz = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString).npz").path
        try NumpyArchive.write([("inputs", RuntimeTensor(shape: [2, 1], data: [1, 2]))], to: npz)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: npz) }
        XCTAssertThrowsError(try TrainingData.load(npz)) { error in
            XCTAssertTrue("\(error)".contains("needs arrays 'x' and 'y' (has inputs)"), "\(error)")
        }
    }
}
