import CHDF5

/// An open dataset. Keeps its file open. Shape and element type are read when opening.
package final class HDF5Dataset: HDF5AttributeHolder, Sendable {
    package let file: HDF5File
    /// Full path inside the file, e.g. `/model_weights/dense/dense/kernel:0`.
    package let path: String
    package let objectHandle: HDF5Handle
    /// Dimensions; `[]` for a scalar, `[0]` for an `H5S_NULL` (empty) dataspace.
    package let shape: [Int]
    package let elementType: HDF5ElementType
    /// The product of `shape` (1 for a scalar); opening fails when it overflows `Int`.
    package let elementCount: Int

    /// Wraps `H5Dget_space`, `H5Sget_simple_extent_type`, `H5Sget_simple_extent_dims`
    /// and `H5Dget_type`.
    init(file: HDF5File, handle: HDF5Handle, path: String) throws {
        self.file = file
        self.path = path
        self.objectHandle = handle
        func libraryFail(_ action: String) -> HDF5Error {
            HDF5Error.library(file: file.path, object: path, action)
        }
        let space = H5Dget_space(handle.id)
        guard space >= 0 else { throw libraryFail("cannot read the dataspace") }
        defer { Temporary.closeSpace(space) }
        switch H5Sget_simple_extent_type(space) {
        case H5S_SCALAR:
            shape = []
        case H5S_NULL:
            shape = [0]
        case H5S_SIMPLE:
            let rank = H5Sget_simple_extent_ndims(space)
            guard rank >= 0, rank <= 32 else { throw libraryFail("cannot read the rank") }
            var dims = [hsize_t](repeating: 0, count: Int(rank))
            guard H5Sget_simple_extent_dims(space, &dims, nil) == rank else { throw libraryFail("cannot read the dimensions") }
            var converted: [Int] = []
            for dim in dims {
                guard let value = Checked.int(dim) else {
                    throw HDF5Error(file: file.path, object: path, reason: "dimension \(dim) is too large")
                }
                converted.append(value)
            }
            shape = converted
        default:
            throw HDF5Error(file: file.path, object: path, reason: "has an unknown dataspace")
        }
        guard let count = Checked.product(shape) else {
            throw HDF5Error(file: file.path, object: path, reason: "shape \(shape) has more elements than fit in memory")
        }
        elementCount = count
        let type = H5Dget_type(handle.id)
        guard type >= 0 else { throw libraryFail("cannot read the datatype") }
        defer { Temporary.closeType(type) }
        elementType = HDF5ElementType(fileType: type)
    }

    /// Bytes of raw data allocated in the file (compressed size for filtered datasets; 0 if
    /// nothing was written yet or on error). Wraps `H5Dget_storage_size`.
    package var storageSize: Int {
        HDF5Library.silence()
        return Checked.int(H5Dget_storage_size(objectHandle.id)) ?? Int.max
    }

    /// Where the dataset's raw data starts in the file, when it is stored there in one piece
    /// (contiguous layout, allocated); nil for chunked, compact or unwritten data. Wraps `H5Dget_offset`.
    package var contiguousOffset: Int? {
        HDF5Library.silence()
        let offset = H5Dget_offset(objectHandle.id)
        return offset == scion_HADDR_UNDEF() ? nil : Checked.int(hsize_t(offset))
    }

    /// `elementCount * elementType.byteWidth`: bytes that `readBytes` returns and `write`
    /// expects; nil for strings, other types, or on overflow.
    package var byteCount: Int? {
        elementType.byteWidth.flatMap { Checked.multiply(elementCount, $0) }
    }

    /// Reads the whole dataset, converted to the little-endian form of `elementType`
    /// (float16 as raw IEEE halves, bool as bytes 0/1).
    ///
    /// Refuses, before allocating: element types without a byte form, more than `limit`
    /// bytes, data stored outside the file (external raw storage or virtual datasets), and
    /// contiguous or compact datasets whose stored bytes are fewer than the shape needs.
    /// Wraps `H5Dread`.
    package func readBytes(limit: Int = 1 << 34) throws -> [UInt8] {
        HDF5Library.silence()
        let needed = try checkedByteCount()
        guard needed <= limit else {
            throw fail("holds \(needed) bytes (\(elementType) \(shape)), more than the limit of \(limit)")
        }
        try checkStorage()
        guard needed > 0 else { return [] }
        return try [UInt8](unsafeUninitializedCapacity: needed) { buffer, initialized in
            try rawRead(into: UnsafeMutableRawBufferPointer(buffer))
            initialized = needed
        }
    }

    /// Reads the whole dataset into caller-provided memory of exactly `byteCount` bytes,
    /// with the same conversion and checks as `readBytes` (apart from the size limit).
    /// Wraps `H5Dread`.
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws {
        HDF5Library.silence()
        let needed = try checkedByteCount()
        guard buffer.count == needed else {
            throw fail("needs a buffer of \(needed) bytes (\(elementType) \(shape)), got \(buffer.count)")
        }
        try checkStorage()
        guard needed > 0 else { return }
        try rawRead(into: buffer)
    }

    /// Writes the whole dataset from little-endian bytes of `elementType`, exactly
    /// `byteCount` of them. Wraps `H5Dwrite`.
    package func write(_ bytes: UnsafeRawBufferPointer) throws {
        HDF5Library.silence()
        let needed = try checkedByteCount()
        guard bytes.count == needed else {
            throw fail("needs \(needed) bytes (\(elementType) \(shape)), got \(bytes.count)")
        }
        guard needed > 0, let base = bytes.baseAddress else { return }
        let memoryType = elementType.makeTypeID()
        guard memoryType >= 0 else { throw libraryFail("cannot create the memory type") }
        defer { Temporary.closeType(memoryType) }
        let all = scion_H5S_ALL()
        guard H5Dwrite(objectHandle.id, memoryType, all, all, scion_H5P_DEFAULT(), base) >= 0 else {
            throw libraryFail("cannot write dataset")
        }
    }

    /// Convenience for `write(_:)` from an array. Wraps `H5Dwrite`.
    package func write(bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    // MARK: - Internals

    /// Deflate's greatest possible ratio, rounded up: the most a chunked dataset may expand.
    static let maximumCompressionRatio = 1100
    /// A chunked dataset this small is read whatever it stores (fill values cost nothing to check).
    static let unconditionalChunkedBytes = 16 << 20

    private func checkedByteCount() throws -> Int {
        guard let width = elementType.byteWidth else {
            throw fail("holds \(elementType) elements, which cannot be read or written as bytes")
        }
        guard let bytes = Checked.multiply(elementCount, width) else {
            throw fail("shape \(shape) of \(elementType) needs more bytes than fit in memory")
        }
        return bytes
    }

    /// Refuses layouts that read outside this file, and contiguous or compact storage that
    /// is smaller than the shape claims.
    ///
    /// Wraps `H5Dget_create_plist`, `H5Pget_layout`, `H5Pget_external_count`, `H5Dget_type`,
    /// `H5Tget_size` and `H5Dget_storage_size`.
    private func checkStorage() throws {
        let plist = H5Dget_create_plist(objectHandle.id)
        guard plist >= 0 else { throw libraryFail("cannot read the creation properties") }
        defer { Temporary.closePlist(plist) }
        let external = H5Pget_external_count(plist)
        guard external >= 0 else { throw libraryFail("cannot read the external storage list") }
        guard external == 0 else {
            throw fail("keeps its data in \(external) external file(s); refusing to read outside this file")
        }
        let layout = H5Pget_layout(plist)
        switch layout {
        case H5D_CHUNKED:
            // Chunks never written read as the fill value, so a damaged shape can declare gigabytes
            // that the file does not hold; allow what deflate (at most 1032:1) could have packed
            // into the stored bytes, and small datasets whatever they store.
            let needed = try checkedByteCount()
            let present = storageSize
            guard needed <= Self.unconditionalChunkedBytes
                    || present <= Int.max / Self.maximumCompressionRatio && needed <= present * Self.maximumCompressionRatio else {
                throw fail("shape \(shape) of \(elementType) needs \(needed) bytes but the file stores only \(present) for it, more than compression can explain")
            }
        case H5D_CONTIGUOUS, H5D_COMPACT:
            let fileType = H5Dget_type(objectHandle.id)
            guard fileType >= 0 else { throw libraryFail("cannot read the datatype") }
            let fileWidth = H5Tget_size(fileType)
            Temporary.closeType(fileType)
            guard let stored = Checked.multiply(elementCount, fileWidth) else {
                throw fail("shape \(shape) needs more bytes than fit in memory")
            }
            let present = storageSize
            guard present >= stored else {
                throw fail("shape \(shape) of \(elementType) needs \(stored) bytes but the file stores \(present)")
            }
        case H5D_VIRTUAL:
            throw fail("is a virtual dataset (data mapped from other datasets or files); refusing to read it")
        default:
            throw libraryFail("has an unknown storage layout")
        }
    }

    private func rawRead(into buffer: UnsafeMutableRawBufferPointer) throws {
        guard let base = buffer.baseAddress else { return }
        let memoryType = elementType.makeTypeID()
        guard memoryType >= 0 else { throw libraryFail("cannot create the memory type") }
        defer { Temporary.closeType(memoryType) }
        let all = scion_H5S_ALL()
        guard H5Dread(objectHandle.id, memoryType, all, all, scion_H5P_DEFAULT(), base) >= 0 else {
            throw libraryFail("cannot read dataset")
        }
    }

    private func fail(_ reason: String) -> HDF5Error {
        HDF5Error(file: file.path, object: path, reason: reason)
    }

    private func libraryFail(_ action: String) -> HDF5Error {
        HDF5Error.library(file: file.path, object: path, action)
    }
}
