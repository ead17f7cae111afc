import Foundation
import HDF5
import XCTest

/// Files made with the wrapper's own writer, read back.
final class HDF5WritingTests: XCTestCase {
    func testRoundTripKerasLayout() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("model.h5")
        let config = #"{"class_name": "Sequential", "name": "naïve"}"#
        do {
            let file = try HDF5File(creating: path)
            XCTAssertEqual(file.path, path)
            let root = file.root
            try root.setStringAttribute("keras_version", "2.13.1")
            try root.setStringAttribute("model_config", config)
            try root.setStringAttribute("empty", "")
            try root.setStringAttribute("backend", "overwritten below")
            try root.setStringAttribute("backend", "tensorflow")
            let weights = try root.createGroup("model_weights")
            XCTAssertEqual(weights.path, "/model_weights")
            try weights.setStringArrayAttribute("layer_names", ["dense", "dropout", "dense_1"])
            let dense = try weights.createGroup("dense")
            try dense.setStringArrayAttribute("weight_names", ["dense/kernel:0", "dense/bias:0"])
            let dropout = try weights.createGroup("dropout")
            try dropout.setStringArrayAttribute("weight_names", [])
            let kernel = try dense.createDataset("dense/kernel:0", elementType: .float32, shape: [2, 3])
            XCTAssertEqual(kernel.path, "/model_weights/dense/dense/kernel:0")
            try kernel.write(bytes: bytes([0, 1, 2, 3, 4, 5] as [Float]))
            try kernel.setStringAttribute("note", "on a dataset")
            let bias = try weights.createDataset("dense/dense/bias:0", elementType: .float32, shape: [3])
            try bias.write(bytes: bytes([0.5, -0.5, 1] as [Float]))
            try file.flush()
        }

        let file = try HDF5File(readingFrom: path)
        let root = file.root
        XCTAssertEqual(try root.attributeNames(), ["backend", "empty", "keras_version", "model_config"])
        XCTAssertEqual(try root.stringAttribute("keras_version"), "2.13.1")
        XCTAssertEqual(try root.stringAttribute("model_config"), config)
        XCTAssertEqual(try root.stringAttribute("empty"), "")
        XCTAssertEqual(try root.stringAttribute("backend"), "tensorflow")
        XCTAssertEqual(try root.childNames(), ["model_weights"])
        let weights = try root.group("model_weights")
        XCTAssertEqual(try weights.stringArrayAttribute("layer_names"), ["dense", "dropout", "dense_1"])
        XCTAssertEqual(try weights.group("dense").stringArrayAttribute("weight_names"), ["dense/kernel:0", "dense/bias:0"])
        XCTAssertEqual(try weights.group("dropout").stringArrayAttribute("weight_names"), [])
        XCTAssertEqual(try weights.kind(of: "dense/dense"), .group)
        let kernel = try weights.dataset("dense/dense/kernel:0")
        XCTAssertEqual(kernel.shape, [2, 3])
        XCTAssertEqual(kernel.elementType, .float32)
        XCTAssertEqual(kernel.storageSize, 24)
        XCTAssertEqual(floats(try kernel.readBytes()), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(try kernel.stringAttribute("note"), "on a dataset")
        XCTAssertEqual(floats(try root.dataset("model_weights/dense/dense/bias:0").readBytes()), [0.5, -0.5, 1])
    }

