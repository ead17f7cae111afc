import Foundation
import ScionIR
import XCTest

@testable import ScionONNX

/// External data stays inside the model's folder and inside its file.
final class ONNXExternalDataTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("scion-external-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("model"), withIntermediateDirectories: true)
        try Data((0..<64).map { UInt8($0) }).write(to: folder.appendingPathComponent("model/weights.bin"))
        try Data(repeating: 7, count: 64).write(to: folder.appendingPathComponent("secret.bin"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    var modelFolder: String { folder.appendingPathComponent("model").path }

    func assertRefused(_ location: String, offset: Int = 0, length: Int? = nil, byteCount: Int = 16, mentions word: String,
                       line: UInt = #line) {
        XCTAssertThrowsError(try ONNXExternalData.source(location: location, offset: offset, length: length,
                                                         folder: modelFolder, file: "model.onnx", byteCount: byteCount),
                             line: line) { error in
            XCTAssertTrue(String(describing: error).contains(word), "\(error)", line: line)
            XCTAssertTrue(String(describing: error).hasPrefix("model.onnx: "), "\(error)", line: line)
        }
    }

    func testRangeInsideTheFileReadsLazily() throws {
        let storage = try ONNXExternalData.source(location: "weights.bin", offset: 8, length: 16, folder: modelFolder,
                                                  file: "model.onnx", byteCount: 16)
        XCTAssertFalse(storage.isLoaded)
        XCTAssertEqual(try storage.bytes(), (8..<24).map { UInt8($0) })
    }

    func testEscapesAreRefused() throws {
        assertRefused("/etc/passwd", mentions: "relative path")
        assertRefused("../secret.bin", mentions: "..")
        assertRefused("sub/../../secret.bin", mentions: "..")
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("model/link.bin").path,
                                                   withDestinationPath: folder.appendingPathComponent("secret.bin").path)
        assertRefused("link.bin", mentions: "outside the model's folder")
        assertRefused("missing.bin", mentions: "not a regular file")
        assertRefused(".", mentions: "outside the model's folder")
    }

    func testRangesOutsideTheFileAreRefused() {
        assertRefused("weights.bin", offset: 60, mentions: "outside")
        assertRefused("weights.bin", offset: -1, mentions: "outside")
        assertRefused("weights.bin", offset: 0, byteCount: Int.max, mentions: "outside")
        assertRefused("weights.bin", length: 8, mentions: "disagrees")
    }

    func testWrittenDataIsAlignedAndReadsBack() throws {
        let path = folder.appendingPathComponent("model/out.onnx.data").path
        var tensors = [
            ONNXTensor(name: "a", dimensions: [3], dataType: ONNXDataType.float.rawValue, data: .raw([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])),
            ONNXTensor(name: "b", dimensions: [1], dataType: ONNXDataType.float.rawValue, data: .storage(TensorStorage(bytes: [9, 9, 9, 9]))),
        ]
        try ONNXExternalData.write(&tensors, to: path, location: "out.onnx.data", file: "out.onnx")
        guard case .external(let location, let offset, let length) = tensors[1].data else { return XCTFail("not external") }
        XCTAssertEqual(location, "out.onnx.data")
        XCTAssertEqual(offset % ONNXExternalData.alignment, 0)
        let storage = try ONNXExternalData.source(location: location, offset: offset, length: length, folder: modelFolder,
                                                  file: "out.onnx", byteCount: 4)
        XCTAssertEqual(try storage.bytes(), [9, 9, 9, 9])
    }
}
