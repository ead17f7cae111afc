import Foundation
import HDF5
import ScionZip
import XCTest

@testable import ScionKeras

/// A `.keras` archive's weights are read from its mapping, and each weight's pages leave the process
/// once read (`WeightsFileImage`): the peak of `scion run` counts the weights once, not twice.
final class WeightsFileImageTests: XCTestCase {
    private let archivePath = Repository.fixtures.appendingPathComponent("keras3/mobilenet_v2.keras").path
    /// Its largest weight (1x1x320x320 floats, 400 KB): contiguous, so it spans whole pages.
    private let datasetPath = "layers/conv2d_34/vars/0"

    func testAStoredWeightsPagesLeaveTheProcessOnceReadAndComeBackAlike() throws {
        let archive = try ZipArchive(path: archivePath)
        let entry = try XCTUnwrap(archive.entry(named: "model.weights.h5"))
        let stored = try XCTUnwrap(try archive.storedBytes(of: entry, verifyingChecksum: false), "Keras stores its weights uncompressed")
        let image = WeightsFileImage(bytes: stored, owner: archive, isFileMapping: true)
        let (source, range) = try weight(in: stored, image: image)
        let expected = Array(UnsafeRawBufferPointer(rebasing: stored[range]))  // touches every page
        XCTAssertEqual(try residentPages(stored, range), try wholePages(stored, range).count)

        XCTAssertTrue(try source.readBytes() == expected, "the weight read differs from the file's bytes")
        XCTAssertEqual(try residentPages(stored, range), 0, "the weight's pages are still in the process")
        var again = [UInt8](repeating: 0, count: expected.count)
        try again.withUnsafeMutableBytes { try source.readBytes(into: $0) }
        XCTAssertTrue(again == expected, "the weight read again from the page cache differs")
    }

    /// An inflated copy is the only holder of its bytes: its pages must stay (dropped, they would
    /// come back as zeros).
    func testAnInflatedCopyKeepsItsPages() throws {
        let archive = try ZipArchive(path: archivePath)
        let bytes = try archive.contents(of: try XCTUnwrap(archive.entry(named: "model.weights.h5")), limit: 1 << 30)
        let owned = OwnedBytes(bytes)
        let copy = UnsafeRawBufferPointer(owned.buffer)
        let image = WeightsFileImage(bytes: copy, owner: owned, isFileMapping: false)
        let (source, range) = try weight(in: copy, image: image)
        let expected = Array(bytes[range])

        XCTAssertTrue(try source.readBytes() == expected, "the weight read differs from the file's bytes")
        XCTAssertEqual(try residentPages(copy, range), try wholePages(copy, range).count)
        XCTAssertTrue(try source.readBytes() == expected, "the weight read again differs: its pages were dropped")
    }

    /// The tensor source of `datasetPath` in the weights file `bytes`, and where its data lies there.
    private func weight(in bytes: UnsafeRawBufferPointer, image: WeightsFileImage) throws -> (HDF5TensorSource, Range<Int>) {
        let file = try HDF5File(readingImage: bytes, name: "\(archivePath)/model.weights.h5")
        let dataset = try file.root.dataset(datasetPath)
        let offset = try XCTUnwrap(dataset.contiguousOffset)
        let byteCount = try XCTUnwrap(dataset.byteCount)
        XCTAssertGreaterThan(byteCount, 8 * 4096)
        let source = HDF5TensorSource(dataset: dataset, byteCount: byteCount, location: datasetPath, backingMemory: image)
        return (source, offset..<offset + byteCount)
    }

    /// The addresses of the whole pages inside `range` of `bytes`.
    private func wholePages(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws -> [Int] {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let base = Int(bitPattern: try XCTUnwrap(bytes.baseAddress))
        return Array(stride(from: (base + range.lowerBound + page - 1) / page * page, to: (base + range.upperBound) / page * page, by: page))
    }

    /// How many of those pages the process has in memory: bit 63 of each page's entry in
    /// /proc/self/pagemap (readable without privileges; only the frame numbers are hidden).
    private func residentPages(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws -> Int {
        let pages = try wholePages(bytes, range)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/pagemap"))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(pages[0] / page * 8))
        let entries = try XCTUnwrap(try handle.read(upToCount: pages.count * 8))
        return stride(from: 0, to: entries.count, by: 8).filter { entries[entries.startIndex + $0 + 7] & 0x80 != 0 }.count
    }
}
