import Foundation
import HDF5
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fixtures written by h5py (see Resources/make_fixtures.py), found next to this file
/// rather than through SwiftPM resources.
enum Fixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources")

    static func path(_ name: String) -> String {
        directory.appendingPathComponent(name).path
    }
}

/// A fresh temporary directory, removed by the returned cleanup.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("HDF5Tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String {
        url.appendingPathComponent(name).path
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}

/// Runs `body` with file descriptor 2 redirected to a temporary file and returns what was
/// written to it (libhdf5 prints its error stack with fprintf(stderr, ...)).
func capturingStandardError<T>(_ body: () throws -> T) throws -> (T, String) {
    let capture = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString)").path
    let fd = open(capture, O_CREAT | O_TRUNC | O_WRONLY, 0o600)
    guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
    defer { unlink(capture) }
    fflush(nil)
    let saved = dup(2)
    _ = dup2(fd, 2)
    close(fd)
    let result: Result<T, Error> = Result { try body() }
    fflush(nil)
    _ = dup2(saved, 2)
    close(saved)
    let text = (try? String(contentsOfFile: capture, encoding: .utf8)) ?? ""
    return (try result.get(), text)
}

/// The error thrown by `body` as an HDF5Error; fails the test otherwise.
func hdf5Error<T>(_ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> HDF5Error? {
    do {
        _ = try body()
        XCTFail("expected an HDF5Error", file: file, line: line)
        return nil
    } catch let error as HDF5Error {
        return error
    } catch {
        XCTFail("expected an HDF5Error, got \(error)", file: file, line: line)
        return nil
    }
}

func floats(_ bytes: [UInt8]) -> [Float] {
    stride(from: 0, to: bytes.count, by: 4).map { offset in
        Float(bitPattern: UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8
            | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24)
    }
}

func littleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], as type: T.Type) -> [T] {
    let width = MemoryLayout<T>.size
    return stride(from: 0, to: bytes.count, by: width).map { offset in
        var value = T.zero
        for index in 0..<width { value |= T(truncatingIfNeeded: bytes[offset + index]) << (8 * index) }
        return value
    }
}

func bytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { value in (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
}

func bytes(_ values: [Float]) -> [UInt8] { bytes(values.map(\.bitPattern)) }
func bytes(_ values: [Double]) -> [UInt8] { bytes(values.map(\.bitPattern)) }
