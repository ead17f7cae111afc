import Foundation
import HDF5
import XCTest

/// Reads files written by h5py (Resources/make_fixtures.py).
final class HDF5ReadingTests: XCTestCase {
    private func kerasLike() throws -> HDF5File {
        try HDF5File(readingFrom: Fixture.path("keras_like.h5"))
    }

    func testScalarStringAttributes() throws {
        let root = try kerasLike().root
        XCTAssertEqual(root.path, "/")
        // h5py 3 writes `bytes` scalars as variable-length ASCII strings.
        XCTAssertEqual(try root.stringAttribute("keras_version"), "2.13.1")
        XCTAssertEqual(try root.stringAttribute("backend"), "tensorflow")
        XCTAssertEqual(try root.stringAttribute("model_config"), #"{"class_name": "Sequential", "config": {"name": "m"}}"#)
        // np.bytes_: fixed length, NUL-padded, full width (no terminator), UTF-8 bytes inside.
        XCTAssertEqual(try root.stringAttribute("fixed_config"), #"{"layers": ["dénse"]}"#)
        XCTAssertEqual(try root.stringAttribute("nullterm"), "abc")
        XCTAssertEqual(try root.stringAttribute("spacepad"), "abc")
        XCTAssertEqual(try root.stringAttribute("vlen_text"), "héllo wörld")
        XCTAssertEqual(try root.stringAttribute("one_element"), "only")
    }

    func testStringArrayAttributes() throws {
        let root = try kerasLike().root
        let weights = try root.group("model_weights")
        // Fixed-length S7; "dropout" fills the whole width.
        XCTAssertEqual(try weights.stringArrayAttribute("layer_names"), ["dense", "dropout", "dense_1"])
        XCTAssertEqual(try weights.group("dense").stringArrayAttribute("weight_names"), ["dense/kernel:0", "dense/bias:0"])
        // Keras's empty weight_names: h5py stores [] as float64 with shape (0,).
        XCTAssertEqual(try weights.group("dropout").stringArrayAttribute("weight_names"), [])
        XCTAssertEqual(try root.stringArrayAttribute("null_space"), [])
        XCTAssertEqual(try root.stringArrayAttribute("vlen_array"), ["alpha", "", "γamma"])
        XCTAssertEqual(try root.stringArrayAttribute("keras_version"), ["2.13.1"])
        XCTAssertEqual(try root.stringArrayAttribute("one_element"), ["only"])
    }

    func testAttributeErrorsAndNames() throws {
        let root = try kerasLike().root
        XCTAssertEqual(try root.attributeNames(), [
            "backend", "fixed_config", "keras_version", "model_config", "null_space", "nullterm",
            "number", "one_element", "spacepad", "vlen_array", "vlen_text",
        ])
        XCTAssertTrue(root.hasAttribute("model_config"))
        XCTAssertFalse(root.hasAttribute("training_config"))
        XCTAssertFalse(root.hasAttribute("bad\0name"))
        let (_, stderr) = try capturingStandardError {
            let missing = hdf5Error { try root.stringAttribute("training_config") }
            XCTAssertEqual(missing?.description, "\(Fixture.path("keras_like.h5")): /: attribute 'training_config' does not exist")
            let number = hdf5Error { try root.stringAttribute("number") }
            XCTAssertEqual(number?.reason, "attribute 'number' is not a string (it holds int32)")
            let many = hdf5Error { try root.stringAttribute("vlen_array") }
            XCTAssertEqual(many?.reason, "attribute 'vlen_array' holds 3 strings, expected one")
            let none = hdf5Error { try root.stringAttribute("null_space") }
            XCTAssertEqual(none?.reason, "attribute 'null_space' holds 0 strings, expected one")
        }
        XCTAssertEqual(stderr, "")
    }

    func testChildNamesAndKinds() throws {
        let root = try kerasLike().root
        XCTAssertEqual(try root.childNames(), ["a", "dangling", "dtypes", "external", "model_weights", "named_type", "soft"])
        XCTAssertEqual(try root.group("model_weights").childNames(), ["dense", "dropout"])
        XCTAssertEqual(try root.kind(of: "a"), .group)
        XCTAssertEqual(try root.kind(of: "dtypes/f32"), .dataset)
        XCTAssertEqual(try root.kind(of: "named_type"), .namedDatatype)
        XCTAssertEqual(try root.kind(of: "soft"), .softLink)
        XCTAssertEqual(try root.kind(of: "dangling"), .softLink)
        XCTAssertEqual(try root.kind(of: "external"), .externalLink)
        XCTAssertEqual(try root.kind(of: "a/to_secret"), .externalLink)
        XCTAssertEqual(try root.kind(of: "nothing"), .missing)
        // Paths through links report the link; paths through datasets do not exist.
        XCTAssertEqual(try root.kind(of: "soft/dense"), .softLink)
        XCTAssertEqual(try root.kind(of: "dtypes/f32/x"), .missing)
        XCTAssertEqual(try root.kind(of: "nothing/x"), .missing)
        XCTAssertThrowsError(try root.kind(of: ""))
        XCTAssertThrowsError(try root.kind(of: "a//b"))
        XCTAssertThrowsError(try root.kind(of: "/a"))
    }

    func testLinksAreNeverFollowed() throws {
        let file = try kerasLike()
        let root = file.root
        let (_, stderr) = try capturingStandardError {
            let soft = hdf5Error { try root.group("soft") }
            XCTAssertEqual(soft?.object, "/soft")
            XCTAssertEqual(soft?.reason, "is a soft link to '/model_weights', not a group; links are not followed")
            let external = hdf5Error { try root.dataset("external") }
            XCTAssertEqual(external?.object, "/external")
            XCTAssertEqual(external?.reason,
                           "is an external link to 'external_target.h5:/secret', not a dataset; links to other files are not followed")
            XCTAssertEqual(hdf5Error { try root.group("soft/dense") }?.object, "/soft")
            XCTAssertEqual(hdf5Error { try root.group("a/to_secret") }?.object, "/a/to_secret")
            XCTAssertEqual(hdf5Error { try root.dataset("dangling") }?.reason,
                           "is a soft link to '/nowhere', not a dataset; links are not followed")
            XCTAssertEqual(hdf5Error { try root.group("dtypes/f32") }?.reason, "is a dataset, not a group")
            XCTAssertEqual(hdf5Error { try root.dataset("a/b") }?.reason, "is a group, not a dataset")
            XCTAssertEqual(hdf5Error { try root.dataset("named_type") }?.reason, "is a named datatype, not a dataset")
            let missing = hdf5Error { try root.group("model_weights/dense/nope") }
            XCTAssertEqual(missing?.description, "\(file.path): /model_weights/dense/nope: no such object")
        }
        XCTAssertEqual(stderr, "")
    }

    func testNestedGroups() throws {
        let root = try kerasLike().root
        let c = try root.group("a/b/c")
        XCTAssertEqual(c.path, "/a/b/c")
        let leaf = try root.group("a").group("b").dataset("c/leaf")
        XCTAssertEqual(leaf.path, "/a/b/c/leaf")
        XCTAssertEqual(littleEndian(try leaf.readBytes(), as: Int32.self), [42])
        let kernel = try root.dataset("model_weights/dense/dense/kernel:0")
        XCTAssertEqual(kernel.shape, [2, 3])
        XCTAssertEqual(floats(try kernel.readBytes()), [0, 1, 2, 3, 4, 5])
    }

    func testFloatDatasets() throws {
        let dtypes = try kerasLike().root.group("dtypes")
        let f16 = try dtypes.dataset("f16")
        XCTAssertEqual(f16.elementType, .float16)
        XCTAssertEqual(f16.shape, [4])
        XCTAssertEqual(f16.byteCount, 8)
        // 1.5, -2, 65504, 0 as IEEE halves.
        XCTAssertEqual(littleEndian(try f16.readBytes(), as: UInt16.self), [0x3E00, 0xC000, 0x7BFF, 0x0000])
        let f16BigEndian = try dtypes.dataset("f16_be")
        XCTAssertEqual(f16BigEndian.elementType, .float16)
        XCTAssertEqual(littleEndian(try f16BigEndian.readBytes(), as: UInt16.self), [0x3E00, 0xC000])

        let f32 = try dtypes.dataset("f32")
        XCTAssertEqual(f32.elementType, .float32)
        XCTAssertEqual(f32.shape, [2, 2])
        XCTAssertEqual(f32.elementCount, 4)
        XCTAssertEqual(f32.storageSize, 16)
        XCTAssertEqual(floats(try f32.readBytes()), [1, 2, 3, -4.25])
        XCTAssertEqual(try f32.stringAttribute("unit"), "metres")
        XCTAssertEqual(try f32.attributeNames(), ["unit"])
        XCTAssertEqual(floats(try dtypes.dataset("f32_be").readBytes()), [1, 2.5, -3])

        let f64 = try dtypes.dataset("f64")
        XCTAssertEqual(f64.elementType, .float64)
        XCTAssertEqual(littleEndian(try f64.readBytes(), as: UInt64.self).map(Double.init(bitPattern:)), [3.141592653589793, -1e300])

        let scalar = try dtypes.dataset("scalar")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.elementCount, 1)
        XCTAssertEqual(littleEndian(try scalar.readBytes(), as: UInt64.self).map(Double.init(bitPattern:)), [2.5])

        let empty = try dtypes.dataset("empty")
        XCTAssertEqual(empty.shape, [0, 3])
        XCTAssertEqual(empty.elementCount, 0)
        XCTAssertEqual(try empty.readBytes(), [])
        XCTAssertEqual(try dtypes.stringAttribute("note"), "dataset attributes")
    }

    func testIntegerAndBoolDatasets() throws {
        let dtypes = try kerasLike().root.group("dtypes")
        func read<T: FixedWidthInteger>(_ name: String, _ type: T.Type, _ expected: HDF5ElementType) throws -> [T] {
            let dataset = try dtypes.dataset(name)
            XCTAssertEqual(dataset.elementType, expected, name)
            return littleEndian(try dataset.readBytes(), as: type)
        }
        XCTAssertEqual(try read("i8", Int8.self, .int8), [-128, 127, 0])
        XCTAssertEqual(try read("i16", Int16.self, .int16), [-300, 300])
        XCTAssertEqual(try read("i32", Int32.self, .int32), [-70000, 70000])
        XCTAssertEqual(try read("i64", Int64.self, .int64), [-(1 << 40), 1 << 40])
        XCTAssertEqual(try read("u8", UInt8.self, .uint8), [0, 255])
        XCTAssertEqual(try read("u16", UInt16.self, .uint16), [65535])
        XCTAssertEqual(try read("u32", UInt32.self, .uint32), [4_000_000_000])
        XCTAssertEqual(try read("u64", UInt64.self, .uint64), [1 << 63])
        XCTAssertEqual(try read("bool", UInt8.self, .bool), [1, 0, 1])
    }

    func testCompressedChunkedDataset() throws {
        let gzip = try kerasLike().root.dataset("dtypes/gzip")
        XCTAssertEqual(gzip.shape, [100, 10])
        XCTAssertEqual(gzip.elementType, .float32)
        XCTAssertLessThan(gzip.storageSize, 4000)
        XCTAssertEqual(floats(try gzip.readBytes()), (0..<1000).map(Float.init))
        var values = [Float](repeating: -1, count: 1000)
        try values.withUnsafeMutableBytes { try gzip.read(into: $0) }
        XCTAssertEqual(values, (0..<1000).map(Float.init))
        XCTAssertEqual(hdf5Error { try gzip.readBytes(limit: 3999) }?.reason,
                       "holds 4000 bytes (float32 [100, 10]), more than the limit of 3999")
        var small = [UInt8](repeating: 0, count: 10)
        XCTAssertEqual(hdf5Error { try small.withUnsafeMutableBytes { try gzip.read(into: $0) } }?.reason,
                       "needs a buffer of 4000 bytes (float32 [100, 10]), got 10")
    }

    func testUnreadableDatasetsAreRefused() throws {
        let dtypes = try kerasLike().root.group("dtypes")
        let (_, stderr) = try capturingStandardError {
            let external = try dtypes.dataset("external_storage")
            XCTAssertEqual(hdf5Error { try external.readBytes() }?.reason,
                           "keeps its data in 1 external file(s); refusing to read outside this file")
            let strings = try dtypes.dataset("strings")
            XCTAssertEqual(strings.elementType, .string)
            XCTAssertNil(strings.byteCount)
            XCTAssertEqual(hdf5Error { try strings.readBytes() }?.reason,
                           "holds string elements, which cannot be read or written as bytes")
        }
        XCTAssertEqual(stderr, "")
    }

    func testUserBlock() throws {
        let file = try HDF5File(readingFrom: Fixture.path("userblock.h5"))
        XCTAssertEqual(try file.root.stringAttribute("where"), "after a 1024-byte user block")
        XCTAssertEqual(littleEndian(try file.root.dataset("x").readBytes(), as: Int16.self), [1, 2, 3])
    }

    func testInMemoryImage() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("keras_like.h5")))
        try data.withUnsafeBytes { raw in
            let file = try HDF5File(readingImage: raw, name: "memory.h5")
            XCTAssertEqual(file.path, "memory.h5")
            XCTAssertEqual(try file.root.group("model_weights").stringArrayAttribute("layer_names"), ["dense", "dropout", "dense_1"])
            XCTAssertEqual(floats(try file.root.dataset("dtypes/gzip").readBytes()), (0..<1000).map(Float.init))
            XCTAssertEqual(hdf5Error { try file.root.group("soft") }?.description,
                           "memory.h5: /soft: is a soft link to '/model_weights', not a group; links are not followed")
            // Two images open at once stay distinct.
            let userblock = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("userblock.h5")))
            try userblock.withUnsafeBytes { other in
                let second = try HDF5File(readingImage: other, name: "second.h5")
                XCTAssertEqual(try second.root.childNames(), ["x"])
                XCTAssertEqual(try file.root.childNames().count, 7)
            }
        }
    }

    func testChildrenKeepTheFileOpen() throws {
        var dataset: HDF5Dataset?
        var group: HDF5Group?
        do {
            let file = try kerasLike()
            dataset = try file.root.dataset("dtypes/f32")
            group = try file.root.group("model_weights")
        }
        XCTAssertEqual(floats(try XCTUnwrap(dataset).readBytes()), [1, 2, 3, -4.25])
        XCTAssertEqual(try XCTUnwrap(group).childNames(), ["dense", "dropout"])
        XCTAssertEqual(try XCTUnwrap(group).file.root.stringAttribute("backend"), "tensorflow")
    }

    func testConcurrentReads() throws {
        let file = try kerasLike()
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            do {
                let gzip = try file.root.dataset("dtypes/gzip")
                guard floats(try gzip.readBytes()) == (0..<1000).map(Float.init),
                      try file.root.group("model_weights").stringArrayAttribute("layer_names").count == 3
                else { return failures.add("wrong data in iteration \(index)") }
                _ = try? file.root.group("soft")
            } catch {
                failures.add("\(error)")
            }
        }
        XCTAssertEqual(failures.all, [])
    }
}

/// Thread-safe collection of failure messages.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []

    func add(_ message: String) {
        lock.withLock { messages.append(message) }
    }

    var all: [String] { lock.withLock { messages } }
}
