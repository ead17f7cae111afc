import ScionImages
import XCTest

/// A batch's pixel buffer handed back is filled again in place by a later batch (no new memory, so
/// no page faults), with the same values as a batch decoded into new memory.
final class BatchReuseTests: XCTestCase {
    let pipeline = ImagePipeline(resize: ResizeOptions(height: 12, width: 10))

    func batches() throws -> ImageBatches {
        // 42 images: batches of 16, 16 and 10.
        ImageBatches(samples: try ImageFolderIndex(folder: ImageFixtures.folder).samples, batchSize: 16, pipeline: pipeline, policy: .fail)
    }

    private func address(_ pixels: [Float]) -> UnsafePointer<Float>? { pixels.withUnsafeBufferPointer { $0.baseAddress } }

    func testAReusedBufferIsWrittenInPlaceWithTheSameValues() throws {
        let batches = try batches()
        let fresh = try (0..<3).map { try batches.batch($0).pixels }
        // A full batch's buffer for the shorter last batch, then that one for a full batch again.
        let first = try batches.batch(0).pixels
        let firstAddress = address(first)
        let last = try batches.batch(2, reusing: consume first).pixels
        XCTAssertEqual(last, fresh[2])
        XCTAssertEqual(address(last), firstAddress)
        let second = try batches.batch(1, reusing: consume last).pixels
        XCTAssertEqual(second, fresh[1])
        XCTAssertEqual(address(second), firstAddress)
        // Too small a buffer is replaced, not overrun.
        XCTAssertEqual(try batches.batch(0, reusing: [1, 2, 3]).pixels, fresh[0])
    }

    func testAStreamFedItsOwnBuffersBackGivesTheSameBatches() throws {
        let batches = try batches()
        let fresh = try (0..<3).map { try batches.batch($0) }
        let stream = batches.makeStream(ahead: 1)
        var index = 0
        while var batch = try stream.next() {
            XCTAssertEqual(batch.pixels, fresh[index].pixels, "batch \(index)")
            XCTAssertEqual(batch.labels, fresh[index].labels, "batch \(index)")
            let pixels = batch.pixels
            batch.pixels = []
            stream.recycle(consume pixels)
            index += 1
        }
        XCTAssertEqual(index, 3)
    }
}