    func testEveryElementType() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("types.h5")
        let cases: [(HDF5ElementType, [Int], [UInt8])] = [
            (.float16, [3], bytes([0x3E00, 0xC000, 0x7BFF] as [UInt16])),
            (.float32, [2], bytes([1.5, -2] as [Float])),
            (.float64, [], bytes([2.5] as [Double])),
            (.int8, [2], bytes([-128, 127] as [Int8])),
            (.int16, [2], bytes([-300, 300] as [Int16])),
            (.int32, [1, 2], bytes([-70000, 70000] as [Int32])),
            (.int64, [1], bytes([-(1 << 40)] as [Int64])),
            (.uint8, [2], [0, 255]),
            (.uint16, [1], bytes([65535] as [UInt16])),
            (.uint32, [1], bytes([4_000_000_000] as [UInt32])),
            (.uint64, [1], bytes([1 << 63] as [UInt64])),
            (.bool, [3], [1, 0, 1]),
            (.float32, [0, 4], []),
        ]
        do {
            let root = try HDF5File(creating: path).root
            for (index, (type, shape, data)) in cases.enumerated() {
                let dataset = try root.createDataset("d\(index)", elementType: type, shape: shape)
                XCTAssertEqual(dataset.byteCount, data.count)
                try dataset.write(bytes: data)
            }
        }
        let root = try HDF5File(readingFrom: path).root
        for (index, (type, shape, data)) in cases.enumerated() {
            let dataset = try root.dataset("d\(index)")
            XCTAssertEqual(dataset.elementType, type, "d\(index)")
            XCTAssertEqual(dataset.shape, shape, "d\(index)")
            XCTAssertEqual(try dataset.readBytes(), data, "d\(index)")
        }
    }

    func testCompressionAndChunks() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("compressed.h5")
        let values = (0..<100_000).map { Float($0 % 100) }
        do {
            let root = try HDF5File(creating: path).root
            let automatic = try root.createDataset("auto", elementType: .float32, shape: [1000, 100], deflateLevel: 6)
            try automatic.write(bytes: bytes(values))
            let explicit = try root.createDataset("explicit", elementType: .float32, shape: [1000, 100], deflateLevel: 1, chunkShape: [100, 100])
            try explicit.write(bytes: bytes(values))
            let chunkedOnly = try root.createDataset("chunked", elementType: .float32, shape: [1000, 100], chunkShape: [10, 100])
            try chunkedOnly.write(bytes: bytes(values))
            // Scalars and empty datasets cannot be chunked; they are stored contiguously.
            _ = try root.createDataset("scalar", elementType: .float32, shape: [], deflateLevel: 4)
            _ = try root.createDataset("empty", elementType: .float32, shape: [0], deflateLevel: 4)
        }
        let root = try HDF5File(readingFrom: path).root
        for name in ["auto", "explicit", "chunked"] {
            let dataset = try root.dataset(name)
            XCTAssertEqual(floats(try dataset.readBytes()), values, name)
        }
        XCTAssertLessThan(try root.dataset("auto").storageSize, 400_000 / 10)
        XCTAssertEqual(try root.dataset("chunked").storageSize, 400_000)
        XCTAssertEqual(try root.dataset("empty").readBytes(), [])
    }

    func testLargeAttribute() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("large.h5")
        // Beyond the 64 KiB object-header message limit of the "earliest" file format.
        let config = String(repeating: "{\"layer\": \"dense\"}, ", count: 20_000)
        let names = (0..<5000).map { "layer_with_a_long_name_\($0)" }
        do {
            let root = try HDF5File(creating: path).root
            try root.setStringAttribute("model_config", config)
            try root.setStringArrayAttribute("layer_names", names)
        }
        let root = try HDF5File(readingFrom: path).root
        XCTAssertEqual(try root.stringAttribute("model_config"), config)
        XCTAssertEqual(try root.stringArrayAttribute("layer_names"), names)
    }

    func testWriterErrors() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("errors.h5")
        let (_, stderr) = try capturingStandardError {
            let file = try HDF5File(creating: path)
            let root = file.root
            XCTAssertEqual(hdf5Error { try HDF5File(creating: path) }?.reason,
                           "already exists; create a new file and rename it into place")
            let dataset = try root.createDataset("x", elementType: .int32, shape: [2])
            XCTAssertEqual(hdf5Error { try dataset.write(bytes: [1, 2, 3]) }?.reason, "needs 8 bytes (int32 [2]), got 3")
            XCTAssertEqual(hdf5Error { try root.createDataset("x", elementType: .int32, shape: [2]) }?.reason.hasPrefix("cannot create dataset"), true)
            XCTAssertEqual(hdf5Error { try root.createGroup("x") }?.reason.hasPrefix("cannot create group"), true)
            XCTAssertEqual(hdf5Error { try root.createDataset("s", elementType: .string, shape: [1]) }?.reason, "cannot create a dataset of string")
            XCTAssertEqual(hdf5Error { try root.createDataset("y", elementType: .float32, shape: [4], deflateLevel: 12) }?.reason,
                           "deflate level 12 is not between 0 and 9")
            XCTAssertEqual(hdf5Error { try root.createDataset("y", elementType: .float32, shape: [4, 4], chunkShape: [5, 1]) }?.reason,
                           "chunk shape [5, 1] does not fit shape [4, 4]")
            XCTAssertEqual(hdf5Error { try root.createDataset("y", elementType: .float32, shape: [-1]) }?.reason, "invalid shape [-1]")
            XCTAssertEqual(hdf5Error { try root.createDataset("y", elementType: .float32, shape: [1 << 40, 1 << 40]) }?.reason,
                           "invalid shape [1099511627776, 1099511627776]")
            XCTAssertNotNil(hdf5Error { try root.createGroup("a//b") })
            XCTAssertEqual(hdf5Error { try root.setStringAttribute("nul", "a\0b") }?.reason,
                           "attribute 'nul' cannot hold a string containing NUL")
        }
        XCTAssertEqual(stderr, "")
    }

    func testReadOnlyFileRefusesWrites() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("readonly.h5")
        _ = try HDF5File(creating: path).root.createGroup("g")
        let root = try HDF5File(readingFrom: path).root
        let (error, stderr) = try capturingStandardError { hdf5Error { try root.setStringAttribute("a", "b") } }
        XCTAssertEqual(error?.reason.hasPrefix("cannot create attribute 'a'"), true, error?.description ?? "")
        XCTAssertEqual(stderr, "")
        XCTAssertNotNil(hdf5Error { try root.createGroup("h") })
    }
}
