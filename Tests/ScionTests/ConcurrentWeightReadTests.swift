import Dispatch
import Foundation
import Scion
import ScionIR
import XCTest

/// A `Model` is `Sendable`, and its parameters load lazily: many tasks asking at once for the weights
/// of one shared graph (the same `TensorStorage` objects) get the bytes one sequential read gives.
final class ConcurrentWeightReadTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func fixture(_ path: String) -> String { fixtures.appendingPathComponent(path).path }

    /// Every parameter's bytes, read one after another from a freshly loaded model.
    func sequentialBytes(_ model: Model) throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for parameter in model.graph.parameters.all { result[parameter.name] = try parameter.storage.bytes(keep: false) }
        return result
    }

    /// Reads every parameter of `model` from `rounds` workers at once, each walking the parameters from
    /// a different starting point so that several ask for the same storage at the same time.
    func concurrentBytes(_ model: Model, keep: Bool, rounds: Int = 8) throws -> [String: [UInt8]] {
        let parameters = model.graph.parameters.all
        let shared = Collected()
        DispatchQueue.concurrentPerform(iterations: rounds) { round in
            for offset in parameters.indices {
                let parameter = parameters[(offset + round * 7) % parameters.count]
                do {
                    let bytes = try parameter.storage.bytes(keep: keep)
                    shared.record(parameter.name, bytes)
                } catch {
                    shared.fail("\(parameter.name): \(error)")
                }
            }
        }
        XCTAssertEqual(shared.failures, [])
        return shared.results
    }

    /// What the workers found. An `NSLock` rather than a `Mutex`: on Linux, ThreadSanitizer does not
    /// see `Mutex`'s futex as synchronisation and reports the accesses it guards as races.
    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var _results: [String: [UInt8]] = [:]
        private var _failures: [String] = []
        private var _unexpected = 0

        func record(_ name: String, _ bytes: [UInt8]) {
            lock.withLock {
                if let earlier = _results[name], earlier != bytes { _failures.append("\(name): workers read different bytes") }
                _results[name] = bytes
            }
        }
        func fail(_ message: String) { lock.withLock { _failures.append(message) } }
        func countUnexpected() { lock.withLock { _unexpected += 1 } }
        var results: [String: [UInt8]] { lock.withLock { _results } }
        var failures: [String] { lock.withLock { _failures } }
        var unexpected: Int { lock.withLock { _unexpected } }
    }

    func check(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try sequentialBytes(try Model.load(fixture(path)))
        XCTAssertFalse(expected.isEmpty, "\(path) has no parameters", file: file, line: line)
        for keep in [false, true] {
            let model = try Model.load(fixture(path))
            // The model crosses into the workers: the point of Model being Sendable.
            let read = try concurrentBytes(model, keep: keep)
            XCTAssertEqual(read, expected, "\(path), keep: \(keep)", file: file, line: line)
            XCTAssertEqual(model.graph.parameters.all.allSatisfy(\.storage.isLoaded), keep, file: file, line: line)
        }
    }

    /// A Keras 2 `.h5` file: each weight a dataset read through libhdf5 from the file.
    func testHDF5WeightsReadConcurrentlyMatchSequentialRead() throws {
        try check("keras2/conv2d_zoo.h5")
    }

    /// A `.keras` archive: the weights file is an HDF5 image in memory.
    func testArchiveWeightsReadConcurrentlyMatchSequentialRead() throws {
        try check("keras3/conv2d_zoo.keras")
    }

    /// After the channels-first pass, kernels are permuted lazily from the original storage: a
    /// permuted read reads another storage (`keep: false`) under the first one's read.
    func testPermutedWeightsReadConcurrentlyMatchSequentialRead() throws {
        var sequential = try Model.load(fixture("keras2/conv2d_zoo.h5"))
        try sequential.apply(ChannelsFirstLayoutPass())
        let expected = try sequentialBytes(sequential)
        var model = try Model.load(fixture("keras2/conv2d_zoo.h5"))
        try model.apply(ChannelsFirstLayoutPass())
        XCTAssertEqual(try concurrentBytes(model, keep: true), expected)
    }

    /// `replace(with:)` racing with first reads: every reader gets either the file's bytes or the
    /// replacement, and the replacement is what stays.
    func testReplaceDuringConcurrentReadsKeepsTheReplacement() throws {
        let model = try Model.load(fixture("keras2/conv2d_zoo.h5"))
        guard let parameter = model.graph.parameters.all.first(where: { $0.byteCount > 0 }) else {
            return XCTFail("no parameter")
        }
        let original = try Model.load(fixture("keras2/conv2d_zoo.h5")).graph.parameters[parameter.name]!.storage.bytes()
        let replacement = [UInt8](repeating: 0xAB, count: original.count)
        let shared = Collected()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            if worker == 3 { parameter.storage.replace(with: replacement); return }
            let bytes = (try? parameter.storage.bytes()) ?? []
            if bytes != original && bytes != replacement { shared.countUnexpected() }
        }
        XCTAssertEqual(shared.unexpected, 0)
        XCTAssertEqual(try parameter.storage.bytes(), replacement)
    }
}
